"""Safe extraction: an archive may be hostile, the destination folder is sacred.

Every member name is checked *before* anything is written (absolute paths, `..`, drive
letters, backslash tricks, NUL bytes, duplicates, a file that is also a folder, symlinks and
device entries), and so are the declared sizes (a "zip bomb" is refused by its compression
ratio and total size). The decoder also refuses a member that inflates past its declared
size, so a lying header cannot fill the disk either. `extract_zip` writes into a staging
folder inside the destination and moves files into place only when every member passed,
so a refused archive leaves nothing of itself behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .fsutil import is_within
from .remotezip import FileReader, ZipFormatError, ZipMember, extract_member, read_directory

_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeArchive(ZipFormatError):
    """The archive tries to write outside the destination or to exhaust the disk."""


@dataclass
class Limits:
    """Decompression-bomb guards. A member over `ratio_floor` bytes may not expand more than
    `max_ratio` times (real data: JPEG/PNG ~1x, MAT/JSON/text < 20x; a bomb ~1000x)."""

    max_ratio: float = 200.0
    ratio_floor: int = 1 << 20
    max_member: int = 64 << 30
    max_total: int = 256 << 30
    max_members: int = 2_000_000


def check_name(name: str, where: str = "archive") -> PurePosixPath:
    """The relative path a member name may be written to, or UnsafeArchive."""
    if "\x00" in name:
        raise UnsafeArchive(f"{where}: member name with a NUL byte: {name!r}")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm) or norm.startswith("//"):
        raise UnsafeArchive(f"{where}: absolute member path refused: {name!r}")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if not parts:
        raise UnsafeArchive(f"{where}: empty member name: {name!r}")
    if any(p == ".." for p in parts):
        raise UnsafeArchive(f"{where}: member path with '..' refused: {name!r}")
    if any(_DRIVE.match(p) for p in parts):
        raise UnsafeArchive(f"{where}: member path with a drive letter refused: {name!r}")
    return PurePosixPath(*parts)


def check_members(members: Iterable[ZipMember], limits: Limits | None = None,
                  where: str = "archive") -> dict[str, PurePosixPath]:
    """Check a set of members as a whole; return name -> safe relative path."""
    limits = limits or Limits()
    out: dict[str, PurePosixPath] = {}
    seen: dict[str, str] = {}
    files: set[PurePosixPath] = set()
    dirs: set[PurePosixPath] = set()
    total = 0
    members = list(members)
    if len(members) > limits.max_members:
        raise UnsafeArchive(f"{where}: {len(members)} members, more than {limits.max_members}")
    for m in members:
        rel = check_name(m.name, where)
        key = rel.as_posix()
        if key in seen:
            raise UnsafeArchive(f"{where}: duplicate member {m.name!r} (also {seen[key]!r})")
        seen[key] = m.name
        if m.is_symlink:
            raise UnsafeArchive(f"{where}: symlink member refused: {m.name!r}")
        if m.is_special:
            raise UnsafeArchive(f"{where}: device/FIFO member refused: {m.name!r}")
        if m.is_dir:
            dirs.add(rel)
        else:
            files.add(rel)
            if m.file_size > limits.max_member:
                raise UnsafeArchive(f"{where}: {m.name}: {m.file_size} bytes, over the "
                                    f"{limits.max_member}-byte member limit")
            if m.file_size > limits.ratio_floor and \
                    m.file_size > limits.max_ratio * max(m.compress_size, 1):
                raise UnsafeArchive(
                    f"{where}: {m.name}: expands {m.file_size / max(m.compress_size, 1):.0f}x "
                    f"({m.compress_size} -> {m.file_size} bytes): refused as a decompression bomb")
            total += m.file_size
        out[m.name] = rel
    if total > limits.max_total:
        raise UnsafeArchive(f"{where}: expands to {total} bytes, over the {limits.max_total}-byte limit")
    for f in files:
        for parent in f.parents:
            if parent in files:
                raise UnsafeArchive(f"{where}: {parent} is both a file and a folder")
        if f in dirs:
            raise UnsafeArchive(f"{where}: {f} is both a file and a folder")
    return out


def target_path(dest: Path, rel: PurePosixPath, where: str = "archive") -> Path:
    """Join and re-check against symlinks already present under `dest`."""
    path = dest.joinpath(*rel.parts)
    if not is_within(dest, path.parent) or path.is_symlink():
        raise UnsafeArchive(f"{where}: {rel} would be written outside {dest}")
    return path


def extract_zip(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    select: Callable[[ZipMember], bool] | None = None,
    limits: Limits | None = None,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = False,
) -> list[PurePosixPath]:
    """Extract (the selected members of) a local ZIP into `dest`, all or nothing.

    Members go to a staging folder inside `dest`, are CRC-checked there, and are moved
    into place only when all of them passed; on any failure the staging folder is removed
    and `dest` is as it was. Existing files are kept unless `overwrite`.
    """
    archive = Path(archive)
    dest = Path(dest)
    where = str(archive)
    with FileReader(archive) as reader:
        zdir = read_directory(reader, where)
        members = [m for m in zdir.members if select is None or select(m)]
        rels = check_members(members, limits, where)
        dest.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            written: list[PurePosixPath] = []
            for m in sorted(members, key=lambda m: m.header_offset):
                rel = rels[m.name]
                if m.is_dir:
                    target_path(stage, rel, where).mkdir(parents=True, exist_ok=True)
                    continue
                final = target_path(dest, rel, where)
                if final.exists() and not overwrite:
                    raise UnsafeArchive(f"{where}: {rel} already exists in {dest}")
                path = target_path(stage, rel, where)
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "xb") as f:
                    extract_member(reader, m, f, where, progress)
                written.append(rel)
            for rel in written:
                final = target_path(dest, rel, where)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage.joinpath(*rel.parts), final)
            for m in members:
                if m.is_dir:
                    target_path(dest, rels[m.name], where).mkdir(parents=True, exist_ok=True)
            return written
        finally:
            shutil.rmtree(stage, ignore_errors=True)
