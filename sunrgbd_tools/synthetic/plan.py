"""Scene plans: everything about scene *i* except its pixels, a pure function of (seed, i).

Why: the writers, the renderer and the ground-truth functions tests call all start from
the same plan, so files and truth cannot drift apart; planting the quirks here (with their
own random numbers) leaves the clean scene's draws untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from sunrgbd_tools.synthetic.furniture import floor_box, furnish, place, wall_items
from sunrgbd_tools.synthetic.geometry import (
    Builder,
    Poly,
    Room,
    clip_polygon,
    make_room,
    room_shell,
    rotation,
)
from sunrgbd_tools.synthetic.sample_json import KV1_SIZE, SampleParams

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


@dataclass
class ScenePlan:
    """Everything about one scene except its pixels (made by plan_scene)."""

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


def plan_scene(params: SampleParams, index: int) -> ScenePlan:
    """Everything about scene `index` except pixels: a pure function of (seed, index)."""
    rng = np.random.default_rng([params.seed, index])
    sensor, subset = _scene_kind(index)
    quirks = _quirks_for(params, index)
    H, W = KV1_SIZE if sensor == "kv1" else params.size
    _, name, frame, depth_file, t = _identity(params, index, rng)
    K = _intrinsics(sensor, H, W)
    scene_type = str(rng.choice(SCENE_TYPES, p=_SCENE_P))
    split, slash = _split(rng, index, sensor, subset, quirks)
    ext = _extrinsics(rng, index, t)
    room = make_room(rng, H, W, K[0, 0], K[0, 2], deep=0.6 if scene_type in ("bedroom", "classroom") else 0.0)
    bld = _furnished(rng, room, scene_type, quirks)
    wall_rgb = tuple(int(c) for c in [(200, 190, 172), (186, 188, 184), (174, 186, 198),
                                      (206, 196, 174), (192, 182, 188)][int(rng.integers(5))])
    floor_look = {"kitchen": "tiles", "bathroom": "tiles", "office": "carpet", "classroom": "tiles"}.get(
        scene_type, "planks")
    if rng.random() < 0.25:
        floor_look = str(rng.choice(["planks", "tiles", "carpet"]))

    qrng = np.random.default_rng([params.seed, index, 1])
    bld.rng = qrng  # quirk-only geometry must not shift the clean scene's random numbers
    objects = _plant_object_quirks(bld, quirks)
    polys = _final_polygons(bld.polys, quirks, qrng, H, W)
    return ScenePlan(index, sensor, subset, name, frame, depth_file, (H, W), split, slash, scene_type,
                     quirks, objects, polys, room, K, ext,
                     t.strftime("%a,%d%b%Y%H:%M:%SGMT"), wall_rgb, floor_look)


def _intrinsics(sensor: str, H: int, W: int) -> np.ndarray:
    """K of the real sensor scaled to the image size (kv1: the real img_0063 values)."""
    if sensor == "kv1":
        return np.array([[520.532 * W / 561, 0, 277.9258 * W / 561],
                         [0, 520.7444 * H / 427, 215.115 * H / 427], [0, 0, 1]])
    return np.array([[529.5 * W / 730, 0, 365.0 * W / 730], [0, 529.5 * H / 530, 265.0 * H / 530],
                     [0, 0, 1]])


def _split(rng: np.random.Generator, index: int, sensor: str, subset: str,
           quirks: tuple[str, ...]) -> tuple[str, bool]:
    """(train/val/test/none, whether the allsplit.mat entry ends in '/')."""
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
    return split, slash


def _extrinsics(rng: np.random.Generator, index: int, t: datetime) -> list[tuple[str, np.ndarray]]:
    """(file stamp, 3x4 rotation + zero translation) in sorted order; about a quarter of
    the scenes (always scene 0) were re-annotated, and the older file must be ignored."""
    pitch, roll = rng.uniform(0.05, 0.4), rng.uniform(-0.03, 0.03)
    t_ext = t + timedelta(days=int(rng.integers(30, 200)), seconds=int(rng.integers(0, 86400)))
    ext = [(_fmt_stamp(t_ext), np.hstack([rotation(pitch, roll), np.zeros((3, 1))]))]
    if index == 0 or rng.random() < 0.25:
        older = t_ext - timedelta(days=int(rng.integers(1, 20)))
        ext.insert(0, (_fmt_stamp(older), np.hstack([rotation(pitch + 0.2, -roll), np.zeros((3, 1))])))
    return ext


def _furnished(rng: np.random.Generator, room: Room, scene_type: str, quirks: tuple[str, ...]) -> Builder:
    """The room shell, wall items and furniture, polygons in paint order (floor groups
    far to near)."""
    bld = Builder(rng, room)
    room_shell(bld, "wall\\" if "json_stray_backslash" in quirks else None)
    wall_items(bld, scene_type)
    furnish(bld, scene_type)
    for _, polys in sorted(bld.groups, key=lambda g: -g[0]):
        bld.polys.extend(polys)
    return bld


def _plant_object_quirks(bld: Builder, quirks: tuple[str, ...]) -> list:
    """Add the quirk-only objects and polygons; → index.json's `objects` (entries may be
    None or {} in the null_objects scene)."""
    if "json_bad_quotes" in quirks:
        X, Z = place(bld, 0.3, 0.3, against=False)
        bld.polys.append(floor_box(bld, "unknown", X, Z, 0.3, 0.3, 0.35)[0])
        bld.objects[-1] = '"propulsion"tool'
    if "dangling_object" in quirks:  # a sign whose object index points past the list
        room = bld.room
        lo, hi = room.visible_x(room.d_back, 0.4)
        x = bld.rng.uniform(lo, hi)
        bld.polys.append(bld.on_wall("sign", "back", x - 0.2, x + 0.2, 1.6, 1.85,
                                     obj=len(bld.objects) + 2))
    objects: list = [{"name": n} for n in bld.objects]
    if "null_objects" in quirks:  # two objects lose their entry, their polygons stay
        cands = [k for k in range(len(objects))
                 if _kind_of(bld.polys, k) not in ("", "wall", "floor", "ceiling")]
        objects[cands[-1]] = None
        objects[cands[-2]] = {}
    return objects


def _final_polygons(polys: list[Poly], quirks: tuple[str, ...], qrng: np.random.Generator,
                    H: int, W: int) -> list[Poly]:
    """Clip to a margin around the image (coordinates stay negative / past the border like
    the real files) and round to integers, or to 2-decimal floats in the quirk scene."""
    mx, my = 0.06 * W + 12, 0.08 * H + 10
    out = []
    for p in polys:
        pts = clip_polygon(p.pts, -mx, -my, W + mx, H + my)
        if len(pts) < 3:
            continue
        if "coords_float" in quirks:
            frac = qrng.uniform(0.01, 0.99, pts.shape)
            frac = np.where(np.abs(frac - 0.5) < 0.02, 0.37, frac)  # no ties when rounding
            p.pts = np.round(np.floor(pts) + frac, 2)
        else:
            p.pts = np.round(pts)
        out.append(p)
    return out


def _kind_of(polys: list[Poly], k: int) -> str:
    for p in polys:
        if p.obj == k:
            return p.kind
    return ""


def index_of(params: SampleParams, key: str) -> int:
    """The index of the scene whose folder below SUNRGBD/ is `key`."""
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
