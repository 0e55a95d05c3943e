"""Safe extraction: an archive may be hostile, the destination folder is sacred.

Every member name is checked *before* anything is written (absolute paths, `..`, drive
letters, backslash tricks, NUL bytes, duplicates, a file that is also a folder, symlinks and
device entries), and so are the declared sizes: their total must fit the caller's limit and
the free space of the destination. The decoder refuses a member that inflates past its
declared size, so a lying header cannot fill the disk either. A compression ratio proves
nothing: a MATLAB file saved without compression (a 3 MB `seg.mat` of mostly zeros)
deflates 200x and more, as honestly as a bomb; what matters is the bytes written. `extract_zip` writes into a staging
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

from cleantree.files import is_within
from sunrgbd_tools.remote.rangezip import (
    FileReader,
    ZipFormatError,
    ZipMember,
    extract_member,
    read_directory,
    shown,
)

_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeArchive(ZipFormatError):
    """The archive tries to write outside the destination or to exhaust the disk."""


@dataclass
class Limits:
    """Size guards on the declared (uncompressed) sizes; the decoder enforces each one."""

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
                  where: str = "archive",
                  on_bad: Callable[[ZipMember, str], None] | None = None) -> dict[str, PurePosixPath]:
    """Check a set of members as a whole; return name -> safe relative path.

    By default any bad member refuses the whole archive (UnsafeArchive). With `on_bad`, a
    member that is bad on its own (name, link, size, a duplicate, a file that is also a
    folder) is passed to it and left out, so the caller can go on with the others; the
    member count and the total size still refuse the whole archive.
    """
    limits = limits or Limits()

    def bad(m: ZipMember, msg: str) -> None:
        if on_bad is None:
            raise UnsafeArchive(msg)
        on_bad(m, msg)

    out: dict[str, PurePosixPath] = {}
    seen: dict[str, str] = {}
    files: dict[PurePosixPath, ZipMember] = {}
    dirs: set[PurePosixPath] = set()
    total = 0
    members = list(members)
    if len(members) > limits.max_members:
        raise UnsafeArchive(f"{where}: {len(members)} members, more than {limits.max_members}")
    for m in members:
        try:
            rel = check_name(m.name, where)
        except UnsafeArchive as e:
            bad(m, str(e))
            continue
        key = rel.as_posix()
        if key in seen:
            bad(m, f"{where}: duplicate member {m.name!r} (also {seen[key]!r})")
            continue
        seen[key] = m.name
        if m.is_symlink:
            bad(m, f"{where}: symlink member refused: {m.name!r}")
            continue
        if m.is_special:
            bad(m, f"{where}: device/FIFO member refused: {m.name!r}")
            continue
        if m.is_dir:
            dirs.add(rel)
        else:
            if m.file_size > limits.max_member:
                bad(m, f"{where}: {m.shown}: {m.file_size} bytes, over the "
                       f"{limits.max_member}-byte member limit")
                continue
            files[rel] = m
            total += m.file_size
        out[m.name] = rel
    if total > limits.max_total:
        raise UnsafeArchive(f"{where}: expands to {total} bytes, over the {limits.max_total}-byte limit")
    for f, m in files.items():
        clash = next((p for p in f.parents if p in files), None)
        if clash is not None or f in dirs:
            bad(m, f"{where}: {shown(str(clash or f))} is both a file and a folder")
            out.pop(m.name, None)
    return out


def free_bytes(path: Path) -> int:
    """Free space for new files at `path` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_space(dest: Path, need: int, where: str = "archive") -> None:
    """Refuse before writing when the declared bytes do not fit in the free space of `dest`."""
    free = free_bytes(dest)
    if need > free:
        raise UnsafeArchive(f"{where}: needs {need} bytes but {dest} has only {free} bytes free; "
                            "nothing was written")


def target_path(dest: Path, rel: PurePosixPath, where: str = "archive") -> Path:
    """Join and re-check against symlinks already present under `dest`."""
    path = dest.joinpath(*rel.parts)
    if not is_within(dest, path.parent) or path.is_symlink():
        raise UnsafeArchive(f"{where}: {shown(str(rel))} would be written outside {dest}")
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
        check_space(dest, sum(m.file_size for m in members if not m.is_dir), where)
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
                    raise UnsafeArchive(f"{where}: {shown(str(rel))} already exists in {dest}")
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
