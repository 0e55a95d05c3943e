"""Where a sample's files live in a clean tree: the Cityscapes path templates.

The converter writes these paths, segtrain reads them (and globs the same names in a tree
without a manifest), and dataset.json records them under `files`; one definition here.
"""

from __future__ import annotations

# the files of one sample, in the order of the manifest's path and checksum columns
FILE_KEYS = ("image", "label_ids", "label_train_ids", "color", "depth")

IMAGE_SUFFIX = "_leftImg8bit"  # + "." + image format
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
LABEL_TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"
COLOR_SUFFIX = "_gtFine_color.png"
DEPTH_SUFFIX = "_depth.png"

IMAGE_DIR, LABEL_DIR, DEPTH_DIR = "leftImg8bit", "gtFine", "depth"

# relative to the tree root; `{ext}` is the image format (png or jpg)
FILES = {
    "image": f"{IMAGE_DIR}/{{split}}/{{sensor}}/{{id}}{IMAGE_SUFFIX}.{{ext}}",
    "label_ids": f"{LABEL_DIR}/{{split}}/{{sensor}}/{{id}}{LABEL_IDS_SUFFIX}",
    "label_train_ids": f"{LABEL_DIR}/{{split}}/{{sensor}}/{{id}}{LABEL_TRAIN_IDS_SUFFIX}",
    "color": f"{LABEL_DIR}/{{split}}/{{sensor}}/{{id}}{COLOR_SUFFIX}",
    "depth": f"{DEPTH_DIR}/{{split}}/{{sensor}}/{{id}}{DEPTH_SUFFIX}",
}


IMAGE_FORMATS = ("png", "jpg")  # what `{ext}` may be

# files at the tree root written by the toolkit's commands, besides dataset.json and manifest.csv
PROBLEMS_FILE = "problems.txt"  # convert: every problem it reported, one per line
STATS_FILE = "stats.json"  # sunrgbd stats: the integer sums its results are derived from
# the records `sunrgbd pack` adds at an archive's root, which a fetched tree keeps
DATASHEET_FILE = "DATASHEET.md"  # from dataset.json; its Checksums section: the root files' sha256
SUMS_FILE = "SHA256SUMS"  # every other member's sha256, in sha256sum's format


def file_templates(image_format: str = "png", depth: bool = True) -> dict[str, str | None]:
    """dataset.json's `files`: the templates with the image format filled in (depth None
    for a tree without depth)."""
    files: dict[str, str | None] = {k: v.replace("{ext}", image_format) for k, v in FILES.items()}
    if not depth:
        files["depth"] = None
    return files


def sample_paths(split: str, sensor: str, sample_id: str, image_format: str = "png") -> dict[str, str]:
    """Relative paths of every file of one sample (depth included)."""
    fmt = {"split": split, "sensor": sensor, "id": sample_id, "ext": image_format}
    return {k: v.format(**fmt) for k, v in FILES.items()}
