"""Test-time augmentation (multi-scale + horizontal flip) for `eval` and `predict`.

One function, `segment`, turns a batch of network inputs into class scores; `engine.evaluate`
(batched, on the device) and `inference.predict_array` (one image) both call it, so eval's
metrics, its panels and predict's masks come from the same passes. The rule is
mmsegmentation's `--aug-test`: every pass's logits are upsampled to the output size and
softmaxed, and the probabilities are averaged; flipped passes are flipped back first.
Without augmentation it returns the plain pass's logits, bit for bit what eval did before.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from segtrain.config import TTAConfig
from segtrain.depth import CHANNELS
from segtrain.runtime import Runtime


def scaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """Input size of one scale: mmseg's int(size * scale + 0.5), at least 1 pixel. Any size
    works: models pad their input up to their stride and crop the logits back."""
    return max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))


@lru_cache(maxsize=256)
def _nearest_index(src: int, dst: int, device: torch.device) -> torch.Tensor:
    """Source index of each of `dst` outputs under cv2.INTER_NEAREST_EXACT, taken from cv2
    itself (its fixed-point rule differs from torch's nearest-exact at half-pixel ties), so
    depth resized here equals the loader's cv2.resize bit for bit. Cached: one copy to the
    device per size, not per batch."""
    row = cv2.resize(np.arange(src, dtype=np.float32)[None], (dst, 1), interpolation=cv2.INTER_NEAREST_EXACT)
    return torch.from_numpy(row[0].astype(np.int64)).to(device)


def _nearest(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = x.shape[-2:]
    return x.index_select(-2, _nearest_index(h, size[0], x.device)).index_select(
        -1, _nearest_index(w, size[1], x.device))


def resize_input(x: torch.Tensor, size: tuple[int, int], rt: Runtime) -> torch.Tensor:
    """A network input batch at another size: RGB channels bilinear (half-pixel centres, no
    antialiasing, as cv2.INTER_LINEAR), depth channels nearest as the loader resizes depth
    (nearest commutes with the depth encoding, so resizing the encoded values is exact)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    colour = CHANNELS[rt.inputs][0]  # colour channels first, then depth (Runtime.batch_inputs)
    parts = []
    if colour:
        parts.append(F.interpolate(x[:, :colour], size=size, mode="bilinear", align_corners=False))
    if x.shape[1] > colour:
        parts.append(_nearest(x[:, colour:], size))
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    return out.contiguous(memory_format=torch.channels_last) if rt.channels_last else out


def _logits(model, x: torch.Tensor, rt: Runtime, out_size, flip: bool = False) -> torch.Tensor:
    """One forward pass in float32 at `out_size` (a flipped pass flipped back before the
    bilinear upsampling, so an exactly flip-equivariant model gives the plain pass's logits)."""
    with rt.autocast():
        logits = model(x.flip(-1) if flip else x)
    logits = logits.float()
    if flip:
        logits = logits.flip(-1)
    if logits.shape[-2:] != tuple(out_size):
        logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
    return logits


def segment(model, x: torch.Tensor, rt: Runtime, out_size, tta: TTAConfig | None = None) -> torch.Tensor:
    """Class scores (N, C, *out_size) of the network input `x`; their argmax is the prediction.

    Plain (`tta` None or one scale 1 without flip): the logits of one pass. Otherwise the mean
    of the softmax probabilities of one pass per scale (x 2 with flip), accumulated on the
    device with no read back to the host."""
    out_size = tuple(out_size)
    if tta is None or tta.plain:
        return _logits(model, x, rt, out_size)
    h, w = x.shape[-2:]
    total = None
    for scale in tta.scales:
        xs = resize_input(x, scaled_size(h, w, scale), rt)
        for flip in (False, True) if tta.flip else (False,):
            probs = _logits(model, xs, rt, out_size, flip).softmax(1)
            total = probs if total is None else total.add_(probs)
    return total.div_(tta.passes)
