"""`segtrain dataset-json cityscapes ROOT`: a dataset.json for a real Cityscapes tree.

The class table is Cityscapes' official label list (cityscapesScripts `helpers/labels.py`):
34 label ids in the gtFine `_labelIds.png` masks, 19 of them trained (train ids 0..18) and
the rest 255 = ignore. `license plate` (id -1) never occurs in the id masks and is left out:
the contract's ids are 0..255. segtrain then reads the standard folders directly
(`leftImg8bit/<split>/<city>/<id>_leftImg8bit.png`, `gtFine/…/<id>_gtFine_labelTrainIds.png`
when cityscapesScripts made them, else `_labelIds.png` mapped through this table).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from cleantree.classes import IGNORE_INDEX
from cleantree.dataset import (
    SCHEMA_VERSION,
    ContractError,
    DatasetJson,
    load_json_object,
    write_dataset_json,
)
from cleantree.paths import (
    IMAGE_DIR,
    IMAGE_SUFFIX,
    LABEL_DIR,
    LABEL_IDS_SUFFIX,
    LABEL_TRAIN_IDS_SUFFIX,
    file_templates,
)
from segtrain import __version__
from segtrain.utils import SegtrainError

log = logging.getLogger("segtrain")

# name, id, train id (255 = ignore), category, has instances, ignore in eval, colour
CITYSCAPES_LABELS: tuple[tuple[str, int, int, str, bool, bool, tuple[int, int, int]], ...] = (
    ("unlabeled", 0, 255, "void", False, True, (0, 0, 0)),
    ("ego vehicle", 1, 255, "void", False, True, (0, 0, 0)),
    ("rectification border", 2, 255, "void", False, True, (0, 0, 0)),
    ("out of roi", 3, 255, "void", False, True, (0, 0, 0)),
    ("static", 4, 255, "void", False, True, (0, 0, 0)),
    ("dynamic", 5, 255, "void", False, True, (111, 74, 0)),
    ("ground", 6, 255, "void", False, True, (81, 0, 81)),
    ("road", 7, 0, "flat", False, False, (128, 64, 128)),
    ("sidewalk", 8, 1, "flat", False, False, (244, 35, 232)),
    ("parking", 9, 255, "flat", False, True, (250, 170, 160)),
    ("rail track", 10, 255, "flat", False, True, (230, 150, 140)),
    ("building", 11, 2, "construction", False, False, (70, 70, 70)),
    ("wall", 12, 3, "construction", False, False, (102, 102, 156)),
    ("fence", 13, 4, "construction", False, False, (190, 153, 153)),
    ("guard rail", 14, 255, "construction", False, True, (180, 165, 180)),
    ("bridge", 15, 255, "construction", False, True, (150, 100, 100)),
    ("tunnel", 16, 255, "construction", False, True, (150, 120, 90)),
    ("pole", 17, 5, "object", False, False, (153, 153, 153)),
    ("polegroup", 18, 255, "object", False, True, (153, 153, 153)),
    ("traffic light", 19, 6, "object", False, False, (250, 170, 30)),
    ("traffic sign", 20, 7, "object", False, False, (220, 220, 0)),
    ("vegetation", 21, 8, "nature", False, False, (107, 142, 35)),
    ("terrain", 22, 9, "nature", False, False, (152, 251, 152)),
    ("sky", 23, 10, "sky", False, False, (70, 130, 180)),
    ("person", 24, 11, "human", True, False, (220, 20, 60)),
    ("rider", 25, 12, "human", True, False, (255, 0, 0)),
    ("car", 26, 13, "vehicle", True, False, (0, 0, 142)),
    ("truck", 27, 14, "vehicle", True, False, (0, 0, 70)),
    ("bus", 28, 15, "vehicle", True, False, (0, 60, 100)),
    ("caravan", 29, 255, "vehicle", True, True, (0, 0, 90)),
    ("trailer", 30, 255, "vehicle", True, True, (0, 0, 110)),
    ("train", 31, 16, "vehicle", True, False, (0, 80, 100)),
    ("motorcycle", 32, 17, "vehicle", True, False, (0, 0, 230)),
    ("bicycle", 33, 18, "vehicle", True, False, (119, 11, 32)),
)
SPLITS = ("train", "val", "test")


def class_table() -> list[dict]:
    """The dataset.json `classes` rows (the contract's keys plus Cityscapes' category)."""
    return [{"id": cid, "train_id": tid, "name": name, "color": list(color), "ignore_in_eval": ignore,
             "category": cat, "has_instances": inst}
            for name, cid, tid, cat, inst, ignore, color in CITYSCAPES_LABELS]


@dataclass
class CityscapesScan:
    splits: dict[str, int] = field(default_factory=dict)
    sizes: set[tuple[int, int]] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def scan(root: Path) -> CityscapesScan:
    """Count images per split, read their sizes (PNG headers only) and report images without
    a gtFine label; those are problems the trainer would stop on."""
    res = CityscapesScan()
    for split in SPLITS:
        base = root / IMAGE_DIR / split
        if not base.is_dir():
            continue
        images = sorted(p for p in base.glob(f"*/*{IMAGE_SUFFIX}.png") if not p.parent.name.startswith("."))
        for img in images:
            sid = img.name[: -len(f"{IMAGE_SUFFIX}.png")]
            gt = root / LABEL_DIR / split / img.parent.name
            if not (gt / f"{sid}{LABEL_IDS_SUFFIX}").is_file() and \
                    not (gt / f"{sid}{LABEL_TRAIN_IDS_SUFFIX}").is_file():
                res.problems.append(f"{img}: no gtFine label ({sid}{LABEL_IDS_SUFFIX})")
            try:
                with Image.open(img) as im:
                    res.sizes.add((im.height, im.width))
            except OSError as e:
                res.problems.append(f"{img}: not a readable image ({e})")
        if images:
            res.splits[split] = len(images)
    return res


def write_cityscapes_json(root: str | Path, force: bool = False) -> tuple[dict, list[str]]:
    """Write ROOT/dataset.json for a Cityscapes tree; returns (the JSON, problems found)."""
    root = Path(root)
    if not root.is_dir():
        raise SegtrainError(f"{root}: " + ("is a file, not a Cityscapes root" if root.exists() else "folder not found"))
    if not (root / IMAGE_DIR).is_dir():
        raise SegtrainError(f"{root}: no leftImg8bit/ folder (not a Cityscapes root)")
    if not (root / LABEL_DIR).is_dir():
        raise SegtrainError(f"{root}: no gtFine/ folder (the fine annotations are needed)")
    found = scan(root)
    if not found.splits:
        raise SegtrainError(f"{root}: no leftImg8bit/<split>/<city>/*_leftImg8bit.png images found")
    target = root / "dataset.json"
    classes = class_table()
    doc = DatasetJson(
        schema_version=SCHEMA_VERSION,
        name="cityscapes",
        description="Cityscapes fine annotations (gtFine), 19 evaluation classes",
        source={"dataset": "Cityscapes", "url": "https://www.cityscapes-dataset.com",
                "citation": "Cordts et al., The Cityscapes Dataset for Semantic Urban Scene "
                            "Understanding, CVPR 2016"},
        label_source="gtFine",
        label_mode="gtFine",  # printed next to every mIoU, as a SUN RGB-D tree's --labels mode
        label_mode_description="Cityscapes' fine annotations as published (labelIds through the 19 evaluation classes)",
        classes=classes,
        num_classes=len({c["train_id"] for c in classes if c["train_id"] != IGNORE_INDEX}),
        ignore_index=IGNORE_INDEX,
        image_size=list(next(iter(found.sizes))) if len(found.sizes) == 1 else None,
        image_format="png",
        depth=None,
        splits=found.splits,
        files=file_templates("png", depth=False),
        problems={"reported": len(found.problems), "skipped_samples": 0},
        created_with={"tool": "segtrain", "version": __version__,
                      "command": "segtrain dataset-json cityscapes", "config": {}},
    )
    meta = doc.to_dict()
    if target.exists() and not force:
        try:
            same = load_json_object(target) == meta
        except ContractError:
            same = False
        if not same:
            raise SegtrainError(f"{target}: exists and differs; use --force to replace it")
    write_dataset_json(target, doc)
    return meta, found.problems


__all__ = ["CITYSCAPES_LABELS", "class_table", "write_cityscapes_json", "scan"]
