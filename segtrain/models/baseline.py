"""The course projects' simple baseline: a stack of 3x3 conv-BN-ReLU layers at full resolution.

No down-sampling means a small receptive field (2 * layers + 1 pixels): it learns colour and
texture, not context, which is exactly what makes it a useful lower bound for the others.
"""

from __future__ import annotations

import torch
from torch import nn

from segtrain.models.base import SegmentationModel
from segtrain.models.layers import ConvBNReLU


class ConvStack(nn.Module):
    def __init__(self, cin: int, width: int, layers: int, as_list_input: bool):
        super().__init__()
        self.layers = nn.Sequential(*(ConvBNReLU(cin if i == 0 else width, width, 3) for i in range(layers)))
        self.as_list_input = as_list_input
        self.out_channels = width

    def forward(self, x):
        if self.as_list_input:  # decoder: takes the encoder's feature list
            return self.layers(x[-1])
        return [self.layers(x)]


def build_baseline(num_classes: int, in_channels: int = 3, width: int = 64, depth: int = 4,
                   decoder_depth: int = 2) -> SegmentationModel:
    if width < 1 or depth < 1 or decoder_depth < 0:
        raise ValueError("baseline needs width >= 1, depth >= 1, decoder_depth >= 0")
    encoder = ConvStack(in_channels, width, depth, as_list_input=False)
    decoder = ConvStack(width, width, decoder_depth, as_list_input=True) if decoder_depth else _Last()
    return SegmentationModel(encoder, decoder, nn.Conv2d(width, num_classes, 1), size_divisor=1)


class _Last(nn.Module):
    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return feats[-1]
