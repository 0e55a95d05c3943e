"""Pack a raw tree (SUNRGBD/ + SUNRGBDtoolbox/) as the official SUNRGBD.zip and SUNRGBDtoolbox.zip.

Why: zip-based tools (our `download` over loopback, peers that extract the official zips
and read SUNRGBDMeta/allsplit from them) then run on a `sunrgbd sample` tree without
hand-zipping, and there is one way to zip a sample. Each archive holds one top folder
(`SUNRGBD/...`, `SUNRGBDtoolbox/...`) with its folder entries, so it extracts to exactly the
raw tree; members are sorted with fixed timestamps and modes (same tree, same bytes);
JPEG/PNG are stored (already compressed), everything else is deflated.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from cleantree.files import atomic_path
from sunrgbd_tools.raw.base import DATA_ZIP, TOOLBOX_ZIP

# archive name → the top folder it holds
RAW_ZIPS: dict[str, str] = {DATA_ZIP: "SUNRGBD", TOOLBOX_ZIP: "SUNRGBDtoolbox"}
_CHUNK = 1 << 20


def _members(root: Path, top: str) -> list[tuple[str, Path | None]]:
    """(member name, file or None for a folder) under root/top, sorted by name; names
    starting with '.' (temporary files of an interrupted writer) are left out."""
    out: list[tuple[str, Path | None]] = []
    for dirpath, dirnames, filenames in os.walk(root / top):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        d = Path(dirpath)
        out.append((d.relative_to(root).as_posix() + "/", None))
        out.extend(((d / f).relative_to(root).as_posix(), d / f) for f in filenames if not f.startswith(".") and (d / f).is_file())
    return sorted(out)


def _dir_info(name: str) -> zipfile.ZipInfo:
    from sunrgbd_tools.acquire.share import ZIP_EPOCH  # only when packing (see write_raw_zip)

    zi = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    zi.create_system = 3
    zi.external_attr = (0o40755 << 16) | 0x10  # a Unix folder + the MS-DOS directory bit
    return zi


def write_raw_zip(root: Path, top: str, path: Path) -> Path:
    """root/top → the archive `path` (written to a temporary name and renamed)."""
    # imported here, not at the top: `sunrgbd sample` without --zips does not need acquire.share
    from sunrgbd_tools.acquire.share import zip_member_info

    root, path = Path(root), Path(path)
    if not (root / top).is_dir():
        raise FileNotFoundError(f"{root / top}: no such folder to pack")
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        for name, src in _members(root, top):
            if src is None:
                zf.writestr(_dir_info(name), b"")
                continue
            with open(src, "rb") as f, zf.open(zip_member_info(name, src.stat().st_size), "w") as w:
                while chunk := f.read(_CHUNK):
                    w.write(chunk)
    return path


def write_raw_zips(root: Path, out: Path | None = None) -> dict[str, Path]:
    """SUNRGBD.zip and SUNRGBDtoolbox.zip of the raw tree `root`, written into `out`
    (default: `root` itself). Returns {archive name: path}."""
    root = Path(root)
    out = Path(out) if out is not None else root
    return {name: write_raw_zip(root, top, out / name) for name, top in RAW_ZIPS.items()}
