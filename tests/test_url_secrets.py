"""A URL's `user:password@`: sent as Basic auth to its own host only (urllib3 does not send URL
userinfo by itself), and never shown or stored: every message and every file that `download`
and `fetch` write on a credentialed loopback URL is searched for the password."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from httpfixtures import FaultServer, build_archives, make_raw_tree
from treebuilder import write_clean_tree

from sunrgbd_tools.acquire.download import DownloadConfig
from sunrgbd_tools.acquire.share import FetchConfig, PackConfig, fetch, pack_tree
from sunrgbd_tools.cli.main import main
from sunrgbd_tools.remote.http import (
    HttpClient,
    HttpConfig,
    HttpError,
    display_url,
    download_file,
    split_userinfo,
)

FAST = HttpConfig(timeout=2.0, retries=1, backoff=0.001, backoff_max=0.01)
SECRET = "s3cr3t-Pa55"  # percent-encoded in URLs as s3cr3t%2DPa55 too
DATA = bytes(range(256)) * 300
HTTP_FLAGS = ["--timeout", "2", "--retries", "1"]


def creds(url: str, password: str = SECRET) -> str:
    return url.replace("http://", f"http://mirror-user:{password}@", 1)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leaks(root: Path, *texts: str) -> list[str]:
    """Where the password (or its percent-encoded form) shows: console texts and every file
    under `root`, hidden state folders included."""
    needles = (SECRET.encode(), SECRET.replace("-", "%2D").encode())
    found = [f"console #{i}" for i, t in enumerate(texts) if any(n.decode() in t for n in needles)]
    if root.exists():
        found += [str(p) for p in sorted(root.rglob("*"))
                  if p.is_file() and any(n in p.read_bytes() for n in needles)]
    return found


@pytest.mark.parametrize("url, shown, cred", [
    ("http://u:p@h:8/a.zip", "http://h:8/a.zip", ("u", "p")),
    ("https://u:p%40ss%3Aw@h/d/", "https://h/d/", ("u", "p@ss:w")),
    ("http://tok@h/x?q=a@b", "http://h/x?q=a@b", ("tok", "")),  # '@' after the host is not userinfo
    ("http://u:pa@ss@h/x", "http://h/x", ("u", "pa@ss")),  # the last '@' of the host part ends it
    ("ftp://u:p@h/x", "ftp://h/x", ("u", "p")),
    ("http://h/x", "http://h/x", None),
    ("clean/a@b.zip", "clean/a@b.zip", None),  # a path, not a URL
])
def test_display_url_drops_userinfo_and_keeps_everything_else(url, shown, cred):
    assert split_userinfo(url) == (shown, cred)
    assert display_url(url) == shown


@pytest.fixture
def locked():
    """A server that wants `mirror-user:SECRET`, with a same-host and a cross-host redirect."""
    other = FaultServer({"a.bin": DATA})
    srv = FaultServer({"a.bin": DATA, "a.bin.sha256": b"00" * 32 + b"  a.bin\n"})
    srv.faults.auth = f"mirror-user:{SECRET}"
    srv.faults.redirect = {"moved.bin": "/a.bin", "away.bin": other.url + "a.bin"}
    yield srv, other
    srv.close()
    other.close()


def test_basic_auth_from_the_url_and_only_to_its_host(locked, tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)
    srv, other = locked
    client = HttpClient(FAST)
    info = client.probe(creds(srv.url) + "a.bin")
    assert info.url == srv.url + "a.bin" and info.size == len(DATA)  # the record has no userinfo
    buf = bytearray()
    client.read_range(info, 10, 5000, buf.extend)  # a later read of the clean URL still authenticates
    assert bytes(buf) == DATA[10:5000]
    assert client.get_small(creds(srv.url) + "a.bin.sha256").startswith(b"00")
    # percent-encoded userinfo is decoded before it is sent, as curl does
    enc = HttpClient(FAST)
    assert enc.probe(creds(srv.url, SECRET.replace("-", "%2D")) + "moved.bin").url == srv.url + "a.bin"
    assert download_file(HttpClient(FAST), creds(srv.url) + "a.bin", tmp_path / "a.bin").url == srv.url + "a.bin"
    assert (tmp_path / "a.bin").read_bytes() == DATA and set(srv.authorization) != {None}
    assert not leaks(tmp_path, caplog.text)
    # a redirect to another host gets no Authorization header
    srv.authorization.clear()
    assert HttpClient(FAST).probe(creds(srv.url) + "away.bin").url == other.url + "a.bin"
    assert srv.authorization[0] is not None and other.authorization == [None]


def test_auth_failures_name_the_url_without_the_password(locked):
    srv, _other = locked
    with pytest.raises(HttpError) as e:
        HttpClient(FAST).probe(srv.url + "a.bin")
    assert str(e.value) == f"HTTP 401 Unauthorized: {srv.url}a.bin (the server wants credentials)"
    with pytest.raises(HttpError) as e:
        HttpClient(FAST).probe(creds(srv.url, "wrong-" + SECRET) + "a.bin")
    assert str(e.value) == (f"HTTP 401 Unauthorized: {srv.url}a.bin "
                            "(the server refused the user:password given in the URL)")
    port = closed_port()
    with pytest.raises(HttpError) as e:
        HttpClient(HttpConfig(timeout=2.0, retries=0)).probe(creds(f"http://127.0.0.1:{port}/") + "a.bin")
    assert str(e.value).startswith(f"giving up on http://127.0.0.1:{port}/a.bin after 1 attempt: "
                                   f"cannot connect to 127.0.0.1:{port}")


# ----------------------------------------------------------------------------- download
@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("arch")
    return build_archives(make_raw_tree(d / "raw", scenes_per_dir=1), d / "www")


@pytest.fixture
def mirror(archives):
    srv = FaultServer({n: p.read_bytes() for n, p in archives.items()})
    srv.faults.auth = f"mirror-user:{SECRET}"
    yield srv
    srv.close()


def _download(dest: Path, base: str, *extra: str):
    return CliRunner().invoke(main, ["download", "--dest", str(dest), "--base-url", base,
                                     *HTTP_FLAGS, *extra])


def test_download_on_a_credentialed_mirror_never_shows_or_stores_the_password(mirror, tmp_path: Path):
    dest = tmp_path / "raw"
    ok = _download(dest, creds(mirror.url))  # Range reads, progress bars on
    assert ok.exit_code == 0, ok.output
    assert (dest / "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat").is_file()
    cfg = json.loads((dest / ".sunrgbd-download" / "config.json").read_text())
    assert cfg["base_url"] == mirror.url
    again = _download(dest, creds(mirror.url, SECRET + "-new"))  # another password, same mirror
    assert again.exit_code == 1 and "refused the user:password" in again.output
    assert DownloadConfig(dest="d", base_url=creds(mirror.url)).to_json()["base_url"] == mirror.url

    missing = _download(tmp_path / "nf", creds(mirror.url) + "nowhere/")
    assert missing.exit_code == 1 and f"HTTP 404 Not Found: {mirror.url}nowhere/SUNRGBDtoolbox.zip" in missing.output
    refused = _download(tmp_path / "rf", creds(f"http://127.0.0.1:{closed_port()}/"))
    assert refused.exit_code == 1 and "cannot connect to 127.0.0.1" in refused.output

    mirror.faults.redirect = {"moved/SUNRGBDtoolbox.zip": "/SUNRGBDtoolbox.zip",
                              "moved/SUNRGBD.zip": "/SUNRGBD.zip"}
    moved = _download(tmp_path / "mv", creds(mirror.url) + "moved/")
    assert moved.exit_code == 0, moved.output

    mirror.faults.ignore_range = True  # whole-archive path: its progress label, then the MD5 check
    whole = _download(tmp_path / "wh", creds(mirror.url), "--toolbox-md5", "0" * 32)
    assert whole.exit_code == 0, whole.output
    assert f"problem: {mirror.url}SUNRGBDtoolbox.zip: MD5 " in whole.output

    outs = [r.output for r in (ok, again, missing, refused, moved, whole)]
    assert not leaks(tmp_path, *outs)


def test_download_that_gets_no_byte_leaves_the_disk_as_it_was(tmp_path: Path):
    """A refused connection left --dest with .sunrgbd-download/config.json (and --dest itself);
    then --dest's parents that the run had made (`--dest dl/raw` left dl/)."""
    dest = tmp_path / "new" / "raw"
    res = _download(dest, f"http://127.0.0.1:{closed_port()}/")
    assert res.exit_code == 1 and list(tmp_path.iterdir()) == []
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    res = _download(mine, f"http://127.0.0.1:{closed_port()}/")
    assert res.exit_code == 1 and [p.name for p in mine.iterdir()] == ["notes.txt"]


# ----------------------------------------------------------------------------- fetch
@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("packed")
    tree = write_clean_tree(d / "clean", counts={"train": 2, "val": 1, "test": 1}).root
    arc = d / "www" / "t.zip"
    pack_tree(PackConfig(src=str(tree), out=str(arc), progress=False))
    return arc


@pytest.fixture
def archive_host(packed):
    files = {p.name: p.read_bytes() for p in packed.parent.iterdir()}
    srv = FaultServer(files)
    srv.faults.auth = f"mirror-user:{SECRET}"
    yield srv
    srv.close()


def _fetch(source: str, dest: Path, *extra: str):
    return CliRunner().invoke(main, ["fetch", source, "--dest", str(dest), *HTTP_FLAGS, *extra])


def test_fetch_on_a_credentialed_url_never_shows_or_stores_the_password(archive_host, tmp_path: Path):
    srv = archive_host
    ok = _fetch(creds(srv.url) + "t.zip", tmp_path / "ok", "--keep-archive")
    assert ok.exit_code == 0, ok.output
    assert f"checked against {srv.url}t.zip.sha256" in ok.output
    record = json.loads((tmp_path / "ok" / ".sunrgbd-fetch" / "fetched.json").read_text())
    assert record["source"] == srv.url + "t.zip"
    assert FetchConfig(source=creds(srv.url), dest="d").to_json()["source"] == srv.url
    again = _fetch(creds(srv.url) + "t.zip", tmp_path / "ok")  # a finished fetch: still refused
    assert again.exit_code == 2

    missing = _fetch(creds(srv.url) + "none.zip", tmp_path / "nf")
    assert missing.exit_code == 1 and f"{srv.url}none.zip" in missing.output
    refused = _fetch(creds(f"http://127.0.0.1:{closed_port()}/") + "t.zip", tmp_path / "rf")
    assert refused.exit_code == 1 and "after 2 attempts: cannot connect" in refused.output
    bad = _fetch(creds(srv.url) + "t.zip", tmp_path / "bad", "--sha256", "0" * 64)
    assert bad.exit_code == 1 and f"{srv.url}t.zip: sha256 " in bad.output
    srv.faults.redirect = {"old/t.zip": "/t.zip", "old/t.zip.sha256": "/t.zip.sha256"}
    moved = _fetch(creds(srv.url) + "old/t.zip", tmp_path / "mv")
    assert moved.exit_code == 0, moved.output
    scheme = _fetch("ftp://mirror-user:" + SECRET + "@host/t.zip", tmp_path / "ftp")
    assert scheme.exit_code == 2 and "'ftp://host/t.zip'" in scheme.output

    outs = [r.output for r in (ok, again, missing, refused, bad, moved, scheme)]
    assert not leaks(tmp_path, *outs)


def test_a_new_password_resumes_the_same_fetch(archive_host, tmp_path: Path, monkeypatch):
    """fetched.json holds the URL without userinfo; the same URL with another password is the
    same source (its archive sha256 is checked anyway), another URL is not."""
    from sunrgbd_tools.acquire import share

    srv = archive_host
    dest = tmp_path / "d"

    def killed(report, cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(share, "_verify_fetched", killed)
    with pytest.raises(KeyboardInterrupt):
        fetch(FetchConfig(source=creds(srv.url) + "t.zip", dest=str(dest), progress=False, http=FAST))
    monkeypatch.undo()
    other = _fetch(creds(srv.url) + "t2.zip", dest)
    assert other.exit_code == 2 and "not empty" in other.output
    res = _fetch(creds(srv.url, "rotated") + "t.zip", dest, "--no-progress")
    assert res.exit_code == 0, res.output
    assert not leaks(tmp_path, other.output, res.output)


def test_fetch_that_gets_no_byte_leaves_the_disk_as_it_was(archive_host, tmp_path: Path):
    """`fetch http://127.0.0.1:9/x.zip --dest D` left D/.sunrgbd-fetch/ (and D) behind; a 404
    did the same. A folder the user had stays, and so does a partial download (resume)."""
    for source in (f"http://127.0.0.1:{closed_port()}/x.zip", archive_host.url + "x.zip"):
        res = _fetch(source, tmp_path / "fe" / "a" / "b")  # the parents it made stayed (fe/a)
        assert res.exit_code == 1 and list(tmp_path.iterdir()) == [], res.output
    mine = tmp_path / "mine"
    mine.mkdir()
    res = _fetch(f"http://127.0.0.1:{closed_port()}/x.zip", mine)
    assert res.exit_code == 1 and mine.is_dir() and list(mine.iterdir()) == []

    def broken_then_down(srv, path, rng):  # the body breaks after 2000 bytes, then 500s
        if path == "t.zip" and rng and rng.startswith("bytes=0-") and rng != "bytes=0-0":
            srv.faults.drop, srv.faults.drop_after = 1, 2000
        elif path == "t.zip" and rng and not rng.startswith("bytes=0-"):
            srv.faults.fail = 100

    archive_host.before = broken_then_down
    res = _fetch(creds(archive_host.url) + "t.zip", tmp_path / "P")
    assert res.exit_code == 1, res.output
    part = tmp_path / "P" / ".sunrgbd-fetch" / "t.zip.part"
    assert part.is_file() and part.stat().st_size > 0  # kept for the re-run
    archive_host.before, archive_host.faults.fail = None, 0
    res = _fetch(creds(archive_host.url) + "t.zip", tmp_path / "P", "--no-progress")
    assert res.exit_code == 0, res.output

    def body_down(srv, path, rng):  # the probe is answered, then every read of the body fails
        if path == "t.zip" and rng != "bytes=0-0":
            srv.faults.fail = 100

    archive_host.before = body_down  # what the answered probe made stays for the re-run
    res = _fetch(creds(archive_host.url) + "t.zip", tmp_path / "E")
    assert res.exit_code == 1, res.output
    work = tmp_path / "E" / ".sunrgbd-fetch"
    assert sorted(p.name for p in work.iterdir()) == ["t.zip.part", "t.zip.part.json"]
    archive_host.before, archive_host.faults.fail = None, 0
    res = _fetch(creds(archive_host.url) + "t.zip", tmp_path / "E", "--no-progress")
    assert res.exit_code == 0, res.output


# ----------------------------------------------------------------------------- counts
def test_counts_of_one_read_in_the_singular(tmp_path: Path):
    """"after 1 attempts" (above), "1 members … in 1 requests", "(1 bytes)", "1 samples OK"."""
    from sunrgbd_tools.acquire.download import ArchiveReport
    from sunrgbd_tools.remote.rangezip import FileReader, ZipFormatError, read_directory

    line = ArchiveReport(name="SUNRGBDtoolbox.zip", url="u", members=1, skipped=1, requests=1).line()
    assert line.startswith("SUNRGBDtoolbox.zip: 1 member (1 already present,") and " in 1 request [" in line
    assert " in 2 requests [" in ArchiveReport(name="a", url="u", requests=2).line()
    (tmp_path / "one.zip").write_bytes(b"P")
    with FileReader(tmp_path / "one.zip") as r, pytest.raises(ZipFormatError, match=r"\(1 byte\)$"):
        read_directory(r, "one.zip")
    tree = write_clean_tree(tmp_path / "clean", counts={"train": 1}).root
    pack_tree(PackConfig(src=str(tree), out=str(tmp_path / "one-sample.zip"), progress=False))
    res = _fetch(str(tmp_path / "one-sample.zip"), tmp_path / "got", "--no-progress")
    assert res.exit_code == 0 and ", 1 sample OK (sha256 " in res.output, res.output
