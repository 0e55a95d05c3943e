"""`--augment basic` applied on the training device to a whole batch (`--augment-on device`).

Why: albumentations' warp and colour jitter cost a DataLoader worker ~30-45 % of a 480x640
sample's CPU time; on a GPU the same work is a few batched kernels, so the workers are left
with decoding. The loader then does only the geometry that must happen before batching
(resize to --size, pad/crop to --crop) and attaches each sample's parameters.

Same semantics as transforms.build_train_transform for the pipelines whose
augment_params.AUGMENT_PARAMS row is `on_device` (`basic`: horizontal flip p=0.5; scale
0.75-1.5 and translate ±10 % about the centre p=0.5; colour jitter (brightness, contrast,
saturation 0.2, hue 0.02) p=0.5 on the image only): both read that table. Differences, all small: the geometry is
one `affine_grid` + `grid_sample` (flip folded into the matrix) whose reflection repeats the
edge pixel (OpenCV's REFLECT_101 does not) and whose centre is the true image centre (OpenCV's
is half a pixel off); the jitter applies brightness, contrast, saturation, hue in this fixed
order (albumentations shuffles it) as one 3x3 colour matrix per sample, without clipping in
between, and rotates hue in YIQ space (as DALI does) instead of through HSV.

Masks are sampled nearest, never interpolated, with 255 (ignore) where the source has no
pixel; depth likewise with 0 (missing). Parameters depend only on the sampler's per-sample
seed, i.e. on (run seed, epoch, sample): the same for any worker count, batch composition,
--resume and DDP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from cleantree.classes import IGNORE_INDEX as IGNORE
from segtrain.augment_params import AUGMENT_PARAMS
from segtrain.config import DEVICE_AUGMENTS, check_augment_on

PARAMS_KEY = "augment_params"  # batch key of the (N, N_PARAMS) float32 parameter rows
N_PARAMS = 16  # affine theta (2x3), colour matrix (3x3), contrast offset weight

_GRAY = np.array([0.299, 0.587, 0.114])  # OpenCV's RGB2GRAY, as albumentations' jitter uses
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)
_IDENTITY_COLOUR = np.concatenate([np.eye(3).ravel(), [0.0]])  # colour jitter off


def resolve_augment_on(augment_on: str, augment: str, device: torch.device | str) -> str:
    """'loader' or 'device': `auto` is the device on CUDA for what it implements; `none` has
    nothing to augment, so it is the loader's plain resize / pad / crop whatever was asked."""
    check_augment_on(augment, augment_on)
    if augment == "none":
        return "loader"
    if augment_on == "auto":
        return "device" if torch.device(device).type == "cuda" and augment in DEVICE_AUGMENTS else "loader"
    return augment_on


def _hue_matrix(h: float) -> np.ndarray:
    """Rotate hue by h turns (h * 360 degrees, albumentations' factor) about the grey axis."""
    c, s = math.cos(2 * math.pi * h), math.sin(2 * math.pi * h)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])  # IQ turned so red moves to yellow
    return _YIQ_TO_RGB @ rot @ _RGB_TO_YIQ


def sample_params(seed: int, augment: str = "basic") -> np.ndarray:
    """One sample's parameters for `augment` (an AUGMENT_PARAMS row the device implements) as a
    float32 row (see N_PARAMS), from its seed alone.

    Ten uniforms are always drawn in the same order, so a parameter never depends on
    whether another one was used. Off transforms get exact identities."""
    a = AUGMENT_PARAMS[augment]
    if not a.on_device:
        raise ValueError(f"--augment {augment} does not run on the device (augment_params.AugmentParams.on_device)")
    u = np.random.default_rng(seed).random(10)
    scale, tx, ty = 1.0, 0.0, 0.0
    if u[1] < a.affine_p:
        (lo, hi), t = a.scale, a.translate
        scale, tx, ty = lo + (hi - lo) * u[2], 2 * t * u[3] - t, 2 * t * u[4] - t
    colour = _IDENTITY_COLOUR
    if u[5] < a.jitter_p:
        # albumentations' factors: brightness b in [1 - b, 1 + b], likewise contrast and saturation; hue in ±h
        b, c, s = (1 - x + 2 * x * v for x, v in zip((a.brightness, a.contrast, a.saturation), u[6:9], strict=True))
        colour = colour_row(b, c, s, 2 * a.hue * u[9] - a.hue)
    return param_row(u[0] < a.flip_p, scale, tx, ty, colour)


class RowParams(NamedTuple):
    """A parameter row's geometry, and whether its colour is changed (decode_row)."""

    flip: bool
    scale: float
    tx: float  # translation, a fraction of the width (before the flip)
    ty: float
    jittered: bool


def param_row(flip: bool = False, scale: float = 1.0, tx: float = 0.0, ty: float = 0.0,
              colour: np.ndarray = _IDENTITY_COLOUR) -> np.ndarray:
    """The float32 row (N_PARAMS) of a horizontal flip, then scale and translate (fractions of
    the size) about the centre, then `colour` (colour_row; none by default)."""
    f = -1.0 if flip else 1.0
    # output pixel u (normalised, -1..1) reads source flip * (u - 2t) / scale: translate then
    # scale about the centre (cv2's matrix), after the horizontal flip
    theta = np.array([[f / scale, 0.0, -f * 2 * tx / scale], [0.0, 1 / scale, -2 * ty / scale]])
    return np.concatenate([theta.ravel(), colour]).astype(np.float32)


def decode_row(row: np.ndarray) -> RowParams:
    """param_row's arguments back from a row (float32: to its precision)."""
    scale = 1 / float(row[4])
    flip = bool(row[0] < 0)
    return RowParams(flip, scale, -float(row[2]) * scale / (2 * (-1 if flip else 1)), -float(row[5]) * scale / 2,
                     not np.array_equal(row[6:], _IDENTITY_COLOUR.astype(np.float32)))


def colour_row(b: float, c: float, s: float, h: float) -> np.ndarray:
    """The colour part of a parameter row (3x3 matrix, then the contrast offset weight) for
    brightness b, contrast c, saturation s and hue h (albumentations' factors), in that order."""
    sat = s * np.eye(3) + (1 - s) * np.outer(np.ones(3), _GRAY)
    # brightness x*b, contrast c*x + (1-c)*mean_grey, saturation, hue; saturation and hue
    # keep grey grey, so the contrast term stays a grey offset of (1-c)*b*mean_grey(x)
    return np.concatenate([(c * b * _hue_matrix(h) @ sat).ravel(), [(1 - c) * b]])


def batch_params(seeds: Sequence[int]) -> torch.Tensor:
    """(N, N_PARAMS) parameters of a batch, on the host (e.g. for synthetic batches)."""
    return torch.from_numpy(np.stack([sample_params(int(s)) for s in seeds]))


class DeviceAugment:
    """Callable for `Runtime.augment`: takes a batch on the device with uint8 "image"
    (N,3,H,W), uint8 "mask" (N,H,W), optional float "depth" (N,H,W) and PARAMS_KEY, and
    returns it augmented (same dtypes and shapes). Vectorised, with no host sync."""

    def __init__(self):
        self._gray: dict[torch.device, torch.Tensor] = {}

    def _gray_weights(self, device: torch.device) -> torch.Tensor:
        if device not in self._gray:
            self._gray[device] = torch.tensor(_GRAY, dtype=torch.float32, device=device).view(1, 3)
        return self._gray[device]

    def __call__(self, batch: dict) -> dict:
        if PARAMS_KEY not in batch:
            raise KeyError(f"device augmentation needs {PARAMS_KEY!r} in the batch "
                           "(data.train_dataset(..., augment_on='device') attaches it)")
        p = batch[PARAMS_KEY].float()
        image = batch["image"]
        n, _, h, w = image.shape
        grid = F.affine_grid(p[:, :6].reshape(n, 2, 3), [n, 1, h, w], align_corners=False)
        x = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        # labels +1 so that zero padding marks "no source pixel" (-> 255); depth's 0 is missing
        planes = [batch["mask"].unsqueeze(1).float() + 1]
        if "depth" in batch:
            planes.append(batch["depth"].unsqueeze(1).float())
        y = F.grid_sample(torch.cat(planes, 1), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        mean_gray = (x.mean((2, 3)) * self._gray_weights(x.device)).sum(1)  # channel means first: no HxW temporary
        x = torch.einsum("nij,njhw->nihw", p[:, 6:15].reshape(n, 3, 3), x)
        x.add_((p[:, 15] * mean_gray).view(n, 1, 1, 1))
        out = dict(batch)
        out["image"] = x.round_().clamp_(0, 255).to(torch.uint8)
        out["mask"] = torch.where(y[:, 0] > 0, y[:, 0] - 1, IGNORE).to(torch.uint8)
        if "depth" in batch:
            out["depth"] = y[:, 1].to(batch["depth"].dtype)
        return out
