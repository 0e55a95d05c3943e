"""The scene folder's raw files: JPEG, SUN RGB-D depth PNGs, intrinsics/extrinsics text,
index.json (with its planted defects) and seg.mat, in the real files' encodings.

Why: the converter and the peers that read the official zips must not be able to tell
these files from the real ones by format (docs/synthetic.md, "Every scene folder holds").
Encoder settings and MAT headers are fixed, so the same scene gives the same bytes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import scipy.io as sio
from PIL import Image

from cleantree.files import atomic_write_bytes, atomic_write_text
from sunrgbd_tools.synthetic.plan import ScenePlan, plan_scene
from sunrgbd_tools.synthetic.render import render_scene, sensor_depth
from sunrgbd_tools.synthetic.sample_json import SampleParams
from sunrgbd_tools.synthetic.truth import segmat_labels
from sunrgbd_tools.synthetic.vocab import json_name

JPEG_QUALITY = 90
PNG_COMPRESSION = 1  # zlib level; with Z_RLE this is fast and close to the real file sizes

# Fixed MAT-file header text: savemat stamps the current time, which would make the
# bytes differ between runs; MATLAB pads the 116-byte text with spaces.
_V5_HEADER = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Thu Feb 26 14:09:03 2015"


def encode_depth(mm: np.ndarray) -> np.ndarray:
    """Millimetres → SUN RGB-D PNG values: rotate left by 3 bits within 16 bits."""
    v = mm.astype(np.uint32)
    return (((v << 3) | (v >> 13)) & 0xFFFF).astype(np.uint16)


def _png16(a: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", a, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION,
                                       cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _jpeg(rgb: np.ndarray) -> bytes:
    b = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(b, format="JPEG", quality=JPEG_QUALITY, optimize=False,
                                     subsampling=2)
    return b.getvalue()


def cell(strings: list[str], shape: tuple[int, int] | None = None) -> np.ndarray:
    c = np.empty(shape or (1, len(strings)), dtype=object)
    for i, s in enumerate(strings):
        c.flat[i] = s
    return c


def mat_v5_bytes(variables: dict) -> bytes:
    """A MATLAB v5 file (compressed, like the toolbox's) with a fixed header text."""
    b = io.BytesIO()
    sio.savemat(b, variables, do_compression=True, oned_as="row")
    data = bytearray(b.getvalue())
    data[:116] = _V5_HEADER.ljust(116, b" ")
    return bytes(data)


def _numbers(rows: np.ndarray) -> str:
    return "".join(" ".join(f"{v:f}" for v in row) + "\n" for row in rows)


def _unescape_name(text: str, name: str) -> str:
    """Write `name` into the JSON text without escaping, as the broken real files have it."""
    esc = json.dumps(name, ensure_ascii=False)
    return text.replace(f'"name":{esc}', f'"name":"{name}"', 1)


def index_json_text(plan: ScenePlan) -> str:
    """annotation2Dfinal/index.json: compact single-line JSON like the real files."""
    base = "http://vision.princeton.edu/data/dataset/user/shurans@princeton.edu/SUN-RGBD/"
    sub = "b3do" if plan.sensor == "kv1" else f"{plan.sensor}/{plan.subset}"
    K = plan.intrinsics
    polys = []
    for i, p in enumerate(plan.polys):
        depth = p.depth[1] if p.depth[0] == "const" else plan.room.d_back
        xyz = [[round(float((x - K[0, 2]) * depth / K[0, 0]), 6), round(float((y - K[1, 2]) * depth / K[1, 1]), 6),
                round(float(depth), 6)] for x, y in p.pts]
        if "coords_float" in plan.quirks:
            xs, ys = [float(v) for v in p.pts[:, 0]], [float(v) for v in p.pts[:, 1]]
        else:
            xs, ys = [int(v) for v in p.pts[:, 0]], [int(v) for v in p.pts[:, 1]]
        d = {"x": xs, "y": ys, "XYZ": xyz, "object": int(p.obj)}
        if i == 0:
            d["annotator"] = "112.95.194.147"
        polys.append(d)
    doc = {
        "date": plan.date,
        "name": f"{base}{sub}/{plan.name}/annotation2Dfinal/index.json",
        "frames": [{"polygon": polys}],
        "objects": [json_object(o) for o in plan.objects],
        "extrinsics": f"{plan.extrinsics[-1][0]}.txt",
        "conflictList": [None],
        "fileList": [f"{base}{sub}/{plan.name}/image/{plan.frame}.jpg"],
    }
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    if "json_stray_backslash" in plan.quirks:
        text = _unescape_name(text, "wall\\")
    if "json_bad_quotes" in plan.quirks:
        text = _unescape_name(text, '"propulsion"tool')
    return text


def json_object(obj):
    return {"name": json_name(obj["name"])} if isinstance(obj, dict) and isinstance(obj.get("name"), str) else obj


def _corrupt(jpeg: bytes, rng: np.random.Generator) -> bytes:
    """A JPEG that no decoder accepts: the start marker, then noise instead of the header."""
    return jpeg[:2] + rng.integers(0, 256, 1500, dtype=np.uint8).tobytes()


def scene_files(plan: ScenePlan) -> list[str]:
    """Paths (relative to the scene folder) this scene writes; resume checks them."""
    files = [f"image/{plan.frame}.jpg", f"depth_bfx/{plan.depth_file}.png", "intrinsics.txt",
             "scene.txt"] + [f"extrinsics/{s}.txt" for s, _ in plan.extrinsics]
    if plan.has_depth:
        files.append(f"depth/{plan.depth_file}.png")
    if plan.has_polygons:
        files.append("annotation2Dfinal/index.json")
    if plan.has_seg:
        files.append("seg.mat")
    return files


def write_scene(root: Path, params: SampleParams, index: int) -> str:
    """Render and write one scene folder (atomic per file); skips a finished scene."""
    plan = plan_scene(params, index)
    folder = root / "SUNRGBD" / plan.key
    if all((folder / f).is_file() for f in scene_files(plan)):
        return plan.key
    rgb, depth_m = render_scene(plan, params)
    jpeg = _jpeg(rgb)
    if "corrupt_jpeg" in plan.quirks:
        jpeg = _corrupt(jpeg, np.random.default_rng([params.seed, plan.index, 5]))
    raw, bfx = sensor_depth(plan, depth_m, params)
    atomic_write_bytes(folder / "image" / f"{plan.frame}.jpg", jpeg)
    if plan.has_depth:
        atomic_write_bytes(folder / "depth" / f"{plan.depth_file}.png", _png16(encode_depth(raw)))
    atomic_write_bytes(folder / "depth_bfx" / f"{plan.depth_file}.png", _png16(encode_depth(bfx)))
    atomic_write_text(folder / "intrinsics.txt", _numbers(plan.intrinsics))
    for stamp, m in plan.extrinsics:
        atomic_write_text(folder / "extrinsics" / f"{stamp}.txt", _numbers(m))
    atomic_write_text(folder / "scene.txt", plan.scene_type)
    if plan.has_polygons:
        atomic_write_text(folder / "annotation2Dfinal" / "index.json", index_json_text(plan))
    if plan.has_seg:
        lab, names = segmat_labels(plan)
        atomic_write_bytes(folder / "seg.mat", mat_v5_bytes({"seglabel": lab, "names": cell(names)}))
    return plan.key
