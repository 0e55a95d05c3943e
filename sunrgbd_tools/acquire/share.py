"""`sunrgbd pack` / `sunrgbd fetch`: share a clean tree as one verifiable archive.

pack  – a deterministic ZIP (sorted members, fixed timestamps and permissions, PNG/JPEG
        stored since they are already compressed, text deflated), `DATASHEET.md` generated
        from dataset.json first, `SHA256SUMS` (every other member) last, and
        `<archive>.sha256` beside it. The same tree gives the same archive bytes. It holds
        the clean tree as the contract defines it (its root files and the sample files
        manifest.csv lists: `cleantree.manifest.tree_files_listed`), nothing else.
        DATASHEET.md's Checksums section lists the sha256 of the root files (dataset.json,
        manifest.csv, …), so it and SHA256SUMS vouch for each other.
fetch – a URL (resumable client) or a local path → archive checksum (`--sha256` or the
        `.sha256` beside it) → safe extraction into a staging folder inside `--dest` →
        every file checked against SHA256SUMS, then the root files against DATASHEET.md →
        moved into place → `verify_tree` (the manifest's checks; the records are not hashed again).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit, urlunsplit

from tqdm import tqdm

from cleantree.classes import IGNORE_INDEX
from cleantree.dataset import DATASET_JSON, ContractError, load_json_object
from cleantree.files import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    is_within,
    sha256_file,
)
from cleantree.manifest import MANIFEST, tree_files_listed
from cleantree.paths import DATASHEET_FILE as DATASHEET
from cleantree.paths import STATS_FILE
from cleantree.paths import SUMS_FILE as SUMS
from sunrgbd_tools import __version__
from sunrgbd_tools.parallel import progress_bar
from sunrgbd_tools.remote.http import (
    HttpClient,
    HttpConfig,
    HttpError,
    display_url,
    download_file,
    has_secret_query,
    is_secret_param,
    is_validity_param,
    split_userinfo,
    url_problem,
)
from sunrgbd_tools.remote.safezip import Limits, UnsafeArchive, check_name, extract_zip
from sunrgbd_tools.text import Problem, first_names, named_once, one_line, plural, problem_lines

CHECKSUMS_HEADER = "## Checksums"  # DATASHEET.md's section of root-file sha256s (`datasheet_sums`)
FETCH_DIR = ".sunrgbd-fetch"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest DOS timestamp: fixed, so archives are reproducible
_STORED_EXT = {".png", ".jpg", ".jpeg", ".zip", ".gz", ".npz"}
_CHUNK = 1 << 20


class ShareError(Exception):
    """A pack/fetch failure worth one line (checksum mismatch, not a clean tree, ...)."""


class SumsError(ShareError):
    """A SHA256SUMS line that cannot be used; `where` is `<file>:<line>`."""

    def __init__(self, where: str, what: str):
        super().__init__(f"{where}: {what}")
        self.where, self.what = where, what


class DestinationError(ShareError):
    """`--dest` is not a new or empty folder: a usage error, nothing was touched."""


# ----------------------------------------------------------------------------- pack
@dataclass
class PackConfig:
    src: str
    out: str
    command: str = ""  # the command line recorded in DATASHEET.md
    progress: bool = True

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PackReport:
    archive: Path
    sha256: str
    files: int
    bytes: int
    left_out: list[str] = field(default_factory=list)  # files outside the contract, not packed
    problems: list[str] = field(default_factory=list)
    # a fetched tree (it holds the DATASHEET.md and SHA256SUMS of the archive it came from):
    # one line on what became of its datasheet; "" for a tree `convert` wrote
    repacked: str = ""


def _unpackable(rel: str) -> str | None:
    """Why a file name cannot travel in the archive unchanged, if it cannot: ZIP names are UTF-8
    (a Latin-1 name crashed pack with a traceback), SHA256SUMS has one name per line, and
    extraction reads a backslash as a folder separator."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not UTF-8"
    if "\n" in rel or "\r" in rel:
        return "file name holds a line break"
    if "\\" in rel:
        return "file name holds a backslash"
    return None


def tree_files(root: Path, exclude: set[Path] = frozenset()) -> list[PurePosixPath]:
    """Files of a clean tree, sorted; names starting with '.' (resume state) are skipped."""
    out: list[PurePosixPath] = []
    root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in dirnames + filenames:  # never publish a file from outside the tree
            link = Path(dirpath) / name
            if link.is_symlink() and not is_within(root, link):
                raise ShareError(f"{link}: symbolic link to {os.readlink(link)}, outside the tree; "
                                 "copy the file in or remove the link (nothing was written)")
        for fn in filenames:
            if fn.startswith("."):
                continue
            p = Path(dirpath) / fn
            if p.resolve() in exclude or not p.is_file():
                continue
            out.append(PurePosixPath(p.relative_to(root).as_posix()))
    return sorted(out, key=lambda p: p.as_posix())


def format_value(v) -> str:
    """A dataset.json value for a datasheet or dataset card (6 significant digits)."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return ", ".join(format_value(x) for x in v)
    return "" if v is None else str(v)


def datasheet(meta: dict, files: int, total_bytes: int, command: str = "",
              root_sums: dict[str, str] | None = None) -> str:
    """DATASHEET.md from dataset.json; every section degrades to 'not recorded' when the
    tree predates a field. `root_sums` ({root file: sha256}) go in its Checksums section: they
    tie the datasheet to dataset.json and manifest.csv (which holds every sample file's sha256),
    so a SHA256SUMS edited to match a changed file no longer vouches for it alone."""
    nr = "_not recorded_"
    src = meta.get("source") or {}
    lines = [f"# {meta.get('name') or 'Dataset'}", ""]
    if meta.get("description"):
        lines += [str(meta["description"]), ""]
    lines += ["## Source", "",
              f"- Dataset: {src.get('dataset') or nr}",
              f"- URL: {src.get('url') or nr}",
              f"- Citation: {src.get('citation') or nr}", ""]
    counts = meta.get("label_source_counts") or {}
    lines += ["## Contents", "",
              f"- Subset: {meta.get('subset') or nr}",
              f"- Label source: {meta.get('label_source') or nr}"
              + (f" ({', '.join(f'{k}: {v}' for k, v in counts.items())})" if counts else ""),
              f"- Label mode: {meta.get('label_mode') or nr}"
              + (f" ({meta['label_mode_description']})" if meta.get("label_mode_description") else ""),
              f"- Image size (H x W): {' x '.join(map(str, meta['image_size'])) if meta.get('image_size') else 'native (see manifest.csv)'}",
              f"- Image format: {meta.get('image_format') or nr}"]
    depth = meta.get("depth")
    lines.append(f"- Depth: {'none' if 'depth' in meta and depth is None else (', '.join(f'{k}={v}' for k, v in depth.items()) if isinstance(depth, dict) else nr)}")
    if meta.get("num_classes") is not None:
        lines.append(f"- Classes for training: {meta['num_classes']} (ignore index {meta.get('ignore_index', IGNORE_INDEX)})")
    lines.append(f"- Files: {files} ({total_bytes} bytes), listed with their SHA-256 in `{SUMS}`")
    lines.append("")
    splits = meta.get("splits") or {}
    lines += ["## Splits", ""]
    if splits:
        lines += ["| split | samples |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in splits.items()]
        lines.append(f"| **total** | {sum(int(v) for v in splits.values())} |")
        vs = meta.get("val_split")
        if vs:
            lines += ["", f"Validation split: {', '.join(f'{k}={v}' for k, v in vs.items())}"]
    else:
        lines.append(nr)
    lines.append("")
    lines += ["## Classes", ""]
    classes = meta.get("classes") or []
    weights = meta.get("class_weights")
    pixels = meta.get("class_pixel_counts")
    if classes:
        head = "| id | train id | name | colour | ignored in eval |"
        sep = "|---:|---:|---|---|---|"
        if isinstance(weights, list):
            head += " weight |"
            sep += "---:|"
        lines += [head, sep]
        for c in classes:
            col = c.get("color") or []
            hexcol = "#" + "".join(f"{int(x):02x}" for x in col) if len(col) == 3 else ""
            row = (f"| {c.get('id', '')} | {c.get('train_id', '')} | {c.get('name', '')} | "
                   f"{hexcol} | {'yes' if c.get('ignore_in_eval') else 'no'} |")
            if isinstance(weights, list):
                tid = c.get("train_id")
                w = weights[tid] if isinstance(tid, int) and 0 <= tid < len(weights) else ""
                row += f" {format_value(w)} |"
            lines.append(row)
    else:
        lines.append(nr)
    lines.append("")
    lines += ["## Label mapping", "",
              f"- Mapping checksum (sha256): {meta.get('mapping_sha256') or nr}"]
    for k, v in (meta.get("mapping_files") or {}).items():
        lines.append(f"- `{k}`: {v}")
    lines.append("")
    lines += ["## Statistics", ""]
    stat_keys = ["mean", "std", "depth_mean", "depth_std", "stats_split", "stats_sha256"]
    present = [k for k in stat_keys if meta.get(k) is not None]
    if present:
        lines += [f"- {k}: {format_value(meta[k])}" for k in present]
        if isinstance(pixels, (list, dict)):
            lines.append("- Class pixel counts: in dataset.json (`class_pixel_counts`)")
    else:
        lines.append("_not computed (run `sunrgbd stats` before packing)_")
    lines.append("")
    probs = meta.get("problems") or {}
    if probs:
        lines += ["## Problems reported by the converter", ""]
        lines += [f"- {k}: {v}" for k, v in probs.items()]
        lines += ["", "Per-sample details are in `manifest.csv` (column `problems`).", ""]
    cw = meta.get("created_with") or {}
    lines += ["## How it was made", "",
              f"- Tool: {cw.get('tool') or nr} {cw.get('version') or ''}".rstrip()]
    if cw.get("command"):
        lines += ["- Converted with:", "", "  ```", f"  {cw['command']}", "  ```"]
    if meta.get("stats_command"):
        lines += ["- Statistics with:", "", "  ```", f"  {meta['stats_command']}", "  ```"]
    lines += [f"- Packed with sunrgbd-tools {__version__}" + (":" if command else "")]
    if command:
        lines += ["", "  ```", f"  {command}", "  ```"]
    if root_sums:
        lines += ["", f"{CHECKSUMS_HEADER}", "",
                  f"SHA-256 of the files at the tree's root (`{MANIFEST}` holds each sample file's, `{SUMS}` "
                  "every file's; `sunrgbd verify` checks all three):", ""]
        lines += [f"- `{n}`: {h}" for n, h in sorted(root_sums.items())]
    lines += ["", "## Verify", "", "```",
              f"sha256sum -c {SUMS}          # every file",
              "sunrgbd fetch <archive> --dest data/   # checksum, safe extract, verify",
              "```", ""]
    return "\n".join(lines)


def zip_member_info(name: str, size: int) -> zipfile.ZipInfo:
    """A file member whose header bytes depend only on its name and size (fixed time stamp,
    Unix 0644, stored when the format is already compressed): reproducible archives.
    `pack` and the sample's raw zips both use it."""
    zi = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    zi.create_system = 3
    zi.external_attr = 0o100644 << 16
    zi.compress_type = (zipfile.ZIP_STORED if PurePosixPath(name).suffix.lower() in _STORED_EXT
                        else zipfile.ZIP_DEFLATED)
    zi.file_size = size
    return zi


def _is_pack_archive(path: Path) -> bool:
    """Whether `path` is an earlier `pack` output (DATASHEET.md first, SHA256SUMS last), which a
    re-pack may replace; any other file at --out is the user's (`--out clean/dataset.json` once
    replaced the tree's own dataset.json with the archive)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return len(names) >= 2 and names[0] == DATASHEET and names[-1] == SUMS


def _is_sha256_line(path: Path) -> bool:
    """Whether `path` is a small checksum file (`<sha256>  <name>`, as pack writes beside an
    archive and fetch reads); anything else there is the user's."""
    try:
        parse_sha256_file(path.read_text(encoding="ascii") if path.stat().st_size < 4096 else "", str(path))
    except (OSError, UnicodeDecodeError, ShareError):
        return False
    return True


def pack_tree(cfg: PackConfig) -> PackReport:
    """Write the archive for the clean tree `cfg.src` (see module docstring)."""
    src = Path(cfg.src)
    out = Path(cfg.out)
    if not (src / DATASET_JSON).is_file():
        raise ShareError(f"{src}: not a clean tree (no dataset.json)")
    if not (src / MANIFEST).is_file():  # it lists the sample files the archive holds
        raise ShareError(f"{src}: not a clean tree (no manifest.csv)")
    if out.exists() and out.is_dir():
        raise ShareError(f"{out}: is a folder; give the archive's file name")
    try:  # parsed, not checked: the archive holds the tree as it is (fetch verifies it)
        meta = load_json_object(src / DATASET_JSON)
        listed = tree_files_listed(src)
    except ContractError as e:
        raise ShareError(str(e)) from None
    side = out.with_name(out.name + ".sha256")
    for path, ours in ((out, _is_pack_archive), (side, _is_sha256_line)):
        if path.is_file() and not ours(path):
            raise ShareError(f"{path}: exists and is not {'an archive' if path == out else 'a checksum'} "
                             "`sunrgbd pack` wrote; remove it or choose another --out (nothing was changed)")
    walked = tree_files(src, exclude={out.resolve(), side.resolve()})
    records = {PurePosixPath(DATASHEET), PurePosixPath(SUMS)} & set(walked)  # a fetched tree's
    files: list[PurePosixPath] = []
    left_out: list[PurePosixPath] = []
    for rel in walked:
        if rel not in records:
            (files if rel.as_posix() in listed else left_out).append(rel)
    for rel in files:
        why = _unpackable(rel.as_posix())
        if why:
            raise ShareError(f"{one_line(src.resolve() / rel)}: {why}; rename or remove it (nothing was written)")
    sizes = {f: (src / f).stat().st_size for f in files}
    total = sum(sizes.values())
    fetched = _fetched_sums(src, files) if records else None
    changed: list[str] = []
    if fetched is not None:  # changed since it was fetched? Decided before a byte is compressed
        names = [rel.as_posix() for rel in files]
        with tqdm(total=len(names), desc=f"check {src.name}", unit="file",
                  disable=not cfg.progress, leave=False) as check_bar:
            differ = _mismatched(src, fetched[0], names, progress=check_bar.update)
        changed = [n for n in names if n in differ]
    if fetched is not None and not changed:  # the archive it was fetched from, again
        sheet = fetched[1]
    else:
        root_sums = {f.as_posix(): sha256_file(src / f) for f in files if len(f.parts) == 1}
        sheet = datasheet(meta, len(files) + 1, total, cfg.command, root_sums).encode("utf-8")
    with tqdm(total=total, desc=f"pack {out.name}", unit="B", unit_scale=True,
              unit_divisor=1024, disable=not cfg.progress, leave=False) as bar, \
            atomic_path(out) as tmp:
        _write_archive(tmp, src, files, sizes, sheet, bar)
        digest = sha256_file(tmp)
    atomic_write_text(side, f"{digest}  {out.name}\n")
    problems = []
    if left_out:
        problems.append(f"{src}: {plural(len(left_out), 'file')} outside the clean-tree contract "
                        f"left out of the archive: {first_names([one_line(rel) for rel in left_out])}")
    repacked = ""
    if fetched is not None and not changed:
        repacked = (f"{src}: a fetched tree as its {SUMS} lists it: its {DATASHEET} is kept, so the "
                    "archive is the one it was fetched from")
    elif records == {PurePosixPath(DATASHEET)}:  # a tree `convert` wrote, with a datasheet of the user's
        repacked = (f"{src}: its {DATASHEET} is not packed (no {SUMS} vouches for it, so it is not a "
                    f"fetched tree's): the archive holds a new {DATASHEET} written from {DATASET_JSON} "
                    "in its place; the tree's file is left as it is")
    elif records:
        why = (f"{plural(len(changed), 'file')} no longer as its {SUMS} lists: {first_names(changed)}"
               if changed else f"its {DATASHEET} and {SUMS} do not list the tree as it is")
        repacked = f"{src}: a fetched tree changed since ({why}); {DATASHEET} is written anew"
    return PackReport(archive=out, sha256=digest, files=len(files) + 2, bytes=out.stat().st_size,
                      left_out=[rel.as_posix() for rel in left_out], problems=problems,
                      repacked=repacked)


def _fetched_sums(src: Path, files: list[PurePosixPath]) -> tuple[dict[str, str], bytes] | None:
    """A fetched tree's SHA256SUMS ({name: sha256}) and DATASHEET.md bytes, when SHA256SUMS
    vouches for the datasheet as it is and lists exactly the files to pack; else None.
    Re-packing such a tree gives back the archive it came from (same datasheet, same members,
    so the same bytes and sha256) when no file changed since."""
    try:
        sums = read_sums(src / SUMS)
        sheet = (src / DATASHEET).read_bytes()
    except (OSError, UnicodeDecodeError, ShareError):
        return None
    if set(sums) != {DATASHEET, *(f.as_posix() for f in files)}:
        return None
    if hashlib.sha256(sheet).hexdigest() != sums[DATASHEET]:
        return None  # edited since: not the datasheet SHA256SUMS vouches for
    return sums, sheet


def _write_archive(tmp: Path, src: Path, files: list[PurePosixPath], sizes: dict, sheet: bytes,
                   bar) -> None:
    """The ZIP into `tmp` (replaced): DATASHEET.md first, the files sorted, SHA256SUMS of every
    other member last."""
    sums = {DATASHEET: hashlib.sha256(sheet).hexdigest()}
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        zf.writestr(zip_member_info(DATASHEET, len(sheet)), sheet)
        for rel in files:
            h = hashlib.sha256()
            with open(src / rel, "rb") as f, \
                    zf.open(zip_member_info(rel.as_posix(), sizes[rel]), "w") as w:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
                    w.write(chunk)
                    bar.update(len(chunk))
            sums[rel.as_posix()] = h.hexdigest()
        body = "".join(f"{h}  {n}\n" for n, h in sorted(sums.items())).encode()
        zf.writestr(zip_member_info(SUMS, len(body)), body)


# ----------------------------------------------------------------------------- fetch
@dataclass
class FetchConfig:
    source: str
    dest: str
    sha256: str | None = None
    keep_archive: bool = False
    workers: int | None = None
    progress: bool = True
    http: HttpConfig = field(default_factory=HttpConfig)

    def to_json(self) -> dict:
        """The config as recorded: the source URL without its `user:password@`."""
        return {**asdict(self), "source": display_url(self.source)}


@dataclass
class FetchReport:
    dest: Path
    archive_sha256: str
    checked: str  # where the expected archive checksum came from, or "none"
    files: int = 0
    samples: int = 0
    problems: list[str] = field(default_factory=list)


def is_url(s: str) -> bool:
    try:
        return urlsplit(s).scheme in ("http", "https")
    except ValueError:  # `http://[::1/`: a URL all the same (check_source says what is wrong)
        return s.split(":", 1)[0].lower() in ("http", "https")


def check_source(source: str) -> None:
    """Refuse another scheme up front: `ftp://x/a.zip` was read as a local path ("no such archive")."""
    if "://" in source and not is_url(source):
        raise ShareError(f"{display_url(source)!r}: only http:// and https:// URLs (or a local file) "
                         "are supported")
    if is_url(source) and (problem := url_problem(source)):
        raise ShareError(f"{display_url(source)!r}: {problem}")


def sidecar_url(url: str) -> str:
    """`<archive>.sha256` beside a URL: the name goes on the path, the query stays a query
    (`url + ".sha256"` once appended it to a presigned URL's signature)."""
    parts = urlsplit(split_userinfo(url)[0])
    return urlunsplit(parts._replace(path=parts.path + ".sha256"))


def parse_sha256_file(text: str, where: str) -> str:
    tok = text.strip().split()
    if not tok or len(tok[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in tok[0]):
        raise ShareError(f"{where}: not a sha256 file")
    return tok[0].lower()


def read_sums(path: Path) -> dict[str, str]:
    """SHA256SUMS (`sha256sum` format, text or binary marker) → {path: hex}."""
    out: dict[str, str] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        h, sep, name = line.partition(" ")
        name = name[1:] if name[:1] in (" ", "*") else name
        where = f"{path}:{i}"
        if not sep or len(h) != 64 or not name:
            raise SumsError(where, "malformed line")
        try:
            rel = check_name(name, where).as_posix()
        except UnsafeArchive as e:  # `../../etc/hostname`: one line, as a malformed one
            raise SumsError(where, str(e).removeprefix(f"{where}: ")) from None
        if rel in out:
            raise SumsError(where, f"{rel} listed twice")
        out[rel] = h.lower()
    return out




class Differs(str):
    """A problem message saying a file's sha256 is not the one a record lists: the flag
    check_records reads to add why a root file differs (the text is never parsed)."""


def _sums_problems(root: Path, workers: int | None = None, progress: Callable[[int], None] | None = None,
                   known: dict[str, str] | None = None) -> tuple[list[Problem], dict[str, str] | None, dict[str, str]]:
    """Every file under `root` (names starting with '.' excepted) against SHA256SUMS, as
    (path, message) pairs, with SHA256SUMS's {name: sha256} (None when it is missing) and the
    names hashed here that match it, with their sha256 (what the DATASHEET.md check need not
    hash again). `known` ({name: sha256} of files the caller has just hashed, e.g. verify
    against manifest.csv): such a file whose listed sha256 is that one is not read again.
    ShareError for a SHA256SUMS that cannot be parsed."""
    sums_path = root / SUMS
    if not sums_path.is_file():
        return [(sums_path, "missing")], None, {}
    listed = read_sums(sums_path)
    present = {p.as_posix() for p in tree_files(root)} - {SUMS}
    problems = [(root / n, f"not listed in {SUMS}") for n in sorted(present - set(listed))]
    problems += [(root / n, f"listed in {SUMS} but missing") for n in sorted(set(listed) - present)]
    known = known or {}
    names = sorted(n for n in set(listed) & present if known.get(n) != listed[n])
    differ = _mismatched(root, listed, names, workers, progress)
    problems += [(root / n, Differs(f"sha256 {got} != {listed[n]} in {SUMS}")) for n, got in differ.items()]
    return problems, listed, {n: listed[n] for n in names if n not in differ}


def datasheet_sums(text: str) -> dict[str, str]:
    """{name: sha256} from DATASHEET.md's Checksums section ({} for a datasheet without one:
    archives packed before it existed). The names are as written: `_datasheet_problems` checks
    them before any is opened."""
    out: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line == CHECKSUMS_HEADER
        elif inside and line.startswith("- `") and "`: " in line:
            name, _, h = line[3:].partition("`: ")
            if len(h) == 64 and all(c in "0123456789abcdef" for c in h):
                out[name] = h
    return out


def _datasheet_problems(root: Path, listed: dict[str, str] | None, proven: dict[str, str],
                        workers: int | None = None) -> list[Problem] | None:
    """The root files against the sha256 DATASHEET.md lists for them, as (path, message) pairs:
    catches a dataset.json or manifest.csv changed together with its SHA256SUMS line. A name
    must be a file at the root (`check_name`, one part) that SHA256SUMS `listed` lists (when it
    could be read): a crafted datasheet naming `x/../../../root/.bashrc` once had fetch and
    verify hash that file and print its sha256.
    `proven` ({name: sha256} just hashed against SHA256SUMS) are compared without reading again.
    None when there is nothing to check (no DATASHEET.md, or one without a Checksums section)."""
    sheet = root / DATASHEET
    try:
        entries = datasheet_sums(sheet.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        return [(sheet, f"cannot be read ({e})")]
    if not entries:
        return None
    problems: list[Problem] = []
    wanted: dict[str, str] = {}
    for name, h in sorted(entries.items()):
        try:
            parts = check_name(name).parts
        except UnsafeArchive:
            parts = ()
        if len(parts) != 1:
            problems.append((sheet, f"its Checksums section lists {name!r}, not a file at the tree's root; "
                                    "not read"))
        elif listed is not None and parts[0] not in listed:
            problems.append((sheet, f"its Checksums section lists {parts[0]!r}, which {SUMS} does not; "
                                    "not read"))
        elif not (root / parts[0]).is_file():
            problems.append((root / parts[0], f"listed in {DATASHEET} but missing"))
        else:
            wanted[parts[0]] = h
    to_hash = [n for n in wanted if n not in proven]
    differ = {n: got for n in wanted if n in proven and (got := proven[n]) != wanted[n]}
    differ.update(_mismatched(root, wanted, to_hash, workers))
    problems += [(root / n, Differs(f"sha256 {got} != {wanted[n]} in {DATASHEET}")) for n, got in sorted(differ.items())]
    return problems


# a root file `sunrgbd stats` rewrites: why a fetched tree's records no longer match it
_STATS_WRITES = {DATASET_JSON, STATS_FILE}


def check_records(root: Path, workers: int | None = None, known: dict[str, str] | None = None) -> list[Problem]:
    """A fetched tree against the archive's own records, as (path, message) pairs: every file
    against SHA256SUMS (none missing, none unlisted) and the root files against DATASHEET.md
    (`sunrgbd verify`). A DATASHEET.md with a Checksums section is checked without SHA256SUMS
    too, which is then reported missing. A root file that no longer matches says it changed
    since the fetch: `sunrgbd stats` rewrites dataset.json and stats.json, which is no tampering."""
    listed: dict[str, str] | None = None
    proven: dict[str, str] = {}
    try:
        problems, listed, proven = _sums_problems(root, workers, known=known)
    except SumsError as e:  # a malformed or unsafe line (`../../etc/hostname`): one line
        problems = [(Path(e.where), e.what)]
    except (OSError, UnicodeDecodeError) as e:
        problems = [(root / SUMS, f"cannot be read ({e})")]
    sheet = _datasheet_problems(root, listed, proven, workers)
    if sheet is None and not (root / SUMS).is_file():
        return []  # neither record: not a fetched tree
    out: list[Problem] = []
    for path, msg in named_once(problems, sheet or []):
        if path.parent == root and isinstance(msg, Differs):
            msg += (" (changed since the fetch, e.g. by `sunrgbd stats`)" if path.name in _STATS_WRITES
                    else " (changed since the fetch)")
        out.append((path, msg))
    return out


def _mismatched(root: Path, listed: dict[str, str], names: list[str], workers: int | None = None,
                progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """{name: its sha256} for each of `names` (under `root`) whose sha256 is not the one
    `listed` gives, in the order of `names`; hashed in parallel (`workers` threads, all CPUs by
    default), `progress(1)` after each file."""
    def one(n: str) -> str | None:
        got = sha256_file(root / n)
        if progress:
            progress(1)
        return None if got == listed[n] else got

    with ThreadPoolExecutor(max(1, workers or os.cpu_count() or 1)) as ex:
        return {n: got for n, got in zip(names, ex.map(one, names), strict=True) if got is not None}


def _hash_with_bar(path: Path, progress: bool) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, desc=f"sha256 {path.name}",
                                     unit="B", unit_scale=True, unit_divisor=1024,
                                     disable=not progress, leave=False) as bar:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def fetch(cfg: FetchConfig, client: HttpClient | None = None) -> FetchReport:
    """Get, check, extract and verify a packed dataset into `cfg.dest` (module docstring)."""
    dest = Path(cfg.dest)
    if dest.exists() and not dest.is_dir():
        raise DestinationError(f"{dest}: exists and is not a folder")
    check_source(cfg.source)
    if not is_url(cfg.source) and not Path(cfg.source).is_file():  # before --dest is made
        raise ShareError(f"{cfg.source}: no such archive")
    work = dest / FETCH_DIR
    if dest.is_dir() and any(not p.name.startswith(".") for p in dest.iterdir()):
        done = _fetched(work, cfg)
        if done is None:
            raise DestinationError(f"{dest}: not empty; fetch into a new or empty folder (nothing was changed)")
        # this fetch was extracted here and then interrupted in its verify: verify again
        return _verify_fetched(FetchReport(dest=dest, archive_sha256=done["sha256"],
                                           checked=done["checked_against"], files=done["files"]), cfg)
    # --dest and its state folder are made once there is something to put there: for a URL,
    # by `download_file` once the server has answered its probe (a run that gets no byte
    # creates nothing, as `download`)
    expected = cfg.sha256.lower() if cfg.sha256 else None
    checked = "--sha256" if expected else "none"
    shown = display_url(cfg.source)  # what messages and records name: never a password
    if is_url(cfg.source):
        client = client or HttpClient(cfg.http)
        client.adopt(cfg.source)  # the credentials stay with the client; `shown` is the URL
        url = shown
        name = unquote(PurePosixPath(urlsplit(url).path).name) or "archive.zip"
        archive = work / name
        check_name(name, shown)
        if expected is None:
            side_shown = client.adopt(sidecar_url(cfg.source))
            try:
                side = client.get_small(side_shown)
            except HttpError as e:
                # a presigned URL's signature is for the archive alone: its sidecar is refused
                if not (has_secret_query(cfg.source) and e.status in (401, 403)):
                    raise
                side = None
            if side is not None:
                expected = parse_sha256_file(side.decode("utf-8", "replace"), side_shown)
                checked = side_shown
        if not archive.exists():
            with tqdm(desc=f"fetch {name}", unit="B", unit_scale=True, unit_divisor=1024,
                      disable=not cfg.progress, leave=False) as bar:
                def on_total(size: int, have: int) -> None:
                    bar.reset(total=size)
                    bar.update(have)
                download_file(client, url, archive, bar.update, on_total)
    else:
        archive = Path(cfg.source)
        side_path = archive.with_name(archive.name + ".sha256")
        if expected is None and side_path.is_file():
            expected = parse_sha256_file(side_path.read_text(encoding="utf-8", errors="replace"),
                                         str(side_path))
            checked = str(side_path)
    digest = _hash_with_bar(archive, cfg.progress)
    if expected is not None and digest != expected:
        if is_url(cfg.source):
            archive.unlink(missing_ok=True)  # a re-run downloads it afresh
        raise ShareError(f"{shown}: sha256 {digest} does not match the expected "
                         f"{expected} (from {checked}); the archive is damaged or not the one published")
    work.mkdir(parents=True, exist_ok=True)
    stage = work / "tree"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        with tqdm(desc="extract", unit="B", unit_scale=True, unit_divisor=1024,
                  disable=not cfg.progress, leave=False) as bar:
            written = extract_zip(archive, stage, limits=Limits(), progress=bar.update)
        pairs, listed, proven = _sums_problems(stage, cfg.workers)
        against = SUMS
        if not pairs:  # SHA256SUMS edited to match a changed dataset.json or manifest.csv
            # (the root files were just hashed against SHA256SUMS: compared, not read again)
            pairs, against = _datasheet_problems(stage, listed, proven, cfg.workers) or [], DATASHEET
        problems = problem_lines(pairs)
        if problems:
            raise ShareError(f"{shown}: {plural(len(problems), 'file')} {'fails' if len(problems) == 1 else 'fail'} {against}: " + problems[0]
                             .replace(str(stage), str(dest)))
        for entry in sorted(stage.iterdir()):
            target = dest / entry.name
            if not is_within(dest, target):
                raise UnsafeArchive(f"{shown}: {entry.name} escapes {dest}")
            os.replace(entry, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    report = FetchReport(dest=dest, archive_sha256=digest, checked=checked, files=len(written))
    _record(report, cfg, verified=False)
    if is_url(cfg.source) and not cfg.keep_archive:
        archive.unlink(missing_ok=True)
    return _verify_fetched(report, cfg, proven)


def _fetched(work: Path, cfg: FetchConfig) -> dict | None:
    """The record of an extraction of the same source into this --dest whose verify did not finish
    (a kill there left a complete tree that a re-run refused as "not empty"); a finished fetch is
    not redone (a re-run into its folder stays a usage error)."""
    try:
        done = json.loads((work / "fetched.json").read_text(encoding="utf-8"))
        ok = (_same_source(done["source"], cfg.source) and isinstance(done["sha256"], str) and isinstance(done["files"], int)
              and isinstance(done["checked_against"], str) and done.get("verified") is False)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return done if ok and (cfg.sha256 is None or cfg.sha256.lower() == done["sha256"]) else None


def source_identity(url: str) -> str:
    """What makes two fetch URLs the same source: the URL as typed without `user:password@`, and,
    when its query carries a credential (a presigned or SAS URL), without its credential
    parameters (`is_secret_param`: the signature) and validity ones (`is_validity_param`:
    X-Amz-Date/X-Amz-Expires, se=/st=, which change on every re-signing); every other parameter
    (`versionId=`, `file=`) still names the file. Credentials say who may read a file, not which
    file it is; the archive's sha256 is checked anyway."""
    shown = display_url(url)
    if not has_secret_query(shown):
        return shown

    def kept(text: str) -> str:
        return "&".join(p for p in text.split("&") if p and not (
            is_secret_param(p.partition("=")[0]) or is_validity_param(p.partition("=")[0])))

    base, hsep, fragment = shown.partition("#")
    path, _, query = base.partition("?")
    query, fragment = kept(query), kept(fragment) if hsep else ""
    return path + ("?" + query if query else "") + ("#" + fragment if fragment else "")


def _same_source(a: str, b: str) -> bool:
    """URLs by `source_identity` (records never hold a secret, and a new password or signature
    does not make another archive); local archives by resolved path (`./a.zip` then `/abs/a.zip`
    is one)."""
    if is_url(a) or is_url(b):
        return source_identity(a) == source_identity(b)
    return Path(a).resolve() == Path(b).resolve()


def _verify_fetched(report: FetchReport, cfg: FetchConfig, hashed: dict[str, str] | None = None) -> FetchReport:
    """verify of the fetched tree; `hashed`: the files just hashed against SHA256SUMS in the
    staging folder (none on a resumed verify: the tree has lain on disk since)."""
    from sunrgbd_tools.convert.verify import verify_tree

    dest = report.dest
    # the records (SHA256SUMS, DATASHEET.md) were checked in the staging folder, and each sample
    # file against SHA256SUMS: its manifest sha256 is compared with that one, not hashed again
    vr = verify_tree(dest, workers=cfg.workers, records=False, known=hashed,
                     progress=progress_bar("verify", "sample", leave=False) if cfg.progress else None)
    report.samples = vr.samples
    report.problems = list(vr.problems)
    _record(report, cfg, verified=True)
    return report


def _record(report: FetchReport, cfg: FetchConfig, verified: bool) -> None:
    """--dest/.sunrgbd-fetch/fetched.json: what `_fetched` resumes from."""
    atomic_write_json(report.dest / FETCH_DIR / "fetched.json", {
        "source": cfg.to_json()["source"], "sha256": report.archive_sha256, "checked_against": report.checked,
        "files": report.files, "verified": verified})
