"""Rendering: the RGB image and the depth of a scene plan, and the sensor's depth files.

Why: every class has one look (base colour + texture, per-instance variation, face
shading, light falloff, blur and noise) so a small model can learn classes from pixels,
and depth comes from the same geometry as the labels (docs/synthetic.md, "What a scene is").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from sunrgbd_tools.synthetic.geometry import Room, fill_polygon
from sunrgbd_tools.synthetic.plan import ScenePlan
from sunrgbd_tools.synthetic.sample_json import SampleParams

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


@dataclass
class _Patch:
    """One textured region: X (1, w) column and Y (h, 1) row coordinates, u/v the same
    scaled to 0..1 over the polygon's bounding box, low/high-frequency noise lf/hf (h, w),
    three per-instance numbers prm, and the instance's base colour."""

    base: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    lf: np.ndarray
    hf: np.ndarray
    prm: np.ndarray
    x0: float
    room: Room

    @property
    def lum(self) -> np.ndarray:
        """The default luminance: 5% low-frequency variation."""
        return 1.0 + 0.05 * self.lf

    def shade(self, lum: np.ndarray) -> np.ndarray:
        return self.base * lum[..., None]


def _flat(t: _Patch) -> np.ndarray:
    return t.shade(t.lum + 0.02 * t.hf)


def _wall(t: _Patch) -> np.ndarray:
    return t.shade(1.0 + 0.03 * t.lf + 0.012 * t.hf)


def _fabric(t: _Patch) -> np.ndarray:
    return t.shade(t.lum + 0.07 * t.hf)


def _grain(t: _Patch) -> np.ndarray:
    return t.shade(t.lum + 0.07 * np.sin(t.Y * (0.35 + t.prm[0] * 0.3) + 4 * t.lf) + 0.02 * t.hf)


def _floor_metres(t: _Patch) -> tuple[np.ndarray, np.ndarray]:
    """(X, Z) in metres of each pixel on the floor plane, for patterns in perspective."""
    room = t.room
    Z = room.f * room.cam_h / np.maximum(t.Y - room.yh, 1.0)
    return (t.X - room.cx) * Z / room.f, Z


def _planks(t: _Patch) -> np.ndarray:
    Xm, Z = _floor_metres(t)
    seam = (np.mod(Xm / 0.16, 1.0) < 0.07) | (np.mod(Z / 1.1 + np.floor(Xm / 0.16) * 0.37, 1.0) < 0.015)
    return t.shade(t.lum + 0.06 * np.sin(Xm * 90 + 3 * t.lf) - 0.22 * seam + 0.02 * t.hf)


def _tiles(t: _Patch) -> np.ndarray:
    Xm, Z = _floor_metres(t)
    seam = (np.mod(Xm / 0.4, 1.0) < 0.04) | (np.mod(Z / 0.4, 1.0) < 0.04)
    return t.shade(t.lum - 0.18 * seam + 0.02 * t.hf)


def _carpet(t: _Patch) -> np.ndarray:
    return t.shade(t.lum + 0.15 * t.hf)


def _panel(t: _Patch) -> np.ndarray:
    u, v = t.u, t.v
    edge = (np.abs(u - 0.15) < 0.02) | (np.abs(u - 0.85) < 0.02) | (np.abs(v - 0.1) < 0.012) \
        | (np.abs(v - 0.48) < 0.012) | (np.abs(v - 0.9) < 0.012)
    knob = ((u - 0.8) ** 2 + ((v - 0.52) * 2.5) ** 2) < 0.0015
    return t.shade(t.lum + 0.05 * np.sin(t.Y * 0.4 + 3 * t.lf) - 0.16 * edge + 0.5 * knob)


def _drawers(t: _Patch) -> np.ndarray:
    u, v = t.u, t.v
    edge = (np.abs(np.mod(v * 3, 1.0) - 0.0) < 0.04) | (np.abs(u - 0.5) < 0.01)
    knob = (np.abs(np.mod(v * 3, 1.0) - 0.5) < 0.08) & (np.abs(np.mod(u * 2, 1.0) - 0.5) < 0.05)
    return t.shade(t.lum + 0.04 * np.sin(t.Y * 0.5 + 3 * t.lf) - 0.2 * edge + 0.45 * knob)


def _window(t: _Patch) -> np.ndarray:
    u, v, base, lf = t.u, t.v, t.base, t.lf
    bar = (np.abs(u - 0.5) < 0.02) | (np.abs(v - 0.5) < 0.02) | (u < 0.04) | (u > 0.96) \
        | (v < 0.05) | (v > 0.95)
    sky = np.stack([base[0] - 40 * v + 20 * lf, base[1] - 20 * v + 10 * lf, base[2] + 0 * lf], -1)
    return np.where(bar[..., None], np.float32(242), sky)


def _slats(t: _Patch) -> np.ndarray:  # 9-13 slats whatever the image size, so they survive resizing
    return t.shade(t.lum - 0.25 * (np.mod(t.v * (9 + 4 * t.prm[0]), 1.0) < 0.3))


def _shelving(t: _Patch) -> np.ndarray:  # boards with darker gaps between them
    board = (np.mod(t.v * 3, 1.0) < 0.2) | (t.u < 0.06) | (t.u > 0.94)
    return t.shade(t.lum + 0.35 * board + 0.03 * t.hf)


def _brushed(t: _Patch) -> np.ndarray:  # vertical brushing and a door gap with a handle
    u, v = t.u, t.v
    return t.shade(t.lum + 0.04 * np.sin(t.X * 1.7 + 3 * t.lf) + 0.02 * t.hf - 0.25 * (np.abs(v - 0.32) < 0.015)
                   - 0.35 * ((np.abs(u - 0.88) < 0.025) & (v > 0.38) & (v < 0.62)))


def _basin(t: _Patch) -> np.ndarray:  # a steel bowl: bright rim, darker inside
    inner = (t.u > 0.12) & (t.u < 0.88) & (t.v > 0.3)
    return t.shade(t.lum - 0.3 * inner + 0.25 * (t.v < 0.15) + 0.02 * t.hf)


def _text(t: _Patch) -> np.ndarray:  # printed lines
    u, v = t.u, t.v
    return t.shade(t.lum - 0.35 * ((np.mod(v * 9, 1.0) < 0.35) & (u > 0.1) & (u < 0.9) & (v > 0.08)))


def _vfolds(t: _Patch) -> np.ndarray:
    return t.shade(t.lum + 0.17 * np.sin(t.X * (0.25 + t.prm[0] * 0.15)) + 0.02 * t.hf)


def _books(t: _Patch) -> np.ndarray:
    X, prm = t.X, t.prm
    width = 4.0 + prm[0] * 6
    idx = np.floor((X - t.x0) / width + 0.5 * prm[1]).astype(np.int64)  # one book per stripe
    col = _BOOK_COLOURS[(idx * 7 + int(prm[2] * 8)) % len(_BOOK_COLOURS)]  # (1, w, 3)
    gap = np.mod((X - t.x0) / width, 1.0) < 0.12
    top = t.v < (0.05 + 0.2 * np.mod(idx * 0.37, 1.0))
    return col * ((1 - 0.4 * (gap | top)) * (1 + 0.04 * t.hf))[..., None]


def _picture(t: _Patch) -> np.ndarray:
    u, v, X, Y, lf, prm = t.u, t.v, t.X, t.Y, t.lf, t.prm
    frame = (u < 0.06) | (u > 0.94) | (v < 0.07) | (v > 0.93)
    c = prm * 200 + 30
    art = np.stack([c[0] + 70 * lf + 40 * np.sin(X * 0.05 + prm[1] * 6),
                    c[1] + 60 * np.sin(Y * 0.06 + prm[2] * 6) + 0 * X,
                    c[2] - 70 * lf + 10 * t.hf], -1)
    return np.where(frame[..., None], np.float32(45), art)


def _screen(t: _Patch) -> np.ndarray:
    u, v = t.u, t.v
    inner = (u > 0.03) & (u < 0.97) & (v > 0.04) & (v < 0.96)
    return t.shade(t.lum + 0.6 * inner * (1 - v) * t.prm[0])


def _monitor(t: _Patch) -> np.ndarray:
    u, v, lf = t.u, t.v, t.lf
    scr = (u > 0.06) & (u < 0.94) & (v > 0.05) & (v < 0.72)
    glow = np.stack([60 + 30 * lf + 0 * u, 100 + 40 * (1 - v) + 0 * u, 165 + 30 * lf + 0 * u], -1)
    return np.where(scr[..., None], glow, (t.base * (1 + 0.03 * t.hf)[..., None]))


def _laptop(t: _Patch) -> np.ndarray:
    u, v = t.u, t.v
    scr = (v < 0.5) & (u > 0.05) & (u < 0.95) & (v > 0.04)
    return np.where(scr[..., None], np.float32([40, 60, 110]), t.base * (1 + 0.03 * t.hf)[..., None])


def _keys(t: _Patch) -> np.ndarray:
    key = (np.mod(t.X / 3.5, 1.0) < 0.7) & (np.mod(t.Y / 3.5, 1.0) < 0.65)
    return t.shade(t.lum + 0.5 * key)


def _glossy(t: _Patch) -> np.ndarray:
    u, v = t.u, t.v
    return t.shade(t.lum + 0.1 * (1 - v) - 0.05 * v + 0.18 * np.exp(-((u - 0.3 - 0.4 * t.prm[0]) ** 2) / 0.01))


def _board(t: _Patch) -> np.ndarray:
    u, v = t.u, t.v
    frame = (u < 0.02) | (u > 0.98) | (v < 0.03) | (v > 0.97)
    return t.shade(t.lum - 0.3 * frame + 0.01 * t.hf)


def _glow(t: _Patch) -> np.ndarray:
    return t.shade(t.lum + 0.1 * (1 - t.v))


def _leaves(t: _Patch) -> np.ndarray:
    return t.shade(t.lum + 0.3 * t.hf + 0.25 * np.sin(t.X * 0.3 + 5 * t.lf) * np.sin(t.Y * 0.3))


def _rug(t: _Patch) -> np.ndarray:
    u, v, X, Y = t.u, t.v, t.X, t.Y
    border = (u < 0.08) | (u > 0.92) | (v < 0.08) | (v > 0.92)
    pat = np.sin(X * 0.15 + Y * 0.15) * np.sin(X * 0.15 - Y * 0.15) > 0.3
    return np.where(border[..., None], np.float32([214, 196, 150]),
                    t.base * (1 + 0.25 * pat + 0.06 * t.hf)[..., None])


def _speckle(t: _Patch) -> np.ndarray:
    return t.shade(t.lum + 0.09 * t.hf + 0.05 * t.lf)


def _clock(t: _Patch) -> np.ndarray:
    u, v = t.u, t.v
    rr = (u - 0.5) ** 2 + (v - 0.5) ** 2
    hand = (np.abs(u - 0.5) < 0.03) & (v < 0.5) & (v > 0.2) | (np.abs(v - 0.5) < 0.03) & (u > 0.5) & (u < 0.75)
    return t.shade(t.lum - 0.8 * (rr > 0.17) - 0.7 * hand)


def _cardboard(t: _Patch) -> np.ndarray:
    return t.shade(t.lum + 0.03 * t.hf + 0.12 * (np.abs(t.u - 0.5) < 0.05))


# texture name (LOOKS, the floor looks, "wall") -> its function
TEXTURES: dict[str, Callable[[_Patch], np.ndarray]] = {
    "flat": _flat, "wall": _wall, "fabric": _fabric, "grain": _grain, "planks": _planks,
    "tiles": _tiles, "carpet": _carpet, "panel": _panel, "drawers": _drawers, "window": _window,
    "slats": _slats, "shelving": _shelving, "brushed": _brushed, "basin": _basin, "text": _text,
    "vfolds": _vfolds, "books": _books, "picture": _picture, "screen": _screen, "monitor": _monitor,
    "laptop": _laptop, "keys": _keys, "glossy": _glossy, "board": _board, "glow": _glow,
    "leaves": _leaves, "rug": _rug, "speckle": _speckle, "clock": _clock, "cardboard": _cardboard,
}
# the textures lit from above: 4 % brighter at the top of their region, 4 % darker at the bottom
LIT_FROM_ABOVE: frozenset[str] = frozenset(
    {"flat", "fabric", "grain", "wall", "glossy", "speckle", "cardboard", "brushed"})


def _texture(tex: str, base: np.ndarray, X: np.ndarray, Y: np.ndarray, lf: np.ndarray,
             hf: np.ndarray, prm: np.ndarray, box: tuple[float, float, float, float],
             room: Room) -> np.ndarray:
    """RGB float32 (h, w, 3) of one textured region; X, Y are column/row coordinates."""
    X = X[None, :]
    Y = Y[:, None]
    x0, y0, x1, y1 = box
    u = (X - x0) / max(x1 - x0, 1.0)
    v = (Y - y0) / max(y1 - y0, 1.0)
    rgb = TEXTURES[tex](_Patch(base, X, Y, u, v, lf, hf, prm, x0, room))
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
        fill_polygon(polymap, p.pts, i + 1)
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
                fill_polygon(sm, np.asarray(pts) - [c0, r0], 1)
                fac = np.where(sm > 0, np.float32(f), fac)
            col = col * fac[..., None]
        if tex in LIT_FROM_ABOVE:
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


def sensor_depth(plan: ScenePlan, depth_m: np.ndarray, params: SampleParams) -> tuple[np.ndarray, np.ndarray]:
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
            fill_polygon(holes, p.pts, 1)
    raw = np.where(holes > 0, 0, mm).astype(np.uint16)
    bfx = cv2.GaussianBlur(mm.astype(np.float32), (5, 5), 1.0)
    bfx = np.clip(np.rint(bfx), 1, 65535).astype(np.uint16)
    # a few pixels stay missing after filling so that "0 = missing" is exercised there too
    cy, cx = int(rng.integers(0, H)), int(rng.integers(0, W))
    bfx[max(cy - H // 60, 0): cy + H // 60 + 1, max(cx - W // 60, 0): cx + W // 60 + 1] = 0
    return raw, bfx
