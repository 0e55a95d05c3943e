"""Room, camera and projection: 3-D boxes in a box-shaped room seen by a pinhole camera,
projected to the 2-D polygons an annotator would draw, and filled like the converter.

Why: image, polygons, seg.mat and depth are all derived from this one geometry, so they
agree with each other (docs/synthetic.md, "What a scene is").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from sunrgbd_tools.synthetic.vocab import kind_name

_SHIFT = 4  # polygons are filled with 1/16-pixel fixed point, like the converter


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


class Builder:
    """Collects objects and polygons of one scene in paint order."""

    def __init__(self, rng: np.random.Generator, room: Room):
        self.rng = rng
        self.room = room
        self.objects: list[str] = []
        self.polys: list[Poly] = []
        self.groups: list[tuple[float, list[Poly]]] = []  # floor groups, sorted later

    def new_object(self, kind: str, name: str | None = None) -> int:
        self.objects.append(name or kind_name(self.rng, kind))
        return len(self.objects) - 1

    def poly(self, obj: int, kind: str, pts, depth, shade=None) -> Poly:
        return Poly(np.asarray(pts, float), obj, kind, int(self.rng.integers(1 << 30)), depth,
                    shade or [])

    def boxes(self, kind: str, boxes: list[Box], name: str | None = None, obj: int | None = None,
              depth: float | None = None) -> Poly:
        """An object made of boxes (or another polygon of object `obj`): the outline of
        their union, with the faces the camera sees shaded."""
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


def make_room(rng: np.random.Generator, H: int, W: int, f: float, cx: float, deep: float) -> Room:
    """A random room for a camera with focal length f; `deep` pushes the back wall away
    (bedrooms and classrooms need the space)."""
    cam_h = rng.uniform(1.15, 1.5)
    wall_h = rng.uniform(2.5, 3.1)
    yh = H * rng.uniform(0.28, 0.46)
    d_min = max(2.6, f * cam_h / (0.86 * H - yh))  # keep the floor line inside the image
    d_back = max(d_min, rng.uniform(2.8, 5.2) + deep)
    half = rng.uniform(1.4, 2.8)
    shift = rng.uniform(-0.8, 0.8)
    return Room(H, W, f, cx, yh, cam_h, wall_h, d_back, -half + shift, half + shift)


def room_shell(bld: Builder, name_wall: str | None) -> None:
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


def clip_polygon(pts: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
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


def rotation(pitch: float, roll: float) -> np.ndarray:
    """The camera's 3x3 rotation (pitch about X, then roll about Z) of an extrinsics file."""
    cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    rz = np.array([[cr, sr, 0], [-sr, cr, 0], [0, 0, 1]])
    return rz @ rx


def fill_polygon(canvas: np.ndarray, pts: np.ndarray, value: int) -> None:
    """Paint one polygon exactly as the converter does (1/16-pixel fixed point)."""
    H, W = canvas.shape[:2]
    x = np.clip(pts[:, 0], -4.0 * W - 4, 5.0 * W + 4)
    y = np.clip(pts[:, 1], -4.0 * H - 4, 5.0 * H + 4)
    q = np.round(np.stack([x, y], 1) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(canvas, [q], int(value), lineType=cv2.LINE_8, shift=_SHIFT)
