"""seg.mat and the MATLAB cell/HDF5 helpers the toolbox files need."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from sunrgbd_tools.raw.base import RawDataError, read_bytes


# ---------------------------------------------------------------------------- seg.mat
def cell_strings(value) -> list[str]:
    """A MATLAB cell array of char (as scipy loads it) → list of str."""
    arr = np.asarray(value, dtype=object).ravel()
    out = []
    for item in arr:
        if not isinstance(item, (np.ndarray, np.generic, str, bytes)):
            out.append("")  # e.g. a sparse matrix, which np.asarray wraps in itself: endless recursion
            continue
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
    codes = h5_array(ds).ravel()
    if codes.dtype.kind not in "iu" or (codes.size and (codes.min() < 0 or codes.max() > 0x10FFFF)):
        raise ValueError(f"{ds.name} is not a char array")
    return "".join(chr(c) for c in codes.tolist() if c != 0)


def h5_cell_strings(f, obj) -> list[str]:
    """A MATLAB cell of char arrays stored in HDF5 (`obj`: a dataset of object references into
    the file `f`) → list of str, in storage order."""
    return [h5_string(f[r]) for r in h5_array(obj).ravel()]


_H5_READ_LIMIT = 1 << 30  # bytes one dataset may declare (a real label image is a few MB)


def h5_array(obj) -> np.ndarray:
    """A v7.3 dataset's values, read only when its declared size is sane: a damaged dataspace
    can declare terabytes, which the HDF5 library would try to allocate (and fill)."""
    import h5py

    if not isinstance(obj, h5py.Dataset):
        raise TypeError(f"{obj.name} is a {type(obj).__name__}, not an array")
    size = obj.dtype.itemsize * int(np.prod(obj.shape, dtype=object) if obj.shape else 1)
    if size > _H5_READ_LIMIT:
        raise ValueError(f"{obj.name} declares {obj.shape} x {obj.dtype.itemsize} bytes, past the "
                         f"{_H5_READ_LIMIT >> 20} MiB a MATLAB file here may hold")
    return np.asarray(obj[()])


# What h5py raises on a damaged or strangely laid out file: it has no error class of its own.
# OSError (open/read failures), KeyError (a damaged name or link), RuntimeError ("Unable to
# synchronously check link existence"), ValueError (bad references, "Insufficient precision",
# and ours from h5_array/h5_string), TypeError and AttributeError (a group where an array
# belongs), IndexError and OverflowError (indices and codes out of range): tests/test_fuzz_readers.py.
H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError,
             OverflowError)


@contextmanager
def h5_errors(path: Path) -> Iterator[None]:
    """Every H5_ERRORS inside the block as one RawDataError naming the file."""
    try:
        yield
    except RawDataError:
        raise
    except H5_ERRORS as e:
        text = " ".join(str(e).split()) or "no message"
        raise RawDataError(path, f"not a readable MATLAB v7.3 file ({type(e).__name__}: {text})") from None


@contextmanager
def h5_file(path: Path):
    """h5py.File(path) for reading, under h5_errors."""
    import h5py

    with h5_errors(path), h5py.File(path, "r") as f:
        yield f


_MI_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14, 15, 16, 17, 18})  # MAT v5 data types
_MI_INT32, _MI_UINT32, _MI_MATRIX, _MI_COMPRESSED = 5, 6, 14, 15
_MAT_INFLATE_LIMIT = 1 << 30
# mx classes: cell, struct, object, sparse, function (a container of matrices), opaque (scipy reads
# its parts with type-checked readers); char is 4 and the numeric classes are 6..15
_MX_CELL, _MX_STRUCT, _MX_OBJECT, _MX_SPARSE, _MX_FUNCTION, _MX_OPAQUE = 1, 2, 3, 5, 16, 17
_MX_CONTAINERS = frozenset({_MX_CELL, _MX_STRUCT, _MX_OBJECT, _MX_FUNCTION})


class _Unsound(Exception):
    """Raised inside the tag walk with the problem; mat5_structure_problem returns its text."""


def mat5_structure_problem(data: bytes) -> str | None:
    """Why the element tags of MATLAB v5 bytes are unusable, or None when they are sound.

    scipy.io.loadmat trusts the tags: an unknown data type, a size past the end of its parent,
    or a matrix tag where numbers belong crashes the whole process (a segmentation fault, found
    by the fuzz suite), and array dimensions it believes can make it allocate gigabytes (a
    flipped byte in a cell's dimensions once asked for 28 GB). Either would take a conversion's
    worker down. So the tags are walked here first, as scipy will read them: each matrix's
    parts in scipy's order, and its declared element count against the bytes that can hold
    them; the values inside are still left to scipy."""
    if len(data) < 128:
        return "too short for a MATLAB v5 file"
    if 0 in data[:4]:  # scipy would read the file as MATLAB v4, a different layout
        return "not a MATLAB v5 header (a NUL in its first 4 bytes)"
    order = {b"IM": "<", b"MI": ">"}.get(data[126:128])
    if order is None:
        return "no MATLAB v5 endian indicator"
    u32 = struct.Struct(order + "I")

    def elements(buf: bytes, off: int, end: int, depth: int) -> list[tuple[int, int, int, int]]:
        """The elements between off and end as (offset, type, data start, size); depth 0 is the
        file's top level."""
        if depth > 32:
            raise _Unsound("elements nested too deeply")
        out = []
        while off < end:
            if end - off < 8:
                raise _Unsound(f"truncated element tag at byte {off}")
            tag = u32.unpack_from(buf, off)[0]
            small = tag >> 16
            if small:  # small data element: type and size in one word, data in the next
                mtype, n, start, nxt = tag & 0xFFFF, small, off + 4, off + 8
                if n > 4:
                    raise _Unsound(f"bad small element at byte {off}")
            else:
                mtype, n, start = tag, u32.unpack_from(buf, off + 4)[0], off + 8
                nxt = start + n if mtype == _MI_COMPRESSED else start + (n + 7) // 8 * 8
            if mtype not in _MI_TYPES:
                raise _Unsound(f"unknown data type {mtype} at byte {off}")
            if start + n > end:
                raise _Unsound(f"element at byte {off} runs past its end")
            if mtype == _MI_MATRIX:
                matrix(buf, off, start, start + n, depth + 1)
            if mtype == _MI_COMPRESSED:
                if depth:  # scipy inflates top-level elements only
                    raise _Unsound(f"compressed element at byte {off} inside another element")
                try:
                    d = zlib.decompressobj()
                    inner = d.decompress(buf[start:start + n], _MAT_INFLATE_LIMIT)
                except zlib.error:
                    raise _Unsound(f"compressed element at byte {off} does not inflate") from None
                if d.unconsumed_tail:
                    raise _Unsound(f"compressed element at byte {off} inflates past {_MAT_INFLATE_LIMIT} bytes")
                try:
                    elements(inner, 0, len(inner), depth + 1)
                except _Unsound as e:
                    raise _Unsound(f"in the compressed element at byte {off}: {e}") from None
            out.append((off, mtype, start, n))
            off = nxt
        return out

    def matrix(buf: bytes, off: int, start: int, end: int, depth: int) -> None:
        """A matrix's parts in the order scipy reads them (_mio5_utils.VarReader5)."""
        parts = elements(buf, start, end, depth)
        if not parts:
            return  # an empty matrix
        # scipy skips the flags tag unread and takes the next 8 bytes: only a full 8-byte
        # miUINT32 element keeps its reading in step with the tags
        f_off, f_type, f_start, f_n = parts[0]
        if f_type != _MI_UINT32 or f_n != 8 or f_start != f_off + 8:
            raise _Unsound(f"matrix at byte {off} does not start with its array flags")
        flags = u32.unpack_from(buf, f_start)[0]
        mclass, is_complex = flags & 0xFF, flags >> 11 & 1
        if mclass == _MX_OPAQUE:  # function workspace: name and parts read by type-checked readers
            return
        if len(parts) < 3 or parts[1][1] not in (_MI_INT32, _MI_UINT32):
            raise _Unsound(f"matrix at byte {off} has no dimensions")
        d_start, d_n = parts[1][2], parts[1][3]
        dims = struct.unpack_from(f"{order}{d_n // 4}i", buf, d_start)
        if len(dims) < 2:  # scipy indexes the last of them (char arrays: out of bounds when none)
            raise _Unsound(f"matrix at byte {off} has {len(dims)} dimensions (MATLAB writes at least 2)")
        if any(d < 0 for d in dims):
            raise _Unsound(f"matrix at byte {off} has negative dimensions {list(dims)}")
        count = 1
        for d in dims:
            count *= d
        body = parts[3:]  # after flags, dimensions, name
        if mclass in _MX_CONTAINERS:
            # scipy allocates `count` objects (struct: per field) before reading any; each needs
            # at least an 8-byte tag (a field-less struct: at least a byte) in this element
            per = 8 if mclass == _MX_CELL else 1
            if mclass in (_MX_STRUCT, _MX_OBJECT):
                fields = _struct_fields(buf, body[1:] if mclass == _MX_OBJECT else body, order)
                per = 8 * fields if fields else 1
            if count * per > end - start:
                raise _Unsound(f"matrix at byte {off} declares {count} elements ({'x'.join(map(str, dims))}), "
                               f"more than its {end - start} bytes can hold")
            return
        # numbers, characters, sparse: scipy reads exactly these parts as numbers; a matrix tag
        # there (or a missing part, so that it reads the next element instead) crashes it
        want = 1 + is_complex if mclass != _MX_SPARSE else 3 + is_complex
        if len(body) != want:
            raise _Unsound(f"matrix at byte {off} has {len(body)} data elements, its class {mclass} needs {want}")
        for p_off, p_type, _, _ in body:
            if p_type in (_MI_MATRIX, _MI_COMPRESSED):
                raise _Unsound(f"matrix at byte {off} holds a matrix tag at byte {p_off} where numbers belong")
        if mclass != _MX_SPARSE and count > end - start:
            raise _Unsound(f"matrix at byte {off} declares {count} elements ({'x'.join(map(str, dims))}), "
                           f"more than its {end - start} bytes can hold")

    try:
        elements(data, 128, len(data), 0)
    except _Unsound as e:
        return str(e)
    return None


def _struct_fields(buf: bytes, body: list, order: str) -> int:
    """How many fields a struct's name-length and names elements declare (0 when unreadable:
    scipy then fails on them itself)."""
    if len(body) < 2 or body[0][3] < 4:
        return 0
    namelength = struct.unpack_from(order + "i", buf, body[0][2])[0]
    return body[1][3] // namelength if namelength > 0 else 0


def is_mat_v73(path: Path) -> bool:
    """MATLAB v7.3 files are HDF5 (h5py reads them, scipy does not); their header says so."""
    try:
        with open(path, "rb") as f:
            return b"MATLAB 7.3" in f.read(20)
    except OSError as e:
        raise RawDataError(path, f"cannot read ({e.strerror})") from None


def _v73_header(data: bytes) -> bool:
    """Whether scipy reads the header's version as 7.3 (_miobase._get_matfile_version): it then
    refuses the file from the header alone, saying to use an HDF5 reader, which is the message
    to keep (the v5 walk would only find no v5 elements)."""
    if len(data) < 128 or 0 in data[:4]:
        return False
    return data[124 + (data[126] == ord("I"))] == 2


def loadmat_checked(path: Path, variable_names: list[str] | None = None) -> dict:
    """scipy.io.loadmat behind the tag walk, for every MATLAB v5 file we read: scipy can crash
    the whole process on a damaged file (mat5_structure_problem), and the toolbox files are read
    in the main process. A damaged file is a RawDataError naming it."""
    import scipy.io

    data = read_bytes(path).tobytes()
    if not _v73_header(data) and (problem := mat5_structure_problem(data)):
        raise RawDataError(path, f"not a readable MATLAB file ({problem})")
    try:
        return scipy.io.loadmat(io.BytesIO(data), variable_names=variable_names)
    except Exception as e:  # scipy raises many types for damaged files
        raise RawDataError(path, f"not a readable MATLAB file ({type(e).__name__}: {e})") from None


def read_seg_mat(path: Path) -> tuple[np.ndarray, list[str]]:
    """seg.mat → (seglabel HxW int32, names). Values are 1-based into names, 0 = unlabelled.

    Handles MATLAB v5 (scipy) and v7.3 (HDF5, arrays stored transposed).
    """
    if not path.exists():
        raise RawDataError(path, "file not found")
    if is_mat_v73(path):
        return _read_seg_mat_v73(path)
    m = loadmat_checked(path, variable_names=["seglabel", "names"])
    if "seglabel" not in m:
        raise RawDataError(path, "has no variable 'seglabel'")
    seg = np.asarray(m["seglabel"])
    names = cell_strings(m["names"]) if "names" in m else []
    return check_label_image(path, seg, "seglabel"), names


def _read_seg_mat_v73(path: Path) -> tuple[np.ndarray, list[str]]:
    with h5_file(path) as f:
        if "seglabel" not in f:
            raise RawDataError(path, "has no variable 'seglabel'")
        seg = h5_array(f["seglabel"]).T
        names = []
        if "names" in f:
            names = h5_cell_strings(f, f["names"])
    return check_label_image(path, seg, "seglabel"), names


def check_label_image(path: Path, seg: np.ndarray, what: str) -> np.ndarray:
    """A label image (`what`, as messages name it) as int32 once it is proved to be one: 2-D,
    numbers, whole (MATLAB may save labels as double), not negative, within int32 (a cast
    would wrap uint32 3e9, and NaN or a double 3e9 only warn). A negative label would index
    a name list from its end, or fail later in the converter."""
    if seg.ndim != 2 or seg.size == 0:
        raise RawDataError(path, f"{what} must be a 2-D array, got shape {seg.shape}")
    if seg.dtype.kind not in "biuf":
        raise RawDataError(path, f"{what} must hold numbers, got {seg.dtype.name}")
    if seg.dtype.kind == "f":
        if not np.all(np.isfinite(seg)) or np.any(seg != np.round(seg)):
            raise RawDataError(path, f"{what} holds non-integer values")
    if seg.size and seg.min() < 0:
        raise RawDataError(path, f"{what} holds negative values")
    if seg.max() > np.iinfo(np.int32).max:
        raise RawDataError(path, f"{what} holds values too large to index names")
    return seg.astype(np.int32)


