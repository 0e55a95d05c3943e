"""Small building blocks the decoders share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, dilation: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class GlobalPoolBranch(nn.Module):
    """Global average pool -> 1x1 conv -> ReLU -> broadcast back (ASPP image pooling, PPM bin 1).

    No BatchNorm here on purpose: over a 1x1 map BN sees one value per channel and image, which
    fails for a batch of one and is noise for small batches; a biased conv does the same job.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv(F.adaptive_avg_pool2d(x, 1)))
        return y.expand(-1, -1, *x.shape[-2:])


def resize_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def classifier(cin: int, num_classes: int, dropout: float = 0.1) -> nn.Module:
    """The head: everything class-specific and nothing else (so --init-from can rebuild it)."""
    conv = nn.Conv2d(cin, num_classes, 1)
    return nn.Sequential(nn.Dropout2d(dropout), conv) if dropout > 0 else nn.Sequential(conv)
