"""U-Net (Ronneberger et al. 2015) in plain PyTorch, with BatchNorm.

base_width=64, depth=4, transposed-conv up-sampling is the classic ~31 M parameter model.
"""

from __future__ import annotations

import torch
from torch import nn

from segtrain.models.base import SegmentationModel


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )


class UNetEncoder(nn.Module):
    """A stem and `depth` down stages (max-pool, DoubleConv); returns every stage's output."""

    def __init__(self, in_channels: int, widths: list[int]):
        super().__init__()
        self.widths = widths
        stages = [DoubleConv(in_channels, widths[0])]
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            stages.append(nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, mode: str):
        super().__init__()
        if mode == "transpose":
            self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        else:  # bilinear: parameter-free up-sampling, then a 1x1 conv to halve the channels
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(cin, cin // 2, 1, bias=False))
        self.conv = DoubleConv(cin // 2 + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNetDecoder(nn.Module):
    def __init__(self, widths: list[int], mode: str):
        super().__init__()
        self.ups = nn.ModuleList(
            Up(widths[i + 1], widths[i], widths[i], mode) for i in reversed(range(len(widths) - 1))
        )
        self.out_channels = widths[0]

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1]), strict=True):
            x = up(x, skip)
        return x


def build_unet(num_classes: int, in_channels: int = 3, base_width: int = 64, depth: int = 4,
               up: str = "transpose") -> SegmentationModel:
    """U-Net with `depth` down-samplings; channel widths base_width * 2**i."""
    if depth < 1 or base_width < 2:
        raise ValueError("unet needs depth >= 1 and base_width >= 2")
    if up not in ("transpose", "bilinear"):
        raise ValueError(f"unet up {up!r} is not one of transpose, bilinear")
    widths = [base_width * 2**i for i in range(depth + 1)]
    encoder = UNetEncoder(in_channels, widths)
    decoder = UNetDecoder(widths, up)
    head = nn.Conv2d(widths[0], num_classes, 1)
    return SegmentationModel(encoder, decoder, head, size_divisor=2**depth)
