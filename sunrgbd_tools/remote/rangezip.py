"""Read a ZIP archive through random access: the central directory (ZIP64 included) and
single members, from a local file or over HTTP Range requests.

A ZIP keeps its table of contents at the end, so a client that can read byte ranges needs
only the tail of the archive plus the bytes of the members it wants. The standard library's
`zipfile` parses the end records and the directory, reading through `RangeFile`, a seekable
file over `read_at` that keeps the tail it fetched, so the directory costs the same two
requests it always did (the tail, then the directory). What no library does stays here:
checking a local header as a span streams in, decompressing a member that arrives in pieces
under a hard cap at its declared size, and the CRC check at its end. Local files (fetch, the
no-Range fallback) go through the same code, so ZIP64, CRC and size checks live in one place.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from sunrgbd_tools.remote.http import HttpClient, RemoteInfo
from sunrgbd_tools.text import plural


def shown(name: str) -> str:
    """A member name fit for a one-line message: as is when printable, else its repr (a
    newline or escape in a hostile archive's name must not split or forge the line)."""
    return name if name.isprintable() else repr(name)

_LFH = b"PK\x03\x04"
_EOCD_LEN = 22
LFH_LEN = 30
_TAIL = 4096  # the first read of a directory: the end records and, often, the directory
_TAIL_GROW = 1 << 17  # a read next to the cached tail up to this size joins it (a comment)
STORED, DEFLATED = 0, 8
_METHOD_NAMES = {9: "Deflate64", 12: "BZIP2", 14: "LZMA", 93: "Zstandard", 95: "XZ", 99: "AES"}
_CHUNK = 1 << 20


class ZipFormatError(Exception):
    """The archive is damaged or uses something we do not read; message names the member."""


class Reader(Protocol):
    size: int

    def read_at(self, offset: int, n: int) -> bytes: ...


class FileReader:
    """Random access to a local archive."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._f: BinaryIO = open(self.path, "rb")
        self.size = os.fstat(self._f.fileno()).st_size

    def read_at(self, offset: int, n: int) -> bytes:
        self._f.seek(offset)
        data = self._f.read(n)
        if len(data) != n:
            raise ZipFormatError(f"{self.path}: truncated (wanted {n} bytes at {offset})")
        return data

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class HttpReader:
    """Random access to a remote archive through Range requests (same-file checked)."""

    def __init__(self, client: HttpClient, info: RemoteInfo):
        if info.size is None or not info.accepts_ranges:
            raise ValueError("HttpReader needs a server that honours Range")
        self.client = client
        self.info = info
        self.size = info.size

    def read_at(self, offset: int, n: int) -> bytes:
        buf = bytearray()
        self.client.read_range(self.info, offset, offset + n, buf.extend)
        return bytes(buf)


@dataclass(frozen=True)
class ZipMember:
    name: str
    raw_name: bytes
    method: int
    flags: int
    crc: int
    compress_size: int
    file_size: int
    header_offset: int
    create_system: int
    external_attr: int

    @property
    def shown(self) -> str:
        """The name as every message prints it (see `shown`)."""
        return shown(self.name)

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") or bool(self.external_attr & 0x10)

    @property
    def unix_mode(self) -> int | None:
        mode = self.external_attr >> 16
        return mode if self.create_system == 3 and mode else None

    @property
    def is_symlink(self) -> bool:
        mode = self.unix_mode
        return mode is not None and stat.S_ISLNK(mode)

    @property
    def is_special(self) -> bool:
        """Device, FIFO or socket entries: never extracted."""
        mode = self.unix_mode
        return mode is not None and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR,
                                                               stat.S_IFLNK)

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & 0x1)

    def method_name(self) -> str:
        return {STORED: "stored", DEFLATED: "deflated"}.get(
            self.method, _METHOD_NAMES.get(self.method, f"method {self.method}"))


@dataclass(frozen=True)
class ZipDirectory:
    members: list[ZipMember]
    cd_offset: int  # absolute, where the central directory starts (end of the last member)

    def data_bounds(self) -> dict[str, int]:
        """name -> absolute offset where the next entry (or the directory) begins: every
        byte of a member (local header, data, data descriptor) lies before it."""
        order = sorted(self.members, key=lambda m: m.header_offset)
        out: dict[str, int] = {}
        for a, b in zip(order, order[1:] + [None], strict=True):
            out[a.name] = b.header_offset if b is not None else self.cd_offset
        return out


class RangeFile(io.RawIOBase):
    """A read-only seekable file over a `Reader`, for `zipfile`. The archive's last 4 KiB
    are fetched on the first read and kept: `zipfile` looks for the end records in several
    small reads there, and a directory that ends in the tail needs only its missing start."""

    def __init__(self, reader: Reader):
        self.reader = reader
        self.size = reader.size
        self.pos = 0
        self.tail = b""
        self.tail_at = self.size  # the cached tail is bytes [tail_at, size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence] + offset
        if pos < 0:
            raise OSError(f"seek to {pos}, before the start of the archive")
        self.pos = pos
        return pos

    def read(self, n: int = -1) -> bytes:
        start = min(self.pos, self.size)
        end = self.size if n is None or n < 0 else min(self.size, start + n)
        self.pos = max(self.pos, end)
        if start >= end:
            return b""
        if not self.tail:
            self.tail_at = self.size - min(self.size, _TAIL)
            self.tail = self.reader.read_at(self.tail_at, self.size - self.tail_at)
        if start >= self.tail_at:
            return self.tail[start - self.tail_at:end - self.tail_at]
        if end <= self.tail_at:
            return self.reader.read_at(start, end - start)
        head = self.reader.read_at(start, self.tail_at - start)
        data = head + self.tail[:end - self.tail_at]
        if len(head) <= _TAIL_GROW:
            self.tail, self.tail_at = head + self.tail, start
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def read_directory(reader: Reader, where: str = "archive") -> ZipDirectory:
    """The central directory (end records ZIP64 aware, bytes prepended to the archive
    allowed), parsed by `zipfile`; any damage is one ZipFormatError naming `where`."""
    size = reader.size
    if size < _EOCD_LEN:
        raise ZipFormatError(f"{where}: too small to be a ZIP ({plural(size, 'byte')})")
    f = RangeFile(reader)
    try:
        with zipfile.ZipFile(f) as zf:
            infos, cd_offset = zf.infolist(), zf.start_dir
    except zipfile.BadZipFile as e:
        if str(e) == "File is not a zip file":
            raise ZipFormatError(f"{where}: no end-of-central-directory record (not a ZIP, "
                                 "or truncated)") from None
        raise ZipFormatError(f"{where}: damaged ZIP directory ({str(e).rstrip('.')})") from None
    except UnicodeDecodeError as e:
        raise ZipFormatError(f"{where}: a member has an undecodable name {e.object!r}") from None
    except (NotImplementedError, ValueError, struct.error) as e:
        raise ZipFormatError(f"{where}: damaged or unsupported ZIP directory ({e})") from None
    members = [_member(i, size, where) for i in infos]
    return ZipDirectory(members=members, cd_offset=cd_offset)


def _member(info: zipfile.ZipInfo, size: int, where: str) -> ZipMember:
    name = info.orig_filename  # the name as stored: zipfile's `filename` cuts it at a NUL
    if not 0 <= info.header_offset <= size - LFH_LEN or info.compress_size > size:
        raise ZipFormatError(f"{where}: {shown(name)}: offsets point past the end of the archive")
    # the bytes as stored (checked against the local header); ASCII, the usual case, is the
    # same in both encodings and much faster to encode
    raw = name.encode("ascii" if name.isascii() else "utf-8" if info.flag_bits & 0x800 else "cp437")
    return ZipMember(name, raw, info.compress_type, info.flag_bits, info.CRC, info.compress_size,
                     info.file_size, info.header_offset, info.create_system, info.external_attr)


def parse_local_header(head: bytes, member: ZipMember, where: str) -> int:
    """Check a local header (first 30 bytes + name + extra) against the central directory;
    return its total length (the data starts that many bytes after `header_offset`)."""
    if head[:4] != _LFH:
        raise ZipFormatError(f"{where}: {member.shown}: no local header at offset {member.header_offset}")
    (_sig, _need, flags, method, _t, _d, crc, csize, usize, nlen, xlen) = struct.unpack_from(
        "<IHHHHHIIIHH", head, 0)
    name = head[LFH_LEN:LFH_LEN + nlen]
    if len(head) >= LFH_LEN + nlen and name != member.raw_name:
        raise ZipFormatError(f"{where}: {member.shown}: local header names {name!r} instead")
    if method != member.method:
        raise ZipFormatError(f"{where}: {member.shown}: local header method differs from directory")
    if not flags & 0x8:  # sizes/CRC are in the local header too: they must agree
        if crc != member.crc or (csize != 0xFFFFFFFF and csize != member.compress_size) or \
                (usize != 0xFFFFFFFF and usize != member.file_size):
            raise ZipFormatError(f"{where}: {member.shown}: local header disagrees with directory")
    return LFH_LEN + nlen + xlen


def local_header_sizes(head30: bytes) -> int:
    """Name + extra length of a local header from its first 30 bytes."""
    nlen, xlen = struct.unpack_from("<HH", head30, 26)
    return nlen + xlen


class MemberDecoder:
    """Decompress one member's data as it arrives, enforce its declared size (so a member
    that lies about its size cannot expand past it) and check its CRC-32 at the end."""

    def __init__(self, member: ZipMember, out: BinaryIO | None, where: str = "archive"):
        if member.encrypted:
            raise ZipFormatError(f"{where}: {member.shown}: encrypted members are not supported")
        if member.method not in (STORED, DEFLATED):
            raise ZipFormatError(f"{where}: {member.shown}: compression {member.method_name()} "
                                 "is not supported (only stored and deflated)")
        self.m = member
        self.out = out
        self.where = where
        self.crc = 0
        self.produced = 0
        self.consumed = 0
        self._z = zlib.decompressobj(-15) if member.method == DEFLATED else None

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self.produced += len(data)
        if self.produced > self.m.file_size:
            raise ZipFormatError(f"{self.where}: {self.m.shown}: expands past its declared size "
                                 f"of {self.m.file_size} bytes")
        self.crc = zlib.crc32(data, self.crc)
        if self.out is not None:
            self.out.write(data)

    def feed(self, chunk: bytes) -> None:
        self.consumed += len(chunk)
        if self._z is None:
            self._emit(chunk)
            return
        try:
            # never inflate more than one byte past the declared size per call (bomb guard)
            limit = self.m.file_size - self.produced + 1
            data = self._z.decompress(chunk, max(limit, 1))
            self._emit(data)
            while self._z.unconsumed_tail:
                limit = self.m.file_size - self.produced + 1
                data = self._z.decompress(self._z.unconsumed_tail, max(limit, 1))
                if not data:
                    break
                self._emit(data)
        except zlib.error as e:
            raise ZipFormatError(f"{self.where}: {self.m.shown}: corrupt deflate data ({e})") from None

    def finish(self) -> None:
        if self._z is not None:
            try:
                self._emit(self._z.flush())
            except zlib.error as e:
                raise ZipFormatError(f"{self.where}: {self.m.shown}: corrupt deflate data ({e})") from None
            if not self._z.eof:
                raise ZipFormatError(f"{self.where}: {self.m.shown}: deflate stream is truncated")
        if self.consumed != self.m.compress_size:
            raise ZipFormatError(f"{self.where}: {self.m.shown}: read {self.consumed} compressed "
                                 f"bytes, directory says {self.m.compress_size}")
        if self.produced != self.m.file_size:
            raise ZipFormatError(f"{self.where}: {self.m.shown}: {self.produced} bytes, directory "
                                 f"says {self.m.file_size}")
        if self.crc != self.m.crc:
            raise ZipFormatError(f"{self.where}: {self.m.shown}: CRC-32 mismatch "
                                 f"({self.crc:08x} != {self.m.crc:08x})")


def extract_member(reader: Reader, member: ZipMember, out: BinaryIO | None, where: str = "archive",
                   progress: Callable[[int], None] | None = None) -> None:
    """Read one member through `reader` into `out` (None: just verify)."""
    head = reader.read_at(member.header_offset, LFH_LEN)
    extra = local_header_sizes(head)
    head += reader.read_at(member.header_offset + LFH_LEN, extra)
    data_off = member.header_offset + parse_local_header(head, member, where)
    if data_off + member.compress_size > reader.size:
        raise ZipFormatError(f"{where}: {member.shown}: data runs past the end of the archive")
    dec = MemberDecoder(member, out, where)
    pos = 0
    while pos < member.compress_size:
        n = min(_CHUNK, member.compress_size - pos)
        dec.feed(reader.read_at(data_off + pos, n))
        pos += n
        if progress:
            progress(n)
    dec.finish()


def file_crc32(path: str | os.PathLike) -> tuple[int, int]:
    """(crc32, size) of a local file: how finished members are re-verified on resume."""
    crc = 0
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
            n += len(chunk)
    return crc, n
