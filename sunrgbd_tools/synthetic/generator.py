"""`sunrgbd sample`: a synthetic SUN RGB-D raw tree in the exact on-disk format.

Why: the real dataset is a 6+ GB download, so the converter, stats, downloader and
trainer are developed and tested against this generator. It writes what the official
SUNRGBD.zip and SUNRGBDtoolbox.zip extract to (see docs/contracts.md "Raw tree") and
plants the known defects of the real files (docs/synthetic.md lists them).

Scenes are small 3-D rooms (a pinhole camera looking at a box-shaped room with boxy
furniture) projected to polygons, so images, polygons, seg.mat and depth agree with each
other, and every class has a consistent look a small model can learn.

Everything is a pure function of (seed, scene index): scene content does not depend on
how many scenes are generated, and the same arguments give byte-identical files.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import h5py
import numpy as np
import scipy.io as sio
from PIL import Image

from cleantree.files import atomic_path, atomic_write_bytes, atomic_write_text, dumps_json
from sunrgbd_tools import __version__
from sunrgbd_tools.parallel import pool_context
from sunrgbd_tools.synthetic.zips import RAW_ZIPS

SCHEMA_VERSION = 1
# Bumped whenever the same arguments would give different scenes (looks, furniture, scene
# mix), so a resumed run never mixes scenes of two generator revisions. 2: distinct looks for
# room-mates, bigger sinks/paper/shelves, more bathrooms and kitchens. 3: allsplit.mat
# trailing slashes follow the real file and SUNRGBDMeta paths carry the matching '//'.
# 4: SUNRGBD2Dseg.mat's seglabel follows the generator's own official mapping
# (OFFICIAL_DIFFERENCES, OFFICIAL_BY_SCENE_TYPE). 5: index.json names have no spaces, as in
# every real index.json (`nightstand`; seg.mat keeps `night stand`).
GENERATOR_REVISION = 5
SAMPLE_FILE = "SAMPLE.json"
KV2_SIZE = (530, 730)  # (H, W) of kv2 image/ and depth/ files
KV1_SIZE = (427, 561)  # (H, W) of kv1 (b3dodata) files
MACHINE_PREFIX = "/n/fs/sun3d/data/"  # the official toolbox's path prefix
JPEG_QUALITY = 90
PNG_COMPRESSION = 1  # zlib level; with Z_RLE this is fast and close to the real file sizes
_SHIFT = 4  # polygons are filled with 1/16-pixel fixed point, like the converter

# Fixed MAT-file header texts: savemat stamps the current time, which would make the
# bytes differ between runs; MATLAB pads the 116-byte text with spaces.
_V5_HEADER = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Thu Feb 26 14:09:03 2015"
_V73_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Feb 26 14:12:51 2015 "
    b"HDF5 schema 1.00 ."
)

# The official seg37list order (= mappings/classes.csv ids 1..37).
SEG37 = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
    "bookshelf", "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser",
    "pillow", "mirror", "floor_mat", "clothes", "ceiling", "books", "fridge", "tv", "paper",
    "towel", "shower_curtain", "box", "whiteboard", "person", "night_stand", "toilet", "sink",
    "lamp", "bathtub", "bag",
)

# Real raw names (column `original_labels` of crmauceri/SUNRGBD_COCO seglistall.csv; the
# test checks each one occurs there). Row: (name, kind it is drawn as, relative frequency
# among that kind's names, its seg37 id in the official toolbox mapping of that CSV).
# Clean names dominate; misspellings, synonyms and odd characters appear now and then.
VOCAB: tuple[tuple[str, str, int, int], ...] = (
    ("wall", "wall", 30, 1), ("wal;l", "wall", 1, 0),
    ("floor", "floor", 30, 2), ("fl;oor", "floor", 1, 0), ("flore", "floor", 1, 0),
    ("ceiling", "ceiling", 20, 22), ("ceilign", "ceiling", 1, 0),
    ("bed", "bed", 1, 4), ("headboard", "headboard", 1, 0),
    ("chair", "chair", 14, 5), ("charir", "chair", 1, 0), ("chaier", "chair", 1, 0),
    ("table", "table", 14, 7), ("tablr", "table", 1, 0),
    ("sofa", "sofa", 12, 6), ("sofas", "sofa", 1, 0), ("sofaa", "sofa", 1, 0),
    ("door", "door", 1, 8),
    ("window", "window", 1, 9),
    ("bookshelf", "bookshelf", 8, 10), ("bookcase", "bookshelf", 3, 0),
    ("book_case", "bookshelf", 1, 0), ("bookshelve", "bookshelf", 1, 0),
    ("picture", "picture", 10, 11), ("pictur", "picture", 1, 0), ("painting", "picture", 3, 0),
    ('drawing_"hi_guys"', "picture", 1, 0),
    ("lamp", "lamp", 10, 35), ("table_light", "lamp", 1, 0),
    ("pillow", "pillow", 10, 18), ("pillw", "pillow", 1, 0), ("piloow", "pillow", 1, 0),
    ("cushion", "pillow", 2, 0),
    ("desk", "desk", 1, 14),
    ("cabinet", "cabinet", 8, 3), ("cupboard", "cabinet", 2, 0),
    ("tv", "tv", 6, 25), ("television", "tv", 2, 0),
    ("box", "box", 1, 29),
    ("books", "books", 10, 23), ("book", "books", 3, 0), ("boks", "books", 1, 0),
    ("book'", "books", 1, 0),
    ("night_stand", "night_stand", 5, 32), ("night stand", "night_stand", 3, 0),
    ("dresser", "dresser", 1, 17),
    ("curtain", "curtain", 1, 16),
    ("mirror", "mirror", 1, 19),
    ("floor_mat", "floor_mat", 3, 20), ("floor mat", "floor_mat", 3, 0), ("rug", "floor_mat", 2, 0),
    ("counter", "counter", 1, 12),
    ("sink", "sink", 1, 34),
    ("toilet", "toilet", 1, 33),
    ("towel", "towel", 8, 27), ("towe;l", "towel", 1, 0),
    ("bathtub", "bathtub", 1, 36),
    ("whiteboard", "whiteboard", 1, 30),
    ("fridge", "fridge", 4, 24), ("refridgerator", "fridge", 1, 0),
    ("paper", "paper", 1, 26),
    ("bag", "bag", 4, 37), ("backpack", "bag", 2, 0),
    ("shelves", "shelves", 4, 15), ("shelf", "shelves", 4, 0), ("shelf'", "shelves", 1, 0),
    ("blinds", "blinds", 1, 13),
    ("clothes", "clothes", 1, 21),
    ("monitor", "monitor", 8, 0), ("computer_monitor", "monitor", 1, 0),
    ("monitior", "monitor", 1, 0), ("computer", "monitor", 2, 0),
    ("laptop", "laptop", 1, 0),
    ("cpu", "cpu", 4, 0), ("computer_tower", "cpu", 2, 0),
    ("keyboard", "keyboard", 1, 0),
    ("mouse", "mouse", 1, 0),
    ("plant", "plant", 1, 0),
    ("bottle", "bottle", 1, 0),
    ("cup", "cup", 1, 0),
    ("vase", "vase", 1, 0),
    ("garbage_bin", "garbage_bin", 4, 0), ("garbage bin", "garbage_bin", 2, 0),
    ("clock", "clock", 1, 0),
    ("sign", "sign", 4, 0), ("brown_desk_tag_#", "sign", 1, 0),
    ("outlet", "outlet", 1, 0),
    ("pillar", "pillar", 4, 0), ("pillar_#", "pillar", 1, 0),
    ("speaker", "speaker", 1, 0),
    ("printer", "printer", 1, 0),
    ("telephone", "telephone", 1, 0),
    ("stool", "stool", 1, 0),
    ("ottoman", "ottoman", 1, 0),
    ("unknown", "unknown", 3, 0), ("magic 8ball", "unknown", 1, 0),
)
OBJECT_NAMES: tuple[str, ...] = tuple(dict.fromkeys(v[0] for v in VOCAB))
# Names that only occur in the planted broken index.json files: written unescaped they
# make the file invalid JSON ("wall\" and ""propulsion"tool"), as in the real dataset.
QUIRK_NAMES: tuple[str, ...] = ("wall\\", '"propulsion"tool')
EMITTED_NAMES: tuple[str, ...] = OBJECT_NAMES + QUIRK_NAMES
OFFICIAL_SEG37: dict[str, int] = {v[0]: v[3] for v in VOCAB} | {"wall\\": 1, '"propulsion"tool': 0}
# The generator's own official mapping differs from VOCAB's column on purpose, so that
# `sunrgbd mapping audit` has disagreements with our tables to find (docs/synthetic.md):
# a name the official labels put in another seg37 class than ours, names we leave to Other
# that they label, a synonym they agree on, and one name whose official class depends on
# the scene type (no clear majority). Targets are seg37 names, resolved through SEG37.
OFFICIAL_DIFFERENCES: dict[str, str] = {
    "cushion": "sofa", "stool": "chair", "pillar": "wall", "bookcase": "bookshelf",
}
OFFICIAL_BY_SCENE_TYPE: dict[str, tuple[str, dict[str, str]]] = {
    "shelf": ("shelves", {"office": "bookshelf", "classroom": "bookshelf", "living_room": "bookshelf"}),
}
_NAMES_OF_KIND: dict[str, tuple[list[str], np.ndarray]] = {}
for _name, _kind, _w, _ in VOCAB:
    _NAMES_OF_KIND.setdefault(_kind, ([], []))
    _NAMES_OF_KIND[_kind][0].append(_name)
    _NAMES_OF_KIND[_kind][1].append(_w)
_NAMES_OF_KIND = {k: (n, np.asarray(w, float) / sum(w)) for k, (n, w) in _NAMES_OF_KIND.items()}
del _name, _kind, _w

# Planted defects, each in one kv2 scene from index QUIRK_OFFSET on (so 11 scenes suffice).
QUIRK_OFFSET = 2
QUIRK_PLAN: tuple[tuple[str, ...], ...] = (
    ("coords_float", "no_depth"),
    ("null_objects", "dangling_object"),
    ("json_stray_backslash",),
    ("json_bad_quotes",),
    ("no_segmat",),
    ("unlabelled",),
    ("segmat_size_mismatch",),
    ("corrupt_jpeg",),
    ("no_split",),
)
QUIRKS: tuple[str, ...] = tuple(q for qs in QUIRK_PLAN for q in qs)
_FIRST_SPLITS = ("train", "test", "val", "test", "train", "val", "test", "train",
                 "test", "val", "train", "test", "train", "val", "test", "test")
SCENE_TYPES = ("office", "bedroom", "living_room", "kitchen", "bathroom", "classroom")
# roughly the kv2 mix, with bathrooms and kitchens frequent enough that their classes
# (toilet, bathtub, sink, mirror, towel, fridge, counter) occur in a small sample's val split
_SCENE_P = (0.24, 0.22, 0.16, 0.14, 0.12, 0.12)
_SERIALS = ("260595134347", "094959634447")


# ----------------------------------------------------------------------------- config/info


@dataclass(frozen=True)
class SampleParams:
    """Arguments of one `sunrgbd sample` run; SAMPLE.json stores them as `args`."""

    scenes: int = 40
    seed: int = 0
    quirks: bool = True
    size: tuple[int, int] = KV2_SIZE

    def __post_init__(self):
        if self.scenes < 1:
            raise ValueError(f"scenes must be >= 1, got {self.scenes}")
        if len(self.size) != 2 or min(self.size) < 32:
            raise ValueError(f"size must be two numbers >= 32 (H, W), got {self.size}")
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))

    def to_json(self) -> dict:
        return {"scenes": self.scenes, "seed": self.seed, "quirks": self.quirks,
                "size": list(self.size)}

    @classmethod
    def from_json(cls, d: dict) -> SampleParams:
        return cls(int(d["scenes"]), int(d["seed"]), bool(d["quirks"]), tuple(d["size"]))


@dataclass
class SceneInfo:
    """What SAMPLE.json says about one scene (tests use it as ground truth)."""

    index: int
    key: str  # path below SUNRGBD/, e.g. kv2/kinect2data/<scene>
    sensor: str
    split: str  # train / val / test / none
    image: str  # path of the RGB file relative to <out>
    size: tuple[int, int]  # (H, W) of the image
    scene_type: str
    labels: list[str]  # label files present: "seg" (seg.mat), "polygons" (index.json)
    quirks: list[str]
    names: list[str]  # object names painted in the scene (= seg.mat names)
    official_index: int  # 1-based entry in SUNRGBDMeta / SUNRGBD2Dseg
    intrinsics: list[float]  # 9 numbers, row-major
    extrinsics: list[float]  # 12 numbers of the last extrinsics file
    extrinsics_files: list[str]
    depth: bool  # depth/ written

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["size"] = list(self.size)
        return d

    @classmethod
    def from_json(cls, d: dict) -> SceneInfo:
        d = dict(d)
        d["size"] = tuple(d["size"])
        return cls(**d)


@dataclass
class SampleInfo:
    """The content of SAMPLE.json: arguments and per-scene facts."""

    params: SampleParams
    scenes: list[SceneInfo] = field(default_factory=list)
    complete: bool = True

    def scene(self, key: str) -> SceneInfo:
        for s in self.scenes:
            if s.key == key:
                return s
        raise KeyError(f"no scene {key!r} in this sample")

    def to_json(self) -> dict:
        counts = {s: sum(1 for x in self.scenes if x.split == s)
                  for s in ("train", "val", "test", "none")}
        return {
            "schema_version": SCHEMA_VERSION,
            "generator": {"tool": "sunrgbd-tools", "version": __version__,
                          "revision": GENERATOR_REVISION,
                          "command": "sunrgbd sample"},
            "complete": self.complete,
            "args": self.params.to_json(),
            "split_counts": counts,
            "scenes": [s.to_json() for s in self.scenes],
        }

    @classmethod
    def from_json(cls, d: dict) -> SampleInfo:
        return cls(SampleParams.from_json(d["args"]),
                   [SceneInfo.from_json(s) for s in d.get("scenes", [])],
                   bool(d.get("complete", False)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> SampleInfo:
        """Read SAMPLE.json (pass the file or the folder holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / SAMPLE_FILE
        return cls.from_json(json.loads(p.read_text(encoding="utf-8")))


class SampleConflict(Exception):
    """The output folder holds a raw tree this run must not overwrite."""


# ----------------------------------------------------------------------------- geometry


@dataclass
class Room:
    """Pinhole camera in a box room: X right, Y up from the floor, Z forward (metres)."""

    H: int
    W: int
    f: float
    cx: float
    yh: float  # image row of the horizon
    cam_h: float  # camera height above the floor
    wall_h: float
    d_back: float  # distance of the back wall
    left: float  # X of the left wall (negative)
    right: float  # X of the right wall

    def proj(self, X, Y, Z):
        Z = np.maximum(np.asarray(Z, float), 0.05)
        return self.cx + self.f * np.asarray(X, float) / Z, self.yh + self.f * (self.cam_h - np.asarray(Y, float)) / Z

    def visible_x(self, Z: float, w: float) -> tuple[float, float]:
        """X range for an object of width w at depth Z that keeps its centre in view."""
        lo = max(self.left + w / 2 + 0.02, -(self.cx - 0.05 * self.W) * Z / self.f)
        hi = min(self.right - w / 2 - 0.02, (0.95 * self.W - self.cx) * Z / self.f)
        return (lo, hi) if lo < hi else ((lo + hi) / 2, (lo + hi) / 2)


@dataclass
class Box:
    x0: float
    x1: float
    y0: float
    y1: float
    z0: float
    z1: float


@dataclass
class Poly:
    """One annotation polygon plus what the renderer needs to draw it."""

    pts: np.ndarray  # (n, 2) coordinates as written to index.json (int or float)
    obj: int  # polygon.object (0-based; may dangle in a quirk scene)
    kind: str  # appearance
    look: int  # per-instance appearance seed
    depth: tuple  # ("const", z) | ("back",) | ("left",) | ("right",) | ("floor",) | ("ceil",)
    shade: list = field(default_factory=list)  # [(pts, factor)] faces drawn darker/lighter


@dataclass
class ScenePlan:
    index: int
    sensor: str
    subset: str
    name: str
    frame: str  # image file stem
    depth_file: str
    size: tuple[int, int]
    split: str
    slash: bool  # trailing slash in allsplit.mat
    scene_type: str
    quirks: tuple[str, ...]
    objects: list  # index.json objects: {"name": ...}, None or {}
    names_intended: list[str]  # object names before any quirk
    polys: list[Poly]
    room: Room
    intrinsics: np.ndarray
    extrinsics: list[tuple[str, np.ndarray]]
    date: str
    wall_rgb: tuple[int, int, int]
    floor_look: str

    @property
    def key(self) -> str:
        return f"{self.sensor}/{self.subset}/{self.name}"

    @property
    def has_seg(self) -> bool:
        return not ({"no_segmat", "unlabelled", "json_stray_backslash"} & set(self.quirks))

    @property
    def has_polygons(self) -> bool:
        return "unlabelled" not in self.quirks

    @property
    def has_depth(self) -> bool:
        return "no_depth" not in self.quirks


def _kind_name(rng: np.random.Generator, kind: str) -> str:
    names, p = _NAMES_OF_KIND[kind]
    return names[int(rng.choice(len(names), p=p))] if len(names) > 1 else names[0]


def _hull(pts: np.ndarray) -> np.ndarray:
    h = cv2.convexHull(pts.astype(np.float32))
    return h.reshape(-1, 2).astype(float)


def _box_faces(room: Room, b: Box) -> tuple[np.ndarray, list]:
    """Silhouette of a box and its visible top/side faces (for shading)."""
    X = np.array([b.x0, b.x1, b.x1, b.x0, b.x0, b.x1, b.x1, b.x0])
    Y = np.array([b.y0, b.y0, b.y1, b.y1, b.y0, b.y0, b.y1, b.y1])
    Z = np.array([b.z0, b.z0, b.z0, b.z0, b.z1, b.z1, b.z1, b.z1])
    x, y = room.proj(X, Y, Z)
    p = np.stack([x, y], 1)
    faces = []
    if b.y1 < room.cam_h - 0.05 and b.z1 > b.z0:  # top seen from above
        faces.append((p[[3, 2, 6, 7]], 1.13))
    if b.z1 > b.z0 + 0.01:
        if b.x1 < -0.05:  # right side faces the camera
            faces.append((p[[1, 2, 6, 5]], 0.80))
        elif b.x0 > 0.05:
            faces.append((p[[0, 3, 7, 4]], 0.80))
    return _hull(p), faces


def _outline(parts: list[np.ndarray]) -> np.ndarray:
    """One polygon around the union of part polygons (annotators draw one outline)."""
    if len(parts) == 1:
        return parts[0]
    allp = np.concatenate(parts)
    lo = np.floor(allp.min(0)) - 2
    hi = np.ceil(allp.max(0)) + 2
    span = hi - lo
    scale = min(1.0, 1500.0 / max(span.max(), 1.0))
    size = np.ceil(span * scale).astype(int) + 1
    canvas = np.zeros((size[1], size[0]), np.uint8)
    for p in parts:
        cv2.fillPoly(canvas, [np.round((p - lo) * scale).astype(np.int32)], 1)
    contours, _ = cv2.findContours(canvas, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = max(contours, key=cv2.contourArea)
    c = cv2.approxPolyDP(c, 0.8, True).reshape(-1, 2).astype(float)
    return c / scale + lo


class _Builder:
    """Collects objects and polygons of one scene in paint order."""

    def __init__(self, rng: np.random.Generator, room: Room):
        self.rng = rng
        self.room = room
        self.objects: list[str] = []
        self.polys: list[Poly] = []
        self.groups: list[tuple[float, list[Poly]]] = []  # floor groups, sorted later

    def new_object(self, kind: str, name: str | None = None) -> int:
        self.objects.append(name or _kind_name(self.rng, kind))
        return len(self.objects) - 1

    def poly(self, obj: int, kind: str, pts, depth, shade=None) -> Poly:
        return Poly(np.asarray(pts, float), obj, kind, int(self.rng.integers(1 << 30)), depth,
                    shade or [])

    def boxes(self, kind: str, boxes: list[Box], name: str | None = None, obj: int | None = None,
              depth: float | None = None) -> Poly:
        sil, faces = [], []
        for b in boxes:
            s, f = _box_faces(self.room, b)
            sil.append(s)
            faces += f
        k = self.new_object(kind, name) if obj is None else obj
        z = depth if depth is not None else min(b.z0 for b in boxes)
        return self.poly(k, kind, _outline(sil), ("const", z), faces)

    def on_wall(self, kind: str, wall: str, a: float, b: float, y0: float, y1: float,
                name: str | None = None, circle: bool = False, obj: int | None = None) -> Poly:
        """A flat item on a wall; (a, b) is the X range on the back wall or Z on a side."""
        r = self.room
        if circle:
            t = np.linspace(0, 2 * np.pi, 14, endpoint=False)
            u = (a + b) / 2 + (b - a) / 2 * np.cos(t)
            v = (y0 + y1) / 2 + (y1 - y0) / 2 * np.sin(t)
        else:
            u = np.array([a, b, b, a])
            v = np.array([y0, y0, y1, y1])
        if wall == "back":
            x, y = r.proj(u, v, np.full_like(u, r.d_back - 0.01))
            depth = ("const", r.d_back - 0.01)
        else:
            X = r.left + 0.01 if wall == "left" else r.right - 0.01
            x, y = r.proj(np.full_like(u, X), v, u)
            depth = (wall,)
        kind_depth = ("far",) if kind == "window" else depth
        k = self.new_object(kind, name) if obj is None else obj
        return self.poly(k, kind, np.stack([x, y], 1), kind_depth)


def _room(rng: np.random.Generator, H: int, W: int, f: float, cx: float, deep: float) -> Room:
    cam_h = rng.uniform(1.15, 1.5)
    wall_h = rng.uniform(2.5, 3.1)
    yh = H * rng.uniform(0.28, 0.46)
    d_min = max(2.6, f * cam_h / (0.86 * H - yh))  # keep the floor line inside the image
    d_back = max(d_min, rng.uniform(2.8, 5.2) + deep)
    half = rng.uniform(1.4, 2.8)
    shift = rng.uniform(-0.8, 0.8)
    return Room(H, W, f, cx, yh, cam_h, wall_h, d_back, -half + shift, half + shift)


def _layout(bld: _Builder, name_wall: str | None) -> None:
    """Wall(s), floor and ceiling polygons; they reach past the image border like the real
    ones (plan_scene clips every polygon to a margin around the image)."""
    r = bld.room
    L, R = -2.0 * r.W, 3.0 * r.W
    xl = r.cx + r.f * r.left / r.d_back  # back-wall corners
    xr = r.cx + r.f * r.right / r.d_back
    yf = r.yh + r.f * r.cam_h / r.d_back
    yc = r.yh - r.f * (r.wall_h - r.cam_h) / r.d_back

    def side_line(xc, x_edge, y_at_corner):
        # wall/floor and wall/ceiling edges run from the corner away from the horizon
        return r.yh + (y_at_corner - r.yh) * (r.cx - x_edge) / (r.cx - xc)

    wall = bld.new_object("wall", name_wall)
    has_l, has_r = xl > -0.02 * r.W, xr < 1.02 * r.W
    xl_, xr_ = (xl if has_l else L), (xr if has_r else R)
    bld.polys.append(bld.poly(wall, "wall", [(xl_, yc), (xr_, yc), (xr_, yf), (xl_, yf)], ("back",)))
    for has, xc, edge, side in ((has_l, xl, L, "left"), (has_r, xr, R, "right")):
        if has:
            w2 = wall if bld.rng.random() < 0.6 else bld.new_object("wall", name_wall)
            quad = [(edge, side_line(xc, edge, yc)), (xc, yc), (xc, yf), (edge, side_line(xc, edge, yf))]
            bld.polys.append(bld.poly(w2, "wall", quad, (side,)))
    fl_l = side_line(xl, L, yf) if has_l else yf
    fl_r = side_line(xr, R, yf) if has_r else yf
    bottom = max(fl_l, fl_r, 3.0 * r.H) + 10
    fl = [(xl_, yf), (xr_, yf), (R, fl_r), (R, bottom), (L, bottom), (L, fl_l)]
    bld.polys.append(bld.poly(bld.new_object("floor"), "floor", fl, ("floor",)))
    if yc > 0.02 * r.H:
        cl_l = side_line(xl, L, yc) if has_l else yc
        cl_r = side_line(xr, R, yc) if has_r else yc
        top = min(cl_l, cl_r, -2.0 * r.H) - 10
        cl = [(L, top), (R, top), (R, cl_r), (xr_, yc), (xl_, yc), (L, cl_l)]
        bld.polys.append(bld.poly(bld.new_object("ceiling"), "ceiling", cl, ("ceil",)))


def _clip(pts: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a polygon to a rectangle (which contains the image, so
    the painted pixels do not change)."""
    out = np.asarray(pts, float)
    for axis, lim, keep_ge in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if len(out) == 0:
            break
        res = []
        prev = out[-1]
        for cur in out:
            cin = cur[axis] >= lim if keep_ge else cur[axis] <= lim
            pin = prev[axis] >= lim if keep_ge else prev[axis] <= lim
            if cin != pin:
                t = (lim - prev[axis]) / (cur[axis] - prev[axis])
                res.append(prev + t * (cur - prev))
            if cin:
                res.append(cur)
            prev = cur
        out = np.array(res, float).reshape(-1, 2)
    return out


# --- furniture: each returns a list of polygons (support first, then things on it)


def _chair(b: _Builder, X: float, Z: float, face_back: bool = False) -> list[Poly]:
    w, d, s = 0.46, 0.46, b.rng.uniform(0.9, 1.1)
    w, d = w * s, d * s
    lw = 0.05
    zb = (Z, Z + 0.05) if face_back else (Z + d - 0.05, Z + d)
    parts = [
        Box(X - w / 2, X + w / 2, 0.42, 0.48, Z, Z + d),
        Box(X - w / 2, X - w / 2 + lw, 0, 0.42, Z, Z + lw),
        Box(X + w / 2 - lw, X + w / 2, 0, 0.42, Z, Z + lw),
        Box(X - w / 2 + 0.02, X + w / 2 - 0.02, 0.48, 0.95 * s, *zb),
    ]
    return [b.boxes("chair", parts)]


def _table(b: _Builder, kind: str, X: float, Z: float, w: float, d: float, h: float,
           pedestal: bool = False) -> tuple[Poly, Box]:
    top = Box(X - w / 2, X + w / 2, h - 0.04, h, Z, Z + d)
    lw = 0.05
    parts = [top, Box(X - w / 2, X - w / 2 + lw, 0, h, Z, Z + lw),
             Box(X + w / 2 - lw, X + w / 2, 0, h, Z, Z + lw)]
    if pedestal:
        parts.append(Box(X - w / 2, X - w / 2 + 0.4, 0, h, Z, Z + d))
    return b.boxes(kind, parts), top


def _on_top(b: _Builder, top: Box, kinds: Iterable[str]) -> list[Poly]:
    """Small things standing on a surface (desk, table, counter, night stand)."""
    out = []
    rng = b.rng
    sizes = {"monitor": (0.52, 0.2, 0.42), "laptop": (0.34, 0.24, 0.24), "keyboard": (0.44, 0.15, 0.03),
             "mouse": (0.07, 0.11, 0.04), "paper": (0.22, 0.3, 0.03), "books": (0.2, 0.26, 0.12),
             "cup": (0.08, 0.08, 0.1), "telephone": (0.18, 0.2, 0.1), "lamp": (0.3, 0.3, 0.55),
             "bottle": (0.08, 0.08, 0.26), "vase": (0.14, 0.14, 0.3), "box": (0.35, 0.28, 0.22),
             "sink": (0.5, 0.38, 0.12), "tv": (1.0, 0.22, 0.62), "speaker": (0.18, 0.2, 0.3),
             "printer": (0.45, 0.4, 0.25), "unknown": (0.15, 0.15, 0.15)}
    for kind in kinds:
        w, d, h = sizes[kind]
        s = rng.uniform(0.85, 1.15)
        w, d, h = w * s, d * s, h * s
        if top.x1 - top.x0 < w + 0.02 or top.z1 - top.z0 < d + 0.01:
            continue
        x = rng.uniform(top.x0 + w / 2 + 0.01, top.x1 - w / 2 - 0.01)
        z = rng.uniform(top.z0 + 0.01, top.z1 - d - 0.005) if kind not in ("monitor", "tv") \
            else top.z1 - d - 0.02
        y = top.y1
        if kind in ("monitor", "tv"):
            parts = [Box(x - w / 2, x + w / 2, y + 0.12, y + 0.12 + h, z + d - 0.04, z + d),
                     Box(x - 0.03, x + 0.03, y, y + 0.13, z + d - 0.06, z + d - 0.03),
                     Box(x - 0.12, x + 0.12, y, y + 0.02, z, z + d)]
        elif kind == "laptop":
            parts = [Box(x - w / 2, x + w / 2, y, y + 0.02, z, z + d),
                     Box(x - w / 2, x + w / 2, y, y + h, z + d - 0.01, z + d)]
        elif kind == "lamp":
            parts = [Box(x - 0.08, x + 0.08, y, y + 0.03, z + 0.07, z + 0.23),
                     Box(x - 0.015, x + 0.015, y, y + 0.32 * s, z + 0.14, z + 0.16),
                     Box(x - w / 2, x + w / 2, y + 0.3 * s, y + h, z, z + d)]
        else:
            parts = [Box(x - w / 2, x + w / 2, y, y + h, z, z + d)]
        out.append(b.boxes(kind, parts, depth=z))
    return out


def _floor_box(b: _Builder, kind: str, X: float, Z: float, w: float, d: float, h: float,
               y0: float = 0.0) -> tuple[Poly, Box]:
    bx = Box(X - w / 2, X + w / 2, y0, y0 + h, Z, Z + d)
    return b.boxes(kind, [bx]), bx


def _place(b: _Builder, w: float, d: float, against: bool, zmin: float = 1.2) -> tuple[float, float]:
    r = b.room
    if against:
        Z = r.d_back - d - b.rng.uniform(0.0, 0.06)
    else:
        Z = b.rng.uniform(zmin, max(zmin, r.d_back - d - 0.5))
    Z = max(Z, 0.9)
    lo, hi = r.visible_x(Z, w)
    return b.rng.uniform(lo, hi), Z


def _add_group(b: _Builder, polys: list[Poly]) -> None:
    if polys:
        b.groups.append((polys[0].depth[1] if polys[0].depth[0] == "const" else 99.0, polys))


def _wall_items(b: _Builder, st: str) -> None:
    r, rng = b.room, b.rng
    back_lo, back_hi = r.left + 0.3, r.right - 0.3

    def span(w):
        lo, hi = r.visible_x(r.d_back, w)
        lo, hi = max(lo, back_lo), min(hi, back_hi)
        x = rng.uniform(lo, hi) if lo < hi else (lo + hi) / 2
        return x - w / 2, x + w / 2

    def side_span(depth_len):
        z0 = rng.uniform(max(1.2, r.d_back - 2.5), max(1.3, r.d_back - depth_len - 0.1))
        return z0, z0 + depth_len

    if rng.random() < 0.8:  # window, maybe with blinds or curtains
        side = rng.choice(["back", "left", "right"], p=[0.5, 0.25, 0.25])
        ww, wh = rng.uniform(0.9, 1.6), rng.uniform(1.0, 1.4)
        a, c = span(ww) if side == "back" else side_span(ww)
        b.polys.append(b.on_wall("window", side, a, c, 0.9, 0.9 + wh))
        deco = rng.random()
        if deco < 0.3:
            b.polys.append(b.on_wall("blinds", side, a, c, 0.9 + wh * rng.uniform(0.35, 0.7), 0.9 + wh))
        elif deco < 0.65 and st != "classroom":
            cw = 0.25 * ww
            b.polys.append(b.on_wall("curtain", side, a - cw * 0.6, a + cw * 0.4, 0.2, 0.9 + wh + 0.1))
            # the second panel: the same object (60%) or another one with the same name
            same = b.polys[-1].obj if rng.random() < 0.6 else b.new_object("curtain", b.objects[-1])
            b.polys.append(b.on_wall("curtain", side, c - cw * 0.4, c + cw * 0.6, 0.2, 0.9 + wh + 0.1,
                                     obj=same))
    if rng.random() < 0.6:
        side = rng.choice(["back", "left", "right"], p=[0.4, 0.3, 0.3])
        a, c = span(0.9) if side == "back" else side_span(0.9)
        b.polys.append(b.on_wall("door", side, a, c, 0.0, 2.05))
    if st == "classroom" or (st == "office" and rng.random() < 0.45):
        w = rng.uniform(1.6, 2.6)
        a, c = span(w)
        b.polys.append(b.on_wall("whiteboard", "back", a, c, 0.9, 0.9 + w * 0.45))
    if st in ("office", "classroom"):  # notices pinned on the wall (or the whiteboard)
        for _ in range(int(rng.integers(0, 3))):
            a, c = span(0.21)
            y0 = rng.uniform(1.2, 1.6)
            b.polys.append(b.on_wall("paper", "back", a, c, y0, y0 + 0.3))
    n_pic = {"bedroom": 2, "living_room": 3, "office": 1, "kitchen": 1}.get(st, 0)
    for _ in range(int(rng.integers(0, n_pic + 1))):
        w = rng.uniform(0.35, 0.9)
        a, c = span(w)
        y0 = rng.uniform(1.25, 1.6)
        b.polys.append(b.on_wall("picture", "back", a, c, y0, y0 + w * rng.uniform(0.6, 1.0)))
    if rng.random() < 0.35:
        a, c = span(0.3)
        b.polys.append(b.on_wall("clock", "back", a, c, 2.0, 2.3, circle=True))
    if rng.random() < 0.3:
        a, c = span(0.35)
        b.polys.append(b.on_wall("sign", "back", a, c, 1.5, 1.75))
    if rng.random() < 0.5:
        a, c = span(0.08)
        b.polys.append(b.on_wall("outlet", "back", a, c, 0.3, 0.42))
    if rng.random() < 0.25:  # a pillar in a back corner
        X = r.left + 0.2 if rng.random() < 0.5 else r.right - 0.2
        p, _ = _floor_box(b, "pillar", X, r.d_back - 0.4, 0.4, 0.4, r.wall_h)
        b.polys.append(p)


def _scene_objects(b: _Builder, st: str) -> None:
    r, rng = b.room, b.rng
    u = rng.uniform
    if rng.random() < (0.6 if st in ("bedroom", "living_room") else 0.15):
        w, d = u(1.4, 2.4), u(1.0, 1.8)
        X, Z = _place(b, w, d, against=False)
        mat = b.boxes("floor_mat", [Box(X - w / 2, X + w / 2, 0.0, 0.005, Z, Z + d)])
        b.groups.append((1e6, [mat]))  # lying on the floor: drawn before the furniture
    if st == "office":
        for _ in range(int(rng.integers(1, 3))):
            w, d = u(1.2, 1.7), u(0.6, 0.8)
            X, Z = _place(b, w, d, against=rng.random() < 0.7)
            desk, top = _table(b, "desk", X, Z, w, d, 0.74, pedestal=rng.random() < 0.5)
            things = ["monitor"] * int(rng.integers(1, 3)) + ["keyboard", "mouse"]
            things += [k for k, p in (("paper", 0.5), ("books", 0.4), ("cup", 0.4),
                                      ("telephone", 0.3), ("lamp", 0.2), ("laptop", 0.2)) if rng.random() < p]
            _add_group(b, [desk] + _on_top(b, top, things))
            if rng.random() < 0.85:
                _add_group(b, _chair(b, X + u(-0.3, 0.3), Z - u(0.35, 0.6), face_back=True))
            if rng.random() < 0.5:
                p, _ = _floor_box(b, "cpu", X + w / 2 - 0.15, Z + 0.05, 0.2, 0.45, 0.45)
                _add_group(b, [p])
        if rng.random() < 0.5:
            _add_group(b, _bookshelf(b))
        elif rng.random() < 0.5:
            X, Z = _place(b, 0.9, 0.4, against=True)
            _add_group(b, [_floor_box(b, "shelves", X, Z, 0.9, 0.4, 1.8)[0]])
        for kind, p, dims in (("cabinet", 0.4, (0.8, 0.5, 1.0)), ("garbage_bin", 0.5, (0.3, 0.3, 0.4)),
                              ("box", 0.4, (0.5, 0.4, 0.35)), ("printer", 0.2, (0.5, 0.45, 0.35)),
                              ("bag", 0.3, (0.35, 0.2, 0.4))):
            if rng.random() < p:
                X, Z = _place(b, dims[0], dims[1], against=rng.random() < 0.5)
                _add_group(b, [_floor_box(b, kind, X, Z, *dims)[0]])
    elif st == "bedroom":
        w, d = u(1.4, 1.9), u(1.9, 2.1)
        X, Z = _place(b, w, d, against=True)
        Z = max(Z, 1.1)
        sep_head = rng.random() < 0.3
        parts = [Box(X - w / 2, X + w / 2, 0, 0.5, Z, Z + d)]
        head = Box(X - w / 2, X + w / 2, 0, 1.1, Z + d - 0.06, Z + d)
        if sep_head:
            _add_group(b, [b.boxes("headboard", [head])])
        else:
            parts.append(head)
        bed = b.boxes("bed", parts, depth=Z)
        top = Box(X - w / 2 + 0.05, X + w / 2 - 0.05, 0.5, 0.5, Z + d - 0.7, Z + d - 0.08)
        pil = []
        for _ in range(int(rng.integers(1, 4))):
            pw = u(0.45, 0.7)
            if top.x1 - top.x0 < pw:
                break
            px = u(top.x0 + pw / 2, top.x1 - pw / 2)
            pil.append(b.boxes("pillow", [Box(px - pw / 2, px + pw / 2, 0.5, 0.66, top.z0 + 0.2, top.z1)]))
        if rng.random() < 0.3:
            cx_ = u(X - w / 4, X + w / 4)
            pil.append(b.boxes("clothes", [Box(cx_ - 0.3, cx_ + 0.3, 0.5, 0.58, Z + 0.2, Z + 0.8)]))
        _add_group(b, [bed] + pil)
        if rng.random() < 0.75:
            nx = X - w / 2 - 0.3 if rng.random() < 0.5 else X + w / 2 + 0.3
            ns, top = _floor_box(b, "night_stand", nx, r.d_back - 0.45, 0.45, 0.4, 0.55)
            _add_group(b, [ns] + _on_top(b, top, ["lamp"] if rng.random() < 0.7 else []))
        if rng.random() < 0.5:
            X, Z = _place(b, 1.0, 0.5, against=True)
            dr, top = _floor_box(b, "dresser", X, Z, 1.0, 0.5, 0.85)
            things = [k for k, p in (("tv", 0.25), ("box", 0.3), ("vase", 0.3)) if rng.random() < p]
            _add_group(b, [dr] + _on_top(b, top, things))
        for kind, p, dims in (("ottoman", 0.2, (0.5, 0.5, 0.42)), ("bag", 0.3, (0.35, 0.2, 0.4)),
                              ("box", 0.2, (0.45, 0.35, 0.3))):
            if rng.random() < p:
                X, Z = _place(b, dims[0], dims[1], against=False)
                _add_group(b, [_floor_box(b, kind, X, Z, *dims)[0]])
    elif st == "living_room":
        w, d = u(1.8, 2.4), 0.9
        X, Z = _place(b, w, d, against=True)
        parts = [Box(X - w / 2, X + w / 2, 0, 0.42, Z, Z + d),
                 Box(X - w / 2 + 0.15, X + w / 2 - 0.15, 0.42, 0.85, Z + d - 0.22, Z + d),
                 Box(X - w / 2, X - w / 2 + 0.15, 0.42, 0.62, Z, Z + d),
                 Box(X + w / 2 - 0.15, X + w / 2, 0.42, 0.62, Z, Z + d)]
        sofa = b.boxes("sofa", parts)
        pil = []
        for _ in range(int(rng.integers(0, 4))):
            px = u(X - w / 2 + 0.4, X + w / 2 - 0.4)
            pil.append(b.boxes("pillow", [Box(px - 0.22, px + 0.22, 0.42, 0.8, Z + d - 0.4, Z + d - 0.22)]))
        _add_group(b, [sofa] + pil)
        if rng.random() < 0.8:
            tw, td = u(0.9, 1.3), u(0.5, 0.7)
            tX = X + u(-0.3, 0.3)
            tZ = max(1.1, Z - td - u(0.3, 0.6))
            tab, top = _table(b, "table", tX, tZ, tw, td, 0.45)
            things = [k for k, p in (("vase", 0.4), ("books", 0.4), ("cup", 0.4)) if rng.random() < p]
            _add_group(b, [tab] + _on_top(b, top, things))
        if rng.random() < 0.6:
            cX = r.left + 0.6 if X > 0 else r.right - 0.6
            cZ = r.d_back - 0.5
            cab, top = _floor_box(b, "cabinet", cX, cZ, 1.0, 0.45, 0.55)
            _add_group(b, [cab] + _on_top(b, top, ["tv"] + (["speaker"] if rng.random() < 0.4 else [])))
        if rng.random() < 0.5:
            lx = X + w / 2 + 0.35 if rng.random() < 0.5 else X - w / 2 - 0.35
            parts = [Box(lx - 0.15, lx + 0.15, 0, 0.03, Z + 0.3, Z + 0.6),
                     Box(lx - 0.02, lx + 0.02, 0, 1.3, Z + 0.44, Z + 0.46),
                     Box(lx - 0.2, lx + 0.2, 1.25, 1.6, Z + 0.25, Z + 0.65)]
            _add_group(b, [b.boxes("lamp", parts)])
        if rng.random() < 0.5:
            X2, Z2 = _place(b, 0.4, 0.4, against=rng.random() < 0.5)
            _add_group(b, [b.boxes("plant", [Box(X2 - 0.15, X2 + 0.15, 0, 0.35, Z2, Z2 + 0.3),
                                             Box(X2 - 0.35, X2 + 0.35, 0.35, 1.1, Z2 - 0.05, Z2 + 0.35)])])
        if rng.random() < 0.2:
            X2, Z2 = _place(b, 0.5, 0.5, against=False)
            _add_group(b, [_floor_box(b, "ottoman", X2, Z2, 0.5, 0.5, 0.42)[0]])
    elif st == "kitchen":
        w, d = u(1.6, 3.0), 0.6
        X, Z = _place(b, w, d, against=True)
        cnt, top = _floor_box(b, "counter", X, Z, w, d, 0.9)
        things = [k for k, p in (("sink", 0.7), ("bottle", 0.5), ("cup", 0.4), ("box", 0.2)) if rng.random() < p]
        _add_group(b, [cnt] + _on_top(b, top, things))
        if rng.random() < 0.6:
            up = b.boxes("cabinet", [Box(X - w / 2, X + w / 2, 1.5, 2.2, r.d_back - 0.35, r.d_back)])
            b.polys.append(up)
        else:  # open wall shelves instead
            b.polys.append(b.boxes("shelves", [Box(X - w / 3, X + w / 3, 1.45, 2.1, r.d_back - 0.3, r.d_back)]))
        if rng.random() < 0.7:
            fX = X + w / 2 + 0.45 if X < 0 else X - w / 2 - 0.45
            _add_group(b, [_floor_box(b, "fridge", fX, r.d_back - 0.7, 0.8, 0.7, 1.8)[0]])
        if rng.random() < 0.5:
            tX, tZ = _place(b, 1.0, 0.8, against=False)
            tab, top = _table(b, "table", tX, tZ, 1.0, 0.8, 0.75)
            _add_group(b, [tab] + _on_top(b, top, ["cup"] if rng.random() < 0.5 else []))
            for dx in (-0.3, 0.3):
                if rng.random() < 0.7:
                    _add_group(b, _chair(b, tX + dx, max(0.95, tZ - 0.45), face_back=True))
        if rng.random() < 0.5:
            X2, Z2 = _place(b, 0.3, 0.3, against=False)
            _add_group(b, [_floor_box(b, "garbage_bin", X2, Z2, 0.3, 0.3, 0.45)[0]])
    elif st == "bathroom":
        X, Z = _place(b, 0.45, 0.7, against=True)
        parts = [Box(X - 0.2, X + 0.2, 0, 0.42, Z, Z + 0.55), Box(X - 0.22, X + 0.22, 0.42, 0.8, Z + 0.5, Z + 0.7)]
        _add_group(b, [b.boxes("toilet", parts)])
        vX = X + 1.0 if X < (r.left + r.right) / 2 else X - 1.0
        van, top = _floor_box(b, "counter", vX, r.d_back - 0.55, 0.9, 0.55, 0.85)
        _add_group(b, [van] + _on_top(b, top, ["sink"] + (["bottle"] if rng.random() < 0.5 else [])))
        b.polys.append(b.on_wall("mirror", "back", vX - 0.35, vX + 0.35, 1.1, 1.9))
        if rng.random() < 0.8:
            tX = r.right - 0.3 if X < 0 else r.left + 0.3
            b.polys.append(b.on_wall("towel", "back", tX - 0.25, tX + 0.25, 0.9, 1.5))
        if rng.random() < 0.5:
            side_x = r.left + 0.4 if rng.random() < 0.5 else r.right - 0.4
            _add_group(b, [_floor_box(b, "bathtub", side_x, max(1.2, r.d_back - 1.8), 0.75, 1.7, 0.55)[0]])
        if rng.random() < 0.5:
            sx = rng.uniform(r.left + 0.5, r.right - 0.5)
            sh, top = _floor_box(b, "shelves", sx, r.d_back - 0.25, 0.6, 0.25, 0.7, y0=1.0)
            b.polys.append(sh)
            b.polys.extend(_on_top(b, top, ["bottle"]))
        if rng.random() < 0.5:
            X2, Z2 = _place(b, 0.25, 0.25, against=False)
            _add_group(b, [_floor_box(b, "garbage_bin", X2, Z2, 0.25, 0.25, 0.35)[0]])
    else:  # classroom
        rows, cols = int(rng.integers(1, 3)), int(rng.integers(2, 5))
        z0 = max(1.3, r.d_back - 1.0 - 1.3 * rows)
        for i in range(rows):
            Z = z0 + 1.3 * i
            lo, hi = r.visible_x(Z, 0.7)
            for X in np.linspace(lo, hi, cols):
                desk, top = _table(b, "desk", X, Z, 0.7, 0.5, 0.72)
                things = [k for k, p in (("paper", 0.4), ("books", 0.3), ("laptop", 0.15)) if rng.random() < p]
                _add_group(b, [desk] + _on_top(b, top, things))
                if rng.random() < 0.8:
                    _add_group(b, _chair(b, X, max(0.95, Z - 0.45), face_back=True))
        if rng.random() < 0.4:
            X2, Z2 = _place(b, 0.35, 0.2, against=False)
            _add_group(b, [_floor_box(b, "bag", X2, Z2, 0.35, 0.2, 0.4)[0]])
    if rng.random() < 0.12:  # an odd thing with an uninformative name
        X2, Z2 = _place(b, 0.3, 0.3, against=False)
        _add_group(b, [_floor_box(b, "unknown", X2, Z2, 0.3, 0.3, 0.3)[0]])


def _bookshelf(b: _Builder) -> list[Poly]:
    rng = b.rng
    w, d, h = rng.uniform(0.8, 1.2), 0.35, rng.uniform(1.6, 2.0)
    X, Z = _place(b, w, d, against=True)
    shelf = b.boxes("bookshelf", [Box(X - w / 2, X + w / 2, 0, h, Z, Z + d)])
    out = [shelf]
    levels = int(h // 0.4)
    books_obj = None
    for i in range(levels):
        if rng.random() < 0.2:
            continue
        y0 = 0.08 + i * 0.4
        bw = w * rng.uniform(0.4, 0.9)
        x0 = rng.uniform(X - w / 2 + 0.04, X + w / 2 - 0.04 - bw)
        bx = Box(x0, x0 + bw, y0, y0 + rng.uniform(0.2, 0.3), Z - 0.005, Z + 0.05)
        # several rows of one "books" object, like the real annotations
        if books_obj is None or rng.random() < 0.3:
            out.append(b.boxes("books", [bx], depth=Z - 0.005))
            books_obj = out[-1].obj
        else:
            out.append(b.boxes("books", [bx], obj=books_obj, depth=Z - 0.005))
    return out


# ----------------------------------------------------------------------------- scene plans


def _scene_kind(index: int) -> tuple[str, str]:
    if index % 32 == 1:
        return "kv1", "b3dodata"
    if index % 8 == 3:
        return "kv2", "align_kv2"
    return "kv2", "kinect2data"


def _quirks_for(params: SampleParams, index: int) -> tuple[str, ...]:
    if not params.quirks:
        return ()
    j = index - QUIRK_OFFSET
    if 0 <= j < len(QUIRK_PLAN) and _scene_kind(index)[0] == "kv2":
        return QUIRK_PLAN[j]
    return ()


def _fmt_stamp(t: datetime) -> str:
    return t.strftime("%Y%m%d%H%M%S")


def _rotation(pitch: float, roll: float) -> np.ndarray:
    cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    rz = np.array([[cr, sr, 0], [-sr, cr, 0], [0, 0, 1]])
    return rz @ rx


def plan_scene(params: SampleParams, index: int) -> ScenePlan:
    """Everything about scene `index` except pixels: a pure function of (seed, index)."""
    rng = np.random.default_rng([params.seed, index])
    sensor, subset = _scene_kind(index)
    quirks = _quirks_for(params, index)
    H, W = KV1_SIZE if sensor == "kv1" else params.size
    _, name, frame, depth_file, t = _identity(params, index, rng)
    if sensor == "kv1":
        K = np.array([[520.532 * W / 561, 0, 277.9258 * W / 561],
                      [0, 520.7444 * H / 427, 215.115 * H / 427], [0, 0, 1]])
    else:
        K = np.array([[529.5 * W / 730, 0, 365.0 * W / 730], [0, 529.5 * H / 530, 265.0 * H / 530],
                      [0, 0, 1]])
    scene_type = str(rng.choice(SCENE_TYPES, p=_SCENE_P))
    if index < len(_FIRST_SPLITS):
        split = _FIRST_SPLITS[index]
    else:
        split = str(rng.choice(["train", "val", "test"], p=[0.25, 0.25, 0.5]))
    if "no_split" in quirks:
        split = "none"
    # Trailing '/' of the allsplit.mat entry, as in the real file: every entry outside
    # kinect2data has one, no kinect2data train entry does, a few kinect2data test ones do
    # (3 of 1,711; here always scene 6, a test scene). The draw is kept where revision 2
    # made it, so the scenes' random numbers (and pixels) stay as they were.
    draw = None if sensor == "kv1" or subset == "align_kv2" or index == 4 else rng.random()
    slash = subset != "kinect2data" or (split == "test" and (index == 6 or (draw is not None and draw < 0.002)))

    pitch, roll = rng.uniform(0.05, 0.4), rng.uniform(-0.03, 0.03)
    t_ext = t + timedelta(days=int(rng.integers(30, 200)), seconds=int(rng.integers(0, 86400)))
    ext = [(_fmt_stamp(t_ext), np.hstack([_rotation(pitch, roll), np.zeros((3, 1))]))]
    if index == 0 or rng.random() < 0.25:  # re-annotated: the older file must be ignored
        older = t_ext - timedelta(days=int(rng.integers(1, 20)))
        ext.insert(0, (_fmt_stamp(older), np.hstack([_rotation(pitch + 0.2, -roll), np.zeros((3, 1))])))

    room = _room(rng, H, W, K[0, 0], K[0, 2], deep=0.6 if scene_type in ("bedroom", "classroom") else 0.0)
    bld = _Builder(rng, room)
    wall_name = "wall\\" if "json_stray_backslash" in quirks else None
    _layout(bld, wall_name)
    _wall_items(bld, scene_type)
    _scene_objects(bld, scene_type)
    for _, polys in sorted(bld.groups, key=lambda g: -g[0]):
        bld.polys.extend(polys)
    wall_rgb = tuple(int(c) for c in [(200, 190, 172), (186, 188, 184), (174, 186, 198),
                                      (206, 196, 174), (192, 182, 188)][int(rng.integers(5))])
    floor_look = {"kitchen": "tiles", "bathroom": "tiles", "office": "carpet", "classroom": "tiles"}.get(
        scene_type, "planks")
    if rng.random() < 0.25:
        floor_look = str(rng.choice(["planks", "tiles", "carpet"]))

    qrng = np.random.default_rng([params.seed, index, 1])
    bld.rng = qrng  # quirk-only geometry must not shift the clean scene's random numbers
    if "json_bad_quotes" in quirks:
        X, Z = _place(bld, 0.3, 0.3, against=False)
        bld.polys.append(_floor_box(bld, "unknown", X, Z, 0.3, 0.3, 0.35)[0])
        bld.objects[-1] = '"propulsion"tool'
    if "dangling_object" in quirks:  # a sign whose object index points past the list
        lo, hi = room.visible_x(room.d_back, 0.4)
        x = qrng.uniform(lo, hi)
        bld.polys.append(bld.on_wall("sign", "back", x - 0.2, x + 0.2, 1.6, 1.85,
                                     obj=len(bld.objects) + 2))
    objects: list = [{"name": n} for n in bld.objects]
    if "null_objects" in quirks:  # two objects lose their entry, their polygons stay
        cands = [k for k in range(len(objects))
                 if _kind_of(bld.polys, k) not in ("", "wall", "floor", "ceiling")]
        objects[cands[-1]] = None
        objects[cands[-2]] = {}
    # clip to a margin around the image (coordinates stay negative / past the border like
    # the real files) and round to integers, or to 2-decimal floats in the quirk scene
    mx, my = 0.06 * W + 12, 0.08 * H + 10
    polys = []
    for p in bld.polys:
        pts = _clip(p.pts, -mx, -my, W + mx, H + my)
        if len(pts) < 3:
            continue
        if "coords_float" in quirks:
            frac = qrng.uniform(0.01, 0.99, pts.shape)
            frac = np.where(np.abs(frac - 0.5) < 0.02, 0.37, frac)  # no ties when rounding
            p.pts = np.round(np.floor(pts) + frac, 2)
        else:
            p.pts = np.round(pts)
        polys.append(p)
    names = list(bld.objects)
    return ScenePlan(index, sensor, subset, name, frame, depth_file, (H, W), split, slash, scene_type,
                     quirks, objects, names, polys, room, K, ext,
                     t.strftime("%a,%d%b%Y%H:%M:%SGMT"), wall_rgb, floor_look)


def _kind_of(polys: list[Poly], k: int) -> str:
    for p in polys:
        if p.obj == k:
            return p.kind
    return ""


def _fill(canvas: np.ndarray, pts: np.ndarray, value: int) -> None:
    """Paint one polygon exactly as the converter does (1/16-pixel fixed point)."""
    H, W = canvas.shape[:2]
    x = np.clip(pts[:, 0], -4.0 * W - 4, 5.0 * W + 4)
    y = np.clip(pts[:, 1], -4.0 * H - 4, 5.0 * H + 4)
    q = np.round(np.stack([x, y], 1) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(canvas, [q], int(value), lineType=cv2.LINE_8, shift=_SHIFT)


def _valid_name(objects: list, k: int) -> str | None:
    if not 0 <= k < len(objects):
        return None
    o = objects[k]
    n = o.get("name") if isinstance(o, dict) else None
    return n if isinstance(n, str) and n else None


def _paint_labels(plan: ScenePlan) -> tuple[np.ndarray, list[str]]:
    """Polygons painted in file order on the image grid; polygons whose object is null,
    {} or out of range are skipped. → (seglabel uint16, names) with values 1-based."""
    H, W = plan.size
    names: list[str] = []
    for p in plan.polys:
        n = _valid_name(plan.objects, p.obj)
        if n is not None and n not in names:
            names.append(n)
    lab = np.zeros((H, W), np.uint16)
    for p in plan.polys:
        n = _valid_name(plan.objects, p.obj)
        if n is not None:
            _fill(lab, p.pts, names.index(n) + 1)
    return lab, names


def _segmat_shape(plan: ScenePlan) -> tuple[int, int]:
    H, W = plan.size
    if "segmat_size_mismatch" in plan.quirks:
        return int(round(H * 0.9)), int(round(W * 0.9))
    return H, W


def scene_truth(info_or_params: SampleInfo | SampleParams, key: str, *, image_grid: bool = False
                ) -> tuple[np.ndarray, list[str]]:
    """(seglabel uint16, names) exactly as written to the scene's seg.mat, regenerated from
    the seed without reading any file. For scenes without seg.mat it is what seg.mat would
    hold. With image_grid=True the label is always on the image grid (differs only for the
    segmat_size_mismatch quirk, whose seg.mat is on another grid); for an unlabelled scene
    it is all 0 with no names."""
    params = info_or_params.params if isinstance(info_or_params, SampleInfo) else info_or_params
    plan = plan_scene(params, _index_of(params, key))
    if "unlabelled" in plan.quirks:
        return np.zeros(plan.size, np.uint16), []
    lab, names = _paint_labels(plan)
    if not image_grid and _segmat_shape(plan) != plan.size:
        h, w = _segmat_shape(plan)
        lab = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST)
    return lab, names


def official_seglabel(info_or_params: SampleInfo | SampleParams, key: str) -> np.ndarray:
    """SUNRGBD2Dseg.seglabel of scene `key` (HxW uint8 on the image grid, 0 = void, 1..37 the
    official seg37 ids) exactly as the generator writes it, without reading any file: the
    ground truth of `sunrgbd convert --labels official`."""
    params = info_or_params.params if isinstance(info_or_params, SampleInfo) else info_or_params
    plan = plan_scene(params, _index_of(params, key))
    lab, names = scene_truth(params, key, image_grid=True)
    return official_lut(plan, names)[lab]


def _index_of(params: SampleParams, key: str) -> int:
    key = key.strip("/")
    for i in range(params.scenes):
        if _identity(params, i)[0] == key:
            return i
    raise KeyError(f"{key!r} is not a scene of this sample (seed {params.seed}, {params.scenes} scenes)")


def _identity(params: SampleParams, index: int, rng: np.random.Generator | None = None):
    """(key, name, frame stem, depth stem, capture time) of scene `index`; draws the first
    numbers of the scene's generator, so plan_scene calls it with its own generator."""
    rng = rng if rng is not None else np.random.default_rng([params.seed, index])
    sensor, subset = _scene_kind(index)
    serial = _SERIALS[int(rng.integers(len(_SERIALS)))]
    if sensor == "kv1":
        n = 60 + index
        name, frame, depth_file = f"img_{n:04d}", f"img_{n:04d}", f"img_{n:04d}_abs"
        t = datetime(2014, 9, 15, 21, 0, 0) + timedelta(minutes=index)
    else:
        k = int(rng.integers(20, 460))
        frame = depth_file = f"{k:07d}"
        if subset == "kinect2data":
            t = datetime(2014, 4, 10, 9, 0, 0) + timedelta(
                days=int(rng.integers(0, 80)), seconds=int(rng.integers(0, 12 * 3600)))
            name = f"{index + 1:06d}_{t:%Y-%m-%d_%H-%M-%S}_{serial}_rgbf{k:06d}-resize"
        else:  # minutes grow with the index, so names are unique
            t = datetime(2014, 12, 18, 11, 0, 0) + timedelta(
                minutes=7 * index + int(rng.integers(0, 6)), seconds=int(rng.integers(0, 60)))
            name = f"{t:%Y-%m-%d_%H-%M-%S}_{serial}"
    return f"{sensor}/{subset}/{name}", name, frame, depth_file, t


# ----------------------------------------------------------------------------- appearance

# kind -> (base RGB, texture). One look per class, so a model can learn classes from pixels:
# classes that share scenes (night stand / dresser, sink / toilet / bathtub, pillow / bed,
# desk / cabinet / shelves, chair / bag) get different colours or textures, as a model
# trained on the real data would have to tell them apart by more than shape.
LOOKS: dict[str, tuple[tuple[int, int, int], str]] = {
    "ceiling": ((240, 242, 244), "flat"), "bed": ((205, 210, 226), "fabric"),
    "headboard": ((96, 62, 40), "grain"), "chair": ((52, 58, 96), "fabric"),
    "table": ((160, 114, 72), "grain"), "desk": ((196, 176, 146), "grain"),
    "sofa": ((92, 112, 142), "fabric"), "door": ((140, 92, 56), "panel"),
    "window": ((196, 222, 246), "window"), "bookshelf": ((66, 44, 30), "grain"),
    "picture": ((150, 120, 100), "picture"), "lamp": ((250, 222, 150), "glow"),
    "pillow": ((222, 184, 112), "fabric"), "cabinet": ((138, 156, 130), "panel"),
    "tv": ((22, 22, 28), "screen"), "box": ((214, 176, 104), "cardboard"),
    "books": ((120, 60, 60), "books"), "night_stand": ((196, 132, 88), "drawers"),
    "dresser": ((124, 118, 62), "drawers"), "curtain": ((152, 62, 62), "vfolds"),
    "mirror": ((140, 160, 174), "glossy"), "floor_mat": ((142, 42, 48), "rug"),
    "counter": ((206, 200, 190), "speckle"), "sink": ((146, 152, 160), "basin"),
    "toilet": ((242, 242, 242), "glossy"), "towel": ((80, 152, 172), "fabric"),
    "bathtub": ((150, 210, 214), "glossy"), "whiteboard": ((246, 246, 246), "board"),
    "fridge": ((124, 130, 138), "brushed"), "paper": ((248, 248, 244), "text"),
    "bag": ((44, 98, 70), "fabric"), "shelves": ((92, 124, 134), "shelving"),
    "blinds": ((176, 166, 146), "slats"), "clothes": ((162, 92, 142), "fabric"),
    "monitor": ((28, 28, 34), "monitor"), "laptop": ((172, 172, 178), "laptop"),
    "cpu": ((40, 40, 46), "flat"), "keyboard": ((52, 52, 58), "keys"),
    "mouse": ((60, 60, 66), "flat"), "plant": ((52, 112, 52), "leaves"),
    "bottle": ((60, 140, 90), "glossy"), "cup": ((230, 230, 226), "flat"),
    "vase": ((60, 100, 166), "glossy"), "garbage_bin": ((72, 72, 76), "flat"),
    "clock": ((240, 240, 236), "clock"), "sign": ((36, 84, 160), "flat"),
    "outlet": ((236, 236, 230), "flat"), "pillar": ((120, 110, 100), "flat"),
    "speaker": ((26, 26, 26), "fabric"), "printer": ((205, 205, 205), "flat"),
    "telephone": ((32, 32, 32), "flat"), "stool": ((120, 80, 50), "grain"),
    "ottoman": ((110, 70, 92), "fabric"), "unknown": ((150, 150, 150), "flat"),
}
_FLOORS = {"planks": (150, 108, 72), "tiles": (178, 176, 170), "carpet": (104, 108, 120)}
_BOOK_COLOURS = np.array([(150, 40, 40), (40, 70, 140), (210, 190, 60), (40, 110, 60),
                          (230, 230, 220), (90, 50, 110), (200, 110, 40), (30, 30, 30)], np.float32)


def _texture(tex: str, base: np.ndarray, X: np.ndarray, Y: np.ndarray, lf: np.ndarray,
             hf: np.ndarray, prm: np.ndarray, box: tuple[float, float, float, float],
             room: Room) -> np.ndarray:
    """RGB float32 (h, w, 3) of one textured region; X, Y are column/row coordinates."""
    X = X[None, :]
    Y = Y[:, None]
    x0, y0, x1, y1 = box
    u = (X - x0) / max(x1 - x0, 1.0)
    v = (Y - y0) / max(y1 - y0, 1.0)
    lum = 1.0 + 0.05 * lf
    rgb = None
    if tex == "flat":
        lum = lum + 0.02 * hf
    elif tex == "wall":
        lum = 1.0 + 0.03 * lf + 0.012 * hf
    elif tex == "fabric":
        lum = lum + 0.07 * hf
    elif tex == "grain":
        lum = lum + 0.07 * np.sin(Y * (0.35 + prm[0] * 0.3) + 4 * lf) + 0.02 * hf
    elif tex in ("planks", "tiles", "carpet"):
        Z = room.f * room.cam_h / np.maximum(Y - room.yh, 1.0)
        Xm = (X - room.cx) * Z / room.f
        if tex == "planks":
            seam = (np.mod(Xm / 0.16, 1.0) < 0.07) | (np.mod(Z / 1.1 + np.floor(Xm / 0.16) * 0.37, 1.0) < 0.015)
            lum = lum + 0.06 * np.sin(Xm * 90 + 3 * lf) - 0.22 * seam + 0.02 * hf
        elif tex == "tiles":
            seam = (np.mod(Xm / 0.4, 1.0) < 0.04) | (np.mod(Z / 0.4, 1.0) < 0.04)
            lum = lum - 0.18 * seam + 0.02 * hf
        else:
            lum = lum + 0.15 * hf
    elif tex == "panel":
        edge = (np.abs(u - 0.15) < 0.02) | (np.abs(u - 0.85) < 0.02) | (np.abs(v - 0.1) < 0.012) \
            | (np.abs(v - 0.48) < 0.012) | (np.abs(v - 0.9) < 0.012)
        knob = ((u - 0.8) ** 2 + ((v - 0.52) * 2.5) ** 2) < 0.0015
        lum = lum + 0.05 * np.sin(Y * 0.4 + 3 * lf) - 0.16 * edge + 0.5 * knob
    elif tex == "drawers":
        edge = (np.abs(np.mod(v * 3, 1.0) - 0.0) < 0.04) | (np.abs(u - 0.5) < 0.01)
        knob = (np.abs(np.mod(v * 3, 1.0) - 0.5) < 0.08) & (np.abs(np.mod(u * 2, 1.0) - 0.5) < 0.05)
        lum = lum + 0.04 * np.sin(Y * 0.5 + 3 * lf) - 0.2 * edge + 0.45 * knob
    elif tex == "window":
        bar = (np.abs(u - 0.5) < 0.02) | (np.abs(v - 0.5) < 0.02) | (u < 0.04) | (u > 0.96) \
            | (v < 0.05) | (v > 0.95)
        sky = np.stack([base[0] - 40 * v + 20 * lf, base[1] - 20 * v + 10 * lf, base[2] + 0 * lf], -1)
        rgb = np.where(bar[..., None], np.float32(242), sky)
    elif tex == "slats":  # 9-13 slats whatever the image size, so they survive resizing
        lum = lum - 0.25 * (np.mod(v * (9 + 4 * prm[0]), 1.0) < 0.3)
    elif tex == "shelving":  # boards with darker gaps between them
        board = (np.mod(v * 3, 1.0) < 0.2) | (u < 0.06) | (u > 0.94)
        lum = lum + 0.35 * board + 0.03 * hf
    elif tex == "brushed":  # vertical brushing and a door gap with a handle
        lum = lum + 0.04 * np.sin(X * 1.7 + 3 * lf) + 0.02 * hf - 0.25 * (np.abs(v - 0.32) < 0.015) \
            - 0.35 * ((np.abs(u - 0.88) < 0.025) & (v > 0.38) & (v < 0.62))
    elif tex == "basin":  # a steel bowl: bright rim, darker inside
        inner = (u > 0.12) & (u < 0.88) & (v > 0.3)
        lum = lum - 0.3 * inner + 0.25 * (v < 0.15) + 0.02 * hf
    elif tex == "text":  # printed lines
        lum = lum - 0.35 * ((np.mod(v * 9, 1.0) < 0.35) & (u > 0.1) & (u < 0.9) & (v > 0.08))
    elif tex == "vfolds":
        lum = lum + 0.17 * np.sin(X * (0.25 + prm[0] * 0.15)) + 0.02 * hf
    elif tex == "books":
        width = 4.0 + prm[0] * 6
        idx = np.floor((X - x0) / width + 0.5 * prm[1]).astype(np.int64)  # one book per stripe
        col = _BOOK_COLOURS[(idx * 7 + int(prm[2] * 8)) % len(_BOOK_COLOURS)]  # (1, w, 3)
        gap = np.mod((X - x0) / width, 1.0) < 0.12
        top = v < (0.05 + 0.2 * np.mod(idx * 0.37, 1.0))
        rgb = col * ((1 - 0.4 * (gap | top)) * (1 + 0.04 * hf))[..., None]
    elif tex == "picture":
        frame = (u < 0.06) | (u > 0.94) | (v < 0.07) | (v > 0.93)
        c = prm * 200 + 30
        art = np.stack([c[0] + 70 * lf + 40 * np.sin(X * 0.05 + prm[1] * 6),
                        c[1] + 60 * np.sin(Y * 0.06 + prm[2] * 6) + 0 * X,
                        c[2] - 70 * lf + 10 * hf], -1)
        rgb = np.where(frame[..., None], np.float32(45), art)
    elif tex == "screen":
        inner = (u > 0.03) & (u < 0.97) & (v > 0.04) & (v < 0.96)
        lum = lum + 0.6 * inner * (1 - v) * prm[0]
    elif tex == "monitor":
        scr = (u > 0.06) & (u < 0.94) & (v > 0.05) & (v < 0.72)
        glow = np.stack([60 + 30 * lf + 0 * u, 100 + 40 * (1 - v) + 0 * u, 165 + 30 * lf + 0 * u], -1)
        rgb = np.where(scr[..., None], glow, (base * (1 + 0.03 * hf)[..., None]))
    elif tex == "laptop":
        scr = (v < 0.5) & (u > 0.05) & (u < 0.95) & (v > 0.04)
        rgb = np.where(scr[..., None], np.float32([40, 60, 110]), base * (1 + 0.03 * hf)[..., None])
    elif tex == "keys":
        key = (np.mod(X / 3.5, 1.0) < 0.7) & (np.mod(Y / 3.5, 1.0) < 0.65)
        lum = lum + 0.5 * key
    elif tex == "glossy":
        lum = lum + 0.1 * (1 - v) - 0.05 * v + 0.18 * np.exp(-((u - 0.3 - 0.4 * prm[0]) ** 2) / 0.01)
    elif tex == "board":
        frame = (u < 0.02) | (u > 0.98) | (v < 0.03) | (v > 0.97)
        lum = lum - 0.3 * frame + 0.01 * hf
    elif tex == "glow":
        lum = lum + 0.1 * (1 - v)
    elif tex == "leaves":
        lum = lum + 0.3 * hf + 0.25 * np.sin(X * 0.3 + 5 * lf) * np.sin(Y * 0.3)
    elif tex == "rug":
        border = (u < 0.08) | (u > 0.92) | (v < 0.08) | (v > 0.92)
        pat = np.sin(X * 0.15 + Y * 0.15) * np.sin(X * 0.15 - Y * 0.15) > 0.3
        rgb = np.where(border[..., None], np.float32([214, 196, 150]),
                       base * (1 + 0.25 * pat + 0.06 * hf)[..., None])
    elif tex == "speckle":
        lum = lum + 0.09 * hf + 0.05 * lf
    elif tex == "clock":
        rr = (u - 0.5) ** 2 + (v - 0.5) ** 2
        hand = (np.abs(u - 0.5) < 0.03) & (v < 0.5) & (v > 0.2) | (np.abs(v - 0.5) < 0.03) & (u > 0.5) & (u < 0.75)
        lum = lum - 0.8 * (rr > 0.17) - 0.7 * hand
    elif tex == "cardboard":
        lum = lum + 0.03 * hf + 0.12 * (np.abs(u - 0.5) < 0.05)
    if rgb is None:
        rgb = base * lum[..., None]
    return np.asarray(rgb, np.float32)


def _smooth_noise(rng: np.random.Generator, H: int, W: int, cell: int) -> np.ndarray:
    small = rng.standard_normal((H // cell + 2, W // cell + 2)).astype(np.float32)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)


def _layout_depth(kind: str, room: Room, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    X = X[None, :].astype(np.float64)
    Y = Y[:, None].astype(np.float64)
    if kind == "back":
        return np.broadcast_to(room.d_back + 0 * X + 0 * Y, (Y.shape[0], X.shape[1]))
    if kind in ("left", "right"):
        Xw = room.left if kind == "left" else room.right
        z = room.f * Xw / np.where(np.abs(X - room.cx) < 1, 1.0, X - room.cx)
        return np.broadcast_to(np.clip(z, 0.4, room.d_back) + 0 * Y, (Y.shape[0], X.shape[1]))
    if kind == "floor":
        z = room.f * room.cam_h / np.maximum(Y - room.yh, 1.0)
    else:
        z = room.f * (room.wall_h - room.cam_h) / np.maximum(room.yh - Y, 1.0)
    return np.broadcast_to(np.clip(z, 0.4, room.d_back) + 0 * X, (Y.shape[0], X.shape[1]))


def render_scene(plan: ScenePlan, params: SampleParams) -> tuple[np.ndarray, np.ndarray]:
    """→ (RGB uint8 HxWx3, depth in metres float32 HxW before sensor holes)."""
    H, W = plan.size
    rng = np.random.default_rng([params.seed, plan.index, 2])
    lf = _smooth_noise(rng, H, W, 24)
    lf = lf / (np.abs(lf).max() + 1e-6)
    hf = rng.standard_normal((H, W), dtype=np.float32)
    polymap = np.zeros((H, W), np.uint16)
    for i, p in enumerate(plan.polys):
        _fill(polymap, p.pts, i + 1)
    img = np.zeros((H, W, 3), np.float32)
    depth = np.zeros((H, W), np.float32)
    xs = np.arange(W, dtype=np.float32)
    ys = np.arange(H, dtype=np.float32)
    for i, p in enumerate(plan.polys):
        lo = np.floor(p.pts.min(0)).astype(int)
        hi = np.ceil(p.pts.max(0)).astype(int) + 1
        c0, r0 = max(lo[0], 0), max(lo[1], 0)
        c1, r1 = min(hi[0], W), min(hi[1], H)
        if c0 >= c1 or r0 >= r1:
            continue
        m = polymap[r0:r1, c0:c1] == i + 1
        if not m.any():
            continue
        prng = np.random.default_rng(p.look)
        prm = prng.random(3).astype(np.float32)
        if p.kind == "wall":
            base, tex = np.float32(plan.wall_rgb), "wall"
        elif p.kind == "floor":
            base, tex = np.float32(_FLOORS[plan.floor_look]), plan.floor_look
        else:
            rgb0, tex = LOOKS[p.kind]
            base = np.float32(rgb0)
            if p.kind == "unknown" and prm[0] < 0.5:  # an odd thing has any colour
                base = np.float32(prng.integers(40, 220, 3))
        base = base * np.float32(prng.uniform(0.9, 1.1)) + prng.normal(0, 5, 3).astype(np.float32)
        X, Y = xs[c0:c1], ys[r0:r1]
        box = (float(p.pts[:, 0].min()), float(p.pts[:, 1].min()),
               float(p.pts[:, 0].max()), float(p.pts[:, 1].max()))
        col = _texture(tex, base, X, Y, lf[r0:r1, c0:c1], hf[r0:r1, c0:c1], prm, box, plan.room)
        if p.shade:
            fac = np.ones((r1 - r0, c1 - c0), np.float32)
            for pts, f in p.shade:
                sm = np.zeros_like(fac)
                _fill(sm, np.asarray(pts) - [c0, r0], 1)
                fac = np.where(sm > 0, np.float32(f), fac)
            col = col * fac[..., None]
        if tex in ("flat", "fabric", "grain", "wall", "glossy", "speckle", "cardboard", "brushed"):
            col = col * (1.0 + 0.08 * (0.5 - (Y[:, None] - box[1]) / max(box[3] - box[1], 1.0)))[..., None]
        np.copyto(img[r0:r1, c0:c1], col, where=m[..., None])
        kind = p.depth[0]
        dblk = depth[r0:r1, c0:c1]
        if kind == "const":
            np.copyto(dblk, np.float32(p.depth[1]), where=m)
        elif kind == "far":
            np.copyto(dblk, np.float32(8.4 + prm[1]), where=m)
        else:
            np.copyto(dblk, _layout_depth(kind, plan.room, X, Y), where=m, casting="same_kind")
    # light falloff, sensor blur and noise
    light = 1.0 + 0.04 * _smooth_noise(rng, H, W, 96)
    light *= 1.0 - 0.36 * ((xs - W / 2) / W)[None, :] ** 2 - 0.36 * ((ys - H / 2) / H)[:, None] ** 2
    img *= light[..., None]
    img = cv2.GaussianBlur(img, (3, 3), 0.7)
    img += 2.5 * hf[::-1, ::-1, None]  # sensor noise (the texture noise, turned round)
    np.clip(img, 0, 255, out=img)
    rgb = np.rint(img, out=img).astype(np.uint8)
    return rgb, depth


# ----------------------------------------------------------------------------- encoders


def encode_depth(mm: np.ndarray) -> np.ndarray:
    """Millimetres → SUN RGB-D PNG values: rotate left by 3 bits within 16 bits."""
    v = mm.astype(np.uint32)
    return (((v << 3) | (v >> 13)) & 0xFFFF).astype(np.uint16)


def decode_depth(v: np.ndarray) -> np.ndarray:
    """SUN RGB-D PNG values → millimetres (rotate right by 3 bits)."""
    u = v.astype(np.uint32)
    return (((u >> 3) | (u << 13)) & 0xFFFF).astype(np.uint16)


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


def _cell(strings: list[str], shape: tuple[int, int] | None = None) -> np.ndarray:
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


def _depth_files(plan: ScenePlan, depth_m: np.ndarray, params: SampleParams) -> tuple[np.ndarray, np.ndarray]:
    """(depth/ raw mm with holes, depth_bfx/ mm hole-filled) — both uint16 millimetres."""
    H, W = plan.size
    rng = np.random.default_rng([params.seed, plan.index, 4])
    z = depth_m.astype(np.float32)
    noisy = z * 1000 + rng.standard_normal(z.shape, dtype=np.float32) * (1.0 + 0.8 * z)  # ~Kinect v2
    mm = np.clip(np.rint(noisy), 1, 65535).astype(np.uint16)
    holes = np.zeros((H, W), np.uint8)
    holes[:, : max(1, W // 80)] = 1  # the invalid left border of Kinect v2 frames
    for _ in range(int(rng.integers(2, 6))):
        c = (int(rng.integers(0, W)), int(rng.integers(0, H)))
        ax = (int(rng.integers(W // 40 + 1, W // 10 + 2)), int(rng.integers(H // 40 + 1, H // 10 + 2)))
        cv2.ellipse(holes, c, ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    for p in plan.polys:  # dark and shiny surfaces return no depth
        if p.kind in ("tv", "monitor", "mirror", "window") and rng.random() < 0.6:
            _fill(holes, p.pts, 1)
    raw = np.where(holes > 0, 0, mm).astype(np.uint16)
    bfx = cv2.GaussianBlur(mm.astype(np.float32), (5, 5), 1.0)
    bfx = np.clip(np.rint(bfx), 1, 65535).astype(np.uint16)
    # a few pixels stay missing after filling so that "0 = missing" is exercised there too
    cy, cx = int(rng.integers(0, H)), int(rng.integers(0, W))
    bfx[max(cy - H // 60, 0): cy + H // 60 + 1, max(cx - W // 60, 0): cx + W // 60 + 1] = 0
    return raw, bfx


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


def json_name(name: str) -> str:
    """An object name as index.json spells it: none of the 14,424 real names has a space
    (seg.mat and seglistall say `night stand`, index.json `nightstand`)."""
    return name.replace(" ", "")


def json_object(obj):
    return {"name": json_name(obj["name"])} if isinstance(obj, dict) and isinstance(obj.get("name"), str) else obj


def _corrupt(jpeg: bytes, rng: np.random.Generator) -> bytes:
    """A JPEG that no decoder accepts: the start marker, then noise instead of the header."""
    return jpeg[:2] + rng.integers(0, 256, 1500, dtype=np.uint8).tobytes()


# ----------------------------------------------------------------------------- writing


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


def scene_info(plan: ScenePlan, official_index: int, names: list[str] | None = None) -> SceneInfo:
    labels = (["seg"] if plan.has_seg else []) + (["polygons"] if plan.has_polygons else [])
    if names is None:
        names = [] if "unlabelled" in plan.quirks else _paint_labels(plan)[1]
    return SceneInfo(
        index=plan.index, key=plan.key, sensor=plan.sensor, split=plan.split,
        image=f"SUNRGBD/{plan.key}/image/{plan.frame}.jpg", size=tuple(plan.size),
        scene_type=plan.scene_type, labels=labels, quirks=list(plan.quirks), names=names,
        official_index=official_index,
        intrinsics=[round(float(v), 6) for v in plan.intrinsics.ravel()],
        extrinsics=[round(float(v), 6) for v in plan.extrinsics[-1][1].ravel()],
        extrinsics_files=[f"{s}.txt" for s, _ in plan.extrinsics], depth=plan.has_depth)


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
    raw, bfx = _depth_files(plan, depth_m, params)
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
        lab, names = _paint_labels(plan)
        if _segmat_shape(plan) != plan.size:
            h, w = _segmat_shape(plan)
            lab = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST)
        atomic_write_bytes(folder / "seg.mat", mat_v5_bytes({"seglabel": lab, "names": _cell(names)}))
    return plan.key


def _split_path(plan: ScenePlan) -> str:
    return f"{MACHINE_PREFIX}SUNRGBD/{plan.key}" + ("/" if plan.slash else "")


def _write_allsplit(root: Path, plans: list[ScenePlan]) -> None:
    train = [_split_path(p) for p in plans if p.split == "train"]
    val = [_split_path(p) for p in plans if p.split == "val"]
    test = [_split_path(p) for p in plans if p.split == "test"]
    alltrain = [_split_path(p) for p in plans if p.split in ("train", "val")]
    tv = np.zeros((1, 1), dtype=[("train", object), ("val", object)])
    tv[0, 0]["train"] = _cell(train, (len(train), 1))
    tv[0, 0]["val"] = _cell(val, (len(val), 1))
    data = mat_v5_bytes({"alltest": _cell(test), "alltrain": _cell(alltrain), "trainvalsplit": tv})
    atomic_write_bytes(root / "SUNRGBDtoolbox" / "traintestSUNRGBD" / "allsplit.mat", data)


def _write_meta(root: Path, plans: list[ScenePlan]) -> None:
    md = root / "SUNRGBDtoolbox" / "Metadata"
    atomic_write_bytes(md / "seg37list.mat", mat_v5_bytes({"seg37list": _cell(list(SEG37))}))
    atomic_write_bytes(md / "seglistall.mat", mat_v5_bytes({"seglistall": _cell(list(SEGLISTALL))}))
    fields = ["sequenceName", "groundtruth3DBB", "Rtilt", "K", "depthpath", "rgbpath",
              "anno_extrinsics", "depthname", "rgbname", "sensorType", "valid"]
    meta = np.zeros((1, len(plans)), dtype=[(f, object) for f in fields])
    for i, p in enumerate(plans):
        e = meta[0, i]
        seq = f"SUNRGBD/{p.key}"
        e["sequenceName"] = seq
        e["groundtruth3DBB"] = np.zeros((0, 0))
        e["Rtilt"] = p.extrinsics[-1][1][:, :3].T.copy()
        e["K"] = p.intrinsics.copy()
        # the real paths carry '//' where the allsplit entry ends in '/' (tools that match
        # rgbpath minus /image/<file> against allsplit by exact string rely on it)
        folder = f"{MACHINE_PREFIX}{seq}/" + ("/" if p.slash else "")
        e["depthpath"] = f"{folder}depth_bfx/{p.depth_file}.png"
        e["rgbpath"] = f"{folder}image/{p.frame}.jpg"
        e["anno_extrinsics"] = p.extrinsics[-1][1][:, :3].copy()
        e["depthname"] = f"{p.depth_file}.png"
        e["rgbname"] = f"{p.frame}.jpg"
        e["sensorType"] = p.sensor
        e["valid"] = np.array([[1.0]])
    atomic_write_bytes(md / "SUNRGBDMeta.mat", mat_v5_bytes({"SUNRGBDMeta": meta}))


SEGLISTALL: tuple[str, ...] = tuple(sorted(set(EMITTED_NAMES)))


def _ascii_attr(obj, name: str, value: str) -> None:
    """A fixed-length, NUL-terminated ASCII attribute, the way MATLAB writes MATLAB_class."""
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(value) + 1 if value else 1)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    if name in obj.attrs:
        del obj.attrs[name]
    aid = h5py.h5a.create(obj.id, name.encode(), tid, h5py.h5s.create(h5py.h5s.SCALAR))
    aid.write(np.array(value.encode(), dtype=f"S{len(value) + 1}"))


def _ref_name(i: int) -> str:
    """MATLAB-style names for #refs# members: a, b, ..., z, ba, bb, ..."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    s = letters[i % 26]
    i //= 26
    while i:
        s = letters[i % 26] + s
        i //= 26
    return s


def official_seg37(name: str, scene_type: str) -> int:
    """The generator's official seg37 id of a raw name in a scene of `scene_type`."""
    if name in OFFICIAL_BY_SCENE_TYPE:
        default, by_type = OFFICIAL_BY_SCENE_TYPE[name]
        return SEG37.index(by_type.get(scene_type, default)) + 1
    if name in OFFICIAL_DIFFERENCES:
        return SEG37.index(OFFICIAL_DIFFERENCES[name]) + 1
    return OFFICIAL_SEG37.get(name, 0)


def official_lut(plan: ScenePlan, names: list[str]) -> np.ndarray:
    """seg.mat value (1-based into names) → the scene's official seg37 id; 0 stays 0."""
    return np.array([0] + [official_seg37(x, plan.scene_type) for x in names], np.uint8)


def official_name_pixels(info_or_params: SampleInfo | SampleParams, keys: Iterable[str],
                         from_polygons: Iterable[str] = ()) -> dict[str, tuple[int, dict[int, int]]]:
    """What `sunrgbd mapping audit` must find, regenerated from the seed: per raw name over
    the labelled scenes among `keys`, (images, {official seg37 id: pixels}) on the image
    grid. Unlabelled pixels (value 0) are left out. Scenes without seg.mat, and those in
    `from_polygons` (a seg.mat the audit cannot read), are counted under index.json's names."""
    from_polygons = set(from_polygons)
    params = info_or_params.params if isinstance(info_or_params, SampleInfo) else info_or_params
    out: dict[str, tuple[int, dict[int, int]]] = {}
    for key in keys:
        plan = plan_scene(params, _index_of(params, key))
        if "unlabelled" in plan.quirks:
            continue
        lab, names = _paint_labels(plan)
        off = official_lut(plan, names)[lab]
        read = names if plan.has_seg and key not in from_polygons else [json_name(n) for n in names]
        for v, name in zip(range(1, len(names) + 1), read, strict=True):
            counts = np.bincount(off[lab == v], minlength=38)
            if counts.sum() == 0:
                continue
            images, by_id = out.get(name, (0, {}))
            for c in np.flatnonzero(counts):
                by_id[int(c)] = by_id.get(int(c), 0) + int(counts[c])
            out[name] = (images + 1, by_id)
    return out


def _write_2dseg(root: Path, plans: list[ScenePlan]) -> list[list[str]]:
    """SUNRGBD2Dseg.mat in MATLAB v7.3 layout (HDF5 with a 512-byte MAT header).
    Returns each scene's names (so they are painted once)."""
    path = root / "SUNRGBDtoolbox" / "Metadata" / "SUNRGBD2Dseg.mat"
    pos = {n: i + 1 for i, n in enumerate(SEGLISTALL)}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=512, libver="earliest") as f:
            refs = f.create_group("#refs#")
            empty = refs.create_dataset("a", data=np.array([0, 0], np.uint64))
            _ascii_attr(empty, "MATLAB_class", "canonical empty")
            empty.attrs.create("MATLAB_empty", np.uint8(1))
            g = f.create_group("SUNRGBD2Dseg")
            _ascii_attr(g, "MATLAB_class", "struct")
            fl = np.empty(2, dtype=h5py.vlen_dtype(np.dtype("S1")))
            for i, n in enumerate(("seglabel", "seglabelall")):
                fl[i] = np.array(list(n), dtype="S1")
            g.attrs.create("MATLAB_fields", fl)
            r37 = np.empty((len(plans), 1), dtype=h5py.ref_dtype)
            rall = np.empty((len(plans), 1), dtype=h5py.ref_dtype)
            n = 1
            all_names = []
            for i, p in enumerate(plans):
                if "unlabelled" in p.quirks:
                    lab, names = np.zeros(p.size, np.uint16), []
                else:
                    lab, names = _paint_labels(p)
                all_names.append(names)
                lut37 = official_lut(p, names)
                lutall = np.array([0] + [pos[x] for x in names], np.uint16)
                for arr, out, cls in ((lut37[lab], r37, "uint8"), (lutall[lab], rall, "uint16")):
                    ds = refs.create_dataset(_ref_name(n), data=np.ascontiguousarray(arr.T),
                                             compression="gzip", compression_opts=3, chunks=True)
                    _ascii_attr(ds, "MATLAB_class", cls)
                    out[i, 0] = ds.ref
                    n += 1
            g.create_dataset("seglabel", data=r37)
            g.create_dataset("seglabelall", data=rall)
        with open(tmp, "r+b") as fh:
            fh.write(_V73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    return all_names


def _check_target(out: Path, params: SampleParams) -> None:
    if out.exists() and not out.is_dir():
        raise SampleConflict(f"{out}: exists and is not a folder")
    ours = [n for n in ("SUNRGBD", "SUNRGBDtoolbox", SAMPLE_FILE, *RAW_ZIPS) if (out / n).exists()]
    if not ours:
        return
    try:
        doc = json.loads((out / SAMPLE_FILE).read_text(encoding="utf-8"))
        prev = SampleInfo.from_json(doc).params
        revision = int(doc.get("generator", {}).get("revision", 1))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise SampleConflict(
            f"{out / ours[0]}: already exists and was not written by `sunrgbd sample` "
            f"(no readable {SAMPLE_FILE}); refusing to overwrite it") from None
    if prev != params:
        raise SampleConflict(
            f"{out / ours[0]}: already holds a sample made with different arguments "
            f"({_describe(prev)}); refusing to overwrite it, choose another --out")
    if revision != GENERATOR_REVISION:
        raise SampleConflict(
            f"{out / SAMPLE_FILE}: was written by generator revision {revision}, this is "
            f"revision {GENERATOR_REVISION} (its scenes differ); refusing to mix them, "
            f"choose another --out")


def _describe(p: SampleParams) -> str:
    return (f"--scenes {p.scenes} --seed {p.seed} --{'quirks' if p.quirks else 'no-quirks'} "
            f"--size {p.size[0]}x{p.size[1]}")


def _write_one(args: tuple[str, SampleParams, int]) -> str:
    root, params, index = args
    return write_scene(Path(root), params, index)


def make_sample(out: Path, scenes: int = 40, seed: int = 0, quirks: bool = True,
                size: tuple[int, int] = KV2_SIZE, workers: int = 1,
                progress: Callable[[str], None] | None = None) -> SampleInfo:
    """Write the synthetic raw tree under `out` and return what SAMPLE.json says.

    Raises SampleConflict when `out` holds a tree that was not made with the same
    arguments (nothing is overwritten then). Re-running with the same arguments resumes
    and produces identical bytes; the result does not depend on `workers`.
    """
    out = Path(out)
    params = SampleParams(scenes, seed, quirks, tuple(size))
    _check_target(out, params)
    out.mkdir(parents=True, exist_ok=True)
    # claim the folder first, so an interrupted run can be resumed with the same arguments
    atomic_write_text(out / SAMPLE_FILE, dumps_json(SampleInfo(params, [], complete=False).to_json()))
    jobs = [(str(out), params, i) for i in range(scenes)]
    if workers > 1 and scenes > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context()) as ex:
            for key in ex.map(_write_one, jobs, chunksize=max(1, scenes // (workers * 8))):
                if progress:
                    progress(key)
    else:
        for j in jobs:
            key = _write_one(j)
            if progress:
                progress(key)
    plans = [plan_scene(params, i) for i in range(scenes)]
    _write_allsplit(out, plans)
    _write_meta(out, plans)
    names = _write_2dseg(out, plans)
    info = SampleInfo(params, [scene_info(p, i + 1, n) for i, (p, n) in enumerate(zip(plans, names, strict=True))],
                      complete=True)
    atomic_write_text(out / SAMPLE_FILE, dumps_json(info.to_json()))
    return info
