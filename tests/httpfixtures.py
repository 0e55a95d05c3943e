"""Test helpers for download/pack/fetch: a small raw tree, ZIP64 archives written by hand
(every structure in its 64-bit form), a fault-injecting HTTP server and a real nginx."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

SENSOR_DIRS = ("kv1/NYUdata", "kv2/align_kv2", "kv2/kinect2data", "realsense/lg", "xtion/xtion_align_data")
TOOLBOX_FILES = (
    "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat",
    "SUNRGBDtoolbox/Metadata/seglistall.mat",
    "SUNRGBDtoolbox/Metadata/seg37list.mat",
    "SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat",
    "SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat",
    "SUNRGBDtoolbox/readme.txt",
    "SUNRGBDtoolbox/demo.m",
)


# ----------------------------------------------------------------------------- raw tree
def make_raw_tree(root: Path, scenes_per_dir: int = 2, seed: int = 0) -> Path:
    """A small raw tree in the SUN RGB-D layout from the project's synthetic generator
    (`sunrgbd sample`), plus the toolbox files the archives carry beside the ones it writes."""
    from sunrgbd_tools.synthetic.generator import make_sample

    rng = np.random.default_rng(seed)
    make_sample(root, scenes=scenes_per_dir * len(SENSOR_DIRS), seed=seed, quirks=False, size=(53, 73))
    for rel in TOOLBOX_FILES:
        p = root / rel
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(rel.encode() * 300 + rng.bytes(2000))
    return root


def tree_bytes(root: Path, prefix: str = "") -> dict[str, bytes]:
    """{relative posix path: content} for files under root/prefix, dot-names skipped."""
    out = {}
    base = root / prefix if prefix else root
    if not base.exists():
        return out
    for p in sorted(base.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not any(part.startswith(".") for part in rel.split("/")):
            out[rel] = p.read_bytes()
    return out


# ----------------------------------------------------------------------------- ZIP64 writer
@dataclass
class Entry:
    name: str
    data: bytes = b""
    method: int = 8  # 0 stored, 8 deflated
    mode: int = 0o100644
    is_dir: bool = False
    declared_size: int | None = None  # lie about the uncompressed size (bomb tests)
    raw: bytes | None = None  # pre-compressed data to store as-is


def write_zip64(path: Path, entries: list[Entry], prefix: bytes = b"") -> Path:
    """Write a ZIP whose every member uses ZIP64 extras (local and central), with a ZIP64
    end record and locator; `zipfile` reads it, so it is a valid ZIP64 archive."""
    out = bytearray(prefix)
    cd = bytearray()
    base = len(prefix)
    for e in entries:
        name = e.name.encode("utf-8") + (b"/" if e.is_dir and not e.name.endswith("/") else b"")
        data = b"" if e.is_dir else e.data
        method = 0 if e.is_dir else e.method
        if e.raw is not None:
            comp = e.raw
        elif method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            comp = c.compress(data) + c.flush()
        else:
            comp = data
        crc = zlib.crc32(data)
        usize = e.declared_size if e.declared_size is not None else len(data)
        offset = len(out) - base
        lextra = struct.pack("<HHQQ", 1, 16, usize, len(comp))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0x800, method, 0, 0x21, crc,
                           0xFFFFFFFF, 0xFFFFFFFF, len(name), len(lextra)) + name + lextra + comp
        cextra = struct.pack("<HHQQQ", 1, 24, usize, len(comp), offset)
        mode = (0o40755 if e.is_dir else e.mode) << 16 | (0x10 if e.is_dir else 0)
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 45, 45, 0x800, method, 0,
                          0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name), len(cextra), 0, 0, 0,
                          mode, 0xFFFFFFFF) + name + cextra
    cd_off = len(out) - base
    out += cd
    eocd64_off = len(out) - base
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, (3 << 8) | 45, 45, 0, 0, len(entries),
                       len(entries), len(cd), cd_off)
    out += struct.pack("<IIQI", 0x07064B50, 0, eocd64_off, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(bytes(out))
    return path


def entries_from_zip(path: Path) -> list[Entry]:
    """The members of an archive, in its order, with their compression methods."""
    with zipfile.ZipFile(path) as zf:
        return [Entry(i.filename, is_dir=True) if i.is_dir() else Entry(i.filename, zf.read(i), i.compress_type)
                for i in zf.infolist()]


def build_archives(raw: Path, outdir: Path) -> dict[str, Path]:
    """SUNRGBD.zip (members SUNRGBD/...) and SUNRGBDtoolbox.zip as `sunrgbd sample --zips`
    packs them (sunrgbd_tools.synthetic.zips), rewritten with every structure in ZIP64 form: the
    real SUNRGBD.zip is over 4 GB, so the downloader must read ZIP64 directories."""
    from sunrgbd_tools.synthetic.zips import write_raw_zips

    outdir.mkdir(parents=True, exist_ok=True)
    plain = write_raw_zips(raw, outdir.with_name(outdir.name + "-plain"))
    return {name: write_zip64(outdir / name, entries_from_zip(p)) for name, p in plain.items()}


# ----------------------------------------------------------------------------- fault server
@dataclass
class Faults:
    drop: int = 0  # next N bodies are cut off after `drop_after` bytes (connection closed)
    drop_after: int = 3000
    fail: int = 0  # next N requests answer `fail_status`
    fail_status: int = 500
    ignore_range: bool = False
    wrong_length: int = 0  # next N responses claim 100 more bytes than they send, then close
    status: dict[str, int] = field(default_factory=dict)  # path -> forced status (404/403)
    delay: float = 0.0  # seconds per 16 KiB chunk (slow server)
    no_validators: bool = False  # send neither ETag nor Last-Modified
    auth: str | None = None  # "user:password": answer 401 unless Basic auth carries exactly it
    redirect: dict[str, str] = field(default_factory=dict)  # path -> Location of a 302
    query: dict[str, str] = field(default_factory=dict)  # params every request must carry (?token=)
    signed: dict[str, str] = field(default_factory=dict)  # path -> its X-Amz-Signature (presigned)
    bad_header: set[str] = field(default_factory=set)  # paths answered with a header line without a colon


class FaultServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 with Range, If-Range, ETag, Last-Modified,
    and switchable faults. It logs every request: (path, Range header, status, bytes)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.version = {k: 1 for k in files}
        self.faults = Faults()
        self.log: list[tuple[str, str | None, int, int]] = []
        self.authorization: list[str | None] = []  # the Authorization header of every request
        self.queries: list[str] = []  # the query string of every request
        self.lock = threading.Lock()
        self.before: callable | None = None  # hook(server, path, range) run before each request
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # resets are part of the tests
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def set_file(self, name: str, data: bytes) -> None:
        with self.lock:
            self.files[name] = data
            self.version[name] = self.version.get(name, 0) + 1

    @property
    def bytes_sent(self) -> int:
        return sum(x[3] for x in self.log)

    def settled(self, n: int, keep=None) -> list:
        """The log (its entries `keep` accepts, all by default) once it holds `n` of them: a
        request is logged after its answer is sent, so the client may see the answer first;
        then 50 ms more, so that nothing else arrives unseen."""
        def entries() -> list:
            with self.lock:
                return [x for x in self.log if keep is None or keep(x)]

        deadline = time.monotonic() + 5
        while len(entries()) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        return entries()

    def _record(self, path, rng, status, n):
        with self.lock:
            self.log.append((path, rng, status, n))

    def _query_refused(self, path: str, query: dict[str, str]) -> bool:
        """403 as S3 answers a presigned URL whose signature is not that path's, or a token server
        a request without its token."""
        f = self.faults
        if any(query.get(k) != v for k, v in f.query.items()):
            return True
        sig = query.get("X-Amz-Signature")
        return (path in f.signed or sig is not None) and f.signed.get(path) != sig

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        from urllib.parse import parse_qsl

        path, _, qs = h.path.lstrip("/").partition("?")
        rng = h.headers.get("Range")
        with self.lock:
            self.queries.append(qs)
        if self.before:
            self.before(self, path, rng)
        f = self.faults
        with self.lock:
            self.authorization.append(h.headers.get("Authorization"))
        if f.auth is not None and h.headers.get("Authorization") != (
                "Basic " + base64.b64encode(f.auth.encode()).decode()):
            h.send_response(401)
            h.send_header("WWW-Authenticate", 'Basic realm="mirror"')
            h.send_header("Content-Length", "0")
            h.end_headers()
            self._record(path, rng, 401, 0)
            return
        if self._query_refused(path, dict(parse_qsl(qs, keep_blank_values=True))):
            h.send_response(403)
            h.send_header("Content-Length", "0")
            h.end_headers()
            self._record(path, rng, 403, 0)
            return
        if path in f.redirect:
            h.send_response(302)
            h.send_header("Location", f.redirect[path])
            h.send_header("Content-Length", "0")
            h.end_headers()
            self._record(path, rng, 302, 0)
            return
        with self.lock:
            forced = f.status.get(path)
            if forced is None and f.fail > 0:
                f.fail -= 1
                forced = f.fail_status
        if forced is None and path not in self.files:
            forced = 404
        if forced is not None:
            body = b"error"
            h.send_response(forced)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            self._record(path, rng, forced, 0)
            return
        with self.lock:
            data = self.files[path]
            ver = self.version[path]
        etag = f'"{hashlib.sha1(data).hexdigest()[:16]}"'
        start, end, status = 0, len(data), 200
        if rng and not f.ignore_range:
            ifr = h.headers.get("If-Range")
            if ifr is None or ifr == etag:
                spec = rng.split("=", 1)[1]
                a, b = spec.split("-")
                if a == "":
                    start, end = max(0, len(data) - int(b)), len(data)
                else:
                    start, end = int(a), min(len(data), int(b) + 1 if b else len(data))
                status = 206
        body = data[start:end]
        with self.lock:
            wrong = f.wrong_length > 0
            if wrong:
                f.wrong_length -= 1
            drop = f.drop > 0
            if drop:
                f.drop -= 1
        h.send_response(status)
        h.send_header("Content-Length", str(len(body) + (100 if wrong else 0)))
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        h.send_header("Accept-Ranges", "none" if f.ignore_range else "bytes")
        if not f.no_validators:
            h.send_header("ETag", etag)
            h.send_header("Last-Modified", formatdate(1_600_000_000 + ver, usegmt=True))
        if path in f.bad_header:  # after the others, so they are still read
            h.flush_headers()
            h.wfile.write(b"X-Broken header line\r\n")
        h.end_headers()
        if drop:
            body = body[:f.drop_after]
        sent = 0
        try:
            for i in range(0, len(body), 16384):
                if f.delay:
                    time.sleep(f.delay)
                h.wfile.write(body[i:i + 16384])
                sent += len(body[i:i + 16384])
            h.wfile.flush()
        except OSError:
            pass
        self._record(path, rng, status, sent)
        if drop or wrong:
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------------------- nginx
def nginx_binary() -> str | None:
    for cand in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """nginx serving `root` on a free loopback port, with its own prefix/config/logs.
    The access log records path, status, body bytes and the Range header per request."""

    def __init__(self, root: Path):
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx not installed")
        self.root = root
        self.prefix = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.access = self.prefix / "access.log"
        for _attempt in range(5):
            self.port = _free_port()
            conf = self.prefix / "nginx.conf"
            tmp = self.prefix / "tmp"
            tmp.mkdir(exist_ok=True)
            conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/error.log;
events {{ worker_connections 128; }}
http {{
    log_format t '$uri $status $body_bytes_sent "$http_range"';
    access_log {self.access} t;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{self.port};
        root {root};
        location / {{ }}
    }}
}}
""")
            self.proc = subprocess.Popen([binary, "-p", str(self.prefix), "-c", str(conf)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        self.url = f"http://127.0.0.1:{self.port}/"
                        return
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"nginx did not start: {(self.prefix / 'error.log').read_text(errors='replace')[-500:]}")

    def log(self) -> list[tuple[str, int, int, str]]:
        out = []
        if self.access.exists():
            for line in self.access.read_text().splitlines():
                uri, status, n, rng = line.split(" ", 3)
                out.append((uri, int(status), int(n), rng.strip('"')))
        return out

    def bytes_for(self, name: str) -> int:
        return sum(n for uri, _s, n, _r in self.log() if uri.lstrip("/") == name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)
