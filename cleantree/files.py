"""Filesystem helpers every writer uses: atomic writes, checksums, paths kept inside a root.

Outputs are written to a temporary name in the same folder and renamed, so an interrupted
run never leaves a half-written file under a final name (re-runs skip finished work).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

_CHUNK = 1 << 20


@cache
def _file_mode() -> int:
    """Mode for new files: 0o666 minus the umask (mkstemp itself creates 0600 files).
    Read once: os.umask can only be read by setting it."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


# Errors a write() raises without a file name; only these are about the file being written
# (the body may read other files: an EIO reading a part file is not the final file's).
_WRITE_SIDE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _file_mode())
        os.replace(tmp_path, path)
    except BaseException as e:
        tmp_path.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None and e.errno in _WRITE_SIDE:
            # a failed write() names no file ("No space left on device"): name the one being written
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj, *, allow_nan: bool = True) -> str:
    """Canonical JSON for files we write: sorted keys are NOT used (order is meaningful),
    but indentation and separators are fixed so the same object gives the same bytes.
    `allow_nan=False` refuses NaN/Infinity (not JSON) with a ValueError: segtrain's results
    turn NaN into null first, and this catches one that slipped through."""
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=allow_nan) + "\n"


def atomic_write_json(path: str | os.PathLike, obj, *, allow_nan: bool = True) -> None:
    atomic_write_text(path, dumps_json(obj, allow_nan=allow_nan))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def is_within(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """True when `path` resolves to `root` or somewhere below it."""
    root_r = Path(root).resolve()
    path_r = Path(path).resolve()
    return path_r == root_r or root_r in path_r.parents


def os_cause(e: OSError) -> str:
    """The plain words for why a file could not be opened (no errno numbers, no class names)."""
    if isinstance(e, FileNotFoundError):
        return "file not found"
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(e, NotADirectoryError):
        return "a parent of it is a file, not a folder"
    return f"cannot be read ({e.strerror or e})"
