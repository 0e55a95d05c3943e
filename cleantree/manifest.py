"""manifest.csv: one row per written sample, its columns and its one writer.

The converter writes it and tests/treebuilder.py writes trees the same way, so a column
added or renamed here reaches both, and the readers (verify, stats, pack, segtrain) see
one format (docs/contracts.md describes each column).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from cleantree.dataset import DATASET_JSON, ContractError
from cleantree.files import atomic_write_text
from cleantree.paths import FILE_KEYS, PROBLEMS_FILE, STATS_FILE

MANIFEST = "manifest.csv"
# the files at a clean tree's root (docs/contracts.md); its sample files are those the manifest lists
TREE_ROOT_FILES = frozenset({DATASET_JSON, MANIFEST, PROBLEMS_FILE, STATS_FILE})
MANIFEST_COLUMNS = [
    "id", "split", "sensor", "scene", "label_source", "src_height", "src_width", "height",
    "width", "scene_type", "intrinsics", "extrinsics", "unmapped_names", "problems", "salvaged",
    *FILE_KEYS, *(f"{k}_sha256" for k in FILE_KEYS),
]


def manifest_text(rows: list[dict]) -> str:
    """The manifest's bytes as text: header, then `rows` in the order given (the writer
    sorts them by id); UTF-8, `\\n` line ends, missing cells empty."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_manifest(path: str | os.PathLike, rows: list[dict]) -> None:
    atomic_write_text(path, manifest_text(rows))


def tree_files_listed(root: str | os.PathLike) -> frozenset[str]:
    """The files that make the clean tree at `root`, as posix paths below it: the root files
    and every sample file manifest.csv lists. Anything else there (a user's notes, an hf
    export, a stray image of another split) is not the dataset. ContractError names the
    manifest when it cannot be read."""
    path = Path(root) / MANIFEST
    try:
        with open(path, newline="", encoding="utf-8") as f:
            listed = {r[k] for r in csv.DictReader(f) for k in FILE_KEYS if r.get(k)}
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ContractError(f"{path}: cannot be read ({e})") from None
    return frozenset(listed | TREE_ROOT_FILES)
