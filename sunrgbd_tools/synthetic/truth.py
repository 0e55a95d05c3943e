"""Label truth: the scene's polygons painted into seg.mat's `seglabel`, and the official
seg37 labels of SUNRGBD2Dseg.mat, regenerated from the seed without reading any file.

Why: the writers paint through these functions and tests compare the converter and the
audit against them, so the files and the truth tests check are the same computation
(docs/synthetic.md, "Ground truth for tests").
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from sunrgbd_tools.synthetic.geometry import fill_polygon
from sunrgbd_tools.synthetic.plan import ScenePlan, index_of, plan_scene
from sunrgbd_tools.synthetic.sample_json import SampleInfo, SampleParams
from sunrgbd_tools.synthetic.vocab import json_name, official_seg37


def _valid_name(objects: list, k: int) -> str | None:
    if not 0 <= k < len(objects):
        return None
    o = objects[k]
    n = o.get("name") if isinstance(o, dict) else None
    return n if isinstance(n, str) and n else None


def paint_labels(plan: ScenePlan) -> tuple[np.ndarray, list[str]]:
    """Polygons painted in file order on the image grid; polygons whose object is null,
    {} or out of range are skipped. → (seglabel uint16, names) with values 1-based."""
    H, W = plan.size
    names: list[str] = []
    for p in plan.polys:
        n = _valid_name(plan.objects, p.obj)
        if n is not None and n not in names:
            names.append(n)
    lab = np.zeros((H, W), np.uint16)
    for p in plan.polys:
        n = _valid_name(plan.objects, p.obj)
        if n is not None:
            fill_polygon(lab, p.pts, names.index(n) + 1)
    return lab, names


def image_labels(plan: ScenePlan) -> tuple[np.ndarray, list[str]]:
    """(labels, names) on the image grid: the painted polygons, or all 0 with no names for
    an unlabelled scene (it has no polygons), which is what SUNRGBD2Dseg.mat holds for it."""
    if not plan.has_polygons:
        return np.zeros(plan.size, np.uint16), []
    return paint_labels(plan)


def _params(info_or_params: SampleInfo | SampleParams) -> SampleParams:
    return info_or_params.params if isinstance(info_or_params, SampleInfo) else info_or_params


def segmat_shape(plan: ScenePlan) -> tuple[int, int]:
    H, W = plan.size
    if "segmat_size_mismatch" in plan.quirks:
        return int(round(H * 0.9)), int(round(W * 0.9))
    return H, W


def scene_truth(info_or_params: SampleInfo | SampleParams, key: str, *, image_grid: bool = False
                ) -> tuple[np.ndarray, list[str]]:
    """(seglabel uint16, names) exactly as written to the scene's seg.mat, regenerated from
    the seed without reading any file. For scenes without seg.mat it is what seg.mat would
    hold. With image_grid=True the label is always on the image grid (differs only for the
    segmat_size_mismatch quirk, whose seg.mat is on another grid); for an unlabelled scene
    it is all 0 with no names."""
    params = _params(info_or_params)
    plan = plan_scene(params, index_of(params, key))
    if image_grid or not plan.has_polygons:
        return image_labels(plan)
    return segmat_labels(plan)


def segmat_labels(plan: ScenePlan) -> tuple[np.ndarray, list[str]]:
    """(seglabel, names) as seg.mat holds them: the painted labels on seg.mat's own grid
    (another grid than the image's for the segmat_size_mismatch quirk)."""
    lab, names = paint_labels(plan)
    if segmat_shape(plan) != plan.size:
        h, w = segmat_shape(plan)
        lab = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST)
    return lab, names


def official_seglabel(info_or_params: SampleInfo | SampleParams, key: str) -> np.ndarray:
    """SUNRGBD2Dseg.seglabel of scene `key` (HxW uint8 on the image grid, 0 = void, 1..37 the
    official seg37 ids) exactly as the generator writes it, without reading any file: the
    ground truth of `sunrgbd convert --labels official`."""
    params = _params(info_or_params)
    plan = plan_scene(params, index_of(params, key))
    lab, names = image_labels(plan)
    return official_lut(plan, names)[lab]


def official_lut(plan: ScenePlan, names: list[str]) -> np.ndarray:
    """seg.mat value (1-based into names) → the scene's official seg37 id; 0 stays 0."""
    return np.array([0] + [official_seg37(x, plan.scene_type) for x in names], np.uint8)


def official_name_pixels(info_or_params: SampleInfo | SampleParams, keys: Iterable[str],
                         from_polygons: Iterable[str] = ()) -> dict[str, tuple[int, dict[int, int]]]:
    """What `sunrgbd mapping audit` must find, regenerated from the seed: per raw name over
    the labelled scenes among `keys`, (images, {official seg37 id: pixels}) on the image
    grid. Unlabelled pixels (value 0) are left out. Scenes without seg.mat, and those in
    `from_polygons` (a seg.mat the audit cannot read), are counted under index.json's names."""
    from_polygons = set(from_polygons)
    params = _params(info_or_params)
    out: dict[str, tuple[int, dict[int, int]]] = {}
    for key in keys:
        plan = plan_scene(params, index_of(params, key))
        lab, names = image_labels(plan)  # an unlabelled scene has no names: nothing to count
        off = official_lut(plan, names)[lab]
        read = names if plan.has_seg and key not in from_polygons else [json_name(n) for n in names]
        for v, name in zip(range(1, len(names) + 1), read, strict=True):
            counts = np.bincount(off[lab == v], minlength=38)
            if counts.sum() == 0:
                continue
            images, by_id = out.get(name, (0, {}))
            for c in np.flatnonzero(counts):
                by_id[int(c)] = by_id.get(int(c), 0) + int(counts[c])
            out[name] = (images + 1, by_id)
    return out
