"""Joint image + mask augmentation pipelines (albumentations 2.x).

Rules every pipeline keeps: masks are only ever nearest-interpolated, regions a geometric
transform invents (rotated-in corners, padding) are 255 = ignore in the mask while the
image gets reflected content there (no black borders for the network to learn), and
colour transforms touch the image only. Depth, when present, travels as a uint16 mask:
nearest-interpolated and filled with 0 (= missing) instead of 255.
"""

from __future__ import annotations

import os

# albumentations checks PyPI for updates on import unless told not to.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from cleantree.classes import IGNORE_INDEX as IGNORE  # noqa: E402  (fixed by the contract)
from segtrain.augment_params import AUGMENT_PARAMS, AugmentParams  # noqa: E402


def albumentations_version() -> str:
    return A.__version__


def _mask_fill(mask: np.ndarray) -> int:
    """255 (ignore) for label masks, 0 (missing) for uint16 depth."""
    return IGNORE if mask.dtype == np.uint8 else 0


class ReflectAffine(A.DualTransform):
    """Scale, rotate and translate about the centre, keeping the size.

    The image borders are reflected; the mask is nearest-warped with invented regions set
    to ignore, so the loss never trains on reflected (non-physical) content.
    """

    def __init__(self, scale=(1.0, 1.0), rotate=(0.0, 0.0), translate=0.0, p: float = 0.5):
        super().__init__(p=p)
        self.scale = tuple(scale)
        self.rotate = tuple(rotate)
        self.translate = float(translate)

    def get_params_dependent_on_data(self, params, data):
        h, w = params["shape"][:2]
        angle = self.py_random.uniform(*self.rotate)
        scale = self.py_random.uniform(*self.scale)
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
        m[0, 2] += self.py_random.uniform(-self.translate, self.translate) * w
        m[1, 2] += self.py_random.uniform(-self.translate, self.translate) * h
        return {"matrix": m}

    def apply(self, img, matrix, **params):
        h, w = img.shape[:2]
        return cv2.warpAffine(img, matrix, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)

    def apply_to_mask(self, mask, matrix, **params):
        h, w = mask.shape[:2]
        return cv2.warpAffine(mask, matrix, (w, h), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=_mask_fill(mask))

    def get_transform_init_args_names(self):
        return ("scale", "rotate", "translate")


class ReflectPadIfNeeded(A.DualTransform):
    """Pad to at least (min_height, min_width): image reflected, mask filled with ignore."""

    def __init__(self, min_height: int, min_width: int, p: float = 1.0):
        super().__init__(p=p)
        self.min_height = int(min_height)
        self.min_width = int(min_width)

    def get_params_dependent_on_data(self, params, data):
        h, w = params["shape"][:2]
        ph, pw = max(0, self.min_height - h), max(0, self.min_width - w)
        return {"pads": (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)}

    def apply(self, img, pads, **params):
        if not any(pads):
            return img
        # OpenCV reflects repeatedly, so pads larger than the image are fine
        return cv2.copyMakeBorder(img, *pads, cv2.BORDER_REFLECT_101)

    def apply_to_mask(self, mask, pads, **params):
        if not any(pads):
            return mask
        return cv2.copyMakeBorder(mask, *pads, cv2.BORDER_CONSTANT, value=_mask_fill(mask))

    def get_transform_init_args_names(self):
        return ("min_height", "min_width")


def _geometry(size, crop, train: bool) -> list:
    ops: list = []
    if size:
        # INTER_NEAREST_EXACT samples pixel centres like INTER_LINEAR does; plain INTER_NEAREST
        # is shifted by up to half a source pixel, misaligning masks against their images.
        ops.append(A.Resize(size[0], size[1], interpolation=cv2.INTER_LINEAR,
                            mask_interpolation=cv2.INTER_NEAREST_EXACT))
    if crop and train:
        ops.append(ReflectPadIfNeeded(crop[0], crop[1]))
        ops.append(A.RandomCrop(crop[0], crop[1]))
    return ops


def build_train_transform(augment: str, size=None, crop=None) -> A.Compose:
    """`none`: resize/crop only. `basic`: + flip, scale/translate, colour jitter.
    `strong`: + rotation (reflected borders), RGB shift, blur, stronger colour jitter.
    Their numbers: segtrain.augment_params.AUGMENT_PARAMS."""
    if augment not in AUGMENT_PARAMS:
        raise ValueError(f"augment {augment!r} is not one of {', '.join(AUGMENT_PARAMS)}")
    a = AUGMENT_PARAMS[augment]
    ops = _geometry(size, crop, train=True)
    if a.flip_p:
        ops.append(A.HorizontalFlip(p=a.flip_p))
    if a.affine_p:
        ops.append(ReflectAffine(scale=a.scale, rotate=a.rotate, translate=a.translate, p=a.affine_p))
    if a.rgb_shift_p:
        ops.append(A.RGBShift(r_shift_limit=a.rgb_shift, g_shift_limit=a.rgb_shift, b_shift_limit=a.rgb_shift,
                              p=a.rgb_shift_p))
    if a.jitter_p:
        ops.append(_jitter(a, a.jitter_p))
    if a.blur_or_jitter_p:
        ops.append(A.OneOf([A.GaussianBlur(blur_limit=a.blur_limit, p=1.0), _jitter(a, 1.0)], p=a.blur_or_jitter_p))
    return A.Compose(ops, additional_targets={"depth": "mask"}, seed=0)


def _jitter(a: AugmentParams, p: float) -> A.ColorJitter:
    return A.ColorJitter(brightness=a.brightness, contrast=a.contrast, saturation=a.saturation, hue=a.hue, p=p)


def build_eval_transform(size=None) -> A.Compose | None:
    """Evaluation resizes the image only; the mask stays at its own resolution and the
    logits are upsampled to it, so metrics are always computed on the original labels."""
    if not size:
        return None
    return A.Compose([A.Resize(size[0], size[1], interpolation=cv2.INTER_LINEAR)])
