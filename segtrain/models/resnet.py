"""ResNet encoders (He et al. 2016, the v1.5 variant torchvision and timm ship) in plain PyTorch.

Parameter names are torchvision's (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`,
…), which timm's ResNets share, so their ImageNet checkpoints load without renaming (their
`fc.*` classifier is dropped). `output_stride` 16 or 8 replaces the stride of the last one or
two stages with dilation (DeepLab), as torchvision's `replace_stride_with_dilation` does.
"""

from __future__ import annotations

import torch
from torch import nn

RESNET_LAYERS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carries the stride: v1.5) -> 1x1 with 4x expansion."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetEncoder(nn.Module):
    """Stem + 4 stages; returns the 4 stage outputs (strides 4, 8, 16, 32 before dilation)."""

    def __init__(self, arch: str = "resnet50", in_channels: int = 3, base_width: int = 64,
                 output_stride: int = 32):
        super().__init__()
        if arch not in RESNET_LAYERS:
            raise ValueError(f"backbone {arch!r} is not one of {', '.join(RESNET_LAYERS)}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride {output_stride} is not one of 8, 16, 32")
        if base_width < 1:
            raise ValueError("base_width must be >= 1")
        kind, layers = RESNET_LAYERS[arch]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.arch = arch
        self.inplanes = base_width
        self.dilation = 1
        self.conv1 = nn.Conv2d(in_channels, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        dilate = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}[output_stride]
        self.layer1 = self._make_layer(block, base_width, layers[0])
        self.layer2 = self._make_layer(block, base_width * 2, layers[1], 2, dilate[0])
        self.layer3 = self._make_layer(block, base_width * 4, layers[2], 2, dilate[1])
        self.layer4 = self._make_layer(block, base_width * 8, layers[3], 2, dilate[2])
        self.out_channels = [base_width * m * block.expansion for m in (1, 2, 4, 8)]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        del self.inplanes, self.dilation  # build-time state only

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1, dilate: bool = False):
        previous = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride,
                                                 bias=False), nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, previous)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        return feats

    # ------------------------------------------------------------------ checkpoint layouts

    @staticmethod
    def key_layouts() -> dict:
        """Foreign checkpoint layouts -> functions mapping a foreign key to ours (None = drop).
        torchvision and timm ResNets use our names already; `fc.*` is their classifier."""
        return {"torchvision/timm": lambda k: None if k.startswith("fc.") else k}
