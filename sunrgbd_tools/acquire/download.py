"""`sunrgbd download`: fetch only the members of SUNRGBD.zip / SUNRGBDtoolbox.zip a subset
needs, with HTTP Range reads, several requests in flight, resumable and CRC-verified.

Plan per archive: probe the URL (size, ETag, Range support) → read the central directory
from the tail → pick the members → skip members already on disk whose CRC-32 matches
(verified, not trusted) → group the rest into byte spans (neighbouring members share one
request; a gap up to `max_gap` is read and dropped rather than paying a round trip) →
fetch spans on `jobs` threads, parsing local headers as bytes arrive → decompress, check
CRC-32, write atomically. A member larger than `memory_limit` is staged in a part file
under `<dest>/.sunrgbd-download/`, so a killed run continues it from the last byte.
A server without Range support gets one resumable streamed download, then the same
member extraction from the local copy.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin

from tqdm import tqdm

from cleantree.files import atomic_path, atomic_write_json
from sunrgbd_tools.acquire.sources import OFFICIAL_BASE_URL, TOOLBOX_MD5
from sunrgbd_tools.raw.base import DATA_ZIP, TOOLBOX_ZIP
from sunrgbd_tools.raw.scenes import parse_subset as parse_subset_keys
from sunrgbd_tools.raw.scenes import selects_all
from sunrgbd_tools.remote.http import (
    HttpClient,
    HttpConfig,
    HttpError,
    RemoteChanged,
    RemoteInfo,
    display_url,
    download_file,
)
from sunrgbd_tools.remote.rangezip import (
    LFH_LEN,
    FileReader,
    HttpReader,
    MemberDecoder,
    Reader,
    ZipFormatError,
    ZipMember,
    extract_member,
    file_crc32,
    local_header_sizes,
    parse_local_header,
    read_directory,
)
from sunrgbd_tools.remote.safezip import (
    Limits,
    UnsafeArchive,
    check_members,
    check_space,
    target_path,
)
from sunrgbd_tools.text import plural

TOOLBOX_MEMBERS = (
    "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat",
    "SUNRGBDtoolbox/Metadata/seglistall.mat",
    "SUNRGBDtoolbox/Metadata/seg37list.mat",
)
OFFICIAL_LABEL_MEMBERS = (
    "SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat",
    "SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat",  # maps SUNRGBD2Dseg entries to scenes
)
STATE_DIR = ".sunrgbd-download"


@dataclass
class DownloadConfig:
    dest: str
    subset: str = "kv2"
    base_url: str = OFFICIAL_BASE_URL
    with_official_labels: bool = False
    jobs: int = 4
    max_gap: int = 64 << 10  # read and drop up to this many bytes between two wanted members
    span_bytes: int = 0  # most bytes per request; 0 = from total / jobs (1 MiB .. 64 MiB)
    memory_limit: int = 1 << 20  # members up to this size are staged in memory, not part files
    keep_archives: bool = False  # keep a whole-archive fallback download after extraction
    max_bytes: int = 256 << 30  # the most bytes the wanted members may declare, per archive
    toolbox_md5: str | None = TOOLBOX_MD5
    progress: bool = True
    http: HttpConfig = field(default_factory=HttpConfig)

    def to_json(self) -> dict:
        """What config.json records: the base URL without its `user:password@`."""
        return {**asdict(self), "base_url": display_url(self.base_url)}


@dataclass
class ArchiveReport:
    name: str
    url: str
    archive_bytes: int = 0
    mode: str = "range"  # range | whole
    members: int = 0
    skipped: int = 0  # already on disk with the right CRC
    fetched: int = 0
    failed: int = 0
    wanted_bytes: int = 0  # compressed bytes of the wanted members
    transferred: int = 0  # bytes received from the server for this archive
    directory_bytes: int = 0  # of which reading the end records + central directory
    requests: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        ratio = self.transferred / self.archive_bytes if self.archive_bytes else 0.0
        return (f"{self.name}: {plural(self.members, 'member')} ({self.skipped} already present, "
                f"{self.fetched} fetched, {self.failed} failed); transferred "
                f"{_human(self.transferred)} of a {_human(self.archive_bytes)} archive "
                f"({ratio:.1%}) in {plural(self.requests, 'request')} [{self.mode}]")


@dataclass
class DownloadReport:
    archives: list[ArchiveReport] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [p for a in self.archives for p in a.problems]


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def parse_subset(text: str) -> list[str]:
    """`kv2`, `kv2/align_kv2`, `all`, or a comma list → member-name prefixes in SUNRGBD.zip:
    the converter's own subset keys (`raw.scenes.parse_subset`, one rule for both) under SUNRGBD/."""
    keys = parse_subset_keys(text)
    if selects_all(text):  # every member of the data archive
        return ["SUNRGBD/"]
    return sorted({f"SUNRGBD/{k}/" for k in keys})


def wanted(cfg: DownloadConfig, archive: str) -> tuple[Callable[[ZipMember], bool], list[str]]:
    """(member filter, names that must be present) for one archive."""
    if archive == TOOLBOX_ZIP:
        names = list(TOOLBOX_MEMBERS) + (list(OFFICIAL_LABEL_MEMBERS) if cfg.with_official_labels else [])
        want = set(names)
        return (lambda m: m.name in want), names
    prefixes = tuple(parse_subset(cfg.subset))
    return (lambda m: m.name.startswith(prefixes)), list(prefixes)


# ----------------------------------------------------------------------------- spans
@dataclass
class _Task:
    member: ZipMember
    final: Path
    bound: int  # absolute offset where the next entry starts
    part: Path
    have: int = 0  # compressed bytes already in the part file
    data_offset: int | None = None

    @property
    def start(self) -> int:
        return self.data_offset + self.have if self.have else self.member.header_offset


def plan_spans(tasks: list[_Task], max_gap: int, span_bytes: int) -> list[list[_Task]]:
    """Group tasks (sorted by offset) into requests: neighbours closer than `max_gap`
    share one; a span stops growing at `span_bytes` (one member may exceed it)."""
    spans: list[list[_Task]] = []
    cur: list[_Task] = []
    for t in sorted(tasks, key=lambda t: t.member.header_offset):
        if cur and (t.start - cur[-1].bound > max_gap or t.bound - cur[0].start > span_bytes):
            spans.append(cur)
            cur = []
        cur.append(t)
    if cur:
        spans.append(cur)
    return spans


class _SpanParser:
    """Consume the bytes of one span as they arrive: skip gaps, parse local headers, route
    member data to memory or part files, finish each member as soon as it is complete."""

    def __init__(self, tasks: list[_Task], finish: Callable[[_Task, io.BytesIO | None], None],
                 memory_limit: int, where: str):
        self.tasks = tasks
        self.finish = finish
        self.memory_limit = memory_limit
        self.where = where
        self.i = 0
        self.pos = tasks[0].start
        self.head = bytearray()
        self.phase = "seek"
        self.buf: io.BytesIO | None = None
        self.fh = None
        self._enter()

    def _enter(self) -> None:
        while self.i < len(self.tasks):
            t = self.tasks[self.i]
            if self.pos < t.start:
                self.phase = "seek"
                return
            if t.have:
                self._open(t)
            else:
                self.phase = "header"
                self.head.clear()
            if self.phase == "data" and t.have >= t.member.compress_size:
                self._done(t)
                continue
            return
        self.phase = "end"

    def _open(self, t: _Task) -> None:
        self.phase = "data"
        if t.member.compress_size <= self.memory_limit and not t.have:
            self.buf = io.BytesIO()
            self.fh = None
        else:
            self.buf = None
            t.part.parent.mkdir(parents=True, exist_ok=True)
            if not t.have:
                atomic_write_json(t.part.with_suffix(".json"), {
                    "name": t.member.name, "header_offset": t.member.header_offset,
                    "data_offset": t.data_offset, "crc": t.member.crc,
                    "compress_size": t.member.compress_size})
            self.fh = open(t.part, "r+b" if t.part.exists() else "wb")
            self.fh.seek(t.have)
            self.fh.truncate()

    def _done(self, t: _Task) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        buf, self.buf = self.buf, None
        self.i += 1
        self.finish(t, buf)

    def feed(self, chunk: bytes) -> None:
        mv = memoryview(chunk)
        off = 0
        while off < len(mv) and self.phase != "end":
            t = self.tasks[self.i]
            if self.phase == "seek":
                n = min(t.start - self.pos, len(mv) - off)
                off += n
                self.pos += n
                if self.pos == t.start:
                    self._enter()
            elif self.phase == "header":
                need = LFH_LEN if len(self.head) < LFH_LEN else LFH_LEN + local_header_sizes(self.head)
                n = min(need - len(self.head), len(mv) - off)
                self.head += mv[off:off + n]
                off += n
                self.pos += n
                if len(self.head) >= LFH_LEN and len(self.head) == LFH_LEN + local_header_sizes(self.head):
                    hlen = parse_local_header(bytes(self.head), t.member, self.where)
                    t.data_offset = t.member.header_offset + hlen
                    if t.data_offset + t.member.compress_size > t.bound:
                        raise ZipFormatError(f"{self.where}: {t.member.shown}: data overlaps the next entry")
                    self._open(t)
                    if t.member.compress_size == 0:
                        self._done(t)
                        self._enter()
            elif self.phase == "data":
                n = min(t.member.compress_size - t.have, len(mv) - off)
                piece = mv[off:off + n]
                (self.buf if self.buf is not None else self.fh).write(piece)
                t.have += n
                off += n
                self.pos += n
                if t.have == t.member.compress_size:
                    self._done(t)
                    self._enter()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    def unfinished(self) -> list[_Task]:
        return self.tasks[self.i:]


# ----------------------------------------------------------------------------- driver
class Downloader:
    def __init__(self, cfg: DownloadConfig, client: HttpClient | None = None,
                 on_bytes: Callable[[int], None] | None = None):
        self.cfg = cfg
        self.client = client or HttpClient(cfg.http)
        self.dest = Path(cfg.dest)
        self.state = self.dest / STATE_DIR
        self.client.adopt(cfg.base_url)  # fails on a URL whose user:password cannot be read
        self.on_bytes = on_bytes
        self.limits = Limits(max_total=cfg.max_bytes)
        self._lock = threading.Lock()
        self._opened = False  # `_open_state` ran

    def run(self) -> DownloadReport:
        parse_subset(self.cfg.subset)  # fail on a bad subset before touching the network
        if self.state.is_dir():
            for tmp in self.state.rglob(".*.tmp"):  # all ours: a killed run's temporaries
                tmp.unlink(missing_ok=True)
        report = DownloadReport()
        for name in (TOOLBOX_ZIP, DATA_ZIP):
            report.archives.append(self.archive(name))
        return report

    def _open_state(self) -> None:
        """--dest, its state folder and config.json, made once the server has answered the
        first probe: a run that gets no byte (refused connection, 404) creates nothing."""
        if not self._opened:
            self.state.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.state / "config.json", self.cfg.to_json())
            self._opened = True

    def _url(self, name: str) -> str:
        """The archive's URL as shown; the client keeps its secrets. A query on --base-url (a
        container SAS `?sv=…&sig=…`, a `?token=…`) goes with each archive: it used to be cut off
        together with the folder's last part."""
        base, qsep, query = self.cfg.base_url.partition("?")
        base = base if base.endswith("/") else base + "/"
        return self.client.adopt(urljoin(base, name) + qsep + query)

    def archive(self, name: str) -> ArchiveReport:
        rep = ArchiveReport(name=name, url=self._url(name))
        c0 = (self.client.counters.bytes, self.client.counters.requests)
        try:
            for attempt in range(2):
                try:
                    self._archive(name, rep)
                    break
                except RemoteChanged as e:
                    if attempt:
                        raise
                    rep.problems.append(f"{e}; starting {name} over")
                    self._wipe(name)
        finally:
            rep.transferred = self.client.counters.bytes - c0[0]
            rep.requests = self.client.counters.requests - c0[1]
        return rep

    def _wipe(self, name: str) -> None:
        shutil.rmtree(self.state / "parts" / name, ignore_errors=True)
        for suffix in ("", ".part", ".part.json"):
            (self.state / (name + suffix)).unlink(missing_ok=True)

    def _archive(self, name: str, rep: ArchiveReport) -> None:
        info = self.client.probe(rep.url)
        self._open_state()
        rep.archive_bytes = info.size or 0
        known = self.state / f"{name}.remote.json"
        if known.exists():
            try:
                old = RemoteInfo(**json.loads(known.read_text()))
            except (ValueError, TypeError):
                old = None
            if old is None or not old.same_file(info):
                rep.problems.append(f"{rep.url} changed on the server since the last run; "
                                    "its partial downloads start over")
                self._wipe(name)
        atomic_write_json(known, info.to_json())
        if info.accepts_ranges:
            rep.mode = "range"
            self._extract(HttpReader(self.client, info), name, rep, remote=True)
        else:
            rep.mode = "whole"
            local = self.state / name
            listing = self.state / f"{name}.members.json"
            if not local.exists() and self._all_present(listing, info, name, rep):
                return
            listing.unlink(missing_ok=True)
            if not local.exists():
                part = self.state / (name + ".part")
                have = part.stat().st_size if part.exists() else 0
                check_space(self.state, max(0, (info.size or 0) - have), rep.url)
                bar = self._bar(f"{name} (whole, no Range)")
                try:
                    def on_total(size: int, have: int) -> None:
                        bar.reset(total=size)
                        bar.update(have)
                    download_file(self.client, rep.url, local, self._progress(bar), on_total)
                finally:
                    bar.close()
            if name == TOOLBOX_ZIP and self.cfg.toolbox_md5:
                md5 = _md5(local)
                if md5 != self.cfg.toolbox_md5:
                    rep.problems.append(f"{rep.url}: MD5 {md5} differs from the published "
                                        f"{self.cfg.toolbox_md5} (a modified mirror?); members "
                                        "are still CRC-checked one by one")
            with FileReader(local) as reader:
                done = self._extract(reader, name, rep, remote=False)
            if not rep.failed:
                atomic_write_json(listing, {"remote": info.to_json(), "selection": wanted(self.cfg, name)[1],
                                            "members": done})
                if not self.cfg.keep_archives:
                    local.unlink()

    def _all_present(self, listing: Path, info: RemoteInfo, name: str, rep: ArchiveReport) -> bool:
        """Without Range the directory costs the whole archive (6+ GB for SUNRGBD.zip), so a
        re-run once fetched it all again only to find every member present. The last complete
        whole run of the same file (same size and ETag/Last-Modified) and the same selection
        left the wanted members' names, sizes and CRC-32s: when they all check out on disk,
        nothing is fetched."""
        try:
            known = json.loads(listing.read_text())
            old = RemoteInfo(**known["remote"])
            members = [(PurePosixPath(rel), int(size), int(crc)) for rel, size, crc in known["members"]]
        except (OSError, ValueError, TypeError, KeyError):
            return False
        if (info.size is None or not (info.etag or info.last_modified)
                or (old.size, old.etag, old.last_modified) != (info.size, info.etag, info.last_modified)
                or known.get("selection") != wanted(self.cfg, name)[1]):
            return False

        with ThreadPoolExecutor(max(1, self.cfg.jobs)) as ex:
            if not all(ex.map(lambda m: self._on_disk(m[0], m[1], m[2], rep.url), members)):
                return False
        rep.members = rep.skipped = len(members)
        return True

    def _bar(self, desc: str, total: int | None = None) -> tqdm:
        return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                    disable=not self.cfg.progress, dynamic_ncols=True, leave=False)

    def _progress(self, bar: tqdm) -> Callable[[int], None]:
        def update(n: int) -> None:
            with self._lock:
                bar.update(n)
            if self.on_bytes:
                self.on_bytes(n)
        return update

    def _extract(self, reader: Reader, name: str, rep: ArchiveReport, remote: bool) -> list:
        """Fetch the wanted members not yet on disk; returns [path, size, crc] of every wanted one."""
        b0 = self.client.counters.bytes
        zdir = read_directory(reader, rep.url)
        if remote:
            rep.directory_bytes = self.client.counters.bytes - b0
        select, required = wanted(self.cfg, name)
        members = [m for m in zdir.members if select(m)]
        for req in required:
            if not any(m.name == req or m.name.startswith(req) for m in members):
                rep.problems.append(f"{rep.url}: no member {req!r} in the archive")
        refused: list[tuple[ZipMember, str]] = []  # one bad member is reported; the others go on
        rels = check_members(members, self.limits, rep.url, on_bad=lambda m, msg: refused.append((m, msg)))
        files = [m for m in members if not m.is_dir]
        rep.members = len(files)
        rep.failed += sum(1 for m, _ in refused if not m.is_dir)
        rep.problems.extend(msg for _, msg in refused)
        files = [m for m in files if m.name in rels]
        rep.wanted_bytes = sum(m.compress_size for m in files)
        bounds = zdir.data_bounds()
        self._remove_stale_temporaries(files, rels, rep.url)
        todo = self._verify_existing(files, rels, rep)
        # what matters is the bytes written, never the compression ratio: the declared
        # sizes (the decoder stops any member at its own) must fit the free space
        check_space(self.dest, sum(m.file_size for m in todo), rep.url)
        tasks = []
        for m in todo:
            try:
                tasks.append(self._task(name, m, rels[m.name], bounds[m.name]))
            except UnsafeArchive as e:  # e.g. a symlink already at its place under --dest
                rep.failed += 1
                rep.problems.append(str(e))
        failed = self._fetch(reader, tasks, rep, remote)
        if failed:  # one more try for members that failed (CRC, network), from scratch
            retry = []
            for t, _err in failed:
                t.part.unlink(missing_ok=True)
                retry.append(self._task(name, t.member, rels[t.member.name], t.bound))
            failed = self._fetch(reader, retry, rep, remote)
        for _t, err in failed:
            rep.failed += 1
            rep.problems.append(err)
        rep.fetched = len(tasks) - len(failed)
        return [[rels[m.name].as_posix(), m.file_size, m.crc] for m in files]

    def _remove_stale_temporaries(self, files: list[ZipMember], rels, where: str) -> None:
        """A killed run can leave `.<name>.<random>.tmp` (cleantree.files.atomic_path) beside a
        member's place; remove those, and only those, of the members wanted now."""
        by_dir: dict[Path, set[str]] = {}
        for m in files:
            try:
                final = target_path(self.dest, rels[m.name], where)
            except UnsafeArchive:
                continue
            by_dir.setdefault(final.parent, set()).add(f".{final.name}.")
        for folder, prefixes in by_dir.items():
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for e in entries:
                n = e.name
                if n.endswith(".tmp") and n.startswith(".") and e.is_file(follow_symlinks=False):
                    head = n[: n.rfind(".", 0, len(n) - 4) + 1]  # ".<name>." before the random part
                    if head in prefixes:
                        Path(e.path).unlink(missing_ok=True)

    def _on_disk(self, rel: PurePosixPath, size: int, crc: int, url: str) -> bool:
        """Whether member `rel` is on disk with this size and CRC-32 (the size first: a
        wrong-size file is not read)."""
        try:
            path = target_path(self.dest, rel, url)
            if not path.is_file() or path.stat().st_size != size:
                return False
            return file_crc32(path) == (crc, size)
        except (OSError, UnsafeArchive):  # unreadable: fetched again (and reported if it cannot be written)
            return False

    def _verify_existing(self, files: list[ZipMember], rels, rep: ArchiveReport) -> list[ZipMember]:
        """Members already on disk are re-checked (size + CRC-32), never just trusted."""
        def ok(m: ZipMember) -> bool:
            return self._on_disk(rels[m.name], m.file_size, m.crc, rep.url)

        def is_file(m: ZipMember) -> bool:
            try:
                return target_path(self.dest, rels[m.name], rep.url).is_file()
            except UnsafeArchive:
                return False  # reported when its task is made

        present = [m for m in files if is_file(m)]
        good: set[str] = set()
        if present:
            with ThreadPoolExecutor(max(1, self.cfg.jobs)) as ex:
                for m, res in zip(present, ex.map(ok, present), strict=True):
                    if res:
                        good.add(m.name)
        rep.skipped = len(good)
        return [m for m in files if m.name not in good]

    def _task(self, archive: str, m: ZipMember, rel: PurePosixPath, bound: int) -> _Task:
        key = hashlib.sha1(m.name.encode()).hexdigest()
        part = self.state / "parts" / archive / f"{key}.part"
        t = _Task(member=m, final=target_path(self.dest, rel), bound=bound, part=part)
        meta = part.with_suffix(".json")
        if part.exists() and meta.exists():
            try:
                j = json.loads(meta.read_text())
            except ValueError:
                j = {}
            size = part.stat().st_size
            if (j.get("name") == m.name and j.get("crc") == m.crc
                    and j.get("header_offset") == m.header_offset
                    and j.get("compress_size") == m.compress_size
                    and isinstance(j.get("data_offset"), int) and size <= m.compress_size):
                t.have = size
                t.data_offset = j["data_offset"]
        return t

    def _finish(self, t: _Task, buf: io.BytesIO | None, where: str) -> None:
        """Decompress staged bytes into the final file (atomically), checking the CRC."""
        with atomic_path(t.final) as tmp, open(tmp, "wb") as out:
            dec = MemberDecoder(t.member, out, where)
            if buf is not None:
                dec.feed(buf.getvalue())
            else:
                with open(t.part, "rb") as f:
                    while chunk := f.read(1 << 20):
                        dec.feed(chunk)
            dec.finish()
        if buf is None:
            t.part.unlink(missing_ok=True)
            t.part.with_suffix(".json").unlink(missing_ok=True)

    def _fetch(self, reader: Reader, tasks: list[_Task], rep: ArchiveReport,
               remote: bool) -> list[tuple[_Task, str]]:
        if not tasks:
            return []
        failed: list[tuple[_Task, str]] = []
        jobs = max(1, self.cfg.jobs)
        total = sum(t.bound - t.start for t in tasks)
        span_bytes = self.cfg.span_bytes or min(64 << 20, max(1 << 20, total // (jobs * 4)))
        bar = self._bar(rep.name, total)
        progress = self._progress(bar)

        def finish(t: _Task, buf: io.BytesIO | None) -> None:
            try:
                self._finish(t, buf, rep.url)
            except ZipFormatError as e:
                t.part.unlink(missing_ok=True)
                with self._lock:
                    failed.append((t, str(e)))
            except OSError as e:  # this member cannot be written; the others go on
                with self._lock:
                    failed.append((t, f"{t.final}: cannot write ({e.strerror or e})"))

        def run_local(span: list[_Task]) -> None:
            """The no-Range path: members come from the downloaded archive on disk."""
            for t in span:
                try:
                    with atomic_path(t.final) as tmp, open(tmp, "wb") as out:
                        extract_member(reader, t.member, out, rep.url, progress)
                except ZipFormatError as e:
                    failed.append((t, str(e)))
                except OSError as e:
                    failed.append((t, f"{t.final}: cannot write ({e.strerror or e})"))

        def run_span(span: list[_Task]) -> None:
            if not remote:
                return run_local(span)
            assert isinstance(reader, HttpReader)
            parser = _SpanParser(span, finish, self.cfg.memory_limit, rep.url)

            def sink(chunk: bytes) -> None:
                parser.feed(chunk)
                progress(len(chunk))

            try:
                self.client.read_range(reader.info, span[0].start, span[-1].bound, sink)
            except (HttpError, ZipFormatError, OSError) as e:
                if isinstance(e, RemoteChanged):
                    raise
                with self._lock:
                    for t in parser.unfinished():
                        failed.append((t, f"{rep.url}: {t.member.shown}: {e}"))
                return
            finally:
                parser.close()
            with self._lock:
                for t in parser.unfinished():
                    failed.append((t, f"{rep.url}: {t.member.shown}: incomplete data"))

        spans = plan_spans(tasks, self.cfg.max_gap, span_bytes)
        try:
            if jobs == 1 or len(spans) == 1 or not remote:
                for s in spans:
                    run_span(s)
            else:
                with ThreadPoolExecutor(jobs) as ex:
                    for fut in as_completed([ex.submit(run_span, s) for s in spans]):
                        fut.result()
        finally:
            bar.close()
        return failed


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def download(cfg: DownloadConfig, client: HttpClient | None = None,
             on_bytes: Callable[[int], None] | None = None) -> DownloadReport:
    """Fetch the toolbox members and the subset into `cfg.dest` (see module docstring)."""
    return Downloader(cfg, client, on_bytes).run()


__all__ = ["DownloadConfig", "DownloadReport", "ArchiveReport", "download", "parse_subset",
           "UnsafeArchive", "HttpError"]
