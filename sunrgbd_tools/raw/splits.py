"""The official train/val/test split from SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat.

The split file lists scene paths with machine prefixes (`/n/fs/sun3d/data/`, `/data1/`, …)
and inconsistent trailing slashes; every path is normalised to its key below SUNRGBD/.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sunrgbd_tools.raw.base import RawDataError
from sunrgbd_tools.raw.matfile import (
    cell_strings,
    h5_cell_strings,
    h5_file,
    is_mat_v73,
    loadmat_checked,
)

SPLIT_FILE = Path("SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat")


def normalise_scene_path(path: str) -> str:
    """'/n/fs/sun3d/data/SUNRGBD/kv2/kinect2data/x/' → 'kv2/kinect2data/x'."""
    p = path.strip().replace("\\", "/")
    i = p.find("SUNRGBD/")
    if i >= 0:
        p = p[i + len("SUNRGBD/"):]
    return "/".join(part for part in p.split("/") if part)


@dataclass
class Split:
    """scene key → 'train' | 'val' | 'test', plus how val was obtained."""

    assignment: dict[str, str]
    val_source: dict

    def of(self, key: str) -> str | None:
        return self.assignment.get(key)

    def counts(self) -> dict[str, int]:
        out = {"train": 0, "val": 0, "test": 0}
        for s in self.assignment.values():
            out[s] += 1
        return out


def _field(struct, name: str):
    try:
        return struct[name][0, 0] if struct.dtype.names and name in struct.dtype.names else None
    except (IndexError, TypeError, ValueError):
        return None


def read_split(path: Path, val_fraction: float = 0.1, seed: int = 0) -> Split:
    """Read allsplit.mat. Val comes from `trainvalsplit` when present, else a seeded
    `val_fraction` of train (recorded in the returned `val_source`)."""
    if not path.exists():
        raise RawDataError(path, "file not found (needed for the official split)")
    alltrain, alltest, val = _read_v73(path) if is_mat_v73(path) else _read_v5(path)
    train = [normalise_scene_path(s) for s in alltrain if s]
    test = [normalise_scene_path(s) for s in alltest if s]
    assignment = {k: "test" for k in test}
    overlap = [k for k in train if k in assignment]
    if overlap:
        raise RawDataError(path, f"{len(overlap)} scene(s) are in both alltrain and alltest, e.g. {overlap[0]}")
    assignment.update({k: "train" for k in train})
    val_keys: list[str] = []
    if val is not None:
        val_keys = [normalise_scene_path(s) for s in val if s]
        val_source = {"source": "trainvalsplit"}
    else:
        rng = random.Random(seed)
        ordered = sorted(train)
        val_keys = rng.sample(ordered, round(len(ordered) * val_fraction))
        val_source = {"source": "seeded", "seed": seed, "fraction": val_fraction}
    for k in val_keys:
        if assignment.get(k) == "train":
            assignment[k] = "val"
    return Split(assignment, val_source)


def _read_v5(path: Path) -> tuple[list[str], list[str], list[str] | None]:
    """(alltrain, alltest, trainvalsplit.val: [] when the struct lacks it, None without the struct)."""
    m = loadmat_checked(path)
    for var in ("alltrain", "alltest"):
        if var not in m:
            raise RawDataError(path, f"has no variable {var!r}")
    tv = m.get("trainvalsplit")
    val = None
    if tv is not None and isinstance(tv, np.ndarray) and tv.dtype.names:
        field = _field(tv, "val")
        val = cell_strings(field) if field is not None else []
    return cell_strings(m["alltrain"]), cell_strings(m["alltest"]), val


def _read_v73(path: Path) -> tuple[list[str], list[str], list[str] | None]:
    """The same from an allsplit.mat saved with `-v7.3` (HDF5; the toolbox ships v5): a cell is
    a dataset of references to char arrays, the 1x1 struct trainvalsplit a group of its fields.
    Read under h5_errors, as the other v7.3 toolbox files."""
    with h5_file(path) as f:
        cells = []
        for var in ("alltrain", "alltest"):
            if var not in f:
                raise RawDataError(path, f"has no variable {var!r}")
            cells.append(h5_cell_strings(f, f[var]))
        tv = f.get("trainvalsplit")
        val = None
        if hasattr(tv, "get"):  # a group (a struct); a dataset of that name is no trainvalsplit
            val = h5_cell_strings(f, tv["val"]) if "val" in tv else []
    return cells[0], cells[1], val
