"""Furniture: what stands in a room of each scene type, built from boxes, and what hangs on
its walls. Each builder returns polygons, support first, then the things on it.

Why: the scene type decides which classes occur together, and classes are drawn at sizes
that survive `convert --size 120x160` (docs/synthetic.md, "What a scene is"). Every random
draw is made in a fixed order, so scene *i* stays the same for a given seed.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from sunrgbd_tools.synthetic.geometry import Box, Builder, Poly


def _chair(b: Builder, X: float, Z: float, face_back: bool = False) -> list[Poly]:
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


def _table(b: Builder, kind: str, X: float, Z: float, w: float, d: float, h: float,
           pedestal: bool = False) -> tuple[Poly, Box]:
    top = Box(X - w / 2, X + w / 2, h - 0.04, h, Z, Z + d)
    lw = 0.05
    parts = [top, Box(X - w / 2, X - w / 2 + lw, 0, h, Z, Z + lw),
             Box(X + w / 2 - lw, X + w / 2, 0, h, Z, Z + lw)]
    if pedestal:
        parts.append(Box(X - w / 2, X - w / 2 + 0.4, 0, h, Z, Z + d))
    return b.boxes(kind, parts), top


def _on_top(b: Builder, top: Box, kinds: Iterable[str]) -> list[Poly]:
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


def floor_box(b: Builder, kind: str, X: float, Z: float, w: float, d: float, h: float,
               y0: float = 0.0) -> tuple[Poly, Box]:
    bx = Box(X - w / 2, X + w / 2, y0, y0 + h, Z, Z + d)
    return b.boxes(kind, [bx]), bx


def place(b: Builder, w: float, d: float, against: bool, zmin: float = 1.2) -> tuple[float, float]:
    r = b.room
    if against:
        Z = r.d_back - d - b.rng.uniform(0.0, 0.06)
    else:
        Z = b.rng.uniform(zmin, max(zmin, r.d_back - d - 0.5))
    Z = max(Z, 0.9)
    lo, hi = r.visible_x(Z, w)
    return b.rng.uniform(lo, hi), Z


def _add_group(b: Builder, polys: list[Poly]) -> None:
    if polys:
        b.groups.append((polys[0].depth[1] if polys[0].depth[0] == "const" else 99.0, polys))


def wall_items(b: Builder, st: str) -> None:
    """What is on the walls: a window (maybe with blinds or curtains), a door, whiteboard
    and notices in offices and classrooms, pictures, a clock, a sign, an outlet, and now
    and then a pillar in a back corner."""
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
        p, _ = floor_box(b, "pillar", X, r.d_back - 0.4, 0.4, 0.4, r.wall_h)
        b.polys.append(p)


def furnish(b: Builder, st: str) -> None:
    """The furniture of a scene of type `st`: a rug now and then, the type's own
    furniture, and rarely an odd thing with an uninformative name."""
    _floor_mat(b, st)
    _FURNISH[st](b)
    _odd_thing(b)


def _floor_mat(b: Builder, st: str) -> None:
    if b.rng.random() < (0.6 if st in ("bedroom", "living_room") else 0.15):
        u = b.rng.uniform
        w, d = u(1.4, 2.4), u(1.0, 1.8)
        X, Z = place(b, w, d, against=False)
        mat = b.boxes("floor_mat", [Box(X - w / 2, X + w / 2, 0.0, 0.005, Z, Z + d)])
        b.groups.append((1e6, [mat]))  # lying on the floor: drawn before the furniture


def _odd_thing(b: Builder) -> None:
    if b.rng.random() < 0.12:
        X2, Z2 = place(b, 0.3, 0.3, against=False)
        _add_group(b, [floor_box(b, "unknown", X2, Z2, 0.3, 0.3, 0.3)[0]])


def _scattered(b: Builder, items: tuple[tuple[str, float, tuple[float, float, float]], ...],
               against: bool | None) -> None:
    """Boxes standing on the floor, each (kind, probability, (w, d, h)); against=None
    draws for each whether it stands against the back wall."""
    for kind, p, dims in items:
        if b.rng.random() < p:
            at_wall = b.rng.random() < 0.5 if against is None else against
            X, Z = place(b, dims[0], dims[1], against=at_wall)
            _add_group(b, [floor_box(b, kind, X, Z, *dims)[0]])


def _office(b: Builder) -> None:
    rng = b.rng
    for _ in range(int(rng.integers(1, 3))):
        _office_desk(b)
    if rng.random() < 0.5:
        _add_group(b, _bookshelf(b))
    elif rng.random() < 0.5:
        X, Z = place(b, 0.9, 0.4, against=True)
        _add_group(b, [floor_box(b, "shelves", X, Z, 0.9, 0.4, 1.8)[0]])
    _scattered(b, (("cabinet", 0.4, (0.8, 0.5, 1.0)), ("garbage_bin", 0.5, (0.3, 0.3, 0.4)),
                   ("box", 0.4, (0.5, 0.4, 0.35)), ("printer", 0.2, (0.5, 0.45, 0.35)),
                   ("bag", 0.3, (0.35, 0.2, 0.4))), against=None)


def _office_desk(b: Builder) -> None:
    """A desk with monitors, keyboard and clutter, usually a chair, sometimes a tower."""
    rng, u = b.rng, b.rng.uniform
    w, d = u(1.2, 1.7), u(0.6, 0.8)
    X, Z = place(b, w, d, against=rng.random() < 0.7)
    desk, top = _table(b, "desk", X, Z, w, d, 0.74, pedestal=rng.random() < 0.5)
    things = ["monitor"] * int(rng.integers(1, 3)) + ["keyboard", "mouse"]
    things += [k for k, p in (("paper", 0.5), ("books", 0.4), ("cup", 0.4),
                              ("telephone", 0.3), ("lamp", 0.2), ("laptop", 0.2)) if rng.random() < p]
    _add_group(b, [desk] + _on_top(b, top, things))
    if rng.random() < 0.85:
        _add_group(b, _chair(b, X + u(-0.3, 0.3), Z - u(0.35, 0.6), face_back=True))
    if rng.random() < 0.5:
        p, _ = floor_box(b, "cpu", X + w / 2 - 0.15, Z + 0.05, 0.2, 0.45, 0.45)
        _add_group(b, [p])


def _bedroom(b: Builder) -> None:
    r, rng = b.room, b.rng
    X, w = _bed(b)
    if rng.random() < 0.75:
        nx = X - w / 2 - 0.3 if rng.random() < 0.5 else X + w / 2 + 0.3
        ns, top = floor_box(b, "night_stand", nx, r.d_back - 0.45, 0.45, 0.4, 0.55)
        _add_group(b, [ns] + _on_top(b, top, ["lamp"] if rng.random() < 0.7 else []))
    if rng.random() < 0.5:
        X, Z = place(b, 1.0, 0.5, against=True)
        dr, top = floor_box(b, "dresser", X, Z, 1.0, 0.5, 0.85)
        things = [k for k, p in (("tv", 0.25), ("box", 0.3), ("vase", 0.3)) if rng.random() < p]
        _add_group(b, [dr] + _on_top(b, top, things))
    _scattered(b, (("ottoman", 0.2, (0.5, 0.5, 0.42)), ("bag", 0.3, (0.35, 0.2, 0.4)),
                   ("box", 0.2, (0.45, 0.35, 0.3))), against=False)


def _bed(b: Builder) -> tuple[float, float]:
    """A bed against the back wall (its headboard sometimes a separate object) with
    pillows and now and then clothes on it. → (X of its centre, its width)."""
    rng, u = b.rng, b.rng.uniform
    w, d = u(1.4, 1.9), u(1.9, 2.1)
    X, Z = place(b, w, d, against=True)
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
    return X, w


def _living_room(b: Builder) -> None:
    r, rng, u = b.room, b.rng, b.rng.uniform
    X, Z, w = _sofa(b)
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
        cab, top = floor_box(b, "cabinet", cX, cZ, 1.0, 0.45, 0.55)
        _add_group(b, [cab] + _on_top(b, top, ["tv"] + (["speaker"] if rng.random() < 0.4 else [])))
    if rng.random() < 0.5:
        lx = X + w / 2 + 0.35 if rng.random() < 0.5 else X - w / 2 - 0.35
        parts = [Box(lx - 0.15, lx + 0.15, 0, 0.03, Z + 0.3, Z + 0.6),
                 Box(lx - 0.02, lx + 0.02, 0, 1.3, Z + 0.44, Z + 0.46),
                 Box(lx - 0.2, lx + 0.2, 1.25, 1.6, Z + 0.25, Z + 0.65)]
        _add_group(b, [b.boxes("lamp", parts)])
    if rng.random() < 0.5:
        X2, Z2 = place(b, 0.4, 0.4, against=rng.random() < 0.5)
        _add_group(b, [b.boxes("plant", [Box(X2 - 0.15, X2 + 0.15, 0, 0.35, Z2, Z2 + 0.3),
                                         Box(X2 - 0.35, X2 + 0.35, 0.35, 1.1, Z2 - 0.05, Z2 + 0.35)])])
    if rng.random() < 0.2:
        X2, Z2 = place(b, 0.5, 0.5, against=False)
        _add_group(b, [floor_box(b, "ottoman", X2, Z2, 0.5, 0.5, 0.42)[0]])


def _sofa(b: Builder) -> tuple[float, float, float]:
    """A sofa against the back wall with 0-3 pillows. → (X, Z, width) of its footprint."""
    u = b.rng.uniform
    w, d = u(1.8, 2.4), 0.9
    X, Z = place(b, w, d, against=True)
    parts = [Box(X - w / 2, X + w / 2, 0, 0.42, Z, Z + d),
             Box(X - w / 2 + 0.15, X + w / 2 - 0.15, 0.42, 0.85, Z + d - 0.22, Z + d),
             Box(X - w / 2, X - w / 2 + 0.15, 0.42, 0.62, Z, Z + d),
             Box(X + w / 2 - 0.15, X + w / 2, 0.42, 0.62, Z, Z + d)]
    sofa = b.boxes("sofa", parts)
    pil = []
    for _ in range(int(b.rng.integers(0, 4))):
        px = u(X - w / 2 + 0.4, X + w / 2 - 0.4)
        pil.append(b.boxes("pillow", [Box(px - 0.22, px + 0.22, 0.42, 0.8, Z + d - 0.4, Z + d - 0.22)]))
    _add_group(b, [sofa] + pil)
    return X, Z, w


def _kitchen(b: Builder) -> None:
    r, rng = b.room, b.rng
    w, d = rng.uniform(1.6, 3.0), 0.6
    X, Z = place(b, w, d, against=True)
    cnt, top = floor_box(b, "counter", X, Z, w, d, 0.9)
    things = [k for k, p in (("sink", 0.7), ("bottle", 0.5), ("cup", 0.4), ("box", 0.2)) if rng.random() < p]
    _add_group(b, [cnt] + _on_top(b, top, things))
    if rng.random() < 0.6:
        up = b.boxes("cabinet", [Box(X - w / 2, X + w / 2, 1.5, 2.2, r.d_back - 0.35, r.d_back)])
        b.polys.append(up)
    else:  # open wall shelves instead
        b.polys.append(b.boxes("shelves", [Box(X - w / 3, X + w / 3, 1.45, 2.1, r.d_back - 0.3, r.d_back)]))
    if rng.random() < 0.7:
        fX = X + w / 2 + 0.45 if X < 0 else X - w / 2 - 0.45
        _add_group(b, [floor_box(b, "fridge", fX, r.d_back - 0.7, 0.8, 0.7, 1.8)[0]])
    if rng.random() < 0.5:
        _dining_table(b)
    if rng.random() < 0.5:
        X2, Z2 = place(b, 0.3, 0.3, against=False)
        _add_group(b, [floor_box(b, "garbage_bin", X2, Z2, 0.3, 0.3, 0.45)[0]])


def _dining_table(b: Builder) -> None:
    """A kitchen table, maybe with a cup, and up to two chairs in front of it."""
    rng = b.rng
    tX, tZ = place(b, 1.0, 0.8, against=False)
    tab, top = _table(b, "table", tX, tZ, 1.0, 0.8, 0.75)
    _add_group(b, [tab] + _on_top(b, top, ["cup"] if rng.random() < 0.5 else []))
    for dx in (-0.3, 0.3):
        if rng.random() < 0.7:
            _add_group(b, _chair(b, tX + dx, max(0.95, tZ - 0.45), face_back=True))


def _bathroom(b: Builder) -> None:
    r, rng = b.room, b.rng
    X, Z = place(b, 0.45, 0.7, against=True)
    parts = [Box(X - 0.2, X + 0.2, 0, 0.42, Z, Z + 0.55), Box(X - 0.22, X + 0.22, 0.42, 0.8, Z + 0.5, Z + 0.7)]
    _add_group(b, [b.boxes("toilet", parts)])
    vX = X + 1.0 if X < (r.left + r.right) / 2 else X - 1.0
    van, top = floor_box(b, "counter", vX, r.d_back - 0.55, 0.9, 0.55, 0.85)
    _add_group(b, [van] + _on_top(b, top, ["sink"] + (["bottle"] if rng.random() < 0.5 else [])))
    b.polys.append(b.on_wall("mirror", "back", vX - 0.35, vX + 0.35, 1.1, 1.9))
    if rng.random() < 0.8:
        tX = r.right - 0.3 if X < 0 else r.left + 0.3
        b.polys.append(b.on_wall("towel", "back", tX - 0.25, tX + 0.25, 0.9, 1.5))
    if rng.random() < 0.5:
        side_x = r.left + 0.4 if rng.random() < 0.5 else r.right - 0.4
        _add_group(b, [floor_box(b, "bathtub", side_x, max(1.2, r.d_back - 1.8), 0.75, 1.7, 0.55)[0]])
    if rng.random() < 0.5:
        sx = rng.uniform(r.left + 0.5, r.right - 0.5)
        sh, top = floor_box(b, "shelves", sx, r.d_back - 0.25, 0.6, 0.25, 0.7, y0=1.0)
        b.polys.append(sh)
        b.polys.extend(_on_top(b, top, ["bottle"]))
    if rng.random() < 0.5:
        X2, Z2 = place(b, 0.25, 0.25, against=False)
        _add_group(b, [floor_box(b, "garbage_bin", X2, Z2, 0.25, 0.25, 0.35)[0]])


def _classroom(b: Builder) -> None:
    r, rng = b.room, b.rng
    rows, cols = int(rng.integers(1, 3)), int(rng.integers(2, 5))
    z0 = max(1.3, r.d_back - 1.0 - 1.3 * rows)
    for i in range(rows):
        Z = z0 + 1.3 * i
        lo, hi = r.visible_x(Z, 0.7)
        for X in np.linspace(lo, hi, cols):
            _school_desk(b, X, Z)
    if rng.random() < 0.4:
        X2, Z2 = place(b, 0.35, 0.2, against=False)
        _add_group(b, [floor_box(b, "bag", X2, Z2, 0.35, 0.2, 0.4)[0]])


def _school_desk(b: Builder, X: float, Z: float) -> None:
    """One desk of a classroom row, with some paper/books/a laptop and usually a chair."""
    rng = b.rng
    desk, top = _table(b, "desk", X, Z, 0.7, 0.5, 0.72)
    things = [k for k, p in (("paper", 0.4), ("books", 0.3), ("laptop", 0.15)) if rng.random() < p]
    _add_group(b, [desk] + _on_top(b, top, things))
    if rng.random() < 0.8:
        _add_group(b, _chair(b, X, max(0.95, Z - 0.45), face_back=True))


# scene type -> its furniture (the order of the random draws inside each is part of the scene)
_FURNISH = {"office": _office, "bedroom": _bedroom, "living_room": _living_room,
            "kitchen": _kitchen, "bathroom": _bathroom, "classroom": _classroom}


def _bookshelf(b: Builder) -> list[Poly]:
    rng = b.rng
    w, d, h = rng.uniform(0.8, 1.2), 0.35, rng.uniform(1.6, 2.0)
    X, Z = place(b, w, d, against=True)
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
