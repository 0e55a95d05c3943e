"""ConvNeXt encoder (Liu et al. 2022), T and S sizes, in plain PyTorch.

Parameter names follow timm (`stem.0`, `stages.1.downsample.1`, `stages.0.blocks.0.conv_dw`,
`.mlp.fc1`, `.gamma`), so timm checkpoints load as they are; the original facebookresearch
layout and torchvision's are renamed by `key_layouts` (docs/models.md lists the mapping).
As in the ConvNeXt segmentation backbone, every stage output gets its own LayerNorm
(`out_norms.*`): those are new for segmentation and never in an ImageNet checkpoint.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

CONVNEXT_SIZES = {
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "small": ((3, 3, 27, 3), (96, 192, 384, 768)),
}


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ConvNeXtBlock(nn.Module):
    """7x7 depth-wise conv -> LayerNorm -> MLP (4x) -> layer scale, residual."""

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale: float = 1e-6):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_dw(x).permute(0, 2, 3, 1)
        y = self.mlp(self.norm(y)) * self.gamma
        return x + self.drop_path(y.permute(0, 3, 1, 2))


class ConvNeXtStage(nn.Module):
    def __init__(self, cin: int, cout: int, depth: int, drop_rates: list[float], downsample: bool):
        super().__init__()
        self.downsample = (nn.Sequential(LayerNorm2d(cin, eps=1e-6), nn.Conv2d(cin, cout, 2, stride=2))
                           if downsample else nn.Identity())
        self.blocks = nn.Sequential(*(ConvNeXtBlock(cout, r) for r in drop_rates[:depth]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class ConvNeXtEncoder(nn.Module):
    """Patchify stem (4x4, stride 4) + 4 stages; returns the 4 normalised stage outputs."""

    def __init__(self, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), in_channels: int = 3,
                 drop_path: float = 0.0):
        super().__init__()
        depths, dims = list(depths), list(dims)
        if len(depths) != 4 or len(dims) != 4 or min(depths) < 1 or min(dims) < 1:
            raise ValueError("convnext needs 4 depths >= 1 and 4 dims >= 1")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=1e-6))
        total = sum(depths)
        rates = [drop_path * i / max(1, total - 1) for i in range(total)]
        stages, start = [], 0
        for i in range(4):
            cin = dims[i - 1] if i else dims[0]
            stages.append(ConvNeXtStage(cin, dims[i], depths[i], rates[start:start + depths[i]], i > 0))
            start += depths[i]
        self.stages = nn.ModuleList(stages)
        self.out_norms = nn.ModuleList(LayerNorm2d(d, eps=1e-6) for d in dims)
        self.out_channels = dims
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage, norm in zip(self.stages, self.out_norms, strict=True):
            x = stage(x)
            feats.append(norm(x))
        return feats

    # ------------------------------------------------------------------ checkpoint layouts

    @staticmethod
    def key_layouts() -> dict:
        """Foreign checkpoint layouts -> functions mapping a foreign key to ours (None = drop)."""
        return {"timm": _from_timm, "facebookresearch": _from_facebook, "torchvision": _from_torchvision}


def _from_timm(k: str) -> str | None:
    return None if k.startswith(("head.", "norm_pre.")) else k


def _from_facebook(k: str) -> str | None:
    """facebookresearch/ConvNeXt: downsample_layers.0 is the stem, stages.i.j.dwconv/pwconv1/2."""
    if k.startswith(("head.", "norm.")):
        return None  # ImageNet classifier and its final norm
    k = re.sub(r"^downsample_layers\.0\.", "stem.", k)
    k = re.sub(r"^downsample_layers\.(\d+)\.", r"stages.\1.downsample.", k)
    k = re.sub(r"^stages\.(\d+)\.(\d+)\.", r"stages.\1.blocks.\2.", k)
    k = k.replace(".dwconv.", ".conv_dw.").replace(".pwconv1.", ".mlp.fc1.").replace(".pwconv2.", ".mlp.fc2.")
    return k


_TV_BLOCK = {"block.0": "conv_dw", "block.2": "norm", "block.3": "mlp.fc1", "block.5": "mlp.fc2"}


def _from_torchvision(k: str) -> str | None:
    """torchvision: features.0 stem, features.{1,3,5,7} stages, features.{2,4,6} downsamples;
    in a block `block.0` dwconv, `block.2` norm, `block.3`/`block.5` MLP, `layer_scale` (C,1,1)."""
    m = re.match(r"^features\.(\d+)\.(.*)$", k)
    if not m:
        return None  # classifier.*
    idx, rest = int(m.group(1)), m.group(2)
    if idx == 0:
        return f"stem.{rest}"
    if idx % 2 == 0:  # 2, 4, 6 -> downsample of stage 1, 2, 3
        return f"stages.{idx // 2}.downsample.{rest}"
    stage = (idx - 1) // 2
    b = re.match(r"^(\d+)\.(block\.\d+|layer_scale)(.*)$", rest)
    if not b:
        return None
    part = "gamma" if b.group(2) == "layer_scale" else _TV_BLOCK.get(b.group(2))
    if part is None:
        return None
    return f"stages.{stage}.blocks.{b.group(1)}.{part}{b.group(3)}"
