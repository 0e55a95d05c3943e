"""UPerNet (Xiao et al. 2018) on a ConvNeXt encoder, the ConvNeXt paper's segmentation model:
a pyramid pooling module on the last stage, an FPN over all four, and their fusion at
stride 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segtrain.models.base import SegmentationModel
from segtrain.models.convnext import CONVNEXT_SIZES, ConvNeXtEncoder
from segtrain.models.layers import ConvBNReLU, GlobalPoolBranch, classifier, resize_to


class PPM(nn.Module):
    def __init__(self, cin: int, channels: int, scales: tuple[int, ...]):
        super().__init__()
        self.scales = tuple(int(s) for s in scales)
        self.branches = nn.ModuleList(GlobalPoolBranch(cin, channels) if s == 1 else ConvBNReLU(cin, channels, 1)
                                      for s in self.scales)
        self.bottleneck = ConvBNReLU(cin + channels * len(self.scales), channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for s, branch in zip(self.scales, self.branches, strict=True):
            outs.append(branch(x) if s == 1 else resize_to(branch(F.adaptive_avg_pool2d(x, s)), x))
        return self.bottleneck(torch.cat(outs, dim=1))


class UPerNetDecoder(nn.Module):
    def __init__(self, in_channels: list[int], channels: int, pool_scales=(1, 2, 3, 6)):
        super().__init__()
        self.ppm = PPM(in_channels[-1], channels, tuple(pool_scales))
        self.laterals = nn.ModuleList(ConvBNReLU(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvBNReLU(channels, channels, 3) for _ in in_channels[:-1])
        self.fuse = ConvBNReLU(channels * len(in_channels), channels, 3)
        self.out_channels = channels

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        lat = [conv(f) for conv, f in zip(self.laterals, feats[:-1], strict=True)] + [self.ppm(feats[-1])]
        for i in range(len(lat) - 1, 0, -1):  # top-down pathway
            lat[i - 1] = lat[i - 1] + resize_to(lat[i], lat[i - 1])
        outs = [conv(x) for conv, x in zip(self.fpn_convs, lat[:-1], strict=True)] + [lat[-1]]
        return self.fuse(torch.cat([resize_to(o, outs[0]) for o in outs], dim=1))


def build_convnext_upernet(num_classes: int, in_channels: int = 3, variant: str = "tiny",
                           depths: list[int] | None = None, dims: list[int] | None = None,
                           drop_path: float | None = None, channels: int = 512,
                           pool_scales: list[int] | None = None, dropout: float = 0.1) -> SegmentationModel:
    """`variant` tiny|small picks depths/dims (and the drop-path rate MMSegmentation uses with
    UPerNet: 0.4 / 0.3); `depths`/`dims` override them (tiny test models)."""
    if variant not in CONVNEXT_SIZES:
        raise ValueError(f"convnext variant {variant!r} is not one of {', '.join(CONVNEXT_SIZES)}")
    d0, w0 = CONVNEXT_SIZES[variant]
    if drop_path is None:
        drop_path = 0.4 if variant == "tiny" else 0.3
    encoder = ConvNeXtEncoder(depths or d0, dims or w0, in_channels, drop_path)
    decoder = UPerNetDecoder(encoder.out_channels, channels, tuple(pool_scales or (1, 2, 3, 6)))
    return SegmentationModel(encoder, decoder, classifier(channels, num_classes, dropout), size_divisor=32)
