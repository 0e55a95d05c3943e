"""seg.mat and the MATLAB cell/HDF5 helpers the toolbox files need."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np

from sunrgbd_tools.raw.base import RawDataError, read_bytes


# ---------------------------------------------------------------------------- seg.mat
def cell_strings(value) -> list[str]:
    """A MATLAB cell array of char (as scipy loads it) → list of str."""
    arr = np.asarray(value, dtype=object).ravel()
    out = []
    for item in arr:
        a = np.asarray(item)
        if a.dtype.kind in "US":
            out.append(str(a.ravel()[0]) if a.size else "")
        elif a.dtype == object and a.size:
            out.extend(cell_strings(a))
        else:
            out.append("")
    return out


def h5_string(ds) -> str:
    """A MATLAB char array stored in HDF5 (uint16 code units) → str."""
    codes = np.asarray(ds[()]).ravel()
    return "".join(chr(int(c)) for c in codes if int(c) != 0)


_MI_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14, 15, 16, 17, 18})  # MAT v5 data types
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MAT_INFLATE_LIMIT = 1 << 30


def mat5_structure_problem(data: bytes) -> str | None:
    """Why the element tags of MATLAB v5 bytes are unusable, or None when they are sound.

    scipy.io.loadmat trusts the tags: an unknown data type or a size past the end of its
    parent can crash the whole process (a segmentation fault, found by the fuzz suite), which
    would take a conversion's worker pool down with it. So the tags are walked here first;
    the values inside are still left to scipy."""
    if len(data) < 128:
        return "too short for a MATLAB v5 file"
    order = {b"IM": "<", b"MI": ">"}.get(data[126:128])
    if order is None:
        return "no MATLAB v5 endian indicator"
    u32 = struct.Struct(order + "I")

    def walk(buf: bytes, off: int, end: int, depth: int) -> str | None:
        if depth > 32:
            return "elements nested too deeply"
        while off < end:
            if end - off < 8:
                return f"truncated element tag at byte {off}"
            tag = u32.unpack_from(buf, off)[0]
            small = tag >> 16
            if small:  # small data element: type and size in one word, data in the next
                mtype, n, start, nxt = tag & 0xFFFF, small, off + 4, off + 8
                if n > 4:
                    return f"bad small element at byte {off}"
            else:
                mtype, n, start = tag, u32.unpack_from(buf, off + 4)[0], off + 8
                nxt = start + n if mtype == _MI_COMPRESSED else start + (n + 7) // 8 * 8
            if mtype not in _MI_TYPES:
                return f"unknown data type {mtype} at byte {off}"
            if start + n > end:
                return f"element at byte {off} runs past its end"
            if mtype == _MI_MATRIX and (problem := walk(buf, start, start + n, depth + 1)):
                return problem
            if mtype == _MI_COMPRESSED:
                try:
                    d = zlib.decompressobj()
                    inner = d.decompress(buf[start:start + n], _MAT_INFLATE_LIMIT)
                except zlib.error:
                    return f"compressed element at byte {off} does not inflate"
                if d.unconsumed_tail:
                    return f"compressed element at byte {off} inflates past {_MAT_INFLATE_LIMIT} bytes"
                if problem := walk(inner, 0, len(inner), depth + 1):
                    return f"in the compressed element at byte {off}: {problem}"
            off = nxt
        return None

    return walk(data, 128, len(data), 0)


def is_mat_v73(path: Path) -> bool:
    """MATLAB v7.3 files are HDF5 (h5py reads them, scipy does not); their header says so."""
    try:
        with open(path, "rb") as f:
            return b"MATLAB 7.3" in f.read(20)
    except OSError as e:
        raise RawDataError(path, f"cannot read ({e.strerror})") from None


def read_seg_mat(path: Path) -> tuple[np.ndarray, list[str]]:
    """seg.mat → (seglabel HxW int32, names). Values are 1-based into names, 0 = unlabelled.

    Handles MATLAB v5 (scipy) and v7.3 (HDF5, arrays stored transposed).
    """
    if not path.exists():
        raise RawDataError(path, "file not found")
    if is_mat_v73(path):
        return _read_seg_mat_v73(path)
    import scipy.io

    data = read_bytes(path).tobytes()
    if problem := mat5_structure_problem(data):
        raise RawDataError(path, f"not a readable MATLAB file ({problem})")
    try:
        m = scipy.io.loadmat(io.BytesIO(data), variable_names=["seglabel", "names"])
    except Exception as e:  # scipy raises many types for damaged files
        raise RawDataError(path, f"not a readable MATLAB file ({type(e).__name__}: {e})") from None
    if "seglabel" not in m:
        raise RawDataError(path, "has no variable 'seglabel'")
    seg = np.asarray(m["seglabel"])
    names = cell_strings(m["names"]) if "names" in m else []
    return _check_seglabel(path, seg, names)


def _read_seg_mat_v73(path: Path) -> tuple[np.ndarray, list[str]]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "seglabel" not in f:
                raise RawDataError(path, "has no variable 'seglabel'")
            seg = np.asarray(f["seglabel"][()]).T
            names = []
            if "names" in f:
                refs = np.asarray(f["names"][()]).ravel()
                names = [h5_string(f[r]) for r in refs]
    except (OSError, KeyError, TypeError, ValueError) as e:  # h5py: damaged file or wrong layout
        raise RawDataError(path, f"not a readable MATLAB v7.3 file ({type(e).__name__}: {e})") from None
    return _check_seglabel(path, seg, names)


def _check_seglabel(path: Path, seg: np.ndarray, names: list[str]):
    if seg.ndim != 2 or seg.size == 0:
        raise RawDataError(path, f"seglabel must be a 2-D array, got shape {seg.shape}")
    if seg.dtype.kind not in "biuf":
        raise RawDataError(path, f"seglabel must hold numbers, got {seg.dtype.name}")
    if seg.dtype.kind == "f":
        if not np.all(np.isfinite(seg)) or np.any(seg != np.round(seg)):
            raise RawDataError(path, "seglabel holds non-integer values")
    if seg.size and seg.min() < 0:
        raise RawDataError(path, "seglabel holds negative values")
    if seg.max() > np.iinfo(np.int32).max:
        raise RawDataError(path, "seglabel holds values too large to index names")
    return seg.astype(np.int32), names


