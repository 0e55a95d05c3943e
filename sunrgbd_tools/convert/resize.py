"""Resizing that keeps images and label masks aligned.

Labels use pixel-centre-aligned nearest neighbour (what cv2.INTER_NEAREST_EXACT and PIL's
NEAREST aim for): destination pixel i takes source pixel floor((i + 0.5) * s / d). Plain
cv2.INTER_NEAREST computes floor(i * s / d), half a pixel off, which shifts every mask
against its image. We compute the indices in exact integer arithmetic, floor((2i + 1) s /
2d): float and fixed-point versions disagree on exact ties when enlarging (e.g. 4 → 6
rows), and a mask must not depend on rounding noise. A nearest-resized mask only ever
holds values of the source mask.
"""

from __future__ import annotations

import cv2
import numpy as np


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'480x640' → (480, 640) as (height, width); None/'' → None (native size)."""
    if not text:
        return None
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"size {text!r} is not HEIGHTxWIDTH, e.g. 480x640")
    h, w = (int(p) for p in parts)
    if not (1 <= h <= 16384 and 1 <= w <= 16384):
        raise ValueError(f"size {text!r} is out of range")
    return h, w


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index of every destination index under pixel-centre alignment."""
    return ((2 * np.arange(dst, dtype=np.int64) + 1) * src) // (2 * dst)


def resize_nearest(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixel-centre-aligned nearest resize of a label or depth image to (height, width)."""
    h, w = size
    if arr.shape[:2] == (h, w):
        return arr
    rows = nearest_indices(arr.shape[0], h)
    cols = nearest_indices(arr.shape[1], w)
    return arr[rows[:, None], cols[None, :]]


def resize_image(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a colour image on the same geometry as the labels: area averaging when
    shrinking (no aliasing), bilinear when enlarging; both pixel-centre aligned."""
    h, w = size
    if rgb.shape[:2] == (h, w):
        return rgb
    shrinking = h <= rgb.shape[0] and w <= rgb.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(rgb, (w, h), interpolation=interp)
