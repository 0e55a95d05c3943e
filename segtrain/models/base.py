"""The shape every segtrain model has: encoder -> decoder -> head.

Named parts let later features (fine-tuning depth, pretrained encoders, per-part parameter
counts) address "the encoder" or "the head" without knowing the architecture. The head holds
every class-specific weight and nothing else, so another class table only rebuilds the head.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from segtrain.parts import PARTS, parse_parts


class SegmentationModel(nn.Module):
    """encoder(x) -> list of features; decoder(features) -> tensor; head -> logits.

    Inputs of any size are padded (reflect) up to a multiple of `size_divisor` and the
    logits cropped back, so odd sizes like 250x333 work without resizing; logits computed
    at a lower resolution (stride 4 or 8 decoders) are bilinearly up-sampled first.
    """

    PARTS = PARTS

    def __init__(self, encoder: nn.Module, decoder: nn.Module, head: nn.Module, size_divisor: int = 1):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.head = head
        self.size_divisor = int(size_divisor)
        self.frozen_parts: tuple[str, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        d = self.size_divisor
        ph, pw = (-h) % d, (-w) % d
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        # a frozen prefix of the network needs no autograd graph at all (less memory, faster)
        frozen_enc = "encoder" in self.frozen_parts
        with torch.no_grad() if frozen_enc else nullcontext():
            feats = self.encoder(x)
        with torch.no_grad() if frozen_enc and "decoder" in self.frozen_parts else nullcontext():
            y = self.decoder(feats)
        y = self.head(y)
        if y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if ph or pw:
            y = y[..., :h, :w]
        return y

    def part_parameters(self) -> dict[str, int]:
        return {p: sum(t.numel() for t in getattr(self, p).parameters()) for p in self.PARTS}

    def trainable_parameters(self) -> dict[str, int]:
        return {p: sum(t.numel() for t in getattr(self, p).parameters() if t.requires_grad)
                for p in self.PARTS}

    def set_train_parts(self, parts: str | Iterable[str]) -> tuple[str, ...]:
        """Train only `parts`: the others get requires_grad=False and stay in eval mode, so
        their BatchNorm statistics (and dropout / drop-path) are frozen too."""
        parts = parse_parts(parts)
        self.frozen_parts = tuple(p for p in self.PARTS if p not in parts)
        for p in self.PARTS:
            for t in getattr(self, p).parameters():
                t.requires_grad_(p in parts)
        self.train(self.training)
        return parts

    def train(self, mode: bool = True):
        super().train(mode)
        for p in self.frozen_parts:
            getattr(self, p).eval()
        return self
