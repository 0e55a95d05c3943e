"""The names the generator writes: real raw SUN RGB-D object names per kind it can draw,
and its own official seg37 mapping of them.

Why one module: mappings/names.csv must cover every emitted name, the toolbox's
seglistall.mat lists them, and `sunrgbd mapping audit` is tested against the official
mapping here, so all of them read the same tables (docs/synthetic.md, "Object names").
"""

from __future__ import annotations

import numpy as np

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
SEGLISTALL: tuple[str, ...] = tuple(sorted(set(EMITTED_NAMES)))


def _names_of_kind() -> dict[str, tuple[list[str], np.ndarray]]:
    """kind → (its names, their probabilities) from VOCAB's frequency column."""
    acc: dict[str, tuple[list[str], list[int]]] = {}
    for name, kind, w, _ in VOCAB:
        acc.setdefault(kind, ([], []))
        acc[kind][0].append(name)
        acc[kind][1].append(w)
    return {k: (n, np.asarray(w, float) / sum(w)) for k, (n, w) in acc.items()}


_NAMES_OF_KIND = _names_of_kind()


def kind_name(rng: np.random.Generator, kind: str) -> str:
    """A raw name for a thing drawn as `kind`, clean names more often than variants."""
    names, p = _NAMES_OF_KIND[kind]
    return names[int(rng.choice(len(names), p=p))] if len(names) > 1 else names[0]


def json_name(name: str) -> str:
    """An object name as index.json spells it: none of the 14,424 real names has a space
    (seg.mat and seglistall say `night stand`, index.json `nightstand`)."""
    return name.replace(" ", "")


def official_seg37(name: str, scene_type: str) -> int:
    """The generator's official seg37 id of a raw name in a scene of `scene_type`."""
    if name in OFFICIAL_BY_SCENE_TYPE:
        default, by_type = OFFICIAL_BY_SCENE_TYPE[name]
        return SEG37.index(by_type.get(scene_type, default)) + 1
    if name in OFFICIAL_DIFFERENCES:
        return SEG37.index(OFFICIAL_DIFFERENCES[name]) + 1
    return OFFICIAL_SEG37.get(name, 0)
