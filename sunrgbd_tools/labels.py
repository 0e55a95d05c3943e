"""The class table and the raw-name → class mapping, both derived from the CSVs in mappings/.

Like cityscapesScripts' labels.py, one table is the truth and every lookup (id → train id,
id → colour, name → id) is derived from it here; code never hard-codes a class.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

IGNORE_INDEX = 255
UNLABELED_ID = 0

CLASSES_FILE = "classes.csv"
NAMES_FILE = "names.csv"


def mappings_dir() -> Path:
    """Folder holding the shipped tables (inside the wheel, or mappings/ in a checkout)."""
    return Path(str(resources.files("sunrgbd_tools.mappings")))


@dataclass(frozen=True)
class ClassDef:
    id: int
    train_id: int
    name: str
    color: tuple[int, int, int]
    ignore_in_eval: bool
    description: str = ""

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "train_id": self.train_id,
            "name": self.name,
            "color": list(self.color),
            "ignore_in_eval": self.ignore_in_eval,
        }


def _parse_color(text: str, where: str) -> tuple[int, int, int]:
    t = text.strip().lstrip("#")
    if len(t) != 6:
        raise ValueError(f"{where}: colour {text!r} is not #rrggbb")
    return (int(t[0:2], 16), int(t[2:4], 16), int(t[4:6], 16))


class ClassTable:
    """The class table (ids 0..255 as uint8) and the look-up arrays derived from it."""

    def __init__(self, classes: list[ClassDef], source: str = "", sha256: str = ""):
        ids = [c.id for c in classes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{source}: duplicate class ids")
        names = [c.name for c in classes]
        if len(set(names)) != len(names):
            raise ValueError(f"{source}: duplicate class names")
        if any(not 0 <= i <= 254 for i in ids):
            raise ValueError(f"{source}: class ids must be within 0..254")
        self.classes = sorted(classes, key=lambda c: c.id)
        self.source = source
        self.sha256 = sha256

    @classmethod
    def from_csv_text(cls, text: str, source: str = CLASSES_FILE) -> ClassTable:
        rows = list(csv.DictReader(io.StringIO(text)))
        need = {"id", "train_id", "name", "color", "ignore_in_eval"}
        if not rows or not need <= set(rows[0]):
            raise ValueError(f"{source}: needs columns {sorted(need)}")
        classes = []
        for n, r in enumerate(rows, start=2):
            where = f"{source} line {n}"
            try:
                classes.append(
                    ClassDef(
                        id=int(r["id"]),
                        train_id=int(r["train_id"]),
                        name=r["name"].strip(),
                        color=_parse_color(r["color"], where),
                        ignore_in_eval=r["ignore_in_eval"].strip() in ("1", "true", "True"),
                        description=(r.get("description") or "").strip(),
                    )
                )
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        return cls(classes, source, hashlib.sha256(text.encode("utf-8")).hexdigest())

    @classmethod
    def load(cls, path: str | Path | None = None) -> ClassTable:
        p = Path(path) if path else mappings_dir() / CLASSES_FILE
        return cls.from_csv_text(p.read_text(encoding="utf-8"), str(p))

    # ---- derived lookups -------------------------------------------------------------
    @cached_property
    def by_name(self) -> dict[str, ClassDef]:
        return {c.name: c for c in self.classes}

    @cached_property
    def by_id(self) -> dict[int, ClassDef]:
        return {c.id: c for c in self.classes}

    @cached_property
    def num_train_classes(self) -> int:
        return len({c.train_id for c in self.classes if c.train_id != IGNORE_INDEX})

    @cached_property
    def id_to_train_id(self) -> np.ndarray:
        """uint8[256]: labelIds value → trainIds value (255 for ignore and unknown ids)."""
        lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        for c in self.classes:
            lut[c.id] = c.train_id
        return lut

    @cached_property
    def id_to_color(self) -> np.ndarray:
        """uint8[256, 3] RGB colour per labelIds value (black for unknown ids)."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        for c in self.classes:
            lut[c.id] = c.color
        return lut

    @cached_property
    def valid_ids(self) -> np.ndarray:
        """bool[256]: which labelIds values the table defines."""
        ok = np.zeros(256, dtype=bool)
        ok[[c.id for c in self.classes]] = True
        return ok

    def id_of(self, name: str) -> int:
        try:
            return self.by_name[name].id
        except KeyError:
            raise KeyError(
                f"unknown class {name!r}; valid: {', '.join(c.name for c in self.classes)}"
            ) from None

    def to_json(self) -> list[dict]:
        return [c.to_json() for c in self.classes]


@dataclass(frozen=True)
class Lookup:
    """Result of mapping one raw object name: the class and the rule that produced it."""

    name: str
    class_id: int
    class_name: str
    rule: str


class NameMapper:
    """Maps raw SUN RGB-D object names to class ids using the name table (mappings/names.csv).

    Lookup: exact row in the name table, else the class `other` (rule `default`).
    Results depend only on the tables, so a conversion is reproducible from them.
    """

    OTHER = "other"

    def __init__(self, table: ClassTable, rows: dict[str, tuple[str, str]], sha256: str):
        self.table = table
        self.rows = rows  # raw name -> (class name, rule)
        self.sha256 = sha256
        for raw, (cls_name, _rule) in rows.items():
            if cls_name not in table.by_name:
                raise ValueError(f"{NAMES_FILE}: {raw!r} maps to unknown class {cls_name!r}")
        self.other_id = table.id_of(self.OTHER)
        self._cache: dict[str, Lookup] = {}

    @classmethod
    def load(cls, names_csv: str | Path | None = None, table: ClassTable | None = None) -> NameMapper:
        table = table or ClassTable.load()
        p = Path(names_csv) if names_csv else mappings_dir() / NAMES_FILE
        data = p.read_bytes()
        rows: dict[str, tuple[str, str]] = {}
        reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
        if not reader.fieldnames or not {"raw_name", "class", "rule"} <= set(reader.fieldnames):
            raise ValueError(f"{p}: needs columns raw_name, class, rule")
        for r in reader:
            rows[r["raw_name"]] = (r["class"], r["rule"])
        digest = hashlib.sha256(table.sha256.encode() + data).hexdigest()
        return cls(table, rows, digest)

    def lookup(self, name: str) -> Lookup:
        hit = self._cache.get(name)
        if hit is None:
            row = self.rows.get(name)
            if row is not None:
                cls_name, rule = row
                hit = Lookup(name, self.table.id_of(cls_name), cls_name, rule)
            else:
                hit = Lookup(name, self.other_id, self.OTHER, "default")
            self._cache[name] = hit
        return hit

    def is_unmapped(self, hit: Lookup) -> bool:
        """True when a name fell through every rule to Other (reported in the manifest)."""
        return hit.rule == "default"
