"""The ZIP reader: ZIP64 end records and extras, stored + deflated members, CRC and size
checks, and the span planner that groups members into range requests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from httpfixtures import Entry, make_raw_tree, write_zip64

from sunrgbd_tools.acquire.download import _Task, plan_spans
from sunrgbd_tools.remote.rangezip import (
    FileReader,
    MemberDecoder,
    ZipFormatError,
    extract_member,
    read_directory,
)


def _entries():
    return [
        Entry("top/", is_dir=True),
        Entry("top/stored.bin", bytes(range(256)) * 40, method=0),
        Entry("top/deflated.txt", b"wall chair table\n" * 500, method=8),
        Entry("top/empty.txt", b"", method=8),
        Entry("top/ünïcode name.json", b'{"a": 1}', method=8),
    ]


def test_zip64_archive_parsed_like_zipfile(tmp_path: Path):
    path = write_zip64(tmp_path / "a.zip", _entries())
    with zipfile.ZipFile(path) as zf:  # proof the hand-written archive is valid
        assert zf.testzip() is None
        assert all(i.extra[:2] == b"\x01\x00" for i in zf.infolist())  # every member: a ZIP64 extra
        ref = {i.filename: zf.read(i) for i in zf.infolist()}
    with FileReader(path) as r:
        tail = r.read_at(r.size - 98, 98)
        assert tail[:4] == b"PK\x06\x06" and tail[56:60] == b"PK\x06\x07"  # EOCD64 + locator
        zd = read_directory(r, "a.zip")
        assert [m.name for m in zd.members] == list(ref)
        assert {m.method for m in zd.members if not m.is_dir} == {0, 8}
        for m in zd.members:
            if m.is_dir:
                continue
            out = io.BytesIO()
            extract_member(r, m, out, "a.zip")
            assert out.getvalue() == ref[m.name]


def test_zipfile_written_archive_and_prepended_bytes(tmp_path: Path):
    raw = make_raw_tree(tmp_path / "raw", scenes_per_dir=1)
    files = sorted(p for p in raw.rglob("*") if p.is_file())
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in files:
            zf.write(p, p.relative_to(raw).as_posix())
    # a self-extractor stub in front: offsets in the directory are relative to the ZIP start
    sfx = tmp_path / "sfx.zip"
    sfx.write_bytes(b"#!stub\n" * 100 + path.read_bytes())
    for arc in (path, sfx):
        with FileReader(arc) as r:
            zd = read_directory(r, arc.name)
            assert b"PK\x06\x06" not in arc.read_bytes()  # a plain (not ZIP64) archive
            assert len(zd.members) == len(files)
            for m in zd.members:
                out = io.BytesIO()
                extract_member(r, m, out, arc.name)
                assert out.getvalue() == (raw / m.name).read_bytes()


def test_damage_is_reported_with_member_name(tmp_path: Path):
    path = write_zip64(tmp_path / "a.zip", _entries())
    data = bytearray(path.read_bytes())
    with FileReader(path) as r:
        m = next(m for m in read_directory(r).members if m.name == "top/stored.bin")
    off = data.index(bytes(range(256)))
    data[off + 10] ^= 0xFF
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    with FileReader(bad) as r, pytest.raises(ZipFormatError, match="top/stored.bin: CRC-32 mismatch"):
        extract_member(r, m, io.BytesIO(), "bad.zip")
    (tmp_path / "trunc.zip").write_bytes(bytes(data[: len(data) // 2]))
    with FileReader(tmp_path / "trunc.zip") as r, pytest.raises(ZipFormatError, match="end-of-central"):
        read_directory(r, "trunc.zip")
    (tmp_path / "notzip.zip").write_bytes(b"hello")
    with FileReader(tmp_path / "notzip.zip") as r, pytest.raises(ZipFormatError, match="too small"):
        read_directory(r, "notzip.zip")


def test_decoder_stops_at_declared_size(tmp_path: Path):
    """A member that lies about its size cannot inflate past it (bomb guard)."""
    path = write_zip64(tmp_path / "lie.zip", [Entry("x", b"\0" * 5_000_000, declared_size=1000)])
    with FileReader(path) as r:
        m = read_directory(r).members[0]
        sink = io.BytesIO()
        with pytest.raises(ZipFormatError, match="expands past its declared size"):
            extract_member(r, m, sink, "lie.zip")
        assert len(sink.getvalue()) <= 1001


def test_unsupported_method_named(tmp_path: Path):
    path = write_zip64(tmp_path / "a.zip", [Entry("x.bin", b"abc", method=0)])
    with FileReader(path) as r:
        m = read_directory(r).members[0]
    from dataclasses import replace
    with pytest.raises(ZipFormatError, match="x.bin: compression Deflate64"):
        MemberDecoder(replace(m, method=9), None, "a.zip")


def test_plan_spans_groups_neighbours(tmp_path: Path):
    path = write_zip64(tmp_path / "a.zip", [Entry(f"f{i}", bytes([i]) * 1000, method=0) for i in range(10)])
    with FileReader(path) as r:
        zd = read_directory(r)
    bounds = zd.data_bounds()
    pick = [m for m in zd.members if m.name in {"f0", "f1", "f2", "f6", "f7"}]
    tasks = [_Task(m, tmp_path / m.name, bounds[m.name], tmp_path / "p") for m in pick]
    spans = plan_spans(tasks, max_gap=0, span_bytes=1 << 20)
    assert [[t.member.name for t in s] for s in spans] == [["f0", "f1", "f2"], ["f6", "f7"]]
    spans = plan_spans(tasks, max_gap=10_000, span_bytes=1 << 20)
    assert len(spans) == 1
    spans = plan_spans(tasks, max_gap=10_000, span_bytes=2500)
    assert all(len(s) <= 2 for s in spans) and sum(len(s) for s in spans) == 5


def test_a_member_name_with_a_newline_stays_on_one_line(tmp_path: Path):
    """A hostile name must not split (or forge) the one-line error: it is shown as its repr."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("a\nError: forged.txt", date_time=(2017, 5, 4, 0, 0, 0)), b"x")
    data = bytearray(buf.getvalue())
    cd = data.index(b"PK\x01\x02")
    data[cd + 42:cd + 46] = (len(data) + 100).to_bytes(4, "little")  # local header offset past the end
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    with FileReader(tmp_path / "bad.zip") as r, pytest.raises(ZipFormatError) as e:
        read_directory(r, "bad.zip")
    assert "\n" not in str(e.value) and "'a\\nError: forged.txt': offsets point past" in str(e.value)


def test_directory_over_http_costs_the_tail_and_one_range(tmp_path: Path):
    """`zipfile`'s small reads of the end records are served from the cached tail: the
    directory costs the tail and one range; a 60 KB archive comment one range more."""
    from httpfixtures import FaultServer

    from sunrgbd_tools.remote.http import HttpClient, HttpConfig
    from sunrgbd_tools.remote.rangezip import HttpReader

    entries = [Entry(f"d/f{i:03d}.bin", bytes([i]) * 3000, method=0) for i in range(120)]
    plain = write_zip64(tmp_path / "a.zip", entries).read_bytes()
    with zipfile.ZipFile(io.BytesIO(plain)) as zf, zipfile.ZipFile(tmp_path / "c.zip", "w") as out:
        for i in zf.infolist():
            out.writestr(i, zf.read(i))
        out.comment = b"c" * 60_000
    srv = FaultServer({"a.zip": plain, "c.zip": (tmp_path / "c.zip").read_bytes()})
    try:
        client = HttpClient(HttpConfig(timeout=2.0, retries=1, backoff=0.001, backoff_max=0.01))
        for name, requests in (("a.zip", 2), ("c.zip", 3)):
            info = client.probe(srv.url + name)
            zd = read_directory(HttpReader(client, info), name)
            # this archive's requests but the probe's
            ranges = srv.settled(requests, lambda x, name=name: x[0] == name and x[1] != "bytes=0-0")
            assert len(ranges) == requests, ranges
            assert [m.name for m in zd.members] == [e.name for e in entries]
            m = zd.members[7]
            out = io.BytesIO()
            extract_member(HttpReader(client, info), m, out, name)
            assert out.getvalue() == bytes([7]) * 3000
    finally:
        srv.close()
