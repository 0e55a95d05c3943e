"""How depth enters a model (--fusion): one registry, FUSIONS, keyed by segtrain.config.FUSIONS.

- early: depth as extra input channels of the model's own encoder (any model). With
  --pretrained, the first convolution's depth filter is the mean of its RGB filters
  (segtrain.models.pretrained), so the pretrained RGB response is unchanged at start.
- mid: a two-branch encoder (ESANet, Seichter et al. 2021): an RGB and a depth encoder of
  the same architecture; after every stage both outputs are re-weighted by
  squeeze-and-excitation and summed, and the sum continues in the RGB branch and feeds the
  decoder. Natural for the U-Net and ResNet encoders, so only models built on them.

The model still takes one (N, C, H, W) tensor (RGB first, depth last), so the training,
evaluation and prediction loops are the same for every input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from segtrain.depth import CHANNELS, in_channels
from segtrain.models.base import SegmentationModel
from segtrain.models.deeplab import build_deeplabv3plus
from segtrain.models.fcn import build_fcn8s
from segtrain.models.pretrained import _fit
from segtrain.models.resnet import ResNetEncoder
from segtrain.models.unet import UNetEncoder, build_unet


class SqueezeExcite(nn.Module):
    """Channel re-weighting from globally pooled features (Hu et al. 2018)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


def _stages(encoder: nn.Module) -> tuple[list[Callable], list[int]]:
    """The encoder as a list of stages (each returns one feature map) and their widths."""
    if isinstance(encoder, UNetEncoder):
        return list(encoder.stages), list(encoder.widths)
    if isinstance(encoder, ResNetEncoder):
        e = encoder

        def stem_and_layer1(x):
            return e.layer1(e.maxpool(e.relu(e.bn1(e.conv1(x)))))

        return [stem_and_layer1, e.layer2, e.layer3, e.layer4], list(e.out_channels)
    raise TypeError(f"mid fusion needs a U-Net or ResNet encoder, not {type(encoder).__name__}")


class TwoBranchEncoder(nn.Module):
    """RGB and depth encoders fused by SE after every stage (see module docstring)."""

    def __init__(self, rgb: nn.Module, depth: nn.Module):
        super().__init__()
        self.rgb, self.depth = rgb, depth
        _, widths = _stages(rgb)
        self.se_rgb = nn.ModuleList(SqueezeExcite(w) for w in widths)
        self.se_depth = nn.ModuleList(SqueezeExcite(w) for w in widths)
        self.out_channels = getattr(rgb, "out_channels", widths)
        self.widths = widths

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        r, d = x[:, :3], x[:, 3:]
        feats = []
        stages = zip(_stages(self.rgb)[0], _stages(self.depth)[0], self.se_rgb, self.se_depth, strict=True)
        for rgb_stage, depth_stage, se_r, se_d in stages:
            r, d = rgb_stage(r), depth_stage(d)
            r = se_r(r) + se_d(d)
            feats.append(r)
        return feats

    def key_layouts(self) -> dict:
        """Pretrained encoder weights load into the RGB branch (then `init_depth_from_rgb`)."""
        inner = dict(self.rgb.key_layouts()) if hasattr(self.rgb, "key_layouts") else {}
        inner["segtrain"] = lambda k: k
        return {f"{name} (rgb branch)": (lambda k, fn=fn: None if fn(k) is None else "rgb." + fn(k))
                for name, fn in inner.items()}

    @torch.no_grad()
    def init_depth_from_rgb(self) -> None:
        """After --pretrained: the depth branch starts as a copy of the RGB branch, its first
        convolution the mean of the RGB filters (ESANet initialises both from ImageNet), by
        the one rule that also fits pretrained weights (`pretrained._fit`)."""
        theirs = self.depth.state_dict()
        for k, v in self.rgb.state_dict().items():
            fitted = _fit(v, theirs[k])
            if fitted is not None:
                theirs[k].copy_(fitted)


def build_early(builder, num_classes: int, inputs: str, options: dict) -> SegmentationModel:
    return builder(num_classes, **{**options, "in_channels": in_channels(inputs)})


def build_mid(builder, num_classes: int, inputs: str, options: dict) -> SegmentationModel:
    if inputs != "rgbd":
        raise ValueError(f"--fusion mid fuses two inputs and needs --inputs rgbd, not {inputs}")
    model = builder(num_classes, **{**options, "in_channels": CHANNELS["rgb"][0]})
    depth = builder(num_classes, **{**options, "in_channels": CHANNELS["depth"][1]}).encoder
    model.encoder = TwoBranchEncoder(model.encoder, depth)
    return model


@dataclass(frozen=True)
class FusionSpec:
    build: Callable[..., SegmentationModel]
    description: str
    builders: tuple[Callable, ...] | None  # model builders it works with; None = any model


FUSIONS: dict[str, FusionSpec] = {
    "early": FusionSpec(build_early, "depth as extra input channels of the first convolution", None),
    "mid": FusionSpec(build_mid, "two encoders (RGB, depth), squeeze-and-excitation fusion after each stage",
                      (build_unet, build_deeplabv3plus, build_fcn8s)),  # U-Net / ResNet encoders
}
