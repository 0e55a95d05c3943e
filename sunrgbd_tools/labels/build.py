"""Build names.csv from the raw names and the rule tables, and measure what it achieves.

`mappings/raw_names.csv` holds every raw object name of SUN RGB-D with its seglistall index
and image count: data imported once from crmauceri's seglistall.csv (or the toolbox's
seglistall.mat) with `sunrgbd mapping import-seglistall`, so building needs nothing
outside the project. `build_names_csv` runs the rule chain of `RuleTables` over those
names and writes one row per name; the result is a pure function of the tables (sorted,
`\\n` line ends), so `sunrgbd mapping build --check` can prove the committed CSV is current.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from sunrgbd_tools.labels.normalise import normalise, squash
from sunrgbd_tools.labels.rules import Resolution, RuleTables, by_squashed_key, read_csv_table
from sunrgbd_tools.labels.table import (
    CLASSES_FILE,
    NAMES_COLUMNS,
    NAMES_FILE,
    UNLABELED_ID,
    ClassTable,
    NameMapper,
    mappings_dir,
)

RAW_NAMES_FILE = "raw_names.csv"
RAW_NAMES_COLUMNS = ("raw_name", "seglistall_index", "images")


@dataclass(frozen=True)
class RawName:
    """One raw object name; `images` is None where the source gives no count."""

    name: str
    seglistall_index: int | None = None
    images: int | None = None


# ------------------------------------------------------------------------------ raw names
def _to_int(text: str, where: str) -> int | None:
    t = (text or "").strip()
    if t in ("", "nan", "NaN"):
        return None
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None
    if v != int(v):
        raise ValueError(f"{where}: {text!r} is not a whole number")
    return int(v)


def _merge(names: list[RawName]) -> list[RawName]:
    """One entry per distinct name: the first seglistall index, the largest image count."""
    out: dict[str, RawName] = {}
    for n in names:
        old = out.get(n.name)
        if old is None:
            out[n.name] = n
            continue
        idx = old.seglistall_index if old.seglistall_index is not None else n.seglistall_index
        imgs = [c for c in (old.images, n.images) if c is not None]
        out[n.name] = RawName(n.name, idx, max(imgs) if imgs else None)
    return sorted(out.values(), key=lambda r: r.name)


def read_seglistall_csv(path: Path) -> list[RawName]:
    """crmauceri/SUNRGBD_COCO seglistall.csv: `original_labels`, `seglistall index`
    (-1 for names found outside seglistall) and `number of images`."""
    rows, _ = read_csv_table(path, ("original_labels", "seglistall index", "number of images"))
    out = []
    for line, r in rows:
        where = f"{path} line {line}"
        idx = _to_int(r["seglistall index"], where)
        out.append(RawName(r["original_labels"], idx if idx is not None and idx >= 1 else None,
                           _to_int(r["number of images"], where)))
    if not out:
        raise ValueError(f"{path}: no rows")
    return _merge(out)


def read_seglistall_mat(path: Path) -> list[RawName]:
    """The toolbox's Metadata/seglistall.mat: a 1xN cell `seglistall` (no image counts)."""
    import numpy as np

    from sunrgbd_tools.raw.base import RawDataError
    from sunrgbd_tools.raw.matfile import loadmat_checked

    try:
        m = loadmat_checked(path, variable_names=["seglistall"])
    except RawDataError as e:  # same message, `<path>: <problem>`, as this module's other errors
        raise ValueError(str(e)) from None
    if "seglistall" not in m:
        raise ValueError(f"{path}: has no variable 'seglistall'")
    out = []
    for i, item in enumerate(np.asarray(m["seglistall"], dtype=object).ravel(), start=1):
        a = np.asarray(item)
        name = str(a.ravel()[0]) if a.dtype.kind in "US" and a.size else ""
        if name:
            out.append(RawName(name, i, None))
    if not out:
        raise ValueError(f"{path}: seglistall is empty")
    return _merge(out)


def import_seglistall(path: str | Path) -> list[RawName]:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    return read_seglistall_mat(p) if p.suffix.lower() == ".mat" else read_seglistall_csv(p)


def raw_names_csv(names: list[RawName]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RAW_NAMES_COLUMNS)
    for n in _merge(names):
        w.writerow([n.name, "" if n.seglistall_index is None else n.seglistall_index,
                    "" if n.images is None else n.images])
    return buf.getvalue()


def read_raw_names(path: str | Path | None = None) -> list[RawName]:
    p = Path(path) if path else mappings_dir() / RAW_NAMES_FILE
    rows, _ = read_csv_table(p, RAW_NAMES_COLUMNS)
    out = []
    for line, r in rows:
        where = f"{p} line {line}"
        out.append(RawName(r["raw_name"], _to_int(r["seglistall_index"], where),
                           _to_int(r["images"], where)))
    return _merge(out)


# ------------------------------------------------------------------------------ building
def load_build_inputs(tables: str | Path | None = None):
    """(class table, rule tables with manual.csv, raw names) of a mapping folder."""
    folder = Path(tables) if tables else mappings_dir()
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such mapping folder")
    cpath = folder / CLASSES_FILE
    table = ClassTable.load(cpath if cpath.is_file() else None)
    class_names = tuple(c.name for c in table.classes if c.id != UNLABELED_ID)
    rules = RuleTables.load(folder, class_names, manual=True, fallback=mappings_dir())
    rpath = folder / RAW_NAMES_FILE
    raw = read_raw_names(rpath if rpath.is_file() else None)
    rules.attach_words([n.name for n in raw] + list(rules.manual))  # = names.csv's raw names
    return table, rules, raw


def build_rows(rules: RuleTables, raw: list[RawName]) -> list[tuple[str, str, str, str, str, str]]:
    """One names.csv row per raw name (plus manual.csv names missing from the raw list)."""
    names = {n.name: n for n in raw}
    for extra in rules.manual:
        names.setdefault(extra, RawName(extra))
    resolved = {name: rules.resolve(name) for name in sorted(names)}
    # `mailbox` falls through every rule but `mail_box` does not: names whose squashed keys
    # meet take the class of the strongest such row, as NameMapper does at convert time
    same_key = by_squashed_key({n: (r.class_name, r.rule) for n, r in resolved.items() if r is not None})
    rows = []
    for name, res in resolved.items():
        if res is None and squash(normalise(name)) in same_key:
            cls, row = same_key[squash(normalise(name))]
            res = Resolution(cls, "normalised", f"same key as {row}")
        cls, rule, via = (res.class_name, res.rule, res.via) if res else (NameMapper.OTHER, "default", "")
        imgs = names[name].images
        rows.append((name, cls, rule, normalise(name), via, "" if imgs is None else str(imgs)))
    return rows


def names_csv_text(rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(NAMES_COLUMNS)
    w.writerows(rows)
    return buf.getvalue()


def build_names_csv(tables: str | Path | None = None) -> str:
    """The names.csv text that the tables of `tables` (default: shipped) produce."""
    _, rules, raw = load_build_inputs(tables)
    return names_csv_text(build_rows(rules, raw))


def names_path(tables: str | Path | None = None) -> Path:
    return (Path(tables) if tables else mappings_dir()) / NAMES_FILE
