"""A small resumable HTTP client: Range reads, retries with backoff, change detection.

urllib3 keeps the connections (a thread-safe pool, keep-alive per host), follows redirects
and retries what fails before a body starts (resets, timeouts, 408/425/429/5xx) with our
backoff. What no library does stays here: a body that breaks is resumed from its last byte
with `Range`/`If-Range`, and `Content-Range`/`Content-Length`/`ETag` are checked strictly.
One retry budget (`--retries`) covers both, and progress resets it.

Every read states the identity of the remote file it expects (`RemoteInfo`: size, ETag,
Last-Modified). A response that disagrees raises `RemoteChanged`, so callers can start
that file over instead of splicing bytes from two different versions.

A URL's secrets are taken off at the client's door (`HttpClient.adopt`): its `user:password@`
becomes that host's `Authorization: Basic` header (urllib3 does not send URL userinfo itself),
and the values of credential query parameters (a presigned `X-Amz-Signature=…`, a SAS `sig=…`,
`token=…`) are kept in memory beside the URL that shows them as `REDACTED`. Everything else
(messages, `RemoteInfo.url`, records on disk) sees only that shown form (`display_url`); the
client requests the real URL behind it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote, unquote_plus, urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationValueError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

from sunrgbd_tools import __version__
from sunrgbd_tools.text import plural

_CHUNK = 1 << 16
_MAX_REDIRECTS = 5
_RETRY_STATUS = frozenset({408, 425, 429, *range(500, 600)})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.I)
_POOL_SIZE = 64  # connections kept per host: at least `download --jobs` (at most 64)


# scheme://  then userinfo up to the last '@' of the authority (which ends at / ? or #)
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
REDACTED = "REDACTED"  # what a credential's value shows as (the Azure SDK's word; uv shows ****)
# Query parameters whose values are credentials, by name compared in lower case without '-', '_'
# and '.': presigned S3/GCS/OSS URLs (X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token,
# X-Goog-Signature, X-Goog-Credential, Signature, AWSAccessKeyId, GoogleAccessId), Azure SAS
# (sig), Tencent COS (sign), Alibaba/Tencent CDN URL authentication (auth_key), tokens and keys
# (token, access_token, private_token, jwt, api_key, apikey, key, …), passwords and secrets
# (password, client_secret, …).
_SECRET_PARAMS = frozenset({"sig", "sign", "key", "auth", "authkey", "authorization", "jwt", "pwd",
                            "passwd", "sessionid"})
_SECRET_SUFFIXES = ("signature", "credential", "credentials", "token", "secret", "password",
                    "apikey", "accesskey", "accesskeyid", "accessid", "secretkey", "privatekey",
                    "sessionkey", "subscriptionkey")
# Query parameters that bound a presigned URL's validity (S3 X-Amz-Date/X-Amz-Expires and SigV2
# Expires, GCS X-Goog-Date/X-Goog-Expires, Azure SAS se/st): they change on every re-signing.
_VALIDITY_PARAMS = frozenset({"xamzdate", "xamzexpires", "expires", "xgoogdate", "xgoogexpires",
                              "se", "st"})


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """(`url` without `user:password@`, (user, password) percent-decoded, or None when it
    has none). A string that is not a URL comes back unchanged."""
    m = _USERINFO.match(url)
    if m is None:
        return url, None
    user, _, password = m.group(2).partition(":")
    return m.group(1) + url[m.end():], (unquote(user), unquote(password))


def _param_key(name: str) -> str:
    return re.sub(r"[-_.\s]", "", unquote_plus(name)).lower()


def is_secret_param(name: str) -> bool:
    """Whether a query parameter's value is a credential (`_SECRET_PARAMS`, `_SECRET_SUFFIXES`)."""
    key = _param_key(name)
    return key in _SECRET_PARAMS or key.endswith(_SECRET_SUFFIXES)


def is_validity_param(name: str) -> bool:
    """Whether a query parameter bounds a presigned URL's validity (`_VALIDITY_PARAMS`)."""
    return _param_key(name) in _VALIDITY_PARAMS


def _secret(part: str) -> bool:
    name, _, value = part.partition("=")
    return bool(value) and is_secret_param(name)


def _redact_params(text: str) -> str:
    return "&".join(f"{p.partition('=')[0]}={REDACTED}" if _secret(p) else p for p in text.split("&"))


def has_secret_query(url: str) -> bool:
    """Whether the URL's query (or fragment) carries a credential (shown REDACTED or not): a
    presigned or token URL."""
    if not _SCHEME.match(url):
        return False
    base, _, fragment = url.partition("#")
    return any(_secret(p) for text in (base.partition("?")[2], fragment) for p in text.split("&"))


def redact_query(url: str) -> str:
    """The URL with the values of its credential query (and fragment) parameters replaced by
    REDACTED; names, order, encoding and every other parameter are kept. Not a URL: unchanged."""
    if not _SCHEME.match(url):
        return url
    base, hsep, fragment = url.partition("#")
    path, qsep, query = base.partition("?")
    return path + qsep + _redact_params(query) + hsep + (_redact_params(fragment) if hsep else "")


def _stray_at(url: str) -> int:
    """The position of the '@' that ends a userinfo urlsplit does not read as one, or -1. A '/',
    '?' or '#' in the password ends the host part early: `https://u:pa/ss@host/` is host `u`,
    port `pa`. So: the last '@' between the end of the host part and the first '?' or '#'
    (`https://tok/en@host/`, `https://u:123/x@host/`, `https://user:p@ss/w@host/`); or, when the
    host part has a port that is not a number (`https://u:pa?ss@host/`, `https://u:pa#ss@host/`),
    or a number followed by what can only be more password (`https://u:123?x@host/`,
    `_password_query`), the last '@' of the would-be host part after the first '@' further on."""
    m = _SCHEME.match(url)
    if m is None:
        return -1
    rest = url[m.end():]
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    at = re.split(r"[?#]", rest, maxsplit=1)[0].rfind("@")
    if at >= len(netloc):
        return m.end() + at
    port = (netloc.partition("]")[2] if netloc.startswith("[") else netloc).partition(":")[2]
    first = rest.find("@", len(netloc))
    if "@" in netloc or not port or first < 0:
        return -1
    if port.isdigit() and not _password_query(rest[len(netloc):first]):
        return -1
    end = first + re.search(r"[/?#]|$", rest[first:]).start()
    return m.end() + rest.rfind("@", 0, end)


def _password_query(between: str) -> bool:
    """Whether the text between a numeric "port" and the next '@' is the rest of a password that
    holds a '?' or '#' (`https://u:123?x@host/`), not a query: it starts at once with the '?' or
    '#' (no path: a URL naming a file has one) and holds no '=' or '&' (a query's parameters do:
    `http://host:8000?mail=a@b` is a query)."""
    return between[:1] in ("?", "#") and not re.search(r"[=&]", between)


def userinfo_problem(url: str) -> str | None:
    """Why a URL's `user:password@` cannot be read, if it cannot (`_stray_at`). Requested as
    written, the URL would name the wrong host (`https://u:123/x@host/` is host `u`, port 123)
    and show the password as its path or query."""
    if _stray_at(url) < 0:
        return None
    return ("the user:password in the URL holds a '/', '?' or '#', which ends the host part "
            "early; percent-escape it (/ as %2F, ? as %3F, # as %23), or an '@' in the path as %40")


def url_problem(url: str) -> str | None:
    """Why an http(s) URL cannot be requested as written, in words that do not show its secrets,
    or None: a userinfo that cannot be read (`userinfo_problem`), or a host part urllib3 cannot
    parse (`http://[::1/`, a port past 65535: a ValueError traceback, or urllib3's message with
    the whole URL in it)."""
    problem = userinfo_problem(url)
    if problem:
        return problem
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (validates the port)
    except ValueError as e:
        return f"not a valid URL ({e})"
    if not parts.hostname:
        return "not a valid URL (no host name)"
    return None


_QUERY_PARAM = re.compile(r"([?&#])([^=&#\s'\"]+)=([^&#\s'\"]*)")


def redact_text(text: str) -> str:
    """Free text (a log line holding URLs or request paths) with the value of every credential
    query parameter REDACTED, as `redact_query` does for one URL."""
    return _QUERY_PARAM.sub(lambda m: f"{m[1]}{m[2]}={REDACTED}" if _secret(m[0][1:]) else m[0], text)


class _RedactLogFilter(logging.Filter):
    """urllib3 logs request paths and URLs with their query (a retry at WARNING, a redirect at
    INFO, every request at DEBUG): nothing shows them unless the program configures logging,
    and then a presigned URL's signature would. Their credential values become REDACTED; no
    record is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = redact_text(text)
        if clean != text:
            record.msg, record.args = clean, ()
        return True


# every urllib3 logger whose records can hold a URL or a request path (urllib3 2.x): connectionpool
# (each request, a retry, a redirect), poolmanager (a redirect), util.retry (each increment) and
# connection ("Failed to parse headers (url=…)", the whole URL with its query, at WARNING)
_URLLIB3_LOGGERS = ("urllib3.connection", "urllib3.connectionpool", "urllib3.poolmanager",
                    "urllib3.util.retry")


def _redact_urllib3_logs() -> None:
    """Put _RedactLogFilter on the urllib3 loggers that name URLs, once per process (a logger's
    filters see only its own records, so each module's logger gets one)."""
    for name in _URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactLogFilter) for f in logger.filters):
            logger.addFilter(_RedactLogFilter())


def display_url(url: str) -> str:
    """A URL as every message, progress label and file written shows it: without any
    `user:password@` and with credential query values REDACTED (a password, a signature or a
    token must never reach a terminal, a log or a record). A URL whose userinfo cannot be
    read (`userinfo_problem`) shows `***@` for everything up to the '@' that ends it (`_stray_at`)."""
    at = _stray_at(url)
    if at >= 0:
        return redact_query(_SCHEME.match(url).group(0) + "***@" + url[at + 1:])
    return redact_query(split_userinfo(url)[0])


def _origin(url: str) -> tuple[str, str]:
    """(scheme, host[:port]) in lower case: where a URL's credentials may be sent."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed '[' of an IPv6 host: no origin, so no credentials
        return ("", "")
    return (parts.scheme, parts.netloc.rpartition("@")[2].lower())


class HttpError(Exception):
    """A failure worth one line to the user (4xx, retries exhausted, bad response); `status`
    is the HTTP status when the server answered with one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RemoteChanged(HttpError):
    """The remote file is not the one we started with (ETag/Last-Modified/size differ)."""


def describe_failure(e: BaseException, url: str) -> str:
    """A network failure in the user's words: what could not be done and the system's reason
    (urllib3's own text leads with the connection object, `HTTPConnection(host=…, port=…)`)."""
    if isinstance(e, LocationValueError):  # its text is the URL as requested, secrets and all
        return "urllib3 cannot parse the URL"
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. `http://[::1/`: no host to name
        parts = urlsplit("")
    name = parts.hostname or ""
    host = f"[{name}]" if ":" in name else name  # never netloc: it holds any user:password@
    try:
        host += f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a port that is not a number: the host alone
        pass
    if isinstance(e, NameResolutionError):
        return f"cannot resolve host {parts.hostname!r}"
    # before the timeouts: urllib3 makes NewConnectionError a ConnectTimeoutError
    if isinstance(e, NewConnectionError):  # "...: Failed to establish a new connection: [Errno 111] Connection refused"
        return f"cannot connect to {host} ({str(e).rsplit(': ', 1)[-1]})"
    if isinstance(e, (ConnectTimeoutError, ReadTimeoutError, TimeoutError)):
        return f"timed out talking to {host}"
    if isinstance(e, SSLError):
        return f"TLS error with {host} ({e})"
    if isinstance(e, ProtocolError):
        return f"connection to {host} broken ({e.args[-1] if e.args else e})"
    return f"{type(e).__name__}: {e}"


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


def backoff_delay(config: HttpConfig, attempt: int) -> float:
    """Seconds to wait before retry `attempt` + 1: doubling from `backoff`, capped at
    `backoff_max`, with jitter (half to all of it) so parallel workers spread out."""
    return min(config.backoff_max, config.backoff * (2 ** attempt)) * (0.5 + random.random() / 2)


class _Retry(Retry):
    """urllib3's retry with our budget and backoff: `budget` retries of any kind except
    redirects (the caller passes what is left of `--retries`), waits of `backoff_delay`."""

    def __init__(self, *args, budget: int = 0, config: HttpConfig | None = None, **kw):
        super().__init__(*args, **kw)
        self.budget = budget
        self.config = config or HttpConfig()

    def new(self, **kw) -> _Retry:
        return super().new(budget=self.budget, config=self.config, **kw)

    def failures(self) -> int:
        return sum(1 for h in self.history if h.redirect_location is None)

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or self.failures() > self.budget

    def get_backoff_time(self) -> float:
        n = self.failures()
        return backoff_delay(self.config, n - 1) if n else 0.0


class HttpClient:
    """Thread-safe: urllib3's pool lends each request a keep-alive connection per host."""

    def __init__(self, config: HttpConfig | None = None):
        self.config = config or HttpConfig()
        _redact_urllib3_logs()
        self._pool = urllib3.PoolManager(
            maxsize=_POOL_SIZE, retries=False,
            timeout=urllib3.Timeout(connect=self.config.timeout, read=self.config.timeout))
        self._lock = threading.Lock()
        self.counters = Counters()
        self._auth: dict[tuple[str, str], str] = {}  # origin -> Authorization header value
        self._real: dict[str, str] = {}  # a shown URL (REDACTED values) -> the URL to request
        self._from_server: set[str] = set()  # redirect targets: an '@' in their path is the server's

    def close(self) -> None:
        self._pool.clear()

    def adopt(self, url: str) -> str:
        """Take the secrets off `url`: its `user:password@` is sent from now on as Basic auth to
        that scheme/host/port (only there: urllib3 drops the header on a redirect to another
        host), and the real query stays here behind the shown one. Returns `display_url(url)`,
        the form every message and record uses and that this client requests `url` by. A URL
        whose userinfo cannot be read is an HttpError that does not show it; a redirect target
        is the server's, not typed by anyone, so an '@' in its path is taken as it is."""
        with self._lock:
            typed = url not in self._from_server
        problem = url_problem(url) if typed and _SCHEME.match(url) else None
        if problem:
            raise HttpError(f"{display_url(url)}: {problem}")
        clean, cred = split_userinfo(url)
        shown = redact_query(clean)
        with self._lock:
            if cred is not None:
                token = base64.b64encode(f"{cred[0]}:{cred[1]}".encode()).decode("ascii")
                self._auth[_origin(clean)] = f"Basic {token}"
            if shown != clean:  # the latest wins: a re-signed URL replaces the earlier signature
                self._real[shown] = clean
        return shown

    def _target(self, url: str) -> str:
        """The URL to request for a shown one."""
        with self._lock:
            return self._real.get(url, url)

    def _authorization(self, url: str) -> str | None:
        with self._lock:
            return self._auth.get(_origin(url))

    def _request(self, url: str, headers: dict[str, str], attempt: int) -> tuple[urllib3.BaseHTTPResponse, int]:
        """GET with urllib3's redirects and retries; returns the response (body unread) and
        the attempt count after the retries it made. Retries left over end in HttpError."""
        url = self.adopt(url)
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise HttpError(f"unsupported URL scheme {scheme!r}: {url}")
        retry = _Retry(total=None, redirect=_MAX_REDIRECTS, status_forcelist=_RETRY_STATUS,
                       raise_on_status=False, respect_retry_after_header=False,
                       budget=max(0, self.config.retries - attempt), config=self.config)
        hdrs = {"User-Agent": self.config.user_agent, "Accept-Encoding": "identity", **headers}
        auth = self._authorization(url)
        if auth is not None:
            hdrs["Authorization"] = auth
        try:
            resp = self._pool.request("GET", self._target(url), headers=hdrs, retries=retry,
                                      preload_content=False, decode_content=False)
        except MaxRetryError as e:
            if "too many redirects" in str(e.reason):
                raise HttpError(f"too many redirects: {url}") from None
            cause = e.reason if e.reason is not None else e
            raise HttpError(f"giving up on {url} after {plural(self.config.retries + 1, 'attempt')}: "
                            f"{describe_failure(cause, url)}") from None
        except (OSError, Urllib3Error) as e:
            raise _Retryable(describe_failure(e, url)) from e
        history = resp.retries.history if resp.retries is not None else ()
        with self._lock:
            self.counters.requests += 1 + sum(1 for h in history if h.status is not None)
        return resp, attempt + sum(1 for h in history if h.redirect_location is None)

    def _final_url(self, url: str, resp: urllib3.BaseHTTPResponse) -> str:
        """Where the redirects (if any) led, shown (a redirect to a presigned URL is common)."""
        real = None
        for h in resp.retries.history if resp.retries is not None else ():
            if h.redirect_location:
                real = urljoin(h.url, h.redirect_location)
        if real is None:
            return url
        with self._lock:
            self._from_server.add(real)
        return self.adopt(real)

    @staticmethod
    def _drop(resp: urllib3.BaseHTTPResponse) -> None:
        """Close the connection without reading the rest of the body."""
        resp.close()
        resp.release_conn()

    def _sleep(self, attempt: int) -> None:
        time.sleep(backoff_delay(self.config, attempt))

    # ------------------------------------------------------------------ public API
    def probe(self, url: str) -> RemoteInfo:
        """Ask for the first byte: tells the size, validators and whether Range works."""
        url = self.adopt(url)
        attempt = 0
        while True:
            try:
                resp, attempt = self._request(url, {"Range": "bytes=0-0"}, attempt)
                final = self._final_url(url, resp)
                self._check_status(resp, final)
                info = self._info(resp, final)
                if resp.status == 206:
                    try:
                        self._count(len(resp.read()))
                    except (OSError, Urllib3Error):
                        self._drop(resp)  # the byte itself is not needed; the headers were
                else:
                    self._drop(resp)  # do not read a whole archive just to learn its size
                return info
            except _Retryable as e:
                attempt = self._retry_or_raise(url, attempt, e)

    def _retry_or_raise(self, url: str, attempt: int, err: Exception) -> int:
        if attempt >= self.config.retries:
            raise HttpError(f"giving up on {url} after {plural(attempt + 1, 'attempt')}: {err}") from None
        self._sleep(attempt)
        return attempt + 1

    def _check_status(self, resp: urllib3.BaseHTTPResponse, url: str) -> None:
        if resp.status in (200, 206):
            return
        reason = resp.reason or ""
        self._drop(resp)
        if resp.status in _RETRY_STATUS:
            raise _Retryable(f"HTTP {resp.status} {reason}")
        hint = {404: " (check the URL / --base-url)", 403: " (the server refuses access)",
                401: " (the server refused the user:password given in the URL)"
                if self._authorization(url) else " (the server wants credentials)",
                410: " (gone from the server)"}
        raise HttpError(f"HTTP {resp.status} {reason}: {url}{hint.get(resp.status, '')}", resp.status)

    @staticmethod
    def _info(resp: urllib3.BaseHTTPResponse, url: str) -> RemoteInfo:
        etag = resp.headers.get("ETag")
        if etag and etag.startswith("W/"):
            etag = None  # weak validators cannot guard byte ranges
        lm = resp.headers.get("Last-Modified")
        size: int | None = None
        if resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range") or "")
            if m and m.group(3) != "*":
                size = int(m.group(3))
        else:
            cl = resp.headers.get("Content-Length")
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
        done = start  # advanced by the sink, so a broken body resumes where it broke

        def counting(chunk: bytes) -> None:
            nonlocal done
            sink(chunk)
            done += len(chunk)

        attempt = 0
        while done < end:
            before = done
            try:
                # the count includes the retries urllib3 made inside the request
                resp, attempt = self._request(info.url, self._range_headers(info, done, end), attempt)
                self._read_once(resp, info, done, end, counting)
            except _Retryable as e:
                if done == before:
                    attempt = self._retry_or_raise(info.url, attempt, e)
                else:
                    attempt = 0  # progress was made; a flaky line is not a dead one
                continue
            if done < end:  # a shorter range than asked for: ask for the rest
                if done == before:
                    attempt = self._retry_or_raise(info.url, attempt, _Retryable("empty body"))
                else:
                    attempt = 0

    @staticmethod
    def _range_headers(info: RemoteInfo, pos: int, end: int) -> dict[str, str]:
        headers = {"Range": f"bytes={pos}-{end - 1}"}
        if info.etag:
            headers["If-Range"] = info.etag
        elif info.last_modified:
            headers["If-Range"] = info.last_modified
        return headers

    def _read_once(self, resp: urllib3.BaseHTTPResponse, info: RemoteInfo, pos: int, end: int,
                   sink: Callable[[bytes], None]) -> None:
        """Check one response to a range request and pass its bytes from `pos` to `sink`."""
        self._check_status(resp, info.url)
        got = self._info(resp, info.url)
        if not info.same_file(got):
            self._drop(resp)
            raise RemoteChanged(
                f"{info.url} changed on the server while downloading "
                f"(size {info.size}->{got.size}, ETag {info.etag}->{got.etag}, "
                f"Last-Modified {info.last_modified}->{got.last_modified})"
            )
        skip = 0
        if resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range") or "")
            if not m or int(m.group(1)) != pos:
                self._drop(resp)
                raise _Retryable(f"bad Content-Range {resp.headers.get('Content-Range')!r}")
            want = min(end, int(m.group(2)) + 1) - pos
            cl = resp.headers.get("Content-Length")
            if cl is not None and int(cl) != int(m.group(2)) + 1 - pos:
                self._drop(resp)
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
                want -= len(chunk)
        except (OSError, Urllib3Error) as e:
            self._drop(resp)
            raise _Retryable(describe_failure(e, info.url)) from e
        except _Retryable:
            self._drop(resp)
            raise
        if resp.status == 206 and resp.length_remaining == 0:
            resp.read()  # the body is complete: the connection goes back to the pool
            resp.release_conn()
        else:
            self._drop(resp)  # unread rest of a 200 body, or a range we stopped early

    def _count(self, n: int) -> None:
        with self._lock:
            self.counters.bytes += n

    def get_small(self, url: str, limit: int = 1 << 20) -> bytes | None:
        """Fetch a small file whole (e.g. `<archive>.sha256`); None when it is not there."""
        url = self.adopt(url)
        attempt = 0
        while True:
            try:
                resp, attempt = self._request(url, {}, attempt)
                if resp.status in (404, 410):
                    self._drop(resp)
                    return None
                self._check_status(resp, url)
                try:
                    data = resp.read(limit + 1)
                except (OSError, Urllib3Error) as e:
                    self._drop(resp)
                    raise _Retryable(describe_failure(e, url)) from e
                self._count(len(data))
                self._drop(resp)
                if len(data) > limit:
                    raise HttpError(f"{url}: larger than {limit} bytes")
                return data
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
    url = client.adopt(url)
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
    if have == 0:  # the folders are made here, once the server answered: a failed probe creates nothing
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(b"")
        meta.write_text(json.dumps(info.to_json()))
    if on_total:
        on_total(info.size, have)
    try:
        _continue_part(client, info, part, have, progress)
    except RemoteChanged:
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        if restarts <= 0:
            raise
        return download_file(client, url, dest, progress, on_total, restarts - 1)
    os.replace(part, dest)
    meta.unlink(missing_ok=True)
    return info


def _continue_part(client: HttpClient, info: RemoteInfo, part: Path, have: int,
                   progress: Callable[[int], None] | None) -> None:
    """Append bytes [have, size) of `info` to `part` (its first `have` bytes are kept)."""
    with open(part, "r+b") as f:
        f.seek(have)
        f.truncate()

        def sink(chunk: bytes) -> None:
            f.write(chunk)
            if progress:
                progress(len(chunk))

        client.read_range(info, have, info.size, sink)
