"""The class table and the raw-name → class mapping, both derived from the CSVs in mappings/.

Like cityscapesScripts' labels.py, one table is the truth and every lookup (id → train id,
id → colour, name → id) is derived from it here; code never hard-codes a class.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from cleantree.classes import ClassEntry, ClassLookup

UNLABELED_ID = 0

CLASSES_FILE = "classes.csv"
NAMES_FILE = "names.csv"
NAMES_COLUMNS = ("raw_name", "class", "rule", "key", "via", "images")


def mappings_dir() -> Path:
    """Folder holding the shipped tables (inside the wheel, or mappings/ in a checkout)."""
    return Path(str(resources.files("sunrgbd_tools.mappings")))


@dataclass(frozen=True)
class ClassDef(ClassEntry):
    """A row of classes.csv: the contract's class entry plus what only the converter reads."""

    group: str = ""  # void, seg37, other, computer (classes.csv `group`; the parser always sets it)
    description: str = ""


def _parse_color(text: str, where: str) -> tuple[int, int, int]:
    t = text.strip().lstrip("#")
    if len(t) != 6:
        raise ValueError(f"{where}: colour {text!r} is not #rrggbb")
    return (int(t[0:2], 16), int(t[2:4], 16), int(t[4:6], 16))


GROUPS = ("void", "seg37", "other", "computer")  # classes.csv `group`: what a class stands for


def _parse_group(text: str) -> str:
    g = (text or "").strip()
    if g not in GROUPS:
        raise ValueError(f"group {text!r} is not one of {', '.join(GROUPS)}")
    return g


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
        need = {"id", "train_id", "name", "color", "ignore_in_eval", "group"}
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
                        group=_parse_group(r["group"]),
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
    def seg37_ids(self) -> tuple[int, ...]:
        """The classes of group seg37, SUN RGB-D's seg37 (official order = id order); the
        official labels' values are these ids (`check_seg37_order` holds the toolbox to it)."""
        return tuple(c.id for c in self.classes if c.group == "seg37")

    @cached_property
    def lookup(self) -> ClassLookup:
        """The contract's look-up arrays of this table (what dataset.json's readers derive)."""
        return ClassLookup(self.classes)

    @property
    def id_to_train_id(self) -> np.ndarray:
        """uint8[256]: labelIds value → trainIds value (255 for ignore and unknown ids)."""
        return self.lookup.id_to_train_id

    @property
    def id_to_color(self) -> np.ndarray:
        """uint8[256, 3] RGB colour per labelIds value (black for unknown ids)."""
        return self.lookup.id_to_color

    @property
    def valid_ids(self) -> np.ndarray:
        """bool[256]: which labelIds values the table defines."""
        return self.lookup.valid_ids

    def id_of(self, name: str) -> int:
        try:
            return self.by_name[name].id
        except KeyError:
            raise KeyError(
                f"unknown class {name!r}; valid: {', '.join(c.name for c in self.classes)}"
            ) from None

    def to_json(self) -> list[dict]:
        """dataset.json's `classes`."""
        return self.lookup.to_json()


@dataclass(frozen=True)
class Lookup:
    """Result of mapping one raw object name: the class and the rule that produced it.

    `via` names the table entry that fired (a synonym, a `*_head` pattern, a spelling fix),
    `key` is the normalised name; both are for people and do not affect the class.
    """

    name: str
    class_id: int
    class_name: str
    rule: str
    via: str = ""
    key: str = ""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class NameMapper:
    """Maps raw SUN RGB-D object names to class ids, from the tables in mappings/ only.

    Lookup order: exact row of names.csv → a names.csv row with the same normalised key →
    the rule chain of `RuleTables` (class name, synonym, spelling fix) → Other (rule
    `default`). Results are cached per name, so the converter can call `lookup` per name
    per scene; they depend only on the tables, whose checksums are in `files`/`sha256`.
    """

    OTHER = "other"

    def __init__(self, table: ClassTable, rows: dict[str, tuple[str, str]], rules, files: dict[str, str],
                 via: dict[str, str] | None = None):
        self.table = table
        self.rows = rows  # raw name -> (class name, rule)
        self.via = via or {}  # raw name -> the table entry that produced its row
        self.rules = rules
        self.files = dict(files)  # file name -> sha256, for dataset.json's mapping_files
        self.sha256 = _sha("".join(f"{n}\t{h}\n" for n, h in sorted(self.files.items())).encode())
        self.other_id = table.id_of(self.OTHER)
        from sunrgbd_tools.labels.rules import by_squashed_key

        # normalised key -> class, from the rows that some rule mapped (strongest rule wins)
        self._norm_index = {k: c for k, (c, _raw) in by_squashed_key(rows).items()}
        self._cache: dict[str, Lookup] = {}

    # ---- loading ---------------------------------------------------------------------
    @classmethod
    def load(cls, names_csv: str | os.PathLike | None = None, table: ClassTable | None = None) -> NameMapper:
        """The shipped tables, a mapping folder, or the shipped tables plus a user's table.

        `names_csv` may be
        - None: the shipped mappings/ folder;
        - a folder holding names.csv (and optionally classes.csv, synonyms.csv,
          spelling.csv; files it lacks come from the shipped folder), e.g. a copy of
          mappings/ edited and rebuilt with `sunrgbd mapping build --tables DIR`;
        - a CSV file with columns raw_name, class (and optionally rule): its rows are laid
          over the shipped names.csv (rule `manual` unless given; rows with an empty class
          are skipped), e.g. the file `sunrgbd mapping suggest` writes, after editing.
        Raises ValueError naming the file and line for any bad row.
        """
        from sunrgbd_tools.labels.rules import RuleTables

        shipped = mappings_dir()
        folder, overlay = shipped, None
        if names_csv is not None:
            p = Path(names_csv)
            if p.is_dir():
                folder = p
                if not (p / NAMES_FILE).is_file():
                    raise ValueError(f"{p}: mapping folder has no {NAMES_FILE} (run `sunrgbd mapping build --tables {p}`)")
            elif p.is_file():
                overlay = p
            else:
                raise ValueError(f"{p}: no such mapping file or folder")
        if table is None:
            table = ClassTable.load(folder / CLASSES_FILE if (folder / CLASSES_FILE).is_file() else None)
        class_names = tuple(c.name for c in table.classes if c.id != UNLABELED_ID)

        # rule tables the folder lacks come from the shipped folder
        rules = RuleTables.load(folder, class_names, manual=False, fallback=shipped)
        files = {CLASSES_FILE: table.sha256}
        names_path = folder / NAMES_FILE
        rows, via, data = _read_names(names_path, table, overlay=False)
        rules.attach_words(rows)  # the same raw names as at build time: names.csv's
        files[NAMES_FILE] = _sha(data)
        files.update(rules.sha256())
        if overlay is not None:
            user_rows, user_via, data = _read_names(overlay, table, overlay=True)
            _lay_over_spellings(rows, via, user_rows, overlay.name)
            rows.update(user_rows)
            via.update(user_via)
            label = overlay.name if overlay.name not in files else f"user/{overlay.name}"
            files[label] = _sha(data)
        return cls(table, rows, rules, files, via)

    # ---- lookups ---------------------------------------------------------------------
    def lookup(self, name: str) -> Lookup:
        hit = self._cache.get(name)
        if hit is None:
            hit = self._lookup(name)
            self._cache[name] = hit
        return hit

    def _lookup(self, name: str) -> Lookup:
        from sunrgbd_tools.labels.normalise import normalise, squash

        key = normalise(name)
        row = self.rows.get(name)
        if row is not None:
            cls_name, rule = row
            return Lookup(name, self.table.id_of(cls_name), cls_name, rule, self.via.get(name, ""), key)
        cls_name = self._norm_index.get(squash(key)) if key else None
        if cls_name is not None:
            return Lookup(name, self.table.id_of(cls_name), cls_name, "normalised", f"{NAMES_FILE} row", key)
        res = self.rules.resolve(name, use_manual=False)
        if res is not None:
            return Lookup(name, self.table.id_of(res.class_name), res.class_name, res.rule, res.via, key)
        return Lookup(name, self.other_id, self.OTHER, "default", "", key)

    def is_unmapped(self, hit: Lookup) -> bool:
        """True when a name fell through every rule to Other (reported in the manifest)."""
        return hit.rule == "default"


def _lay_over_spellings(rows: dict[str, tuple[str, str]], via: dict[str, str],
                        user_rows: dict[str, tuple[str, str]], label: str) -> None:
    """Give every shipped spelling of an overlay row's normalised key the overlay's class.

    A user's row decides its name's other spellings too (docs/mapping.md), but names.csv's
    own row for a spelling was found first: `Bottle,box` mapped `Bottle` while `bottle` and
    `bottles` (rows of names.csv) stayed other. Rows whose raw name is a class name (rule
    `exact`) keep their class, as they win over any other row of their key.
    """
    from sunrgbd_tools.labels.normalise import normalise, squash
    from sunrgbd_tools.labels.rules import by_squashed_key

    chosen = by_squashed_key(user_rows)
    if not chosen:
        return
    for raw, (_cls, rule) in rows.items():
        hit = chosen.get(squash(normalise(raw))) if raw not in user_rows and rule != "exact" else None
        if hit is not None:
            rows[raw] = (hit[0], user_rows[hit[1]][1])
            via[raw] = f"{label}: {hit[1]}"


def _read_names(path: Path, table: ClassTable, overlay: bool):
    """names.csv (or a user's overlay table) → ({raw name: (class, rule)}, {raw name: via},
    bytes read), validated row by row."""
    from sunrgbd_tools.labels.rules import RULES, read_csv_table

    need = ("raw_name", "class") if overlay else ("raw_name", "class", "rule")
    rows_in, data = read_csv_table(path, need, hand_edited=True)
    rows: dict[str, tuple[str, str]] = {}
    via: dict[str, str] = {}
    for line, r in rows_in:
        raw, cls_name, rule = r["raw_name"], r["class"].strip(), (r.get("rule") or "").strip()
        where = f"{path} line {line}"
        if not raw.strip():
            if not cls_name:
                continue  # a row of empty cells (`,`)
            raise ValueError(f"{where}: empty raw_name for class {cls_name!r}")
        if overlay:
            if not cls_name:
                continue  # a suggestion the user did not accept
            if not rule or (rule == "default" and cls_name != NameMapper.OTHER):
                rule = "manual"
        if cls_name not in table.by_name or table.by_name[cls_name].id == UNLABELED_ID:
            raise ValueError(f"{where}: unknown class {cls_name!r} for {raw!r}")
        if rule not in RULES:
            raise ValueError(f"{where}: unknown rule {rule!r}; valid: {', '.join(RULES)}")
        if raw in rows and rows[raw] != (cls_name, rule):
            raise ValueError(f"{where}: {raw!r} is listed twice")
        rows[raw] = (cls_name, rule)
        via[raw] = (r.get("via") or "").strip() or (path.name if overlay else "")
    return rows, via, data
