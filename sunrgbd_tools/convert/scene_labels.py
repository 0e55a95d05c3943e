"""A scene's labels before any mapping: an index image whose value v > 0 means names[v-1],
from seg.mat, the annotation2Dfinal polygons or the toolbox's official labels (`--labels`)."""

from __future__ import annotations

import numpy as np

from sunrgbd_tools.convert.rasterize import paint_polygons
from sunrgbd_tools.raw.annotation import read_index_json
from sunrgbd_tools.raw.base import RawDataError
from sunrgbd_tools.raw.matfile import read_seg_mat
from sunrgbd_tools.raw.official import FIELDS, OfficialLabels
from sunrgbd_tools.raw.scenes import SceneRef


def _labels_from_seg(scene: SceneRef, shape, problems) -> tuple[np.ndarray, list[str]]:
    path = scene.path / "seg.mat"
    seg, names = read_seg_mat(path)
    if seg.shape != shape:
        if seg.shape == shape[::-1]:
            problems.append(f"{path}: seglabel is transposed ({seg.shape[0]}x{seg.shape[1]}); used transposed")
            seg = seg.T
        else:
            raise RawDataError(
                path,
                f"seglabel is {seg.shape[0]}x{seg.shape[1]} but the image is {shape[0]}x{shape[1]}",
            )
    return seg, names


def _labels_from_polygons(scene: SceneRef, shape, problems, extra: dict) -> tuple[np.ndarray, list[str]]:
    ann = read_index_json(scene.path / "annotation2Dfinal" / "index.json")
    problems.extend(ann.warnings)
    if ann.salvage is not None:
        extra["salvaged"] = ann.salvage
    names = [n if n is not None else "" for n in ann.names]
    return paint_polygons(ann, shape[0], shape[1]), names


def read_scene_labels(scene: SceneRef, shape, mode: str, problems: list[str], extra: dict,
                      official: OfficialLabels | None = None):
    """→ (index image, names, source) where index value v>0 means names[v-1]; `extra`
    receives what a damaged index.json lost (`salvaged`); `official` is needed for the
    official modes only. The converter and the mapping audit both read labels through it."""
    if mode in FIELDS:
        idx, names = official.read(scene.key)
        if idx.shape != shape:
            raise RawDataError(
                official.seg_path,
                f"{scene.key}: {official.field} is {idx.shape[0]}x{idx.shape[1]}, image {shape[0]}x{shape[1]}",
            )
        return idx, names, mode
    if mode == "seg":
        return (*_labels_from_seg(scene, shape, problems), "seg")
    if mode == "polygons":
        return (*_labels_from_polygons(scene, shape, problems, extra), "polygons")
    # auto: seg.mat, then polygons
    seg_path = scene.path / "seg.mat"
    if seg_path.exists():
        try:
            return (*_labels_from_seg(scene, shape, problems), "seg")
        except RawDataError as e:
            problems.append(f"{e} (falling back to polygons)")
    if (scene.path / "annotation2Dfinal" / "index.json").exists():
        return (*_labels_from_polygons(scene, shape, problems, extra), "polygons")
    raise RawDataError(scene.path, "no labels (neither seg.mat nor annotation2Dfinal/index.json)")
