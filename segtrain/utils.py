"""Small helpers segtrain shares: PNG I/O, one-line file errors.

Atomic writes come from cleantree.files, the one copy both packages use (segtrain never
imports sunrgbd_tools; both import cleantree).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np

from cleantree.files import atomic_write_bytes, os_cause


class SegtrainError(Exception):
    """A problem with the user's input (paths, files, flags): reported as one line, exit 2."""


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an RGB (H, W, 3) or single-channel array as PNG, atomically."""
    arr = array[:, :, ::-1] if array.ndim == 3 else array  # cv2 wants BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr))
    if not ok:
        raise SegtrainError(f"{path}: could not encode PNG")
    atomic_write_bytes(path, buf.tobytes())


def read_file_bytes(path: str | os.PathLike) -> bytes:
    """A file's bytes, or one SegtrainError naming the file and the plain cause."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SegtrainError(f"{path}: {os_cause(e)}") from None
    if not data:
        raise SegtrainError(f"{path}: empty file")
    return data


# signatures of the formats OpenCV decodes that segtrain reads (PNG, JPEG, BMP, TIFF, WebP
# below; also PNM and JPEG 2000)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", *_TIFF_MAGIC,
                b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"\x00\x00\x00\x0cjP  ", b"\xffO\xffQ")


def check_readable_image(path: str | os.PathLike) -> None:
    """Cheap check before a long job: the file opens and starts like an image
    (reads 16 bytes, decodes nothing). Raises SegtrainError with the plain cause."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise SegtrainError(f"{path}: {os_cause(e)}") from None
    if not head:
        raise SegtrainError(f"{path}: empty file")
    if not (head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")):
        raise SegtrainError(f"{path}: not an image (no PNG/JPEG/BMP/TIFF/WebP/PNM/JPEG 2000 signature)")


def _decode(path, flags: int) -> np.ndarray:
    # cv2.imread is the fast path (reading the bytes in Python first costs 4-16 % of a decode,
    # benchmarks/bench_segtrain_read.py); when it fails, Python reads the file to name the real
    # cause (permission denied, a folder, empty ...), which OpenCV does not tell. Its own
    # "findDecoder" warning is silenced by quiet_opencv() and list_samples' check beforehand.
    arr = cv2.imread(str(path), flags)
    if arr is None:
        data = read_file_bytes(path)
        arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)  # e.g. a path imread cannot open
        if arr is None:
            raise SegtrainError(f"{path}: does not decode as an image (corrupt or not an image format)")
    return arr


def read_rgb(path: str | os.PathLike, exif_orientation: bool = True) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); a clear error when it cannot be read.

    OpenCV turns a JPEG by its EXIF orientation tag (as viewers show it); with
    `exif_orientation=False` the pixels come in the order they are stored (a TIFF too,
    `_read_tiff`)."""
    flags = cv2.IMREAD_COLOR | (0 if exif_orientation else cv2.IMREAD_IGNORE_ORIENTATION)
    if _is_tiff(path):
        return _read_tiff(path, flags, exif_orientation)
    return cv2.cvtColor(_decode(path, flags), cv2.COLOR_BGR2RGB)


def _is_tiff(path) -> bool:
    """Whether the file starts with a TIFF signature (4 bytes read; a file that cannot be
    opened is not one here, and _decode names its problem)."""
    try:
        with open(path, "rb") as f:
            return f.read(4).startswith(_TIFF_MAGIC)
    except OSError:
        return False


def _read_tiff(path, flags: int, upright: bool) -> np.ndarray:
    """A TIFF decoded from its bytes with cv2.imdecode: cv2.imread of one with orientation 5..8
    fails and prints a raw "[ERROR:0@…] imread_ … 'original_ptr == real_mat.data'" block
    (OpenCV 5.0), where imdecode decodes it, turned by its tag. OpenCV applies a TIFF's tag even
    under IMREAD_IGNORE_ORIENTATION (`opencv_turns_tiffs`): unless `upright`, that turn is undone,
    so the pixels are as stored, as for every other format."""
    data = read_file_bytes(path)
    with opencv_silent():  # libtiff's errors on a damaged file: "problem:" names it instead
        arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if arr is None:
        raise SegtrainError(f"{path}: does not decode as an image (corrupt or not an image format)")
    rgb = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if not upright and opencv_turns_tiffs() and (turned := exif_orientation(io.BytesIO(data))) > 1:
        rgb = np.ascontiguousarray(STORED[turned](rgb))
    return rgb


EXIF_ORIENTATION = 0x0112
# EXIF orientation 2..8 -> the transform that turns the stored pixels upright, as cv2.imread does
UPRIGHT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a, 1)}


# the transform that undoes UPRIGHT[o]: 2..5 and 7 are their own inverse, 6 and 8 each other's
STORED = {2: UPRIGHT[2], 3: UPRIGHT[3], 4: UPRIGHT[4], 5: UPRIGHT[5], 6: UPRIGHT[8], 7: UPRIGHT[7], 8: UPRIGHT[6]}


def exif_orientation(file) -> int:
    """The EXIF orientation tag of an image (a path or a binary file object; 1 = as stored, also
    when there is none or Pillow cannot read the file: cv2 decoded it, and no turn of it is known)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # e.g. DecompressionBombWarning: only the header is read
            warnings.simplefilter("ignore")
            with Image.open(file) as im:
                value = im.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # Pillow raises many types for files it cannot parse; the tag is then unknown
        return 1
    return value if isinstance(value, int) and value in UPRIGHT else 1


@functools.cache
def opencv_turns_tiffs() -> bool:
    """Whether OpenCV applies a TIFF's orientation tag even under IMREAD_IGNORE_ORIENTATION
    (5.0 does): probed once on a 2x1 TIFF in memory, so a version that stops doing it is not
    turned back by mistake."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8)).save(buf, format="TIFF",
                                                                               tiffinfo={EXIF_ORIENTATION: 2})
    got = cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return got is not None and int(got[0, 0, 0]) == 0


def read_unchanged(path: str | os.PathLike) -> np.ndarray:
    """Read a label or depth PNG without any conversion (uint8 / uint16, one channel)."""
    arr = _decode(path, cv2.IMREAD_UNCHANGED)
    if arr.ndim != 2:
        raise SegtrainError(f"{path}: expected a single-channel image, got shape {arr.shape}")
    return arr


def quiet_opencv() -> None:
    """OpenCV logs its own warnings ("[ WARN:0@…] …") to the console; segtrain reports the file
    and the cause itself, so only OpenCV's errors stay on (called by the CLI, not on import)."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


_silent_lock = threading.Lock()
_silent = [0, None]  # decodes silenced now, and the log level to restore after the last one


@contextlib.contextmanager
def opencv_silent():
    """OpenCV logs nothing inside: a truncated TIFF makes libtiff print raw "[ERROR:0@…]
    TIFF_Error …" lines before segtrain's own one-line problem. The level is global, so
    overlapping uses (threads) restore it once, after the last."""
    with _silent_lock:
        if _silent[0] == 0:
            _silent[1] = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        _silent[0] += 1
    try:
        yield
    finally:
        with _silent_lock:
            _silent[0] -= 1
            if _silent[0] == 0:
                cv2.utils.logging.setLogLevel(_silent[1])


def check_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """An output folder may be created or written into: it is not an existing file, no
    parent of it is a file, and it (or the nearest parent that exists) is writable. Checked
    before any work, so the error is one line (a run or an eval that took an hour must not end
    in a PermissionError traceback when it writes)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise SegtrainError(f"{p}: exists and is not a folder ({option} names a folder)")
    parent = _check_parents(p, option)
    _check_writable(p, p if p.exists() else parent)
    return p


def check_out_file(path: str | os.PathLike, option: str) -> Path:
    """An output file path: not an existing folder, its parents are folders, and the nearest
    that exists is writable (the file is written atomically beside it; checked before the work)."""
    p = Path(path)
    if p.is_dir():
        raise SegtrainError(f"{p}: is a folder ({option} names a file to write)")
    _check_writable(p, _check_parents(p, option))
    return p


def _check_parents(p: Path, option: str) -> Path:
    """The nearest folder above `p` that exists, spelled as in `p` (the root: itself); a file
    there is refused."""
    spelled = (*p.parents, *p.absolute().parents[len(p.parents):])
    for given, parent in zip(spelled, p.absolute().parents, strict=True):
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise SegtrainError(f"{p}: {parent} is a file, not a folder ({option})")
            return given
    return p  # the root, which has no parent


def _check_writable(p: Path, existing: Path) -> None:
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == p else f" ({existing} is not writable)"
        raise SegtrainError(f"{p}: permission denied, cannot write there{where}")


def load_torch_file(path: str | os.PathLike, what: str = "checkpoint"):
    """torch.load(weights_only=True): tensors and plain containers only, never pickled code.

    Errors are one line in plain words; a file that needs unpickling arbitrary objects is
    refused and the message never suggests turning the safety off."""
    import pickle

    import torch

    head = read_file_bytes(path)[:4]  # missing, unreadable, a folder or empty: the plain cause
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save: a zip archive (legacy: a pickle)
        kind = "a text file" if _looks_like_text(path) else "an unknown format"
        raise SegtrainError(f"{path}: not a loadable {what} ({kind}; torch.save writes a zip archive)")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 62": our error says it better
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "weights_only" in text or "Weights only" in text:
            found = re.search(r"GLOBAL ([\w.]+)", text)
            obj = f" such as {found.group(1)}" if found else ""
            raise SegtrainError(f"{path}: not a loadable {what} (it holds pickled Python objects{obj}, not "
                                "only tensors; refused: unpickling them can run code)") from None
        raise SegtrainError(f"{path}: not a loadable {what} (corrupt pickle data)") from None
    except Exception as e:  # torch raises many types for corrupt / truncated archives
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in first:
            first = type(e).__name__
        raise SegtrainError(f"{path}: not a loadable {what} (corrupt or truncated: {first})") from None


def _looks_like_text(path) -> bool:
    try:
        with open(path, "rb") as f:
            return b"\x00" not in f.read(4096)
    except OSError:
        return False


def parse_hw(text: str | None) -> tuple[int, int] | None:
    """Parse 'HxW' (e.g. 480x640) into (H, W); None/'' stays None."""
    if text is None or text == "" or text == "none":
        return None
    if isinstance(text, list | tuple):
        h, w = (int(v) for v in text)
    else:
        parts = str(text).lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise SegtrainError(f"size {text!r} is not HxW, e.g. 480x640")
        h, w = (int(p) for p in parts)
    if h <= 0 or w <= 0:
        raise SegtrainError(f"size {text!r} must be positive")
    return h, w
