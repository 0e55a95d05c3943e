"""A URL's secrets: its `user:password@` is sent as Basic auth to its own host only (urllib3 does
not send URL userinfo by itself), the values of credential query parameters (presigned
signatures, SAS `sig=`, `token=`) are sent as given, and neither is ever shown or stored: every
message and every file that `download` and `fetch` write on a credentialed loopback URL is
searched for the secret."""

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
from sunrgbd_tools.acquire.share import (
    FetchConfig,
    PackConfig,
    ShareError,
    fetch,
    pack_tree,
    source_identity,
)
from sunrgbd_tools.cli.main import main
from sunrgbd_tools.remote.http import (
    HttpClient,
    HttpConfig,
    HttpError,
    display_url,
    download_file,
    redact_text,
    split_userinfo,
    url_problem,
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


def leaks(root: Path, *texts: str, also: tuple[str, ...] = ()) -> list[str]:
    """Where the password (or its percent-encoded form, or a text of `also`) shows: console
    texts and every file under `root`, hidden state folders included."""
    needles = (SECRET.encode(), SECRET.replace("-", "%2D").encode(), *(a.encode() for a in also))
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


PRESIGNED = ("?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261130%2F"
             "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261130T101500Z&X-Amz-Expires=3600&"
             "X-Amz-SignedHeaders=host&X-Amz-Signature=")
PRESIGNED_SHOWN = PRESIGNED.replace("AKIAIOSFODNN7EXAMPLE%2F20261130%2Fus-east-1%2Fs3%2Faws4_request",
                                    "REDACTED") + "REDACTED"


@pytest.mark.parametrize("url, shown", [
    ("https://b.s3.amazonaws.com/k/a.zip" + PRESIGNED + "0f1e2d", "https://b.s3.amazonaws.com/k/a.zip" + PRESIGNED_SHOWN),
    ("https://s.googleapis.com/b/a.zip?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=sa%40p.iam&"
     "X-Goog-Date=20261130T1015Z&X-Goog-Expires=600&X-Goog-SignedHeaders=host&X-Goog-Signature=9a8b",
     "https://s.googleapis.com/b/a.zip?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=REDACTED&"
     "X-Goog-Date=20261130T1015Z&X-Goog-Expires=600&X-Goog-SignedHeaders=host&X-Goog-Signature=REDACTED"),
    ("https://a.blob.core.windows.net/c/a.zip?sv=2022-11-02&ss=b&sp=r&se=2026-12-01T00%3A00Z&sig=AbC%2Bd%3D",
     "https://a.blob.core.windows.net/c/a.zip?sv=2022-11-02&ss=b&sp=r&se=2026-12-01T00%3A00Z&sig=REDACTED"),
    ("https://h/a.zip?AWSAccessKeyId=AKIA&Expires=1700000000&Signature=x%2By",  # S3 SigV2
     "https://h/a.zip?AWSAccessKeyId=REDACTED&Expires=1700000000&Signature=REDACTED"),
    ("https://h/d/?Token=t1&ACCESS_TOKEN=t2&api-key=k1&apikey=k2&key=k3&password=p&client_secret=s&v=2",
     "https://h/d/?Token=REDACTED&ACCESS_TOKEN=REDACTED&api-key=REDACTED&apikey=REDACTED&key=REDACTED&"
     "password=REDACTED&client_secret=REDACTED&v=2"),  # any case; names, order, the rest kept
    ("https://h/a.zip?X%2DAmz%2DSignature=s&token=&sig&keyring=1",  # an escaped name; empty values
     "https://h/a.zip?X%2DAmz%2DSignature=REDACTED&token=&sig&keyring=1"),
    ("https://u:p@h/a.zip?private_token=t#access_token=f&state=1",  # userinfo, query and fragment
     "https://h/a.zip?private_token=REDACTED#access_token=REDACTED&state=1"),
    ("https://cdn.example.cn/d/a.zip?auth_key=1700000000-0-0-9f8e&authKey=x&v=1",  # Alibaba/Tencent CDN
     "https://cdn.example.cn/d/a.zip?auth_key=REDACTED&authKey=REDACTED&v=1"),
    ("https://b-125.cos.ap-beijing.myqcloud.com/a.zip?sign=q-sign-algorithm%3Dsha1%26q-signature%3D0a",
     "https://b-125.cos.ap-beijing.myqcloud.com/a.zip?sign=REDACTED"),  # Tencent COS
    ("https://h/a.zip?jwt=eyJhbGciOi.eyJzdWIi.c2ln&signed=1", "https://h/a.zip?jwt=REDACTED&signed=1"),
    ("clean/a.zip?token=x", "clean/a.zip?token=x"),  # a path, not a URL
])
def test_display_url_redacts_credential_query_values(url, shown):
    """Presigned (S3 SigV4/SigV2, GCS), Azure SAS and token URLs show every parameter but the
    credentials' values, as the Azure SDK's and uv's log redaction do."""
    assert display_url(url) == shown
    assert display_url(shown) == shown


def test_a_presigned_url_is_requested_as_given_and_shown_redacted(tmp_path: Path):
    srv = FaultServer({"a.bin": DATA})
    srv.faults.signed = {"a.bin": SECRET}
    try:
        client = HttpClient(FAST)
        info = client.probe(srv.url + "a.bin" + PRESIGNED + SECRET)
        assert info.url == srv.url + "a.bin" + PRESIGNED_SHOWN  # what records hold
        buf = bytearray()
        client.read_range(info, 7, 4000, buf.extend)  # requested with the real signature
        assert bytes(buf) == DATA[7:4000]
        with pytest.raises(HttpError) as e:  # a wrong signature: 403, shown without it
            HttpClient(FAST).probe(srv.url + "a.bin" + PRESIGNED + "forged")
        assert str(e.value) == f"HTTP 403 Forbidden: {srv.url}a.bin{PRESIGNED_SHOWN} (the server refuses access)"
        # a redirect to a presigned URL (what hosting services do): its signature is not shown
        srv.faults.redirect = {"get/a.bin": "/a.bin" + PRESIGNED + SECRET}
        got = download_file(HttpClient(FAST), srv.url + "get/a.bin", tmp_path / "a.bin")
        assert got.url == srv.url + "a.bin" + PRESIGNED_SHOWN and (tmp_path / "a.bin").read_bytes() == DATA
        assert srv.queries.count(PRESIGNED[1:] + SECRET) >= 4
    finally:
        srv.close()


def test_urllib3_log_lines_show_no_signature(tmp_path: Path, caplog):
    """urllib3 logs a retried request's path with its query at WARNING, a redirect's URLs at
    INFO and every request at DEBUG: a program that configures logging printed the signature.
    Its lines now hold it REDACTED (and still come: nothing is dropped). So does the WARNING
    "Failed to parse headers (url=…)" of urllib3.connection, on an answer with a header line
    without a colon: it showed the whole URL with its query."""
    srv = FaultServer({"a.bin": DATA})
    srv.faults.signed = {"a.bin": SECRET}
    srv.faults.redirect = {"get/a.bin": "/a.bin" + PRESIGNED + SECRET}
    caplog.set_level(logging.DEBUG, logger="urllib3")
    try:
        srv.faults.fail = 1  # one 500: urllib3 retries, with a WARNING naming the request path
        got = download_file(HttpClient(FAST), srv.url + "get/a.bin", tmp_path / "a.bin")
        assert (tmp_path / "a.bin").read_bytes() == DATA and got.url == srv.url + "a.bin" + PRESIGNED_SHOWN
        client = HttpClient(FAST)  # a connection refused: retried, WARNING with the path and query
        with pytest.raises(HttpError):
            client.probe(f"http://127.0.0.1:{closed_port()}/a.bin{PRESIGNED}{SECRET}")
        srv.faults.bad_header = {"a.bin"}  # urllib3.connection: WARNING with the whole URL
        assert client.probe(srv.url + "a.bin" + PRESIGNED + SECRET).size == len(DATA)
    finally:
        srv.close()
    levels = {r.levelname for r in caplog.records if r.name.startswith("urllib3")}
    assert {"WARNING", "INFO", "DEBUG"} <= levels, levels
    parse = [r for r in caplog.records if r.name == "urllib3.connection" and "Failed to parse headers" in r.getMessage()]
    assert len(parse) == 1 and f"/a.bin{PRESIGNED_SHOWN}" in parse[0].getMessage()
    assert PRESIGNED_SHOWN in caplog.text
    assert SECRET not in caplog.text and "AKIAIOSFODNN7EXAMPLE" not in caplog.text
    assert redact_text("Redirecting /get -> http://h/a?sig=abc&sv=1&X-Amz-Signature=x#token=t") == \
        "Redirecting /get -> http://h/a?sig=REDACTED&sv=1&X-Amz-Signature=REDACTED#token=REDACTED"


def test_a_password_holding_a_slash_is_one_line_without_it(tmp_path: Path):
    """`https://user:pa/ss@host/` is not a URL with a password (its host part ends at the '/'):
    urllib3 was handed host 'user', port 'pa' and the messages showed the URL as typed."""
    bad = f"http://mirror-user:{SECRET}/x@127.0.0.1:{closed_port()}/data/"
    hint = "percent-escape it (/ as %2F, ? as %3F, # as %23)"
    dl = _download(tmp_path / "dl", bad)
    fe = _fetch(bad + "t.zip", tmp_path / "fe")
    for res in (dl, fe):
        assert res.exit_code == 2 and hint in res.output, res.output
    assert "'http://***@127.0.0.1:" in dl.output and list(tmp_path.iterdir()) == []
    with pytest.raises(HttpError, match="percent-escape") as e:
        HttpClient(FAST).probe(bad + "a.bin")
    with pytest.raises(HttpError, match="percent-escape") as e2:
        from sunrgbd_tools.acquire.download import download
        download(DownloadConfig(dest=str(tmp_path / "lib"), base_url=bad, http=FAST))
    with pytest.raises(ShareError, match="percent-escape") as e3:
        fetch(FetchConfig(source=bad + "t.zip", dest=str(tmp_path / "lib2"), http=FAST))
    assert not leaks(tmp_path, dl.output, fe.output, str(e.value), str(e2.value), str(e3.value))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("userinfo, tail", [
    ("u:123/x", "/a.zip"),  # a numeric "port": requested from host 'u', retried, its password shown
    ("tok/en", "/a.zip"),  # a token holding '/': shown as typed
    ("user:p@ss/w", "/a.zip"),  # an '@' in the host part and one after it: the tail was shown
    ("u:pa/ss", "/a.zip?e=a@b"),  # an '@' in the query: `***@` was cut at it
    ("u:pa?ss", "/a.zip?e=a@b"),  # a '?' or '#' in the password: the '@' is in the "query"
    ("u:pa#ss", "/a.zip"),
    ("u:123?x", "/a.zip"),  # a numeric "port", then '?' or '#': read as host u, port 123, a query
    ("u:123#x", "/a.zip?e=1"),
    ("u:123?", "/a.zip"),
])
def test_any_at_after_the_host_part_is_a_password_never_shown(tmp_path: Path, userinfo, tail):
    """An '@' between the end of the host part urlsplit reads and the query can only be a
    userinfo whose password holds a '/': one line, exit 2, the URL shown from its last such '@'."""
    port = closed_port()
    url = f"http://{userinfo}@127.0.0.1:{port}{tail}"
    shown = f"http://***@127.0.0.1:{port}{tail}"
    assert display_url(url) == shown
    res = _fetch(url, tmp_path / "fe")
    assert res.exit_code == 2 and f"'{shown}'" in res.output and "percent-escape" in res.output, res.output
    assert [ln.startswith("Error: ") for ln in res.output.splitlines()].count(True) == 1  # click's usage form
    assert userinfo not in res.output
    with pytest.raises(HttpError, match="percent-escape") as e:
        HttpClient(FAST).probe(url)
    assert userinfo not in str(e.value) and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000?mail=a@b.org", "http://127.0.0.1:8000?a&b@c",
                                 "http://127.0.0.1:8000/a.zip?x@y", "http://127.0.0.1:8000#k=a@b"])
def test_an_at_in_the_query_of_a_host_and_port_is_a_query(url):
    """The price of refusing `https://u:123?x@host/` is only a URL with no path whose query's
    first part holds an '@' but no '=' or '&'; a query of parameters, or any URL with a path,
    is read as typed."""
    assert url_problem(url) is None and display_url(url) == url


def test_an_at_in_the_path_is_refused_and_a_percent_escaped_one_is_read(tmp_path: Path):
    """The price of the rule above: an '@' in a path must be written %40 (the message says so)."""
    srv = FaultServer({"v%401/a.bin": DATA})  # as requested: the server does not unescape
    try:
        with pytest.raises(HttpError, match="an '@' in the path as %40"):
            HttpClient(FAST).probe(srv.url + "v@1/a.bin")
        assert HttpClient(FAST).probe(srv.url + "v%401/a.bin").size == len(DATA)
    finally:
        srv.close()


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:99999/d/?token=" + SECRET, "not a valid URL (Port out of range 0-65535)"),
    ("http://[::1/d/?token=" + SECRET, "not a valid URL (Invalid IPv6 URL)"),
    ("http:///d/?token=" + SECRET, "not a valid URL (no host name)"),
])
def test_a_url_urllib3_cannot_parse_is_a_usage_error_without_its_secrets(tmp_path: Path, url, why):
    """A port past 65535 ended in urllib3's `LocationParseError: Failed to parse: <the URL as
    requested>` (its token shown), a broken IPv6 host in a ValueError traceback."""
    dl = _download(tmp_path / "dl", url)
    fe = _fetch(url + "t.zip", tmp_path / "fe")
    for res in (dl, fe):
        assert res.exit_code == 2 and why in res.output and "token=REDACTED" in res.output, res.output
        assert "Traceback" not in res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    with pytest.raises(HttpError, match="not a valid URL") as e:
        HttpClient(FAST).probe(url + "a.bin")
    assert not leaks(tmp_path, dl.output, fe.output, str(e.value)) and list(tmp_path.iterdir()) == []
    from urllib3.exceptions import LocationParseError

    from sunrgbd_tools.remote.http import describe_failure

    assert describe_failure(LocationParseError(url), display_url(url)) == "urllib3 cannot parse the URL"


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


@pytest.fixture
def open_mirror(archives):
    srv = FaultServer({n: p.read_bytes() for n, p in archives.items()})
    yield srv
    srv.close()


def test_download_with_a_token_in_the_base_url(open_mirror, tmp_path: Path):
    """`--base-url 'https://host/data/?token=…'` (a container SAS works the same way): the query
    goes with each archive (it was cut off: the token never reached the server) and is shown and
    recorded as token=REDACTED."""
    srv = open_mirror
    srv.faults.query = {"token": SECRET}
    dest = tmp_path / "raw"
    ok = _download(dest, srv.url + "?token=" + SECRET)
    assert ok.exit_code == 0, ok.output
    assert (dest / "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat").is_file()
    assert set(srv.queries) == {"token=" + SECRET}
    cfg = json.loads((dest / ".sunrgbd-download" / "config.json").read_text())
    assert cfg["base_url"] == srv.url + "?token=REDACTED"
    remote = json.loads((dest / ".sunrgbd-download" / "SUNRGBD.zip.remote.json").read_text())
    assert remote["url"] == srv.url + "SUNRGBD.zip?token=REDACTED"
    wrong = _download(tmp_path / "wrong", srv.url + "?token=" + SECRET + "-old")
    assert wrong.exit_code == 1
    assert f"HTTP 403 Forbidden: {srv.url}SUNRGBDtoolbox.zip?token=REDACTED" in wrong.output
    # archives served through a redirect to presigned URLs, whole (no Range): the signed final URL
    # is what the reads ask for, and what the .part.json records shows REDACTED
    srv.faults.query = {}
    srv.faults.signed = {n: SECRET for n in ("SUNRGBD.zip", "SUNRGBDtoolbox.zip")}
    srv.faults.redirect = {f"get/{n}": f"/{n}{PRESIGNED}{SECRET}" for n in srv.faults.signed}
    srv.faults.ignore_range = True
    moved = _download(tmp_path / "mv", srv.url + "get/", "--toolbox-md5", "none", "--keep-archives")
    assert moved.exit_code == 0, moved.output
    assert (tmp_path / "mv/SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat").is_file()
    assert not leaks(tmp_path, ok.output, wrong.output, moved.output, also=("AKIAIOSFODNN7EXAMPLE",))


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

    def killed(report, cfg, hashed=None):
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


@pytest.fixture
def signed_host(packed):
    files = {p.name: p.read_bytes() for p in packed.parent.iterdir()}
    srv = FaultServer(files)
    srv.faults.signed = {"t.zip": SECRET}
    yield srv
    srv.close()


def test_fetch_a_presigned_url(signed_host, tmp_path: Path, monkeypatch):
    """A presigned archive URL: requested as given, shown and recorded with its credentials
    REDACTED. Its `.sha256` sidecar is asked for beside the path, the query kept (the name used
    to be appended to the signature); a presigned signature covers the archive alone, so a
    refused sidecar (403) counts as none. A fetch killed in its verify resumes with the URL
    re-signed (a new signature and date): the path names the file."""
    from sunrgbd_tools.acquire import share

    srv = signed_host
    url = srv.url + "t.zip" + PRESIGNED + SECRET
    ok = _fetch(url, tmp_path / "ok")
    assert ok.exit_code == 0, ok.output
    assert "warning: no --sha256 and no .sha256 beside the archive" in ok.output
    # the sidecar was asked for beside the path, the signature kept (so refused: 403)
    assert ("t.zip.sha256", None, 403, 0) in srv.settled(1, keep=lambda x: x[0] == "t.zip.sha256")
    record = json.loads((tmp_path / "ok" / ".sunrgbd-fetch" / "fetched.json").read_text())
    assert record["source"] == srv.url + "t.zip" + PRESIGNED_SHOWN

    srv.set_file("u.zip", srv.files["t.zip"])
    srv.set_file("u.zip.sha256", srv.files["t.zip.sha256"])
    srv.faults.query = {"token": SECRET}  # a token URL: its sidecar is asked for with the token
    tok = _fetch(srv.url + "u.zip?token=" + SECRET, tmp_path / "tok")
    assert tok.exit_code == 0 and f"checked against {srv.url}u.zip.sha256?token=REDACTED" in tok.output, tok.output
    srv.faults.query = {}

    dest = tmp_path / "d"
    monkeypatch.setattr(share, "_verify_fetched", lambda report, cfg, hashed=None: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        fetch(FetchConfig(source=url, dest=str(dest), progress=False, http=FAST))
    monkeypatch.undo()
    srv.faults.signed = {"t.zip": SECRET + "-resigned"}
    resigned = (srv.url + "t.zip" + PRESIGNED.replace("20261130T101500Z", "20261201T080000Z")
                + SECRET + "-resigned")
    versioned = _fetch(url + "&versionId=7", dest)  # another version of the file is not resumed
    assert versioned.exit_code == 2 and "not empty" in versioned.output, versioned.output
    res = _fetch(resigned, dest, "--no-progress")
    assert res.exit_code == 0, res.output
    other = _fetch(srv.url + "t2.zip" + PRESIGNED + SECRET, dest)  # another file is not resumed
    assert other.exit_code == 2 and "not empty" in other.output
    assert not leaks(tmp_path, ok.output, tok.output, versioned.output, res.output, other.output,
                     also=("AKIAIOSFODNN7EXAMPLE",))


@pytest.mark.parametrize("a, b, same", [
    (PRESIGNED + "s1", PRESIGNED.replace("20261130T101500Z", "20261201T080000Z") + "s2", True),  # re-signed
    (PRESIGNED + "s1&versionId=1", PRESIGNED + "s1&versionId=2", False),  # two versions of one key
    ("?file=a.zip&token=t1", "?token=t2&file=a.zip", True),  # order aside, `file=` names it
    ("?file=a.zip&token=t1", "?file=b.zip&token=t1", False),
    ("?sv=2022-11-02&sp=r&st=2026-11-30&se=2026-12-01&sig=A", "?sv=2022-11-02&sp=r&se=2026-12-02&sig=B", True),
    ("?Expires=1&v=1", "?Expires=2&v=1", False),  # no credential: the query is the URL's own
])
def test_a_source_is_its_url_less_credentials_and_validity(a, b, same):
    """Two fetch URLs name one source when they differ only in credentials (a new signature)
    and their validity window; any other parameter (S3's versionId=, file=) still counts."""
    base = "https://h.example/d/a.zip"
    assert (source_identity(base + a) == source_identity(base + b)) is same
    assert source_identity(base + PRESIGNED + "s1&versionId=1") == (
        base + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders=host&versionId=1")


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
