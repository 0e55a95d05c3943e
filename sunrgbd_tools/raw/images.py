"""RGB, depth (the toolbox's bit-rotated millimetres) and camera files of one scene."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from sunrgbd_tools.raw.base import RawDataError, read_bytes

DEPTH_MAX_MM = 8000  # the toolbox clips depth at 8 m


# ---------------------------------------------------------------------------- rgb, depth
def read_rgb(path: Path) -> np.ndarray:
    """Decode a colour image to RGB uint8 HxWx3."""
    data = read_bytes(path)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise RawDataError(path, "image does not decode (corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def probe_jpeg(path: Path) -> tuple[int, int]:
    """(height, width) of a JPEG that decodes, without a full-size decode: the header
    gives the size and a 1/8-scale decode (libjpeg still reads every coded block) proves
    the data is usable. For copying source JPEGs unchanged."""
    from PIL import Image, UnidentifiedImageError

    data = read_bytes(path)
    small = cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8) if data.size else None
    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:
            w, h = im.size
            if im.format != "JPEG":
                raise RawDataError(path, f"is a {im.format} image, not a JPEG")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):  # PIL's ways to say "damaged"
        small = None
    if small is None or small.shape != (-(-h // 8), -(-w // 8)):
        raise RawDataError(path, "image does not decode (corrupt or not an image)")
    return h, w


def decode_depth(raw: np.ndarray) -> np.ndarray:
    """SUN RGB-D depth PNG value → millimetres: rotate right by 3 bits, clip at 8 m."""
    v = raw.astype(np.uint16)
    mm = (v >> 3) | (v << 13)
    return np.minimum(mm, DEPTH_MAX_MM).astype(np.uint16)


def read_depth(path: Path) -> np.ndarray:
    """Decode a SUN RGB-D depth PNG to uint16 millimetres (0 = missing)."""
    data = read_bytes(path)
    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if raw is None:
        raise RawDataError(path, "depth image does not decode")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise RawDataError(path, f"depth must be 16-bit single channel, got {raw.dtype} {raw.shape}")
    return decode_depth(raw)


# ---------------------------------------------------------------------------- camera
def _read_numbers(path: Path, count: int) -> list[float]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise RawDataError(path, f"cannot read ({e.strerror})") from None
    try:
        nums = [float(t) for t in text.split()]
    except ValueError:
        raise RawDataError(path, "holds something other than numbers") from None
    if len(nums) != count or not all(math.isfinite(x) for x in nums):
        raise RawDataError(path, f"expected {count} finite numbers, found {len(nums)}")
    return nums


@dataclass
class Camera:
    intrinsics: list[float] | None = None  # 3x3 row-major
    extrinsics: list[float] | None = None  # 3x4 row-major (the last extrinsics file)
    scene_type: str = ""
    warnings: list[str] = field(default_factory=list)


def read_camera(scene: Path) -> Camera:
    """Intrinsics, the last extrinsics file, and scene.txt; problems become warnings."""
    cam = Camera()
    p = scene / "intrinsics.txt"
    if p.exists():
        try:
            cam.intrinsics = _read_numbers(p, 9)
        except RawDataError as e:
            cam.warnings.append(str(e))
    ext = sorted(q for q in (scene / "extrinsics").glob("*.txt") if q.is_file())
    if ext:
        try:
            cam.extrinsics = _read_numbers(ext[-1], 12)
        except RawDataError as e:
            cam.warnings.append(str(e))
    p = scene / "scene.txt"
    if p.exists():
        try:
            cam.scene_type = p.read_text(encoding="utf-8", errors="replace").strip()
        except OSError as e:
            cam.warnings.append(f"{p}: cannot read ({e.strerror or type(e).__name__})")
    return cam


