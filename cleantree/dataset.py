"""dataset.json: its schema as a dataclass, its one reader and its one writer.

Writers (`sunrgbd convert`, `sunrgbd stats`, `segtrain dataset-json cityscapes`, the tests'
tree builder) fill a `DatasetJson` and call `write_dataset_json`; readers (verify, stats,
pack, the Hub export, segtrain) call `read_dataset_json`, which checks the part every
reader needs (the class table, ignore_index, num_classes) and raises `ContractError`, one
line naming the file. Optional keys are checked by the accessor that reads them
(`split_counts`, `image_hw`, `normalization`, ...), so `stats` can rewrite a tree whose
stats keys are damaged and `verify` does not fail on keys it never uses.

Decisions (docs/contracts.md): `ignore_index` is 255 or absent; `num_classes` may be absent
(older or hand-written trees) and is then the number of train ids, but when present it
must match; class ids are unique.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from cleantree.classes import IGNORE_INDEX, ClassEntry, ClassLookup
from cleantree.files import atomic_write_text, dumps_json, os_cause

DATASET_JSON = "dataset.json"
# 2: `label_mode` added; `--labels official` became seglabel as stored (schema 1's
# `official` read seglabelall through our mapping, today's `official-all`)
SCHEMA_VERSION = 2
# the class-weighting method `sunrgbd stats` computes unless told otherwise, and the one a
# reader assumes when dataset.json has no class_weights_default (stats, segtrain, the Hub card)
DEFAULT_WEIGHT_METHOD = "median-freq"
# the names of sunrgbd_tools.stats.WEIGHTING (the registry, which brings numpy and OpenCV with
# it), for `stats --method` to offer at the cost of click alone; tests/test_cli_help.py holds
# the two equal
WEIGHT_METHODS = ("median-freq", "inverse", "inverse-sqrt", "enet", "none")


class ContractError(ValueError):
    """A clean tree breaks the contract; the message is one line naming the file."""


class _Absent:
    """A key the document does not hold (distinct from a key holding null)."""

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Any = _Absent()


@dataclass
class DatasetJson:
    """The keys of dataset.json in the order they are written; ABSENT ones are left out.
    Values are kept as JSON values, exactly as read or as given, so a read-modify-write
    (stats) changes only what it sets."""

    schema_version: Any = SCHEMA_VERSION
    name: Any = ABSENT
    description: Any = ABSENT
    source: Any = ABSENT  # {dataset, url, citation}
    subset: Any = ABSENT
    label_source: Any = ABSENT  # = label_mode (kept for schema 1 readers)
    label_mode: Any = ABSENT
    label_mode_description: Any = ABSENT
    label_source_counts: Any = ABSENT
    classes: Any = ABSENT  # [ClassEntry.to_json(), ...]
    num_classes: Any = ABSENT
    ignore_index: Any = ABSENT
    image_size: Any = ABSENT  # [H, W] or null (native sizes)
    image_format: Any = ABSENT
    depth: Any = ABSENT  # {unit, missing, max_mm} or null
    splits: Any = ABSENT  # {split: samples}
    val_split: Any = ABSENT
    files: Any = ABSENT  # cleantree.paths.file_templates()
    mapping_sha256: Any = ABSENT
    mapping_files: Any = ABSENT
    problems: Any = ABSENT
    created_with: Any = ABSENT
    # added by `sunrgbd stats`, in this order
    mean: Any = ABSENT
    std: Any = ABSENT
    depth_mean: Any = ABSENT
    depth_std: Any = ABSENT
    class_pixel_counts: Any = ABSENT
    class_image_counts: Any = ABSENT
    class_weights: Any = ABSENT
    class_weights_default: Any = ABSENT
    stats_split: Any = ABSENT
    stats_sha256: Any = ABSENT
    extra: dict = field(default_factory=dict)  # keys this schema does not name, kept as they are
    path: Path | None = field(default=None, compare=False, repr=False)  # where it was read
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)  # key order as read

    # ---- dict view --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict, path: str | os.PathLike | None = None) -> DatasetJson:
        known = {f.name for f in _KEYS}
        doc = cls(**{"schema_version": ABSENT, **{k: v for k, v in d.items() if k in known}},
                  extra={k: v for k, v in d.items() if k not in known})
        doc.path = Path(path) if path is not None else None
        doc.order = tuple(d)
        return doc

    def to_dict(self) -> dict:
        """The document: keys in the order read (a new one: schema order), then keys set
        since, in schema order, then the extra keys."""
        out = {f.name: getattr(self, f.name) for f in _KEYS if getattr(self, f.name) is not ABSENT}
        out.update(self.extra)
        if not self.order:
            return out
        first = {k: out[k] for k in self.order if k in out}
        first.update((k, v) for k, v in out.items() if k not in first)
        return first

    def get(self, key: str, default=None):
        return self.to_dict().get(key, default)

    def keep_added(self, old: dict) -> None:
        """Keep the keys of an earlier dataset.json that this document does not set (e.g.
        what `sunrgbd stats` added), after this document's own keys."""
        mine = list(self.to_dict())
        for k, v in old.items():
            if k in mine:
                continue
            if k in _KEY_NAMES:
                setattr(self, k, v)
            else:
                self.extra[k] = v
        self.order = (*mine, *(k for k in old if k not in mine))

    # ---- checked views (ContractError names the file) ---------------------------------
    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else DATASET_JSON

    def check(self) -> DatasetJson:
        """Check what every reader needs: the class table, ignore_index, num_classes."""
        self.lookup  # noqa: B018  (builds and checks)
        return self

    @cached_property
    def lookup(self) -> ClassLookup:
        """The checked class table's look-up arrays (built once)."""
        return _check_classes(self)

    def split_counts(self) -> dict[str, int]:
        """`splits` as split name → sample count ({} when absent)."""
        splits = self.splits or {}
        if not isinstance(splits, dict):
            raise ContractError(f"{self.where}: 'splits' is malformed (want split name → count)")
        try:
            return {str(k): _int(v, "") for k, v in splits.items()}
        except ContractError:
            raise ContractError(f"{self.where}: 'splits' is malformed (want split name → count)") from None

    def image_hw(self) -> tuple[int, int] | None:
        """`image_size` as (H, W), or None when samples keep their native sizes."""
        size = self.image_size
        if not size:
            return None
        if not isinstance(size, list) or len(size) != 2:
            raise ContractError(f"{self.where}: image_size must be [H, W] or null, got {short(size)}")
        return tuple(_int(v, f"{self.where}: image_size", 1, 1 << 16) for v in size)

    def normalization(self) -> tuple[tuple[float, float, float], tuple[float, float, float]] | None:
        """(mean, std) of RGB on 0..1 from `sunrgbd stats`, or None when not computed."""
        if self.mean in (None, ABSENT) or self.std in (None, ABSENT):
            return None
        return (_triple(self.mean, f"{self.where}: mean"),
                _triple(self.std, f"{self.where}: std", positive=True))

    def depth_normalization(self) -> tuple[float, float] | None:
        """(depth_mean, depth_std) in metres over valid pixels, or None when not computed."""
        if self.depth_mean in (None, ABSENT) or self.depth_std in (None, ABSENT):
            return None
        mean = _number(self.depth_mean, f"{self.where}: depth_mean")
        std = _number(self.depth_std, f"{self.where}: depth_std")
        if mean <= 0 or std <= 0:
            raise ContractError(f"{self.where}: depth_mean and depth_std must be > 0 (metres), got "
                                f"{mean}, {std}")
        return mean, std

    def weight_table(self) -> tuple[dict[str, list[float]], str | None]:
        """(`class_weights` as method → weights, the default method or None)."""
        weights = self.class_weights or {}
        if not isinstance(weights, dict):
            return {}, None
        default = weights.get("default") if isinstance(weights.get("default"), str) else None
        default = default or (self.class_weights_default or None)
        if default is not None and not isinstance(default, str):
            raise ContractError(f"{self.where}: class_weights_default must be text, got {short(default)}")
        table = {str(k): [_number(x, f"{self.where}: class_weights[{k!r}]") for x in v]
                 for k, v in weights.items() if isinstance(v, list)}
        return table, default

    def label_mode_text(self) -> str:
        """`label_mode` (schema 2), so scores on different labels are never compared by
        accident; older trees only name their `label_source`, which is shown as such."""
        def text(v) -> str:
            return v if isinstance(v, str) and v.isprintable() and len(v) <= 80 else short(v)

        if self.label_mode:
            return text(self.label_mode)
        if self.label_source:
            return f"label_source {text(self.label_source)} (no label_mode recorded)"
        return "not recorded"


_KEYS = tuple(f for f in fields(DatasetJson) if f.name not in ("extra", "path", "order"))
_KEY_NAMES = frozenset(f.name for f in _KEYS)
# keys `sunrgbd stats` sets, in the order it appends them
_NAMES = [f.name for f in _KEYS]
STATS_KEYS = tuple(_NAMES[_NAMES.index("mean"):])


# ---- the reader -------------------------------------------------------------------------
def load_json_object(path: str | os.PathLike) -> dict:
    """Parse dataset.json (no contract checks: `pack` archives whatever is there), with
    one-line errors for everything a hostile file can do."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ContractError(f"{path}: {os_cause(e)}") from None
    except UnicodeDecodeError:
        raise ContractError(f"{path}: not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise ContractError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise ContractError(f"{path}: not usable JSON (nested too deeply)") from None
    except ValueError as e:  # e.g. an integer with thousands of digits
        raise ContractError(f"{path}: not usable JSON ({str(e).split('(')[0].strip()})") from None
    if not isinstance(data, dict):
        raise ContractError(f"{path}: is not a JSON object")
    return data


def read_dataset_json(path: str | os.PathLike) -> DatasetJson:
    """Read and check a dataset.json."""
    path = Path(path)
    return DatasetJson.from_dict(load_json_object(path), path).check()


def _check_classes(doc: DatasetJson) -> ClassLookup:
    where = doc.where
    if not isinstance(doc.classes, list):
        raise ContractError(f"{where}: missing the 'classes' table")
    if doc.ignore_index is not ABSENT:
        ignore = _int(doc.ignore_index, f"{where}: ignore_index", 0, 255)
        if ignore != IGNORE_INDEX:
            raise ContractError(f"{where}: ignore_index is {ignore}; the contract fixes it at {IGNORE_INDEX}")
    entries: list[ClassEntry] = []
    seen: set[int] = set()
    for row in doc.classes:
        if not isinstance(row, dict) or not {"id", "train_id", "name", "color"} <= set(row):
            raise ContractError(f"{where}: class entry {short(row)} needs id, train_id, name, color")
        at = f"{where}: class {short(row.get('name'))}"
        cid = _int(row["id"], f"{at} id", 0, 255)
        tid = _int(row["train_id"], f"{at} train_id", 0, 255)
        if not isinstance(row["name"], str):
            raise ContractError(f"{at}: name must be text")
        color = row["color"]
        if not isinstance(color, list) or len(color) != 3:
            raise ContractError(f"{at}: color must be [R, G, B], got {short(color)}")
        if cid in seen:
            raise ContractError(f"{where}: class id {cid} is repeated")
        seen.add(cid)
        entries.append(ClassEntry(cid, tid, row["name"], tuple(_int(c, f"{at} color", 0, 255) for c in color),
                                  bool(row.get("ignore_in_eval", False))))
    tids = sorted({e.train_id for e in entries if e.train_id != IGNORE_INDEX})
    if tids != list(range(len(tids))):
        raise ContractError(f"{where}: train ids must be 0..N-1 (and {IGNORE_INDEX} for ignore); got {short(tids)}")
    if not tids:
        raise ContractError(f"{where}: no class has a train id other than {IGNORE_INDEX} (nothing to train)")
    if doc.num_classes is not ABSENT and _int(doc.num_classes, f"{where}: num_classes") != len(tids):
        raise ContractError(f"{where}: num_classes is {doc.num_classes} but the class table has "
                            f"{len(tids)} train ids")
    return ClassLookup(entries)


# ---- the writer -------------------------------------------------------------------------
def dumps_dataset_json(doc: DatasetJson) -> str:
    """The file's text: fixed indentation and key order, so equal documents give equal bytes."""
    return dumps_json(doc.to_dict())


def write_dataset_json(path: str | os.PathLike, doc: DatasetJson) -> None:
    """Write atomically (a temporary name renamed over `path`)."""
    atomic_write_text(path, dumps_dataset_json(doc))


# ---- value checks -------------------------------------------------------------------------
def short(value) -> str:
    """A value for an error message: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _int(value, where: str, lo: int | None = None, hi: int | None = None) -> int:
    """A whole number (JSON int, integral float or digit string) within [lo, hi]."""
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit() and len(value) < 20:
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError(f"{where}: expected a whole number, got {short(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ContractError(f"{where}: {value} outside {lo}..{hi}")
    return value


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ContractError(f"{where}: expected a finite number, got {short(value)}")
    return float(value)


def _triple(value, where: str, positive: bool = False) -> tuple[float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ContractError(f"{where}: expected 3 numbers (R, G, B), got {short(value)}")
    out = tuple(_number(v, where) for v in value)
    if positive and min(out) <= 0:
        raise ContractError(f"{where}: expected 3 numbers > 0, got {short(value)}")
    return out
