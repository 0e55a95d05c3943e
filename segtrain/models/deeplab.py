"""DeepLabV3+ (Chen et al. 2018): dilated ResNet encoder, ASPP, and a decoder that refines the
ASPP output with stride-4 low-level features.

Output stride 16 uses ASPP rates 6/12/18, output stride 8 doubles them (the paper's setting).
"""

from __future__ import annotations

import torch
from torch import nn

from segtrain.models.base import SegmentationModel
from segtrain.models.layers import ConvBNReLU, GlobalPoolBranch, classifier, resize_to
from segtrain.models.resnet import ResNetEncoder


class ASPP(nn.Module):
    """1x1 branch, three dilated 3x3 branches and image pooling, concatenated and projected."""

    def __init__(self, cin: int, channels: int, rates: tuple[int, ...], dropout: float = 0.1):
        super().__init__()
        self.branches = nn.ModuleList([ConvBNReLU(cin, channels, 1)] +
                                      [ConvBNReLU(cin, channels, 3, dilation=r) for r in rates])
        self.pool = GlobalPoolBranch(cin, channels)
        self.project = nn.Sequential(ConvBNReLU(channels * (len(rates) + 2), channels, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches] + [self.pool(x)], dim=1))


class DeepLabV3PlusDecoder(nn.Module):
    def __init__(self, in_channels: list[int], aspp_channels: int, rates: tuple[int, ...],
                 low_level_channels: int, channels: int):
        super().__init__()
        self.aspp = ASPP(in_channels[-1], aspp_channels, rates)
        self.low = ConvBNReLU(in_channels[0], low_level_channels, 1)
        self.fuse = nn.Sequential(ConvBNReLU(aspp_channels + low_level_channels, channels, 3),
                                  ConvBNReLU(channels, channels, 3))
        self.out_channels = channels

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        low = self.low(feats[0])
        high = resize_to(self.aspp(feats[-1]), low)
        return self.fuse(torch.cat([high, low], dim=1))


def build_deeplabv3plus(num_classes: int, in_channels: int = 3, backbone: str = "resnet50",
                        base_width: int = 64, output_stride: int = 16, aspp_channels: int = 256,
                        low_level_channels: int = 48, decoder_channels: int = 256,
                        dropout: float = 0.1) -> SegmentationModel:
    if output_stride not in (8, 16):
        raise ValueError(f"deeplabv3plus output_stride {output_stride} is not one of 8, 16")
    rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
    encoder = ResNetEncoder(backbone, in_channels, base_width, output_stride)
    decoder = DeepLabV3PlusDecoder(encoder.out_channels, aspp_channels, rates, low_level_channels,
                                   decoder_channels)
    head = classifier(decoder_channels, num_classes, dropout)
    return SegmentationModel(encoder, decoder, head, size_divisor=32)
