"""Test-time augmentation (multi-scale + horizontal flip) for `eval` and `predict`.

Two functions share one set of passes (`_pass_logits`, one forward pass each): `segment` turns
a batch of network inputs into class scores, `engine.evaluate` (batched, on the device) calls
it; `segment_labels` turns them into the prediction, `inference.predict_array` (one image,
eval's panels and predict's masks) calls it, and it is `segment(...).argmax(1)` unless the
image is too large to hold all its class scores. So eval's metrics, its panels and predict's
masks come from the same passes. The rule is mmsegmentation's `--aug-test`: every pass's
logits are upsampled to the output size and softmaxed, and the probabilities are averaged;
flipped passes are flipped back first. Without augmentation it returns the plain pass's
logits, bit for bit what eval did before."""

from __future__ import annotations

import itertools
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


def is_plain(tta: TTAConfig | None) -> bool:
    """One pass of the input itself: no TTA, or one scale 1 without flip."""
    return tta is None or tta.plain


def _pass_logits(model, x: torch.Tensor, rt: Runtime, tta: TTAConfig | None):
    """Each pass's logits in float32 at the network's size, one at a time: one pass per scale,
    each also flipped with `flip` (plain: the input itself, unflipped). A flipped pass is
    flipped back, so an exactly flip-equivariant model gives the plain pass's logits."""
    scales, flips = ([1.0], (False,)) if is_plain(tta) else (tta.scales, (False, True) if tta.flip else (False,))
    h, w = x.shape[-2:]
    for scale in scales:
        xs = resize_input(x, scaled_size(h, w, scale), rt)  # x itself at scale 1
        for flip in flips:
            with rt.autocast():
                logits = model(xs.flip(-1) if flip else xs)
            logits = logits.float()
            yield logits.flip(-1) if flip else logits


def _upsample(logits: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """Logits bilinearly at `out_size` (themselves when already there: a view, never to be
    written into)."""
    if logits.shape[-2:] == out_size:
        return logits
    return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)


def _scores(logits_of_passes, out_size: tuple[int, int], tta: TTAConfig | None) -> torch.Tensor:
    """Plain: the one pass's logits at `out_size`. Otherwise the mean of the passes' softmax
    probabilities at `out_size`, accumulated on the device with no read back to the host."""
    total = None
    for logits in logits_of_passes:
        logits = _upsample(logits, out_size)
        if is_plain(tta):
            return logits
        probs = logits.softmax(1)
        total = probs if total is None else total.add_(probs)
    return total.div_(tta.passes)


def segment(model, x: torch.Tensor, rt: Runtime, out_size, tta: TTAConfig | None = None) -> torch.Tensor:
    """Class scores (N, C, *out_size) of the network input `x`; their argmax is the prediction.

    Plain (`tta` None or one scale 1 without flip): the logits of one pass. Otherwise the mean
    of the softmax probabilities of one pass per scale (x 2 with flip)."""
    return _scores(_pass_logits(model, x, rt, tta), tuple(out_size), tta)


# predict holds at most this many class scores (floats) at an image's size at once: above it,
# segment_labels builds the prediction a few classes at a time
MAX_SCORES = 2**26


def segment_labels(model, x: torch.Tensor, rt: Runtime, out_size, tta: TTAConfig | None = None,
                   max_scores: float | None = None) -> torch.Tensor:
    """The prediction (N, *out_size) of `x`: exactly `segment(...).argmax(1)` while the class
    scores at `out_size` are at most `max_scores` floats (the number of classes is the first
    pass's).

    Beyond that (a 12 MP photo with 39 classes is 470 M floats, 1.9 GB, about three times that
    with TTA) the scores are never all held: each pass's logits stay at the network's size and
    are upsampled a few classes at a time into a running argmax (ties keep the lower class, as
    argmax does); under TTA each pass's softmax takes its per-pixel max and sum of exponentials
    over all classes in one such sweep first (the sum rescaled when the max grows). The same
    rule, equal up to float rounding."""
    out_size = tuple(out_size)
    max_scores = MAX_SCORES if max_scores is None else max_scores
    pixels = x.shape[0] * out_size[0] * out_size[1]
    passes = _pass_logits(model, x, rt, tta)
    first = next(passes)
    num_classes = first.shape[1]
    if num_classes * pixels <= max_scores:
        return _scores(itertools.chain([first], passes), out_size, tta).argmax(1)
    plain = is_plain(tta)
    low = [logits.contiguous() for logits in itertools.chain([first], passes)]  # small: the network's size
    step = max(1, int(max_scores // pixels))
    starts = range(0, num_classes, step)

    def up(logits, c0):
        """Classes c0.. of a pass at `out_size`; under TTA a tensor of its own, as the sweeps
        below write into it (a pass already at `out_size` must not be overwritten)."""
        part = logits[:, c0:c0 + step]
        scores = _upsample(part, out_size)
        return scores.clone() if scores is part and not plain else scores

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
