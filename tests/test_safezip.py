"""Hostile archives are refused before anything is written, and nothing of them lands
outside (or, half-written, inside) the destination."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from httpfixtures import Entry, write_zip64

from sunrgbd_tools.remote.rangezip import ZipFormatError
from sunrgbd_tools.remote.safezip import Limits, UnsafeArchive, check_name, extract_zip


def bomb_stream(gib: int = 1) -> bytes:
    """Raw deflate data that inflates to `gib` GiB of zeros (~1 MB), built in
    milliseconds: after a full flush identical input gives identical blocks."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    z = bytes(1 << 20)
    first = c.compress(z) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(z) + c.flush(zlib.Z_FULL_FLUSH)
    return first + block * (1024 * gib - 1) + c.flush()


def _snapshot(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.mark.parametrize("name", [
    "../evil.txt", "a/../../evil.txt", "/etc/evil.txt", "//server/share/evil.txt",
    "C:/evil.txt", "C:evil.txt", "a\\..\\..\\evil.txt", "a/C:/x", "nul\x00byte",
])
def test_bad_names_refused(name: str, tmp_path: Path):
    with pytest.raises(UnsafeArchive):
        check_name(name)


def test_good_names_normalised():
    assert check_name("./a//b/c.txt").as_posix() == "a/b/c.txt"
    assert check_name("SUNRGBD/kv2/x/").as_posix() == "SUNRGBD/kv2/x"


HOSTILE = {
    "zip-slip": [Entry("ok.txt", b"fine"), Entry("../../outside.txt", b"pwned")],
    "absolute": [Entry("ok.txt", b"fine"), Entry("/tmp/outside-abs.txt", b"pwned")],
    "symlink": [Entry("ok.txt", b"fine"), Entry("link", b"/etc", method=0, mode=0o120777),
                Entry("link/passwd", b"pwned")],
    "duplicate": [Entry("a.txt", b"one"), Entry("a.txt", b"two")],
    "file-and-folder": [Entry("a", b"file"), Entry("a/b.txt", b"child")],
    "drive": [Entry("ok.txt", b"fine"), Entry("D:\\outside.txt", b"pwned")],
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_archive_refused_nothing_written(kind: str, tmp_path: Path):
    arc = write_zip64(tmp_path / f"{kind}.zip", HOSTILE[kind])
    outer = tmp_path / "outer"
    dest = outer / "dest"
    dest.mkdir(parents=True)
    (dest / "mine.txt").write_text("user data")
    before_outer = _snapshot(tmp_path)
    with pytest.raises(UnsafeArchive):
        extract_zip(arc, dest)
    assert _snapshot(tmp_path) == before_outer  # nothing new anywhere, nothing removed
    assert (dest / "mine.txt").read_text() == "user data"


def mostly_zero_mat(nbytes: int = 3 << 20) -> bytes:
    """A MATLAB v5 file saved without compression whose label image is nearly all zeros,
    as the real seg.mat files are: it deflates a few hundred times."""
    import io

    import numpy as np
    import scipy.io

    side = int((nbytes / 8) ** 0.5)
    seg = np.zeros((side, side), dtype=np.float64)
    seg[10:40, 10:60] = 3
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"seglabel": seg}, do_compression=False)
    return buf.getvalue()


def test_high_ratio_member_is_not_called_a_bomb(tmp_path: Path):
    """A compression ratio proves nothing: a 3 MB mostly-zero seg.mat deflating 200x+ is
    extracted byte for byte."""
    data = mostly_zero_mat()
    arc = write_zip64(tmp_path / "a.zip", [Entry("scene/seg.mat", data)])
    from sunrgbd_tools.remote.rangezip import FileReader, read_directory

    with FileReader(arc) as r:
        (m,) = read_directory(r).members
    assert m.file_size > 200 * m.compress_size and m.file_size > 1 << 20
    extract_zip(arc, tmp_path / "dest")
    assert (tmp_path / "dest/scene/seg.mat").read_bytes() == data


def test_honest_bomb_refused_by_the_total_limit(tmp_path: Path):
    """A member that honestly declares 1 GiB is refused by the user's limit before a byte
    is inflated."""
    arc = write_zip64(tmp_path / "bomb.zip", [
        Entry("readme.txt", b"hello"),
        Entry("zeros.bin", method=8, raw=bomb_stream(1), declared_size=1 << 30),
    ])
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchive, match="over the 536870912-byte limit"):
        extract_zip(arc, dest, limits=Limits(max_total=512 << 20))
    assert not dest.exists() or _snapshot(dest) == set()


def test_honest_bomb_refused_by_free_space(tmp_path: Path, monkeypatch):
    """Within the limit but larger than the free space of the destination: refused, nothing
    written (the free space is faked at 100 MiB)."""
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 40, 0, 100 << 20))
    arc = write_zip64(tmp_path / "bomb.zip", [
        Entry("readme.txt", b"hello"),
        Entry("zeros.bin", method=8, raw=bomb_stream(1), declared_size=1 << 30),
    ])
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchive, match=r"needs 1073741829 bytes but .*dest has only 104857600 bytes free"):
        extract_zip(arc, dest)
    assert not dest.exists() or _snapshot(dest) == set()


def test_lying_bomb_stops_at_declared_size(tmp_path: Path):
    """A member that claims 4 KiB but inflates to 1 GiB is cut off at 4 KiB + 1 byte and
    the whole archive is refused: the first (good) member is not left behind either."""
    arc = write_zip64(tmp_path / "lie.zip", [
        Entry("good.txt", b"hello"),
        Entry("zeros.bin", method=8, raw=bomb_stream(1), declared_size=4096),
    ])
    dest = tmp_path / "dest"
    with pytest.raises(Exception, match="expands past its declared size"):
        extract_zip(arc, dest)
    assert _snapshot(dest) == set()


def test_total_size_limit(tmp_path: Path):
    arc = write_zip64(tmp_path / "big.zip", [Entry(f"f{i}", bytes(2000), method=0) for i in range(5)])
    with pytest.raises(UnsafeArchive, match="over the 5000-byte limit"):
        extract_zip(arc, tmp_path / "d", limits=Limits(max_total=5000))


def test_existing_symlink_in_dest_not_followed(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    arc = write_zip64(tmp_path / "a.zip", [Entry("sub/x.txt", b"pwned")])
    with pytest.raises(UnsafeArchive, match="outside"):
        extract_zip(arc, dest)
    assert list(outside.iterdir()) == []


def test_clean_archive_extracts(tmp_path: Path):
    arc = write_zip64(tmp_path / "ok.zip", [Entry("d/", is_dir=True), Entry("d/a.txt", b"A" * 999),
                                            Entry("d/b.bin", b"\x01\x02", method=0)])
    written = extract_zip(arc, tmp_path / "dest")
    assert sorted(p.as_posix() for p in written) == ["d/a.txt", "d/b.bin"]
    assert (tmp_path / "dest/d/a.txt").read_bytes() == b"A" * 999
    assert _snapshot(tmp_path / "dest") == {"d", "d/a.txt", "d/b.bin"}


@pytest.mark.parametrize("entries, phrase", [
    ([Entry("a\nError: forged.txt", b"x", method=0, raw=b"y")], "'a\\nError: forged.txt': CRC-32 mismatch"),
    ([Entry("a\nb", b"file"), Entry("a\nb/c.txt", b"child")], "'a\\nb' is both a file and a folder"),
])
def test_a_member_name_with_a_newline_stays_on_one_line(entries, phrase, tmp_path: Path):
    """A hostile name with a newline (which check_name lets through) is shown as its repr,
    so a bad CRC or a file/folder clash is still a one-line error."""
    arc = write_zip64(tmp_path / "a.zip", entries)
    with pytest.raises(ZipFormatError) as e:
        extract_zip(arc, tmp_path / "dest")
    assert "\n" not in str(e.value) and phrase in str(e.value)
