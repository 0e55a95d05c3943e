"""The HTTP client over urllib3: redirects, the one `--retries` budget across urllib3's retries
and our resumes, one-line errors. Loopback servers only."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from httpfixtures import FaultServer

from sunrgbd_tools.remote.http import (
    HttpClient,
    HttpConfig,
    HttpError,
    backoff_delay,
    download_file,
)

FAST = HttpConfig(timeout=2.0, retries=2, backoff=0.001, backoff_max=0.01)
DATA = bytes(range(256)) * 400


@pytest.fixture
def server():
    srv = FaultServer({"a.bin": DATA, "a.bin.sha256": b"00" * 32 + b"  a.bin\n"})
    yield srv
    srv.close()


@pytest.fixture
def redirector(server):
    """`/to/NAME` answers 302 to the fault server's NAME (relative on `/rel/`), `/loop` to itself."""
    log: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            log.append(self.path)
            if self.path.startswith("/to/"):
                where = server.url + self.path[len("/to/"):]
            elif self.path.startswith("/rel/"):
                where = "/to/" + self.path[len("/rel/"):]
            else:
                where = "/loop"
            self.send_response(302)
            self.send_header("Location", where)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", log
    httpd.shutdown()
    httpd.server_close()


def test_redirects_are_followed_and_reads_go_to_the_final_url(server, redirector, tmp_path: Path):
    base, log = redirector
    client = HttpClient(FAST)
    info = client.probe(base + "rel/a.bin")  # relative Location, then absolute to another host
    assert info.url == server.url + "a.bin" and info.size == len(DATA) and info.accepts_ranges
    assert log == ["/rel/a.bin", "/to/a.bin"]
    assert client.counters.requests == 3  # two redirects and the answer
    buf = bytearray()
    client.read_range(info, 1000, 5000, buf.extend)
    assert bytes(buf) == DATA[1000:5000] and len(log) == 2  # straight to the final URL
    assert download_file(client, base + "to/a.bin", tmp_path / "a.bin").url == server.url + "a.bin"
    assert (tmp_path / "a.bin").read_bytes() == DATA
    assert client.get_small(base + "to/a.bin.sha256").startswith(b"00")
    assert client.get_small(base + "to/missing.sha256") is None


def test_a_redirect_to_a_path_with_an_at_sign_is_followed(server):
    """Only a typed URL's '@' after the host is taken for a password holding a '/' (and
    refused); a server may redirect to a path like /@scope/pkg@1.0/a.bin, and reads go there."""
    final = "@scope/pkg@1.0/a.bin"
    server.set_file(final, DATA)
    server.faults.redirect["latest.bin"] = "/" + final
    client = HttpClient(FAST)
    info = client.probe(server.url + "latest.bin")
    assert info.url == server.url + final and info.size == len(DATA)
    buf = bytearray()
    client.read_range(info, 10, 20, buf.extend)
    assert bytes(buf) == DATA[10:20]
    with pytest.raises(HttpError, match="percent-escape"):  # the same URL typed is still refused
        HttpClient(FAST).probe(server.url + final)


def test_a_retry_after_a_redirect_keeps_the_final_url(server, redirector):
    """urllib3's `resp.url` is the last history entry's redirect target, None when that entry
    is a 500 retry: the final URL is read from the whole history instead."""
    base, _log = redirector
    server.faults.fail = 1
    info = HttpClient(FAST).probe(base + "rel/a.bin")
    assert info.url == server.url + "a.bin" and info.size == len(DATA)


def test_redirect_loop_is_one_line(redirector):
    base, log = redirector
    with pytest.raises(HttpError) as e:
        HttpClient(FAST).probe(base + "loop")
    assert str(e.value) == f"too many redirects: {base}loop"
    assert len(log) == 6  # the first request and 5 redirects followed


@pytest.mark.parametrize("retries", [0, 2])
def test_retry_budget_is_retries_plus_one_requests(server, retries: int):
    """urllib3 retries the 500s with our budget; the last one gives our one-line message."""
    server.faults.fail = 100
    client = HttpClient(HttpConfig(timeout=2.0, retries=retries, backoff=0.001, backoff_max=0.01))
    with pytest.raises(HttpError) as e:
        client.probe(server.url + "a.bin")
    msg = str(e.value)
    attempts = "1 attempt" if retries == 0 else f"{retries + 1} attempts"  # it said "1 attempts"
    assert msg == (f"giving up on {server.url}a.bin after {attempts}: "
                   "HTTP 500 Internal Server Error")
    assert len(server.settled(retries + 1)) == retries + 1 and client.counters.requests == retries + 1


def test_transient_500s_then_success_within_the_budget(server):
    server.faults.fail = 2
    client = HttpClient(FAST)
    info = client.probe(server.url + "a.bin")
    assert info.size == len(DATA)
    assert [x[2] for x in server.settled(3)] == [500, 500, 206] and client.counters.requests == 3
    server.faults.fail = 1
    server.faults.drop = 1  # then a body that breaks: resumed from its last byte
    server.faults.drop_after = 3000
    buf = bytearray()
    client.read_range(info, 0, len(DATA), buf.extend)
    assert bytes(buf) == DATA
    ranges = [x[1] for x in server.settled(6)[3:]]
    assert ranges == ["bytes=0-102399", "bytes=0-102399", "bytes=3000-102399"]


def test_connection_refused_is_one_line_after_the_budget():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(HttpError) as e:
        HttpClient(FAST).probe(f"http://127.0.0.1:{port}/x.zip")
    msg = str(e.value)
    assert msg.startswith(f"giving up on http://127.0.0.1:{port}/x.zip after 3 attempts: ")
    assert "Connection refused" in msg and "\n" not in msg
    # in the user's words, not urllib3's connection object
    assert f"cannot connect to 127.0.0.1:{port} (" in msg and "HTTPConnection(" not in msg
    with pytest.raises(HttpError) as e:  # credentials in the URL are not repeated as the host
        HttpClient(FAST).probe(f"http://me:s3cret@127.0.0.1:{port}/x.zip")
    assert str(e.value).split(" attempts: ", 1)[1].startswith(f"cannot connect to 127.0.0.1:{port} (")


def test_unsupported_scheme_and_backoff_schedule():
    with pytest.raises(HttpError, match="unsupported URL scheme 'ftp'"):
        HttpClient(FAST).probe("ftp://example.org/x.zip")
    cfg = HttpConfig(backoff=1.0, backoff_max=60.0)
    for attempt, full in [(0, 1.0), (1, 2.0), (3, 8.0), (6, 60.0), (20, 60.0)]:
        d = backoff_delay(cfg, attempt)
        assert full / 2 <= d <= full, (attempt, d)
