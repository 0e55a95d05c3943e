"""The shape every segtrain model has: encoder -> decoder -> head.

Named parts let later features (fine-tuning depth, pretrained encoders, per-part parameter
counts) address "the encoder" or "the head" without knowing the architecture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SegmentationModel(nn.Module):
    """encoder(x) -> list of features; decoder(features) -> tensor; head -> logits.

    Inputs of any size are padded (reflect) up to a multiple of `size_divisor` and the
    logits cropped back, so odd sizes like 250x333 work without resizing.
    """

    PARTS = ("encoder", "decoder", "head")

    def __init__(self, encoder: nn.Module, decoder: nn.Module, head: nn.Module, size_divisor: int = 1):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.head = head
        self.size_divisor = int(size_divisor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        d = self.size_divisor
        ph, pw = (-h) % d, (-w) % d
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        y = self.head(self.decoder(self.encoder(x)))
        if ph or pw:
            y = y[..., :h, :w]
        return y

    def part_parameters(self) -> dict[str, int]:
        return {p: sum(t.numel() for t in getattr(self, p).parameters()) for p in self.PARTS}
