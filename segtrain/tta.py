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


# predict holds at most this many class scores (floats) at an image's size at once: above it,
# segment_labels builds the prediction a few classes at a time
MAX_SCORES = 2**26


def segment_labels(model, x: torch.Tensor, rt: Runtime, out_size, num_classes: int,
                   tta: TTAConfig | None = None, max_scores: int | None = None) -> torch.Tensor:
    """The prediction (N, *out_size) of `x`: exactly `segment(...).argmax(1)` while the class
    scores at `out_size` are at most `max_scores` floats.

    Beyond that (a 12 MP photo with 39 classes is 470 M floats, 1.9 GB, about three times that
    with TTA) the scores are never all held: each pass's logits stay at the network's size and
    are upsampled a few classes at a time into a running argmax (ties keep the lower class, as
    argmax does); under TTA each pass's softmax takes its per-pixel max and sum of exponentials
    over all classes in one such sweep first (the sum rescaled when the max grows). The same
    rule, equal up to float rounding."""
    out_size = tuple(out_size)
    max_scores = MAX_SCORES if max_scores is None else max_scores
    pixels = x.shape[0] * out_size[0] * out_size[1]
    if num_classes * pixels <= max_scores:
        return segment(model, x, rt, out_size, tta).argmax(1)
    plain = tta is None or tta.plain
    h, w = x.shape[-2:]
    scales, flips = ([1.0], (False,)) if plain else (tta.scales, (False, True) if tta.flip else (False,))
    low = []  # each pass's logits at the network's size, flipped back: small
    for scale in scales:
        xs = resize_input(x, scaled_size(h, w, scale), rt)
        for flip in flips:
            with rt.autocast():
                logits = model(xs.flip(-1) if flip else xs).float()
            low.append((logits.flip(-1) if flip else logits).contiguous())
    step = max(1, max_scores // pixels)
    starts = range(0, num_classes, step)

    def up(logits, c0):
        part = logits[:, c0:c0 + step]
        return part if part.shape[-2:] == out_size else F.interpolate(part, size=out_size, mode="bilinear",
                                                                      align_corners=False)

    norms = []  # per pass: each pixel's max logit and sum of exp(logit - max), over all classes
    if not plain:
        for logits in low:  # in one sweep: the sum is rescaled whenever the max grows
            top = total = None
            for c0 in starts:
                part = up(logits, c0)
                m = part.amax(1, keepdim=True)
                if top is None:
                    top, total = m, part.sub_(m).exp_().sum(1, keepdim=True)
                else:
                    new_top = torch.maximum(top, m)
                    total = total.mul_((top - new_top).exp_()).add_(part.sub_(new_top).exp_().sum(1, keepdim=True))
                    top = new_top
            norms.append((top, total))
    best = labels = None
    for c0 in starts:
        if plain:
            score = up(low[0], c0)
        else:
            score = sum(up(lg, c0).sub_(top).exp_().div_(total) for lg, (top, total) in zip(low, norms, strict=True))
        value, index = score.max(1)
        index += c0
        if best is None:
            best, labels = value, index
        else:
            better = value > best
            best, labels = torch.where(better, value, best), torch.where(better, index, labels)
    return labels
