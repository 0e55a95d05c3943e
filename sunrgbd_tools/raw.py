"""Readers for one raw SUN RGB-D scene folder, written defensively.

Every reader either returns clean data or raises `RawDataError` whose message names the
file and the problem in one line; recoverable oddities are returned as warnings instead.
The real data has all of these: JSON that is not JSON, polygons pointing at missing
objects, seg.mat files of the wrong size, JPEGs that do not decode.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

SENSORS = ("kv1", "kv2", "realsense", "xtion")
DEPTH_MAX_MM = 8000  # the toolbox clips depth at 8 m


class RawDataError(Exception):
    """A raw file is missing or unusable; the message is `<path>: <problem>`."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


# ---------------------------------------------------------------------------- discovery
@dataclass(frozen=True)
class SceneRef:
    """A scene folder: `key` is its path below SUNRGBD/ (e.g. kv2/kinect2data/<scene>)."""

    key: str
    path: Path

    @property
    def sensor(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def sample_id(self) -> str:
        """Stable unique id: the key below the sensor with '/' → '__'."""
        return self.key.split("/", 1)[1].replace("/", "__")


def parse_subset(subset: str) -> tuple[str, ...]:
    """`kv2`, `kv2/align_kv2`, `all`, or a comma list of those → key prefixes."""
    out = []
    for part in subset.split(","):
        part = part.strip().strip("/")
        if not part:
            continue
        if part == "all":
            return SENSORS
        if part.split("/", 1)[0] not in SENSORS:
            raise ValueError(
                f"unknown subset {part!r}; use one of {', '.join(SENSORS)}, all, "
                "or a sub-subset such as kv2/align_kv2"
            )
        out.append(part)
    if not out:
        raise ValueError("empty subset")
    return tuple(out)


def discover_scenes(src: Path, subset: str) -> list[SceneRef]:
    """Scene folders (those holding image/) under `src/SUNRGBD/<subset>`, sorted by key."""
    root = Path(src) / "SUNRGBD"
    if not root.is_dir():
        raise RawDataError(root, "not found (expected the SUNRGBD/ folder of the official zip)")
    scenes: dict[str, SceneRef] = {}
    for prefix in parse_subset(subset):
        base = root / prefix
        if not base.is_dir():
            continue
        for image_dir in base.rglob("image"):
            if not image_dir.is_dir():
                continue
            scene = image_dir.parent
            # fullres/ and other inner folders never hold image/, so this is a scene
            key = scene.relative_to(root).as_posix()
            scenes[key] = SceneRef(key, scene)
    return [scenes[k] for k in sorted(scenes)]


def first_file(folder: Path, pattern: str) -> Path | None:
    files = sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []
    return files[0] if files else None


# ---------------------------------------------------------------------------- rgb, depth
def read_rgb(path: Path) -> np.ndarray:
    """Decode a colour image to RGB uint8 HxWx3."""
    data = np.fromfile(path, dtype=np.uint8) if path.exists() else None
    if data is None:
        raise RawDataError(path, "file not found")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise RawDataError(path, "image does not decode (corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def probe_jpeg(path: Path) -> tuple[int, int]:
    """(height, width) of a JPEG that decodes, without a full-size decode: the header
    gives the size and a 1/8-scale decode (libjpeg still reads every coded block) proves
    the data is usable. For copying source JPEGs unchanged."""
    from PIL import Image, UnidentifiedImageError

    data = np.fromfile(path, dtype=np.uint8) if path.exists() else None
    if data is None:
        raise RawDataError(path, "file not found")
    small = cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8) if data.size else None
    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:
            w, h = im.size
            if im.format != "JPEG":
                raise RawDataError(path, f"is a {im.format} image, not a JPEG")
    except (UnidentifiedImageError, OSError):
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
    if not path.exists():
        raise RawDataError(path, "file not found")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
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
        cam.scene_type = p.read_text(encoding="utf-8", errors="replace").strip()
    return cam


# ---------------------------------------------------------------------------- seg.mat
def _cell_strings(value) -> list[str]:
    """A MATLAB cell array of char (as scipy loads it) → list of str."""
    arr = np.asarray(value, dtype=object).ravel()
    out = []
    for item in arr:
        a = np.asarray(item)
        if a.dtype.kind in "US":
            out.append(str(a.ravel()[0]) if a.size else "")
        elif a.dtype == object and a.size:
            out.extend(_cell_strings(a))
        else:
            out.append("")
    return out


def _h5_string(ds) -> str:
    """A MATLAB char array stored in HDF5 (uint16 code units) → str."""
    codes = np.asarray(ds[()]).ravel()
    return "".join(chr(int(c)) for c in codes if int(c) != 0)


def read_seg_mat(path: Path) -> tuple[np.ndarray, list[str]]:
    """seg.mat → (seglabel HxW int32, names). Values are 1-based into names, 0 = unlabelled.

    Handles MATLAB v5 (scipy) and v7.3 (HDF5, arrays stored transposed).
    """
    if not path.exists():
        raise RawDataError(path, "file not found")
    try:
        with open(path, "rb") as f:
            head = f.read(128)
    except OSError as e:
        raise RawDataError(path, f"cannot read ({e.strerror})") from None
    if b"MATLAB 7.3" in head[:20]:
        return _read_seg_mat_v73(path)
    import scipy.io

    try:
        m = scipy.io.loadmat(str(path), variable_names=["seglabel", "names"])
    except Exception as e:  # scipy raises many types for damaged files
        raise RawDataError(path, f"not a readable MATLAB file ({type(e).__name__}: {e})") from None
    if "seglabel" not in m:
        raise RawDataError(path, "has no variable 'seglabel'")
    seg = np.asarray(m["seglabel"])
    names = _cell_strings(m["names"]) if "names" in m else []
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
                names = [_h5_string(f[r]) for r in refs]
    except OSError as e:
        raise RawDataError(path, f"not a readable MATLAB v7.3 file ({e})") from None
    return _check_seglabel(path, seg, names)


def _check_seglabel(path: Path, seg: np.ndarray, names: list[str]):
    if seg.ndim != 2 or seg.size == 0:
        raise RawDataError(path, f"seglabel must be a 2-D array, got shape {seg.shape}")
    if seg.dtype.kind == "f":
        if not np.all(np.isfinite(seg)) or np.any(seg != np.round(seg)):
            raise RawDataError(path, "seglabel holds non-integer values")
    if seg.size and seg.min() < 0:
        raise RawDataError(path, "seglabel holds negative values")
    return seg.astype(np.int32), names


# ---------------------------------------------------------------------------- index.json
@dataclass
class Polygon:
    x: np.ndarray  # float64 image coordinates (0-based, may lie outside the image)
    y: np.ndarray
    object: int  # 0-based index into Annotation.names


@dataclass
class Annotation:
    names: list[str | None]  # objects[k].name, None for null/{} objects
    polygons: list[Polygon]
    warnings: list[str] = field(default_factory=list)


# A name string whose closing quote is followed by the end of the value.
_NAME_VALUE = re.compile(r'("name"\s*:\s*")(.*?)"(?=\s*[,}\]])', re.S)


def _repair_json(text: str) -> str:
    """Fix the two kinds of broken name strings found in the real index.json files:
    a trailing backslash that escapes the closing quote (`"wall\\"`) and unescaped inner
    quotes (`""propulsion"tool"`). Only name values are touched."""

    def fix(m: re.Match) -> str:
        raw = m.group(2)
        try:
            value = json.loads('"' + raw + '"')
        except json.JSONDecodeError:
            value = raw  # take the characters literally
        return m.group(1)[:-1] + json.dumps(value, ensure_ascii=False)

    return _NAME_VALUE.sub(fix, text)


def _load_json_lenient(path: Path) -> tuple[dict, bool]:
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise RawDataError(path, f"cannot read ({e.strerror})") from None
    try:
        return json.loads(text), False
    except json.JSONDecodeError as first:
        try:
            return json.loads(_repair_json(text)), True
        except json.JSONDecodeError:
            raise RawDataError(
                path, f"not valid JSON (line {first.lineno} column {first.colno}: {first.msg})"
            ) from None


def read_index_json(path: Path) -> Annotation:
    """annotation2Dfinal/index.json → object names and polygons of frame 0, in file order.

    Bad pieces (null objects, dangling indices, non-numeric or too-short polygons) are
    dropped with a warning; a file that cannot be parsed at all raises RawDataError.
    """
    if not path.exists():
        raise RawDataError(path, "file not found")
    doc, repaired = _load_json_lenient(path)
    warnings = [f"{path}: invalid JSON repaired (broken name strings)"] if repaired else []
    if not isinstance(doc, dict):
        raise RawDataError(path, "top level is not a JSON object")
    names: list[str | None] = []
    for obj in doc.get("objects") or []:
        name = obj.get("name") if isinstance(obj, dict) else None
        names.append(name if isinstance(name, str) and name != "" else None)
    frames = doc.get("frames") or []
    frame = frames[0] if frames and isinstance(frames[0], dict) else {}
    polygons: list[Polygon] = []
    bad: dict[str, int] = {}
    for poly in frame.get("polygon") or []:
        if not isinstance(poly, dict):
            bad["not an object"] = bad.get("not an object", 0) + 1
            continue
        k = poly.get("object")
        if not isinstance(k, int) or isinstance(k, bool):
            bad["no object index"] = bad.get("no object index", 0) + 1
            continue
        if not 0 <= k < len(names):
            bad["dangling object index"] = bad.get("dangling object index", 0) + 1
            continue
        if names[k] is None:
            bad["null or nameless object"] = bad.get("null or nameless object", 0) + 1
            continue
        try:
            x = np.asarray(poly.get("x"), dtype=np.float64).ravel()
            y = np.asarray(poly.get("y"), dtype=np.float64).ravel()
        except (TypeError, ValueError):
            bad["non-numeric coordinates"] = bad.get("non-numeric coordinates", 0) + 1
            continue
        if x.size != y.size or x.size < 3:
            bad["fewer than 3 points"] = bad.get("fewer than 3 points", 0) + 1
            continue
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            bad["non-finite coordinates"] = bad.get("non-finite coordinates", 0) + 1
            continue
        polygons.append(Polygon(x, y, k))
    for what, n in sorted(bad.items()):
        warnings.append(f"{path}: {n} polygon(s) skipped: {what}")
    return Annotation(names, polygons, warnings)
