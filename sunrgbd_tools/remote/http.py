"""A small resumable HTTP client: Range reads, retries with backoff, change detection.

Why the standard library (`http.client`) and not `requests`/`urllib3`: we need exactly
four things – one keep-alive connection per worker thread, `Range`/`If-Range`, control
over how a broken body is resumed, and strict checks of `Content-Range`/`Content-Length`/
`ETag` – and `http.client` gives all of them in a few lines without a new dependency
(see docs/sharing.md).

Every read states the identity of the remote file it expects (`RemoteInfo`: size, ETag,
Last-Modified). A response that disagrees raises `RemoteChanged`, so callers can start
that file over instead of splicing bytes from two different versions.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from sunrgbd_tools import __version__

_CHUNK = 1 << 16
_REDIRECTS = (301, 302, 303, 307, 308)
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.I)


class HttpError(Exception):
    """A failure worth one line to the user (4xx, retries exhausted, bad response)."""


class RemoteChanged(HttpError):
    """The remote file is not the one we started with (ETag/Last-Modified/size differ)."""


class _Retryable(Exception):
    """Internal: a transient failure (reset, timeout, 5xx, short body) to retry."""


@dataclass
class HttpConfig:
    """Network behaviour; tests shrink timeouts and backoff so they never sleep long."""

    timeout: float = 60.0
    retries: int = 8
    backoff: float = 1.0  # first retry waits this long, then doubles
    backoff_max: float = 60.0
    user_agent: str = f"sunrgbd-tools/{__version__}"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RemoteInfo:
    """What the server told us about a file; used to detect a change between requests."""

    url: str
    size: int | None
    etag: str | None
    last_modified: str | None
    accepts_ranges: bool

    def to_json(self) -> dict:
        return asdict(self)

    def same_file(self, other: RemoteInfo) -> bool:
        """True unless a validator both sides know disagrees."""
        if self.size is not None and other.size is not None and self.size != other.size:
            return False
        if self.etag and other.etag and self.etag != other.etag:
            return False
        if self.last_modified and other.last_modified and self.last_modified != other.last_modified:
            return False
        return True


@dataclass
class Counters:
    requests: int = 0
    bytes: int = 0


class HttpClient:
    """Thread-safe: each thread keeps its own keep-alive connection per host."""

    def __init__(self, config: HttpConfig | None = None):
        self.config = config or HttpConfig()
        self._local = threading.local()
        self._lock = threading.Lock()
        self.counters = Counters()

    # ------------------------------------------------------------------ connections
    def _conn(self, url: str) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(key)
        if conn is None:
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(
                    parts.netloc, timeout=self.config.timeout, context=ssl.create_default_context()
                )
            elif parts.scheme == "http":
                conn = http.client.HTTPConnection(parts.netloc, timeout=self.config.timeout)
            else:
                raise HttpError(f"unsupported URL scheme {parts.scheme!r}: {url}")
            conns[key] = conn
        return conn

    def _drop(self, url: str) -> None:
        parts = urlsplit(url)
        conns = getattr(self._local, "conns", {})
        conn = conns.pop((parts.scheme, parts.netloc), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for conn in getattr(self._local, "conns", {}).values():
            conn.close()
        self._local.conns = {}

    def _request(self, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        hdrs = {"User-Agent": self.config.user_agent, "Accept-Encoding": "identity", **headers}
        conn = self._conn(url)
        try:
            conn.request("GET", path, headers=hdrs)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            self._drop(url)
            raise _Retryable(f"{type(e).__name__}: {e}") from e
        with self._lock:
            self.counters.requests += 1
        return resp

    def _sleep(self, attempt: int) -> None:
        delay = min(self.config.backoff_max, self.config.backoff * (2 ** attempt))
        time.sleep(delay * (0.5 + random.random() / 2))

    # ------------------------------------------------------------------ public API
    def probe(self, url: str) -> RemoteInfo:
        """Ask for the first byte: tells the size, validators and whether Range works."""
        attempt = 0
        redirects = 0
        while True:
            try:
                resp = self._request(url, {"Range": "bytes=0-0"})
                if resp.status in _REDIRECTS and resp.getheader("Location"):
                    self._drop(url)
                    redirects += 1
                    if redirects > 5:
                        raise HttpError(f"too many redirects: {url}")
                    url = urljoin(url, resp.getheader("Location"))
                    continue
                self._check_status(resp, url)
                info = self._info(resp, url)
                if resp.status == 206:
                    try:
                        self._count(len(resp.read()))
                    except (OSError, http.client.HTTPException):
                        self._drop(url)  # the byte itself is not needed; the headers were
                else:
                    self._drop(url)  # do not read a whole archive just to learn its size
                return info
            except _Retryable as e:
                attempt = self._retry_or_raise(url, attempt, e)

    def _retry_or_raise(self, url: str, attempt: int, err: Exception) -> int:
        if attempt >= self.config.retries:
            raise HttpError(f"giving up on {url} after {attempt + 1} attempts: {err}") from None
        self._sleep(attempt)
        return attempt + 1

    def _check_status(self, resp: http.client.HTTPResponse, url: str) -> None:
        if resp.status in (200, 206):
            return
        reason = resp.reason or ""
        if resp.status in _RETRY_STATUS or resp.status >= 500:
            self._drop(url)
            raise _Retryable(f"HTTP {resp.status} {reason}")
        self._drop(url)
        hint = {404: " (check the URL / --base-url)", 403: " (the server refuses access)",
                401: " (the server wants credentials)", 410: " (gone from the server)"}
        raise HttpError(f"HTTP {resp.status} {reason}: {url}{hint.get(resp.status, '')}")

    @staticmethod
    def _info(resp: http.client.HTTPResponse, url: str) -> RemoteInfo:
        etag = resp.getheader("ETag")
        if etag and etag.startswith("W/"):
            etag = None  # weak validators cannot guard byte ranges
        lm = resp.getheader("Last-Modified")
        size: int | None = None
        if resp.status == 206:
            m = _CONTENT_RANGE.match(resp.getheader("Content-Range") or "")
            if m and m.group(3) != "*":
                size = int(m.group(3))
        else:
            cl = resp.getheader("Content-Length")
            size = int(cl) if cl and cl.isdigit() else None
        return RemoteInfo(url=url, size=size, etag=etag, last_modified=lm,
                          accepts_ranges=resp.status == 206 and size is not None)

    def read_range(
        self,
        info: RemoteInfo,
        start: int,
        end: int,
        sink: Callable[[bytes], None],
    ) -> None:
        """Stream bytes [start, end) of the file `info` describes into `sink`.

        A broken body is resumed from the last byte received. A server that answers a
        range with 200 is still handled: the bytes before `start` are read and dropped.
        """
        done = [start]  # advanced by the sink, so a broken body resumes where it broke

        def counting(chunk: bytes) -> None:
            sink(chunk)
            done[0] += len(chunk)

        attempt = 0
        while done[0] < end:
            before = done[0]
            try:
                self._read_once(info, done[0], end, counting)
            except _Retryable as e:
                if done[0] == before:
                    attempt = self._retry_or_raise(info.url, attempt, e)
                else:
                    attempt = 0  # progress was made; a flaky line is not a dead one
                continue
            if done[0] < end:  # a shorter range than asked for: ask for the rest
                if done[0] == before:
                    attempt = self._retry_or_raise(info.url, attempt, _Retryable("empty body"))
                else:
                    attempt = 0

    def _read_once(self, info: RemoteInfo, pos: int, end: int, sink) -> int:
        headers = {"Range": f"bytes={pos}-{end - 1}"}
        if info.etag:
            headers["If-Range"] = info.etag
        elif info.last_modified:
            headers["If-Range"] = info.last_modified
        resp = self._request(info.url, headers)
        self._check_status(resp, info.url)
        got = self._info(resp, info.url)
        if not info.same_file(got):
            self._drop(info.url)
            raise RemoteChanged(
                f"{info.url} changed on the server while downloading "
                f"(size {info.size}->{got.size}, ETag {info.etag}->{got.etag}, "
                f"Last-Modified {info.last_modified}->{got.last_modified})"
            )
        skip = 0
        if resp.status == 206:
            m = _CONTENT_RANGE.match(resp.getheader("Content-Range") or "")
            if not m or int(m.group(1)) != pos:
                self._drop(info.url)
                raise _Retryable(f"bad Content-Range {resp.getheader('Content-Range')!r}")
            want = min(end, int(m.group(2)) + 1) - pos
            cl = resp.getheader("Content-Length")
            if cl is not None and int(cl) != int(m.group(2)) + 1 - pos:
                self._drop(info.url)
                raise _Retryable(f"Content-Length {cl} disagrees with Content-Range")
        else:  # 200: the whole file from byte 0
            skip = pos
            want = end - pos
        try:
            while skip:
                chunk = resp.read(min(skip, _CHUNK))
                if not chunk:
                    raise _Retryable("body ended early")
                skip -= len(chunk)
                self._count(len(chunk))
            while want > 0:
                chunk = resp.read(min(want, _CHUNK))
                if not chunk:
                    raise _Retryable("body ended early")
                self._count(len(chunk))
                sink(chunk)
                pos += len(chunk)
                want -= len(chunk)
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            self._drop(info.url)
            raise _Retryable(f"{type(e).__name__}: {e}") from e
        except _Retryable:
            self._drop(info.url)
            raise
        if resp.status == 206 and resp.length == 0:
            resp.read()  # keep the connection reusable
        else:
            self._drop(info.url)  # unread rest of a 200 body, or a range we stopped early
        return pos

    def _count(self, n: int) -> None:
        with self._lock:
            self.counters.bytes += n

    def get_small(self, url: str, limit: int = 1 << 20) -> bytes | None:
        """Fetch a small file whole (e.g. `<archive>.sha256`); None when it is not there."""
        attempt = 0
        while True:
            try:
                resp = self._request(url, {})
                if resp.status in (404, 410):
                    self._drop(url)
                    return None
                self._check_status(resp, url)
                data = resp.read(limit + 1)
                self._count(len(data))
                self._drop(url)
                if len(data) > limit:
                    raise HttpError(f"{url}: larger than {limit} bytes")
                return data
            except (OSError, http.client.HTTPException) as e:
                self._drop(url)
                attempt = self._retry_or_raise(url, attempt, e)
            except _Retryable as e:
                attempt = self._retry_or_raise(url, attempt, e)


def download_file(
    client: HttpClient,
    url: str,
    dest: str | os.PathLike,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int, int], None] | None = None,
    restarts: int = 1,
) -> RemoteInfo:
    """Download `url` whole into `dest`, resuming a `dest.part` left by an earlier run.

    The part file is continued only when the server still describes the same file
    (`dest.part.json` keeps size/ETag/Last-Modified); otherwise it starts over. A server
    without Range support is streamed from byte 0 and the bytes already on disk skipped.
    `on_total(size, already)` is called once the size is known (for a progress bar).
    A file that changes on the server mid-way is started over (`restarts` times).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")
    info = client.probe(url)
    if info.size is None:
        raise HttpError(f"{url}: the server does not say how large the file is")
    have = 0
    if part.exists() and meta.exists():
        try:
            old = RemoteInfo(**json.loads(meta.read_text()))
        except (ValueError, TypeError):
            old = None
        if old is not None and old.same_file(info) and part.stat().st_size <= info.size:
            have = part.stat().st_size
    if have == 0:
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(b"")
        meta.write_text(json.dumps(info.to_json()))
    if on_total:
        on_total(info.size, have)
    with open(part, "r+b") as f:
        f.seek(have)
        f.truncate()

        def sink(chunk: bytes) -> None:
            f.write(chunk)
            if progress:
                progress(len(chunk))

        try:
            client.read_range(info, have, info.size, sink)
        except RemoteChanged:
            f.close()
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            if restarts <= 0:
                raise
            return download_file(client, url, dest, progress, on_total, restarts - 1)
    os.replace(part, dest)
    meta.unlink(missing_ok=True)
    return info
