"""Paint annotation2Dfinal polygons into an object-index image."""

from __future__ import annotations

import cv2
import numpy as np

from sunrgbd_tools.raw.annotation import Annotation

_SHIFT = 4  # sub-pixel bits for cv2.fillPoly: float coordinates keep 1/16 px precision


def paint_polygons(ann: Annotation, height: int, width: int) -> np.ndarray:
    """int32 HxW image: value k+1 where object k's polygon is on top, 0 = unlabelled.

    Polygons are painted in file order so later ones win, as in the toolbox. Coordinates
    are 0-based pixel positions; points outside the image are clipped by the fill.
    """
    canvas = np.zeros((height, width), dtype=np.int32)
    # clamp far-away points so fixed-point coordinates cannot overflow
    lo_x, hi_x = -4.0 * width - 4, 5.0 * width + 4
    lo_y, hi_y = -4.0 * height - 4, 5.0 * height + 4
    scale = float(1 << _SHIFT)
    for poly in ann.polygons:
        x = np.clip(poly.x, lo_x, hi_x)
        y = np.clip(poly.y, lo_y, hi_y)
        pts = np.round(np.stack([x, y], axis=1) * scale).astype(np.int32)
        cv2.fillPoly(canvas, [pts], int(poly.object + 1), lineType=cv2.LINE_8, shift=_SHIFT)
    return canvas
