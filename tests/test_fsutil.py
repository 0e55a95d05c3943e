"""Atomic writes: files appear whole or not at all, with normal permissions."""

from __future__ import annotations

import os

import pytest

from cleantree.files import atomic_path, atomic_write_text, is_within


def test_atomic_write_gives_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = tmp_path / "a" / "b.txt"
        atomic_write_text(p, "hello")
        assert p.read_text() == "hello"
        assert os.stat(p).st_mode & 0o777 == 0o644  # not mkstemp's 0600
    finally:
        os.umask(old)


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "x.png"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_names_the_file(tmp_path):
    """A full disk fails in write(), whose OSError names no file: `sunrgbd sample`/`pack` printed
    a bare "Error: No space left on device". The error now names the file being written."""
    import errno

    target = tmp_path / "x.png"
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(target))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError) as info:  # an error that names its file is kept as it is
        with atomic_path(target):
            open(tmp_path / "missing")
    assert info.value.filename == str(tmp_path / "missing")
    with pytest.raises(OSError) as info:  # a read error inside the body is not the target's
        with atomic_path(target):
            raise OSError(errno.EIO, "Input/output error")
    assert (info.value.errno, info.value.filename) == (errno.EIO, None)
    assert list(tmp_path.iterdir()) == []


def test_is_within(tmp_path):
    assert is_within(tmp_path, tmp_path / "a" / "b")
    assert not is_within(tmp_path / "a", tmp_path / "a" / ".." / "b")
