"""FCN-8s (Long et al. 2015) on a ResNet encoder.

The original fuses class scores from pool3/pool4/fc7 of a VGG-16. Here the stride-8/16/32
features are projected to a common width and fused by the same up-sample-and-add scheme,
and a single 1x1 head turns the fused features into class scores: a factorisation of the
original score fusion that keeps every class-specific weight in the head (so `--init-from`
can swap class tables and `--train-parts head` means "the classifier"). ResNet encoders are
what torchvision and MMSegmentation use for FCN today, and they share pretrained weights
with DeepLabV3+.
"""

from __future__ import annotations

import torch
from torch import nn

from segtrain.models.base import SegmentationModel
from segtrain.models.layers import ConvBNReLU, classifier, resize_to
from segtrain.models.resnet import ResNetEncoder


class FCN8sDecoder(nn.Module):
    def __init__(self, in_channels: list[int], channels: int):
        super().__init__()
        self.score32 = ConvBNReLU(in_channels[3], channels, 3)  # the "fc6/fc7" conv on stride 32
        self.skip16 = nn.Conv2d(in_channels[2], channels, 1)
        self.skip8 = nn.Conv2d(in_channels[1], channels, 1)
        for conv in (self.skip16, self.skip8):  # start as FCN-32s, as the paper's zero-init skips
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.out_channels = channels

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        _, c8, c16, c32 = feats
        x = self.score32(c32)
        x = resize_to(x, c16) + self.skip16(c16)
        return resize_to(x, c8) + self.skip8(c8)


def build_fcn8s(num_classes: int, in_channels: int = 3, backbone: str = "resnet50", base_width: int = 64,
                channels: int = 512, dropout: float = 0.1) -> SegmentationModel:
    encoder = ResNetEncoder(backbone, in_channels, base_width, output_stride=32)
    decoder = FCN8sDecoder(encoder.out_channels, channels)
    return SegmentationModel(encoder, decoder, classifier(channels, num_classes, dropout), size_divisor=32)
