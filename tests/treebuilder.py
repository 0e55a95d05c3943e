"""Write small clean trees (the contract in docs/contracts.md) directly, for unit tests of
the tools that read clean trees (stats, pack, segtrain) without running the converter.

Paths, manifest and dataset.json go through cleantree, the converter's own writers, so a
reader test cannot pass against a schema the converter no longer writes.

Images are learnable on purpose: every class is painted with its own base colour plus
noise, so a tiny model can fit them and pixel statistics are non-trivial.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cleantree.classes import IGNORE_INDEX
from cleantree.dataset import DatasetJson, write_dataset_json
from cleantree.manifest import write_manifest
from cleantree.paths import file_templates, sample_paths
from sunrgbd_tools.labels.table import ClassTable


@dataclass
class CleanTree:
    root: Path
    ids: dict[str, list[str]]  # split -> sample ids


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_clean_tree(
    root: Path,
    counts: dict[str, int] | None = None,
    size: tuple[int, int] = (48, 64),
    seed: int = 0,
    class_ids: list[int] | None = None,
    class_probs: dict[str, list[float]] | None = None,
    sensors: tuple[str, ...] = ("kv2",),
    depth: bool = True,
) -> CleanTree:
    """Write a clean tree with `counts[split]` samples per split of size `size` (H, W).

    Each image is a few axis-aligned rectangles of classes drawn from `class_ids`
    (default: a handful of common classes plus unlabelled). `class_probs[split]` biases
    which classes a split uses, so tests can give test/val a different distribution.
    """
    counts = counts or {"train": 4, "val": 2, "test": 2}
    table = ClassTable.load()
    class_ids = class_ids or [0, 1, 2, 5, 7, 38, 39]
    rng = np.random.default_rng(seed)
    h, w = size
    # fixed per-class appearance: colour drawn once per class id
    base = np.random.default_rng(1234).integers(30, 226, size=(256, 3))
    rows = []
    ids: dict[str, list[str]] = {}
    for split, n in counts.items():
        probs = None
        if class_probs and split in class_probs:
            probs = np.asarray(class_probs[split], dtype=float)
            probs = probs / probs.sum()
        for i in range(n):
            sensor = sensors[i % len(sensors)]
            sid = f"synthetic__{split}_{i:04d}"
            ids.setdefault(split, []).append(sid)
            lab = np.full((h, w), rng.choice(class_ids, p=probs), dtype=np.uint8)
            for _ in range(4):
                y0, x0 = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
                y1, x1 = int(rng.integers(y0 + 2, h)), int(rng.integers(x0 + 2, w))
                lab[y0:y1, x0:x1] = rng.choice(class_ids, p=probs)
            noise = rng.integers(-20, 21, size=(h, w, 3))
            rgb = np.clip(base[lab] + noise, 0, 255).astype(np.uint8)
            paths = sample_paths(split, sensor, sid)
            if not depth:
                paths["depth"] = ""
            arrays = {
                "image": rgb[:, :, ::-1],  # cv2 writes BGR
                "label_ids": lab,
                "label_train_ids": table.id_to_train_id[lab],
                "color": table.id_to_color[lab][:, :, ::-1],
            }
            if depth:
                d = rng.integers(500, 8000, size=(h, w)).astype(np.uint16)
                d[rng.random((h, w)) < 0.05] = 0
                arrays["depth"] = d
            row = {
                "id": sid, "split": split, "sensor": sensor,
                "scene": f"{sensor}/synthetic/{split}_{i:04d}", "label_source": "seg",
                "src_height": h, "src_width": w, "height": h, "width": w,
                "scene_type": "office", "intrinsics": "", "extrinsics": "",
                "unmapped_names": "", "problems": "",
            }
            for key, arr in arrays.items():
                p = root / paths[key]
                p.parent.mkdir(parents=True, exist_ok=True)
                ok, buf = cv2.imencode(".png", arr)
                assert ok
                p.write_bytes(buf.tobytes())
                row[key] = paths[key]
                row[f"{key}_sha256"] = _sha(p)
            if not depth:
                row["depth"] = row["depth_sha256"] = ""
            rows.append(row)
    rows.sort(key=lambda r: r["id"])
    root.mkdir(parents=True, exist_ok=True)
    write_manifest(root / "manifest.csv", rows)
    dataset = DatasetJson(
        schema_version=1,
        name="synthetic-clean-tree",
        subset="kv2",
        label_source="seg",
        classes=table.to_json(),
        num_classes=table.lookup.num_classes,
        ignore_index=IGNORE_INDEX,
        image_size=[h, w],
        image_format="png",
        depth={"unit": "mm", "missing": 0, "max_mm": 8000} if depth else None,
        splits={s: len(v) for s, v in ids.items()},
        files=file_templates("png", depth),
        mapping_sha256="0" * 64,
        created_with={"tool": "tests/treebuilder.py", "version": "0", "command": "", "config": {}},
    )
    write_dataset_json(root / "dataset.json", dataset)
    return CleanTree(root, ids)
