"""`sunrgbd download` against a real nginx (Range) and a fault-injecting server: only the
subset's bytes move, interrupted runs resume, damage and server changes are handled."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from httpfixtures import (
    TOOLBOX_FILES,
    FaultServer,
    Nginx,
    build_archives,
    make_raw_tree,
    nginx_binary,
    tree_bytes,
)

from sunrgbd_tools.acquire.download import DownloadConfig, UnsafeArchive, download, parse_subset
from sunrgbd_tools.cli.main import main
from sunrgbd_tools.remote.http import HttpConfig, HttpError
from sunrgbd_tools.remote.rangezip import FileReader, read_directory

FAST = HttpConfig(timeout=2.0, retries=4, backoff=0.001, backoff_max=0.01)
NEEDED = set(TOOLBOX_FILES[:3])


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("arch")
    raw = make_raw_tree(d / "raw", scenes_per_dir=3)
    return build_archives(raw, d / "www")


@pytest.fixture(scope="module")
def nginx(archives):
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (make system-deps installs it)")
    srv = Nginx(archives["SUNRGBD.zip"].parent)
    yield srv
    srv.close()


@pytest.fixture
def server(archives):
    srv = FaultServer({n: p.read_bytes() for n, p in archives.items()})
    yield srv
    srv.close()


def local_extraction(archives: dict[str, Path], prefixes: tuple[str, ...], toolbox: set[str]) -> dict[str, bytes]:
    """What a full local unzip would give for the same selection (the reference)."""
    out = {}
    with zipfile.ZipFile(archives["SUNRGBD.zip"]) as zf:
        for i in zf.infolist():
            if not i.is_dir() and i.filename.startswith(prefixes):
                out[i.filename] = zf.read(i)
    with zipfile.ZipFile(archives["SUNRGBDtoolbox.zip"]) as zf:
        for n in toolbox:
            out[n] = zf.read(n)
    return out


def subset_span_bytes(path: Path, prefixes: tuple[str, ...]) -> tuple[int, int]:
    """(compressed data bytes, bytes of local headers + data) of the selected members."""
    with FileReader(path) as r:
        zd = read_directory(r)
    bounds = zd.data_bounds()
    sel = [m for m in zd.members if m.name.startswith(prefixes) and not m.is_dir]
    return sum(m.compress_size for m in sel), sum(bounds[m.name] - m.header_offset for m in sel)


def cfg(dest: Path, url: str, **kw) -> DownloadConfig:
    return DownloadConfig(dest=str(dest), base_url=url, progress=False, http=FAST, **kw)


def test_parse_subset():
    assert parse_subset("kv2") == ["SUNRGBD/kv2/"]
    assert parse_subset("kv2/align_kv2,kv1") == ["SUNRGBD/kv1/", "SUNRGBD/kv2/align_kv2/"]
    assert parse_subset("all") == parse_subset("kv1, all/") == ["SUNRGBD/"]
    assert parse_subset("kv1,kv2,realsense,xtion") == ["SUNRGBD/kv1/", "SUNRGBD/kv2/", "SUNRGBD/realsense/", "SUNRGBD/xtion/"]
    for bad in ("kv3", "kv2/../x", ""):
        with pytest.raises(ValueError):
            parse_subset(bad)


def test_nginx_kv2_only_needed_bytes_and_byte_identical(nginx, archives, tmp_path: Path):
    dest = tmp_path / "raw"
    rep = download(cfg(dest, nginx.url, jobs=3, max_gap=0))
    want = local_extraction(archives, ("SUNRGBD/kv2/",), NEEDED)
    assert tree_bytes(dest) == want  # byte for byte, and nothing else
    data = rep.archives[1]
    assert data.mode == "range" and data.failed == 0 and not rep.problems
    compressed, with_headers = subset_span_bytes(archives["SUNRGBD.zip"], ("SUNRGBD/kv2/",))
    served = nginx.bytes_for("SUNRGBD.zip")
    assert served == data.transferred
    member_bytes = data.transferred - data.directory_bytes - 1  # minus the 1-byte probe
    # only the members' own bytes (local headers + data) moved, none of the other sensors
    assert compressed <= member_bytes <= with_headers
    ratio = data.transferred / compressed
    print(f"\nkv2: compressed {compressed} B, transferred {data.transferred} B "
          f"(directory {data.directory_bytes} B), ratio {ratio:.3f}, archive {data.archive_bytes} B")
    assert data.transferred < 0.6 * data.archive_bytes
    # second run: everything verified by CRC and skipped; only probe + directory again
    n_before = len(nginx.log())
    rep2 = download(cfg(dest, nginx.url, jobs=3))
    assert [a.skipped for a in rep2.archives] == [a.members for a in rep2.archives]
    assert all(a.fetched == 0 for a in rep2.archives)
    assert len(nginx.log()) - n_before <= 6
    assert tree_bytes(dest) == want


def test_nginx_sub_subset_and_official_labels(nginx, archives, tmp_path: Path):
    dest = tmp_path / "raw"
    rep = download(cfg(dest, nginx.url, subset="kv2/align_kv2", with_official_labels=True,
                       jobs=2, memory_limit=1024))  # small limit: members staged in part files
    assert not rep.problems
    want = local_extraction(archives, ("SUNRGBD/kv2/align_kv2/",), set(TOOLBOX_FILES[:5]))
    assert tree_bytes(dest) == want
    assert not list((dest / ".sunrgbd-download" / "parts").rglob("*.part"))


def test_dropped_connections_and_500s_recovered(server, archives, tmp_path: Path):
    server.faults.drop = 3
    server.faults.drop_after = 2000
    server.faults.fail = 2
    rep = download(cfg(tmp_path / "raw", server.url, jobs=2, max_gap=0))
    assert not rep.problems
    assert tree_bytes(tmp_path / "raw") == local_extraction(archives, ("SUNRGBD/kv2/",), NEEDED)
    assert sum(1 for x in server.log if x[2] == 500) == 2


def test_wrong_content_length_recovered(server, archives, tmp_path: Path):
    server.faults.wrong_length = 3
    rep = download(cfg(tmp_path / "raw", server.url, jobs=1))
    assert not rep.problems
    assert tree_bytes(tmp_path / "raw") == local_extraction(archives, ("SUNRGBD/kv2/",), NEEDED)


def test_server_ignoring_range_streams_whole_and_resumes(server, archives, tmp_path: Path):
    server.faults.ignore_range = True
    server.faults.drop = 2  # the whole-file stream breaks twice and is resumed
    server.faults.drop_after = 50_000
    dest = tmp_path / "raw"
    rep = download(cfg(dest, server.url, toolbox_md5=None))
    assert [a.mode for a in rep.archives] == ["whole", "whole"]
    assert not rep.problems
    assert tree_bytes(dest) == local_extraction(archives, ("SUNRGBD/kv2/",), NEEDED)
    assert not (dest / ".sunrgbd-download" / "SUNRGBD.zip").exists()  # archive removed after


def test_whole_toolbox_md5_checked(server, tmp_path: Path):
    server.faults.ignore_range = True
    rep = download(cfg(tmp_path / "raw", server.url))  # default: the published MD5
    assert any("differs from the published 18d22e1761d36352f37232cba102f91f" in p
               for p in rep.problems)


def test_whole_mode_rerun_fetches_nothing_when_all_is_present(server, archives, tmp_path: Path):
    """Without Range the directory costs the whole archive: a finished re-run fetched all of
    SUNRGBD.zip again (6+ GB) to find nothing missing. Now it checks the members the last whole
    run left (names, sizes, CRC-32) and fetches nothing; a missing member, another selection or a
    changed archive still means the whole archive."""
    server.faults.ignore_range = True
    dest = tmp_path / "raw"
    download(cfg(dest, server.url, toolbox_md5=None))
    want = local_extraction(archives, ("SUNRGBD/kv2/",), NEEDED)
    size = [len(server.files[n]) for n in ("SUNRGBDtoolbox.zip", "SUNRGBD.zip")]

    def rerun(changed=False, **kw):  # (skipped, fetched, bytes received) per archive, toolbox first
        rep = download(cfg(dest, server.url, toolbox_md5=None, **kw))
        assert len(rep.problems) == changed and tree_bytes(dest) == want
        assert [a.mode for a in rep.archives] == ["whole", "whole"]
        return [(a.skipped, a.fetched, a.transferred) for a in rep.archives]

    n = len([k for k in want if k.startswith("SUNRGBD/")])
    assert rerun() == [(3, 0, 0), (n, 0, 0)]
    (dest / sorted(want)[0]).unlink()  # a member gone: the whole data archive again
    assert rerun() == [(3, 0, 0), (n - 1, 1, size[1])]
    align = len([k for k in want if k.startswith("SUNRGBD/kv2/align_kv2/")])
    assert rerun(subset="kv2/align_kv2") == [(3, 0, 0), (align, 0, size[1])]  # other members
    assert rerun(subset="kv2/align_kv2") == [(3, 0, 0), (align, 0, 0)]
    server.set_file("SUNRGBDtoolbox.zip", server.files["SUNRGBDtoolbox.zip"])  # new ETag/Last-Modified
    assert rerun(True, subset="kv2/align_kv2") == [(3, 0, size[0]), (align, 0, 0)]


def test_whole_mode_rerun_without_validators_fetches_again(server, archives, tmp_path: Path):
    """A server that sends neither ETag nor Last-Modified gives no way to tell the archive is
    the same one: the last run's member list is not trusted and the whole archive comes again."""
    server.faults.ignore_range = True
    server.faults.no_validators = True
    dest = tmp_path / "raw"
    download(cfg(dest, server.url, toolbox_md5=None))
    rep = download(cfg(dest, server.url, toolbox_md5=None))
    size = [len(server.files[n]) for n in ("SUNRGBDtoolbox.zip", "SUNRGBD.zip")]
    assert [a.transferred for a in rep.archives] == size and not rep.problems


def test_file_changed_between_requests_starts_over(server, archives, tmp_path: Path):
    """After the directory was read the archive is replaced (new ETag, other size): the
    client notices, starts that archive over and ends with the new content."""
    raw2 = make_raw_tree(tmp_path / "raw2", scenes_per_dir=2, seed=7)
    new = build_archives(raw2, tmp_path / "www2")
    state = {"n": 0}

    def before(srv, path, rng):
        if path == "SUNRGBD.zip":
            state["n"] += 1
            if state["n"] == 4:  # probe, tail, directory, then the first member span
                srv.set_file("SUNRGBD.zip", new["SUNRGBD.zip"].read_bytes())

    server.before = before
    dest = tmp_path / "raw"
    rep = download(cfg(dest, server.url, jobs=1))
    assert any("changed on the server" in p for p in rep.archives[1].problems)
    assert rep.archives[1].failed == 0
    got = tree_bytes(dest, "SUNRGBD")
    assert got == {k: v for k, v in local_extraction(new, ("SUNRGBD/kv2/",), set()).items()}


def test_changed_since_last_run_detected(server, archives, tmp_path: Path):
    dest = tmp_path / "raw"
    download(cfg(dest, server.url, subset="kv1"))
    raw2 = make_raw_tree(tmp_path / "raw2", scenes_per_dir=2, seed=9)
    new = build_archives(raw2, tmp_path / "www2")
    server.set_file("SUNRGBD.zip", new["SUNRGBD.zip"].read_bytes())
    rep = download(cfg(dest, server.url, subset="kv1"))
    assert any("changed on the server since the last run" in p for p in rep.archives[1].problems)
    want = local_extraction(new, ("SUNRGBD/kv1/",), set())
    got = tree_bytes(dest, "SUNRGBD")
    assert {k: got.get(k) for k in want} == want  # every member of the new version, exactly


@pytest.mark.parametrize("status", [404, 403])
def test_clear_message_for_missing_or_forbidden(server, tmp_path: Path, status: int):
    server.faults.status["SUNRGBDtoolbox.zip"] = status
    with pytest.raises(HttpError) as ei:
        download(cfg(tmp_path / "raw", server.url))
    msg = str(ei.value)
    assert f"HTTP {status}" in msg and "SUNRGBDtoolbox.zip" in msg and "\n" not in msg
    res = CliRunner().invoke(main, ["download", "--dest", str(tmp_path / "raw"), "--base-url",
                                    server.url, "--no-progress", "--retries", "0"])
    assert res.exit_code == 1 and f"HTTP {status}" in res.output


def test_interrupted_download_resumes_without_refetching(server, archives, tmp_path: Path):
    """Stop mid-member (as Ctrl-C would), run again: finished members are CRC-checked and
    skipped, and the member that was half-way continues from its last byte."""
    dest = tmp_path / "raw"
    compressed, with_headers = subset_span_bytes(archives["SUNRGBD.zip"], ("SUNRGBD/kv2/",))
    with FileReader(archives["SUNRGBD.zip"]) as r:
        members = [m for m in read_directory(r).members
                   if m.name.startswith("SUNRGBD/kv2/") and not m.is_dir]
    # the largest member of the second half of the subset, cut half-way through its data
    target = max(members[len(members) // 2:], key=lambda m: m.compress_size)
    half = target.compress_size // 2
    assert half > 256
    cut = target.header_offset + 30 + len(target.raw_name) + 20 + half
    state = {"armed": False}

    def before(srv, path, rng):
        if path == "SUNRGBD.zip" and rng and not state["armed"]:
            a, b = (int(x) for x in rng.split("=")[1].split("-"))
            if a <= target.header_offset and cut <= b:
                srv.faults.drop, srv.faults.drop_after = 1, cut - a
                state["armed"] = True

    def interrupt(n: int) -> None:
        if state["armed"]:
            raise KeyboardInterrupt  # the process dies right after the cut

    server.before = before
    c = cfg(dest, server.url, jobs=1, max_gap=0, memory_limit=256)
    with pytest.raises(KeyboardInterrupt):
        download(c, on_bytes=interrupt)
    done = tree_bytes(dest, "SUNRGBD")
    parts = list((dest / ".sunrgbd-download" / "parts").rglob("*.part"))
    assert done and target.name not in done
    assert len(parts) == 1 and parts[0].stat().st_size == half  # staged half-way
    server.before = None
    first_log = len(server.log)
    rep = download(c)
    assert not rep.problems
    data = rep.archives[1]
    assert data.skipped == len(done)
    second = [x for x in server.log[first_log:] if x[0] == "SUNRGBD.zip"]
    data_start = cut - half
    # the member continues exactly where it stopped
    assert any(r == f"bytes={cut}-{r.split('-')[1]}" for _p, r, _s, _n in second if r)
    moved = sum(x[3] for x in second) - data.directory_bytes - 1
    done_bytes = sum(zipfile.ZipFile(archives["SUNRGBD.zip"]).getinfo(n).compress_size for n in done)
    assert moved <= with_headers - done_bytes - half  # nothing finished, nor the prefix, again
    print(f"\nresume: {len(done)} members finished before the stop; second run moved "
          f"{moved} B of the subset's {with_headers} B (data of {target.name} from {data_start})")
    assert tree_bytes(dest) == local_extraction(archives, ("SUNRGBD/kv2/",), NEEDED)


def test_corrupt_member_refetched_then_reported(server, archives, tmp_path: Path):
    data = bytearray(archives["SUNRGBD.zip"].read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = next(i for i in zf.infolist() if i.filename.startswith("SUNRGBD/kv2/")
                    and i.filename.endswith(".jpg"))
    with FileReader(archives["SUNRGBD.zip"]) as r:
        m = next(m for m in read_directory(r).members if m.name == info.filename)
    # flip a byte in the middle of the member's data (stored: data follows the header)
    data[m.header_offset + 30 + len(m.raw_name) + 20 + 100] ^= 0x55
    server.set_file("SUNRGBD.zip", bytes(data))
    dest = tmp_path / "raw"
    rep = download(cfg(dest, server.url))
    a = rep.archives[1]
    assert a.failed == 1 and any(info.filename in p and "CRC-32" in p for p in a.problems)
    assert not (dest / info.filename).exists()  # never written under its final name
    fetches = [x for x in server.log if x[0] == "SUNRGBD.zip" and x[3] > 1000]
    assert len(fetches) >= 2  # it was fetched again before being reported
    res = CliRunner().invoke(main, ["download", "--dest", str(dest), "--base-url", server.url,
                                    "--no-progress"])
    assert res.exit_code == 1 and "1 failed" in res.output


def test_cli_download(nginx, archives, tmp_path: Path):
    dest = tmp_path / "raw"
    res = CliRunner().invoke(main, ["download", "--subset", "kv2", "--dest", str(dest),
                                    "--base-url", nginx.url.rstrip("/"), "--jobs", "2",
                                    "--no-progress", "--timeout", "5"])
    assert res.exit_code == 0, res.output
    assert "SUNRGBD.zip: " in res.output and "transferred" in res.output and "[range]" in res.output
    assert tree_bytes(dest) == local_extraction(archives, ("SUNRGBD/kv2/",), NEEDED)
    res = CliRunner().invoke(main, ["download", "--subset", "kv9", "--dest", str(dest)])
    assert res.exit_code == 2 and "unknown subset" in res.output


def test_cli_names_the_subset_in_the_convert_line(server, tmp_path: Path):
    """The closing line is a command to copy: it said `sunrgbd convert --src DEST` after
    `--subset kv1`, and convert (default kv2) then found no scenes."""
    for subset, tail in (("kv2/", ""), ("kv1,kv2/align_kv2", " --subset kv1,kv2/align_kv2")):
        dest = tmp_path / "raw dir"
        res = CliRunner().invoke(main, ["download", "--subset", subset, "--dest", str(dest), "--base-url",
                                        server.url, "--toolbox-md5", "none", "--no-progress"])
        assert res.exit_code == 0, res.output
        assert res.stdout.splitlines()[-1] == f"raw tree ready for: sunrgbd convert --src '{dest}'{tail}"


# ----------------------------------------------------------------- issue 10 §3 / issue 15
def _mostly_zero_mat(nbytes: int = 3 << 20) -> bytes:
    """A MATLAB v5 seg.mat saved without compression, nearly all zeros (real ones deflate
    ~200x and more)."""
    import numpy as np
    import scipy.io

    h, w = 530, 730
    seg = np.zeros((h, w), dtype=np.float64)
    seg[100:140, 200:260] = 2
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"seglabel": seg}, do_compression=False)
    return buf.getvalue()


@pytest.fixture(scope="module")
def high_ratio(tmp_path_factory) -> tuple[dict[str, Path], str]:
    d = tmp_path_factory.mktemp("ratio")
    raw = make_raw_tree(d / "raw", scenes_per_dir=2)
    seg = sorted((raw / "SUNRGBD/kv2").rglob("seg.mat"))[0]
    seg.write_bytes(_mostly_zero_mat())
    return build_archives(raw, d / "www"), seg.relative_to(raw).as_posix()


def test_high_ratio_member_is_downloaded_not_called_a_bomb(high_ratio, tmp_path: Path):
    archives, name = high_ratio
    with FileReader(archives["SUNRGBD.zip"]) as r:
        m = next(m for m in read_directory(r).members if m.name == name)
    assert m.file_size > 3_000_000 and m.file_size / m.compress_size > 200  # ~the real 223x
    srv = FaultServer({n: p.read_bytes() for n, p in archives.items()})
    try:
        dest = tmp_path / "raw"
        rep = download(cfg(dest, srv.url))
    finally:
        srv.close()
    assert not rep.problems and rep.archives[1].failed == 0
    assert tree_bytes(dest) == local_extraction(archives, ("SUNRGBD/kv2/",), NEEDED)


def test_declared_size_must_fit_free_space_and_limit(server, tmp_path: Path, monkeypatch):
    import shutil
    from collections import namedtuple

    dest = tmp_path / "raw"
    usage = namedtuple("usage", "total used free")
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 40, 0, 1000))
    res = CliRunner().invoke(main, ["download", "--dest", str(dest), "--base-url", server.url,
                                    "--no-progress"])
    assert res.exit_code == 1 and "bytes free; nothing was written" in res.output
    assert res.output.count("\n") == 1 and "Traceback" not in res.output
    assert not list(dest.rglob("*.mat")) and not (dest / "SUNRGBD").exists()
    server.faults.ignore_range = True  # whole-archive mode: the archive itself must fit first
    with pytest.raises(UnsafeArchive, match="bytes free"):
        download(cfg(dest, server.url, toolbox_md5=None))
    assert not list((dest / ".sunrgbd-download").glob("*.zip")) and not list((dest / ".sunrgbd-download").glob("*.part"))
    server.faults.ignore_range = False
    monkeypatch.setattr(shutil, "disk_usage", real)
    res = CliRunner().invoke(main, ["download", "--dest", str(dest), "--base-url", server.url,
                                    "--no-progress", "--max-size", "1K"])
    assert res.exit_code == 1 and "over the 1024-byte limit" in res.output
    for bad in ("banana", "-5G", "0", "nan", "inf"):
        res = CliRunner().invoke(main, ["download", "--dest", str(dest), "--max-size", bad])
        assert res.exit_code == 2 and "--max-size" in res.output


def test_usage_errors_exit_2(tmp_path: Path):
    res = CliRunner().invoke(main, ["download", "--dest", str(tmp_path / "d"), "--base-url",
                                    "ftp://example.org/data/"])
    assert res.exit_code == 2 and "only http:// and https://" in res.output
    assert not (tmp_path / "d").exists()


def test_bad_members_never_stop_the_others_and_a_rerun_retries_only_them(archives, tmp_path: Path):
    """A symlink member, a `..` member, one that inflates past its declared size and one
    with a flipped byte are each reported; every other member is written; --strict exits 1;
    a re-run fetches only the failed data again; fixed on the server, it completes."""
    import zlib

    from httpfixtures import Entry, entries_from_zip, write_zip64

    from sunrgbd_tools.synthetic.zips import write_raw_zips

    raw = tmp_path / "src"
    make_raw_tree(raw, scenes_per_dir=2, seed=3)
    entries = entries_from_zip(write_raw_zips(raw, tmp_path / "plain")["SUNRGBD.zip"])
    jpg = next(e for e in entries if e.name.startswith("SUNRGBD/kv2/") and e.name.endswith(".jpg"))
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    hostile = [
        Entry("SUNRGBD/kv2/link", b"/etc", method=0, mode=0o120777),
        Entry("SUNRGBD/kv2/x/../../../evil.txt", b"pwned"),
        Entry("SUNRGBD/kv2/lie.bin", method=8, raw=c.compress(bytes(1 << 20)) + c.flush(), declared_size=4096),
    ]
    good_zip = write_zip64(tmp_path / "good.zip", entries)
    bad_entries = list(entries) + hostile
    bad_zip = bytearray(write_zip64(tmp_path / "bad.zip", bad_entries).read_bytes())
    with FileReader(tmp_path / "bad.zip") as r:
        m = next(m for m in read_directory(r).members if m.name == jpg.name)
    bad_zip[m.header_offset + 30 + len(m.raw_name) + 20 + 100] ^= 0x55
    srv = FaultServer({"SUNRGBD.zip": bytes(bad_zip),
                       "SUNRGBDtoolbox.zip": archives["SUNRGBDtoolbox.zip"].read_bytes()})
    try:
        dest = tmp_path / "raw"
        args = ["download", "--dest", str(dest), "--base-url", srv.url, "--no-progress", "--strict"]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 1, res.output
        assert "4 failed" in res.output and "run the same command again" in res.output
        for what in ("symlink member refused", "'..' refused", "expands past its declared size",
                     f"{jpg.name}: CRC-32 mismatch"):
            assert what in res.output, what
        want = {k: v for k, v in local_extraction({**archives, "SUNRGBD.zip": good_zip},
                                                   ("SUNRGBD/kv2/",), NEEDED).items()
                if k != jpg.name}
        assert tree_bytes(dest) == want  # every other member, byte for byte
        assert not (tmp_path / "evil.txt").exists() and not list(tmp_path.rglob("evil.txt"))
        # the same archive again: only the damaged member's bytes are requested
        n0 = len(srv.log)
        rep = download(cfg(dest, srv.url))
        data = rep.archives[1]
        assert data.failed == 4 and data.skipped == len(want) - len(NEEDED)
        with FileReader(tmp_path / "bad.zip") as r:
            lie = next(m for m in read_directory(r).members if m.name == "SUNRGBD/kv2/lie.bin")
        moved = sum(x[3] for x in srv.log[n0:] if x[0] == "SUNRGBD.zip") - data.directory_bytes - 1
        # the two failed data members (local header + data), each fetched and retried once
        again = sum(30 + len(x.raw_name) + 20 + x.compress_size for x in (m, lie))
        assert moved == 2 * again
        # fixed on the server: the re-run fetches that one member and nothing else
        srv.set_file("SUNRGBD.zip", good_zip.read_bytes())
        rep = download(cfg(dest, srv.url))
        data = rep.archives[1]
        assert data.failed == 0 and data.fetched == 1
        assert tree_bytes(dest) == local_extraction({**archives, "SUNRGBD.zip": good_zip},
                                                    ("SUNRGBD/kv2/",), NEEDED)
    finally:
        srv.close()


def test_rerun_removes_its_own_stale_temporaries(server, archives, tmp_path: Path):
    """A kill can leave a 0-byte `.<name>.<random>.tmp` beside a member (and in the state
    folder); the next run removes those and nothing of the user's."""
    dest = tmp_path / "raw"
    download(cfg(dest, server.url))
    jpg = sorted((dest / "SUNRGBD/kv2").rglob("*.jpg"))[0]
    stale = jpg.parent / f".{jpg.name}.k2j4h1x9.tmp"
    stale.write_bytes(b"")
    state_tmp = dest / ".sunrgbd-download" / ".config.json.abc123.tmp"
    state_tmp.write_bytes(b"")
    mine = [jpg.parent / ".notes.tmp", jpg.parent / ".other.jpg.x.tmp", dest / "mine.txt"]
    for p in mine:
        p.write_text("user data")
    rep = download(cfg(dest, server.url))
    assert not rep.problems
    assert not stale.exists() and not state_tmp.exists()
    assert all(p.read_text() == "user data" for p in mine)
