"""manifest.csv: one row per written sample, its columns and its one writer.

The converter writes it and tests/treebuilder.py writes trees the same way, so a column
added or renamed here reaches both, and the readers (verify, stats, pack, mapping check,
segtrain) see
one format (docs/contracts.md describes each column). They read it through `iter_manifest` /
`read_manifest`, a sample file's path through `sample_path` (never outside the tree) and its
bytes through `sample_bytes` (checked against the row's sha256), so a new reader (a pack
format) needs neither csv nor hashlib.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from cleantree.dataset import DATASET_JSON, ContractError
from cleantree.files import atomic_write_text, is_within
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


class ManifestError(ContractError):
    """manifest.csv cannot be read (`cause`: the OSError, UnicodeDecodeError or csv.Error) or
    its header lacks columns a reader needs (`missing`). The message names the file; a reader
    with wording of its own (segtrain, stats) maps `cause` / `missing` to it."""

    def __init__(self, path: Path, cause: Exception | None = None, missing: tuple[str, ...] = ()):
        self.path, self.cause, self.missing = path, cause, missing
        super().__init__(f"{path}: cannot be read ({cause})" if cause is not None
                         else f"{path}: missing column(s) {', '.join(missing)}")


def iter_manifest(root: str | os.PathLike, need: Iterable[str] = ()) -> Iterator[tuple[int, dict]]:
    """(line, row) for each row of `root`'s manifest.csv, streamed in file order; `line` is
    where the row ends (a quoted line break in a cell makes it larger than the row's index).
    The header is checked for the columns in `need` before any row is read. ManifestError
    names the file; a short row holds None in its missing cells (csv's way)."""
    path = Path(root) / MANIFEST
    try:
        with open(path, newline="", encoding="utf-8") as f:
            yield from _rows(path, f, need)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(path, cause=e) from None


def _rows(path: Path, f: Iterable[str], need: Iterable[str]) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(f)
    missing = tuple(sorted(set(need) - set(reader.fieldnames or ())))
    if missing:
        raise ManifestError(path, missing=missing)
    for row in reader:
        yield reader.line_num, row


def read_manifest(root: str | os.PathLike, need: Iterable[str] = ()) -> list[dict]:
    """All rows of `root`'s manifest.csv in file order (see `iter_manifest`)."""
    return [row for _, row in iter_manifest(root, need)]


def read_manifest_bytes(root: str | os.PathLike, need: Iterable[str] = ()) -> tuple[bytes, list[dict]]:
    """manifest.csv's bytes and its rows (see `iter_manifest`), from one read: a reader that
    keys its work on the bytes (a resumable export) keys the rows it used."""
    path = Path(root) / MANIFEST
    try:
        data = path.read_bytes()
        return data, [row for _, row in _rows(path, io.StringIO(data.decode("utf-8"), newline=""), need)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(path, cause=e) from None


class SampleFileError(ContractError):
    """A sample file the manifest lists cannot be read, is not the file it lists, or is named
    by a path a reader must not open (`path`: the file named, or manifest.csv for a refused
    path; `reason`: the rest of the one-line message)."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


def sample_path(root: str | os.PathLike, row: dict, key: str) -> Path:
    """The file `row[key]` (a FILE_KEYS column, non-empty) names below `root`. A path that
    holds a NUL byte, is absolute, or leads outside `root` ('..', a symbolic link) is refused
    with SampleFileError naming manifest.csv: a manifest must never make a reader open a file
    outside the folder the user named. An OSError from resolving it (a name too long)
    passes through to the caller, who reports it as it reports a failed read."""
    rel = row[key]
    where = Path(root) / MANIFEST
    sid = row.get("id", "?")
    if "\0" in rel:
        raise SampleFileError(where, f"sample {sid}: {key} path holds a NUL byte")
    path = Path(root) / rel
    if os.path.isabs(rel) or not is_within(root, path):
        raise SampleFileError(where, f"sample {sid}: {key} {rel!r} leads outside the tree "
                                     "(absolute, '..' or a symbolic link); not read")
    return path


def sample_bytes(root: str | os.PathLike, row: dict, key: str) -> bytes:
    """The bytes of the file `row[key]` (a FILE_KEYS column, non-empty) below `root` (see
    `sample_path`), checked against the row's `<key>_sha256` when it has one: an exporter
    never ships a file changed since the conversion. SampleFileError names the file."""
    path = Path(root) / row[key]
    try:
        path = sample_path(root, row, key)
        data = path.read_bytes()
    except OSError as e:
        raise SampleFileError(path, f"cannot read ({e.strerror or e})") from None
    want = row.get(f"{key}_sha256") or ""
    if want and hashlib.sha256(data).hexdigest() != want:
        raise SampleFileError(path, f"sha256 differs from {MANIFEST}")
    return data


def tree_files_listed(root: str | os.PathLike) -> frozenset[str]:
    """The files that make the clean tree at `root`, as posix paths below it: the root files
    and every sample file manifest.csv lists. Anything else there (a user's notes, an hf
    export, a stray image of another split) is not the dataset. ContractError names the
    manifest when it cannot be read."""
    listed = {r[k] for r in read_manifest(root) for k in FILE_KEYS if r.get(k)}
    return frozenset(listed | TREE_ROOT_FILES)
