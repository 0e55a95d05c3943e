"""Hostile archives are refused before anything is written, and nothing of them lands
outside (or, half-written, inside) the destination."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from httpfixtures import Entry, write_zip64

from sunrgbd_tools.safezip import Limits, UnsafeArchive, check_name, extract_zip


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


def test_zip_bomb_refused_by_ratio(tmp_path: Path):
    """An honest 1 GiB-expanding member (~1000x) is refused before any byte is inflated."""
    data = bomb_stream(1)
    arc = write_zip64(tmp_path / "bomb.zip", [
        Entry("readme.txt", b"hello"),
        Entry("zeros.bin", method=8, raw=data, declared_size=1 << 30),
    ])
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchive, match="decompression bomb"):
        extract_zip(arc, dest)
    assert _snapshot(dest) == set()


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
