"""Read a ZIP archive through random access: the central directory (ZIP64 included) and
single members, from a local file or over HTTP Range requests.

A ZIP keeps its table of contents at the end, so a client that can read byte ranges needs
only the tail of the archive plus the bytes of the members it wants. The same parser serves
local files (fetch, the no-Range fallback), so ZIP64, CRC and size checks live in one place.
"""

from __future__ import annotations

import os
import stat
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from sunrgbd_tools.remote.http import HttpClient, RemoteInfo


def shown(name: str) -> str:
    """A member name fit for a one-line message: as is when printable, else its repr (a
    newline or escape in a hostile archive's name must not split or forge the line)."""
    return name if name.isprintable() else repr(name)

_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_LOC64 = b"PK\x06\x07"
_CDH = b"PK\x01\x02"
_LFH = b"PK\x03\x04"
_EOCD_LEN = 22
_LOC64_LEN = 20
_EOCD64_LEN = 56
_CDH_LEN = 46
LFH_LEN = 30
_MAX_COMMENT = 0xFFFF
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
    dos_time: int
    dos_date: int
    zip64: bool

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
    cd_size: int
    zip64: bool
    base: int  # bytes prepended before the archive (self-extractors); 0 normally

    def data_bounds(self) -> dict[str, int]:
        """name -> absolute offset where the next entry (or the directory) begins: every
        byte of a member (local header, data, data descriptor) lies before it."""
        order = sorted(self.members, key=lambda m: m.header_offset)
        out: dict[str, int] = {}
        for a, b in zip(order, order[1:] + [None], strict=True):
            out[a.name] = b.header_offset if b is not None else self.cd_offset
        return out


def _u16(b: bytes, o: int) -> int:
    return struct.unpack_from("<H", b, o)[0]


def _u64(b: bytes, o: int) -> int:
    return struct.unpack_from("<Q", b, o)[0]


def read_directory(reader: Reader, where: str = "archive") -> ZipDirectory:
    """Parse the end records (ZIP64 aware) and the central directory."""
    size = reader.size
    if size < _EOCD_LEN:
        raise ZipFormatError(f"{where}: too small to be a ZIP ({size} bytes)")
    tail_len = min(size, 4096)
    tail = reader.read_at(size - tail_len, tail_len)
    pos = _find_eocd(tail)
    if pos is None and tail_len < size:
        tail_len = min(size, _EOCD_LEN + _MAX_COMMENT + _LOC64_LEN)
        tail = reader.read_at(size - tail_len, tail_len)
        pos = _find_eocd(tail)
    if pos is None:
        raise ZipFormatError(f"{where}: no end-of-central-directory record (not a ZIP, or truncated)")
    eocd_abs = size - tail_len + pos
    tail_abs = size - tail_len

    def read(offset: int, n: int) -> bytes:
        """From the tail already in memory when it covers the range, else from the reader."""
        if offset >= tail_abs:
            return tail[offset - tail_abs:offset - tail_abs + n]
        return reader.read_at(offset, n)
    (disk, cd_disk, n_here, n_total, cd_size, cd_offset, _clen) = struct.unpack_from(
        "<HHHHIIH", tail, pos + 4)
    zip64 = False
    loc_abs = eocd_abs - _LOC64_LEN
    if loc_abs >= 0:
        loc = read(loc_abs, _LOC64_LEN)
        if loc[:4] == _LOC64:
            zip64 = True
            _disk64, eocd64_off, ndisks = struct.unpack_from("<IQI", loc, 4)
            if ndisks > 1:
                raise ZipFormatError(f"{where}: multi-volume archives are not supported")
            # the record normally sits right before the locator; trust its position, not
            # the offset, when bytes were prepended to the archive
            eocd64_abs = loc_abs - _EOCD64_LEN
            rec = read(eocd64_abs, _EOCD64_LEN) if eocd64_abs >= 0 else b""
            if rec[:4] != _EOCD64:
                eocd64_abs = eocd64_off
                rec = reader.read_at(eocd64_off, _EOCD64_LEN) if eocd64_off + _EOCD64_LEN <= size else b""
                if rec[:4] != _EOCD64:
                    raise ZipFormatError(f"{where}: ZIP64 locator points to no ZIP64 end record")
            (disk, cd_disk, n_here, n_total, cd_size, cd_offset) = struct.unpack_from(
                "<IIQQQQ", rec, 16)
            end_of_cd = eocd64_abs
        else:
            end_of_cd = eocd_abs
    else:
        end_of_cd = eocd_abs
    if disk != 0 or cd_disk != 0 or n_here != n_total:
        raise ZipFormatError(f"{where}: multi-volume archives are not supported")
    base = end_of_cd - cd_size - cd_offset
    if base < 0:
        raise ZipFormatError(f"{where}: central directory offset/size point past its end")
    cd_abs = cd_offset + base
    cd = read(cd_abs, cd_size) if cd_size else b""
    members = _parse_cd(cd, n_total, base, size, where)
    return ZipDirectory(members=members, cd_offset=cd_abs, cd_size=cd_size, zip64=zip64, base=base)


def _find_eocd(tail: bytes) -> int | None:
    pos = len(tail)
    while True:
        pos = tail.rfind(_EOCD, 0, pos)
        if pos < 0:
            return None
        if pos + _EOCD_LEN <= len(tail):
            clen = _u16(tail, pos + 20)
            if pos + _EOCD_LEN + clen == len(tail):
                return pos


def _parse_cd(cd: bytes, count: int, base: int, size: int, where: str) -> list[ZipMember]:
    out: list[ZipMember] = []
    p = 0
    for i in range(count):
        if cd[p:p + 4] != _CDH or p + _CDH_LEN > len(cd):
            raise ZipFormatError(f"{where}: central directory entry {i} is damaged")
        (_sig, made_by, _need, flags, method, t, d, crc, csize, usize, nlen, xlen, clen,
         _disk, _iattr, eattr, hoff) = struct.unpack_from("<IHHHHHHIIIHHHHHII", cd, p)
        raw = cd[p + _CDH_LEN:p + _CDH_LEN + nlen]
        extra = cd[p + _CDH_LEN + nlen:p + _CDH_LEN + nlen + xlen]
        p += _CDH_LEN + nlen + xlen + clen
        if p > len(cd):
            raise ZipFormatError(f"{where}: central directory entry {i} runs past its end")
        name = raw.decode("utf-8" if flags & 0x800 else "cp437", errors="strict") \
            if _decodable(raw, flags) else None
        if name is None:
            raise ZipFormatError(f"{where}: entry {i} has an undecodable name {raw!r}")
        z64 = False
        if 0xFFFFFFFF in (usize, csize, hoff):
            z64 = True
            usize, csize, hoff = _zip64_extra(extra, usize, csize, hoff, name, where)
        hoff += base
        if hoff + LFH_LEN > size or csize > size:
            raise ZipFormatError(f"{where}: {shown(name)}: offsets point past the end of the archive")
        out.append(ZipMember(name=name, raw_name=raw, method=method, flags=flags, crc=crc,
                             compress_size=csize, file_size=usize, header_offset=hoff,
                             create_system=made_by >> 8, external_attr=eattr, dos_time=t,
                             dos_date=d, zip64=z64))
    if p != len(cd):
        raise ZipFormatError(f"{where}: central directory size disagrees with its entries")
    return out


def _decodable(raw: bytes, flags: int) -> bool:
    try:
        raw.decode("utf-8" if flags & 0x800 else "cp437")
        return True
    except UnicodeDecodeError:
        return False


def _zip64_extra(extra: bytes, usize: int, csize: int, hoff: int, name: str, where: str):
    p = 0
    while p + 4 <= len(extra):
        tag, ln = struct.unpack_from("<HH", extra, p)
        body = extra[p + 4:p + 4 + ln]
        if tag == 0x0001:
            q = 0
            vals = []
            for v in (usize, csize, hoff):
                if v == 0xFFFFFFFF:
                    if q + 8 > len(body):
                        raise ZipFormatError(f"{where}: {shown(name)}: ZIP64 extra field too short")
                    vals.append(_u64(body, q))
                    q += 8
                else:
                    vals.append(v)
            return tuple(vals)
        p += 4 + ln
    raise ZipFormatError(f"{where}: {shown(name)}: ZIP64 sizes without a ZIP64 extra field")


def parse_local_header(head: bytes, member: ZipMember, where: str) -> int:
    """Check a local header (first 30 bytes + name + extra) against the central directory;
    return its total length (the data starts that many bytes after `header_offset`)."""
    if head[:4] != _LFH:
        raise ZipFormatError(f"{where}: {shown(member.name)}: no local header at offset {member.header_offset}")
    (_sig, _need, flags, method, _t, _d, crc, csize, usize, nlen, xlen) = struct.unpack_from(
        "<IHHHHHIIIHH", head, 0)
    name = head[LFH_LEN:LFH_LEN + nlen]
    if len(head) >= LFH_LEN + nlen and name != member.raw_name:
        raise ZipFormatError(f"{where}: {shown(member.name)}: local header names {name!r} instead")
    if method != member.method:
        raise ZipFormatError(f"{where}: {shown(member.name)}: local header method differs from directory")
    if not flags & 0x8:  # sizes/CRC are in the local header too: they must agree
        if crc != member.crc or (csize != 0xFFFFFFFF and csize != member.compress_size) or \
                (usize != 0xFFFFFFFF and usize != member.file_size):
            raise ZipFormatError(f"{where}: {shown(member.name)}: local header disagrees with directory")
    return LFH_LEN + nlen + xlen


def local_header_sizes(head30: bytes) -> int:
    """Name + extra length of a local header from its first 30 bytes."""
    return _u16(head30, 26) + _u16(head30, 28)


class MemberDecoder:
    """Decompress one member's data as it arrives, enforce its declared size (so a member
    that lies about its size cannot expand past it) and check its CRC-32 at the end."""

    def __init__(self, member: ZipMember, out: BinaryIO | None, where: str = "archive"):
        if member.encrypted:
            raise ZipFormatError(f"{where}: {shown(member.name)}: encrypted members are not supported")
        if member.method not in (STORED, DEFLATED):
            raise ZipFormatError(f"{where}: {shown(member.name)}: compression {member.method_name()} "
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
            raise ZipFormatError(f"{self.where}: {self.m.name}: expands past its declared size "
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
            raise ZipFormatError(f"{self.where}: {self.m.name}: corrupt deflate data ({e})") from None

    def finish(self) -> None:
        if self._z is not None:
            try:
                self._emit(self._z.flush())
            except zlib.error as e:
                raise ZipFormatError(f"{self.where}: {self.m.name}: corrupt deflate data ({e})") from None
            if not self._z.eof:
                raise ZipFormatError(f"{self.where}: {self.m.name}: deflate stream is truncated")
        if self.consumed != self.m.compress_size:
            raise ZipFormatError(f"{self.where}: {self.m.name}: read {self.consumed} compressed "
                                 f"bytes, directory says {self.m.compress_size}")
        if self.produced != self.m.file_size:
            raise ZipFormatError(f"{self.where}: {self.m.name}: {self.produced} bytes, directory "
                                 f"says {self.m.file_size}")
        if self.crc != self.m.crc:
            raise ZipFormatError(f"{self.where}: {self.m.name}: CRC-32 mismatch "
                                 f"({self.crc:08x} != {self.m.crc:08x})")


def extract_member(reader: Reader, member: ZipMember, out: BinaryIO | None, where: str = "archive",
                   progress: Callable[[int], None] | None = None) -> None:
    """Read one member through `reader` into `out` (None: just verify)."""
    head = reader.read_at(member.header_offset, LFH_LEN)
    extra = local_header_sizes(head)
    head += reader.read_at(member.header_offset + LFH_LEN, extra)
    data_off = member.header_offset + parse_local_header(head, member, where)
    if data_off + member.compress_size > reader.size:
        raise ZipFormatError(f"{where}: {shown(member.name)}: data runs past the end of the archive")
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
