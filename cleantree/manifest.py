"""manifest.csv: one row per written sample, its columns and its one writer.

The converter writes it and tests/treebuilder.py writes trees the same way, so a column
added or renamed here reaches both, and the readers (verify, stats, pack, segtrain) see
one format (docs/contracts.md describes each column).
"""

from __future__ import annotations

import csv
import io
import os

from cleantree.files import atomic_write_text
from cleantree.paths import FILE_KEYS

MANIFEST = "manifest.csv"
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
