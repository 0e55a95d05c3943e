"""`sunrgbd pack --format hf`: a clean tree as a Hugging Face `datasets` folder.

The output loads with `datasets.load_dataset(DIR)` and no custom code, and uploads as is
with the Hub's own `hf upload`:

    DIR/README.md                                  dataset card: Hub YAML header + prose
    DIR/dataset.json                               the clean tree's dataset.json, unchanged
    DIR/data/{train,validation,test}-NNNNN-of-MMMMM.parquet

Rows hold the files' bytes exactly as in the tree (no re-encode) in `datasets` `Image`
columns (RGB, train-id label, optional 16-bit depth) plus the manifest's per-sample columns.
`datasets` supplies the feature types (schema metadata and card YAML); pyarrow writes the
parquet itself with fixed row groups, no compression of already-compressed bytes and no
timestamps, so the same tree gives the same bytes. Work happens in `DIR/.sunrgbd-hub/`
(finished shards are kept, so an interrupted export resumes) and is moved into place last.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from cleantree.classes import IGNORE_INDEX
from cleantree.dataset import (
    DATASET_JSON,
    DEFAULT_WEIGHT_METHOD,
    ContractError,
    DatasetJson,
    read_dataset_json,
)
from cleantree.files import atomic_path, atomic_write_json, atomic_write_text
from cleantree.manifest import (
    MANIFEST,
    MANIFEST_COLUMNS,
    ManifestError,
    SampleFileError,
    read_manifest_bytes,
    sample_bytes,
    sample_path,
)
from cleantree.paths import FILE_KEYS
from sunrgbd_tools import __version__
from sunrgbd_tools.acquire.share import format_value

HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}  # clean tree -> Hub names
STAGE = ".sunrgbd-hub"
FINAL = ("README.md", DATASET_JSON, "data")  # what an export leaves in DIR
SHARD_NAME = re.compile("(?:" + "|".join(HF_SPLITS.values()) + r")-\d{5}-of-\d{5}\.parquet")  # in data/
# the card's last line: the sha256 of the text above it, so a re-run knows the card is ours, unedited
CARD_SEAL = re.compile(r"<!-- sunrgbd-tools card sha256 ([0-9a-f]{64}): .* -->\n\Z")
ROWS_PER_GROUP = 100  # what `datasets` itself uses for image data: small reads for the viewer
SHARD_BYTES = 500_000_000
EXTRA_HINT = "pip install 'sunrgbd-tools[hub]'"
# (column, manifest path key) of the Image columns
IMAGE_COLUMNS = (("image", "image"), ("label", "label_train_ids"), ("depth", "depth"))
# A Hub row carries every manifest.csv column except those excluded here by name: a
# deliberate subset, so a new manifest column is exported (as a string, after the others)
# until it is excluded here with a reason; dropping it is a decision, never an accident.
HUB_EXCLUDED_COLUMNS = {
    "id": "the row's `id` column",
    "split": "the Hub split the row is in",
    **dict.fromkeys(("src_height", "src_width", "height", "width"), "the image's own size"),
    **dict.fromkeys(("unmapped_names", "problems", "salvaged"), "conversion diagnostics, in the tree's manifest.csv"),
    **dict.fromkeys(FILE_KEYS, "a file: image, label (train ids) and depth are the Image columns"),
    **dict.fromkeys((f"{k}_sha256" for k in FILE_KEYS), "checked on export; the files are stored unchanged"),
}
_NUMBER_LISTS = {"intrinsics": 9, "extrinsics": 12}  # manifest text -> list of floats (null when not n numbers)
# the order and card row (type, meaning) of the exported columns; one not listed comes after, as a string
_CARD_ROWS = {
    "sensor": ("string", "kv1, kv2, realsense or xtion"),
    "scene": ("string", "source scene folder below `SUNRGBD/`"),
    "scene_type": ("string", "contents of the scene's scene.txt"),
    "label_source": ("string", "where this sample's labels came from"),
    "intrinsics": ("list of 9 floats", "camera matrix, row-major (null when missing)"),
    "extrinsics": ("list of 12 floats", "3x4, from the scene's last extrinsics file (null when missing)"),
}


def hub_manifest_columns() -> list[str]:
    """The manifest columns a Hub row carries: MANIFEST_COLUMNS less HUB_EXCLUDED_COLUMNS."""
    order = list(_CARD_ROWS)
    cols = [c for c in MANIFEST_COLUMNS if c not in HUB_EXCLUDED_COLUMNS]
    return sorted(cols, key=lambda c: order.index(c) if c in order else len(order))


class HubError(Exception):
    """An export failure worth one line."""


class HubUsageError(HubError):
    """Bad arguments (not a clean tree, --out not new/empty, extra missing): exit 2."""


@dataclass
class HubConfig:
    src: str
    out: str
    command: str = ""  # the command line recorded in the card
    shard_bytes: int = SHARD_BYTES
    workers: int | None = None  # reader threads; None = cores (at most 8); same bytes for any
    progress: bool = True


@dataclass
class HubReport:
    out: Path
    rows: dict[str, int]  # Hub split name -> rows written
    shards: list[str]
    bytes: int
    resumed: int = 0  # shards reused from an interrupted run
    problems: list[str] = field(default_factory=list)


def _libs():
    """pyarrow + datasets, imported only here: the converter works without them."""
    try:
        import datasets
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise HubUsageError(f"--format hf needs the optional 'hub' extra ({e.name} is not "
                            f"installed): {EXTRA_HINT}") from None
    return datasets, pa, pq


# ----------------------------------------------------------------------------- input
def read_tree(src: Path) -> tuple[DatasetJson, bytes, list[dict]]:
    """The checked dataset.json, the bytes that key a resumable export, the manifest rows."""
    meta_path, man_path = src / DATASET_JSON, src / MANIFEST
    if not meta_path.is_file():
        raise HubUsageError(f"{src}: not a clean tree (no dataset.json)")
    if not man_path.is_file():
        raise HubUsageError(f"{src}: not a clean tree (no manifest.csv)")
    meta_bytes = meta_path.read_bytes()
    try:
        doc = read_dataset_json(meta_path)
    except ContractError as e:
        raise HubUsageError(str(e)) from None
    try:
        man_bytes, rows = read_manifest_bytes(src, need=("id", "split", "image", "label_train_ids"))
    except ManifestError as e:
        if e.missing:
            raise HubUsageError(str(e)) from None
        if isinstance(e.cause, OSError):  # e.g. permission denied: the CLI reports it (exit 1)
            raise e.cause from None
        raise HubUsageError(f"{man_path}: not a readable CSV ({e.cause})") from None
    if not rows:
        raise HubUsageError(f"{man_path}: no samples to export")
    return doc, meta_bytes + man_bytes, rows


def _numbers(text: str, n: int, what: str, problems: list[str], sid: str) -> list[float] | None:
    if not text.strip():
        return None
    try:
        vals = [float(x) for x in text.split()]
    except ValueError:
        vals = []
    if len(vals) != n:
        problems.append(f"{sid}: manifest {what} is not {n} numbers; left empty")
        return None
    return vals


def features(names: list[str], depth: bool):
    """The `datasets` Features of one row (one definition for parquet schema and card);
    `names`: the class names of train ids 0..K-1."""
    datasets, _, _ = _libs()
    V = datasets.Value
    cols = {"id": V("string"), "image": datasets.Image(), "label": datasets.Image()}
    if depth:
        cols["depth"] = datasets.Image()
    cols |= {c: datasets.Sequence(V("float64")) if c in _NUMBER_LISTS else V("string")
             for c in hub_manifest_columns()}
    # train ids present in the label; its ClassLabel names carry the class table
    cols["classes"] = datasets.Sequence(datasets.ClassLabel(names=names))
    return datasets.Features(cols)


# ----------------------------------------------------------------------------- shards
def _plan(src: Path, rows: list[dict], shard_bytes: int, problems: list[str]):
    """Rows per Hub split, cut into shards of at most `shard_bytes` of file bytes."""
    by_split: dict[str, list[tuple[dict, int]]] = {s: [] for s in HF_SPLITS.values()}
    for r in sorted(rows, key=lambda r: r["id"]):
        split = HF_SPLITS.get(r["split"])
        if split is None:
            problems.append(f"{r['id']}: unknown split {r['split']!r} in manifest.csv; skipped")
            continue
        size = 0
        for _, key in IMAGE_COLUMNS:
            rel = r.get(key) or ""
            if rel:
                try:
                    size += sample_path(src, r, key).stat().st_size
                except (SampleFileError, OSError):
                    pass  # reported when the row is read (sample_bytes refuses it again)
        by_split[split].append((r, size))
    plan: list[tuple[str, list[dict]]] = []
    for split, items in by_split.items():
        shards: list[list[dict]] = []
        cur: list[dict] = []
        used = 0
        for r, size in items:
            if cur and used + size > shard_bytes:
                shards.append(cur)
                cur, used = [], 0
            cur.append(r)
            used += size
        if cur:
            shards.append(cur)
        n = len(shards)
        plan += [(f"data/{split}-{i:05d}-of-{n:05d}.parquet", s) for i, s in enumerate(shards)]
    return plan


def _record(src: Path, r: dict, depth: bool, columns: list[str], problems: list[str]) -> dict | None:
    """One parquet row, or None (reported) when a file is missing, altered or undecodable;
    `columns` is hub_manifest_columns(), computed once per shard, not per row."""
    sid = r["id"]
    out: dict = {"id": sid}
    for col, key in IMAGE_COLUMNS:
        if col == "depth" and not depth:
            continue
        rel = r.get(key) or ""
        if not rel:
            if col == "depth":
                out[col] = None
                continue
            problems.append(f"{sid}: manifest.csv has no {key} path; skipped")
            return None
        try:
            out[col] = {"bytes": sample_bytes(src, r, key), "path": rel}
        except SampleFileError as e:
            problems.append(f"{e}; sample skipped")
            return None
    lab = cv2.imdecode(np.frombuffer(out["label"]["bytes"], np.uint8), cv2.IMREAD_UNCHANGED)
    if lab is None or lab.ndim != 2 or lab.dtype != np.uint8:
        problems.append(f"{src / r['label_train_ids']}: not a single-channel 8-bit PNG; sample skipped")
        return None
    present = np.flatnonzero(np.bincount(lab.ravel(), minlength=256)[:255])
    for c in columns:
        n = _NUMBER_LISTS.get(c)
        out[c] = _numbers(r.get(c, ""), n, c, problems, sid) if n else r.get(c, "")
    out["classes"] = [int(t) for t in present]
    return out


def _record_job(args) -> tuple[dict | None, list[str]]:
    src, r, depth, columns = args
    probs: list[str] = []
    return _record(src, r, depth, columns, probs), probs


def _write_shard(path: Path, schema, src: Path, rows: list[dict], depth: bool, n_classes: int,
                 problems: list[str], bar, pool) -> int:
    """Rows are read, hashed and decoded in `pool` (threads: hashlib and cv2 release the GIL),
    one row group at a time, and written in manifest order."""
    _, pa, pq = _libs()
    written = 0
    columns = hub_manifest_columns()
    with atomic_path(path) as tmp:
        # no compression: the columns that matter are PNG/JPEG bytes already
        with pq.ParquetWriter(tmp, schema, compression="none", write_statistics=False,
                              use_dictionary=False) as w:
            for i in range(0, len(rows), ROWS_PER_GROUP):
                chunk = rows[i:i + ROWS_PER_GROUP]
                batch: list[dict] = []
                jobs = [(src, r, depth, columns) for r in chunk]
                for r, (rec, probs) in zip(chunk, pool.map(_record_job, jobs), strict=True):
                    problems += probs
                    if bar is not None:
                        bar.update(1)
                    if rec is None:
                        continue
                    bad = [t for t in rec["classes"] if t >= n_classes]
                    if bad:
                        problems.append(f"{src / r['label_train_ids']}: train ids {bad} are not in "
                                        "dataset.json's class table; sample skipped")
                        continue
                    batch.append(rec)
                if batch:
                    w.write_table(pa.Table.from_pylist(batch, schema=schema), ROWS_PER_GROUP)
                    written += len(batch)
    return written


# ----------------------------------------------------------------------------- output folder
def _check_out(out: Path) -> bool:
    """True to resume an interrupted export; raises unless --out is new or empty, or holds a
    finished export of pack's own (which is replaced, as a ZIP re-pack replaces its archive)."""
    if out.exists() and not out.is_dir():
        raise HubUsageError(f"{out}: exists and is not a folder")
    names = set(os.listdir(out)) if out.is_dir() else set()
    if not names or _finished_export(out, names):
        return False
    if STAGE in names and names <= {STAGE, *FINAL}:
        return True
    raise HubUsageError(f"{out}: not empty; export into a new or empty folder (nothing was changed)")


def _finished_export(out: Path, names: set[str]) -> bool:
    """Whether `out` holds exactly what an earlier export left: README.md as `dataset_card`
    sealed it (any edit breaks the seal), dataset.json, and data/ with shard files only.
    Any other content is the user's."""
    if names != set(FINAL) or not (out / DATASET_JSON).is_file() or not (out / "data").is_dir():
        return False
    try:
        card = (out / "README.md").read_bytes().decode("utf-8")
        shards = list(os.scandir(out / "data"))
    except (OSError, UnicodeDecodeError):
        return False
    return (card_is_sealed(card)
            and all(e.is_file(follow_symlinks=False) and SHARD_NAME.fullmatch(e.name) for e in shards))


def seal_card(text: str) -> str:
    """`text` with its seal line: the sha256 of `text`, which a re-run checks."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return (text + f"<!-- sunrgbd-tools card sha256 {digest}: `sunrgbd pack --format hf` "
            "replaces this folder only while it matches the text above -->\n")


def card_is_sealed(card: str) -> bool:
    """Whether `card` ends with a seal line that matches the text above it (`seal_card`)."""
    m = CARD_SEAL.search(card)
    return m is not None and hashlib.sha256(card[:m.start()].encode("utf-8")).hexdigest() == m.group(1)


def _size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
              (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]
    return next((name for b, name in bounds if n < b), "10M<n<100M")


def export_hf(cfg: HubConfig) -> HubReport:
    """Write the Hugging Face folder for the clean tree `cfg.src` (see module docstring)."""
    src, out = Path(cfg.src), Path(cfg.out)
    doc, input_bytes, rows = read_tree(src)
    meta = doc.to_dict()
    resume = _check_out(out)
    datasets, pa, pq = _libs()
    names = [t.name for t in doc.lookup.train_classes]  # train ids 0..K-1 (first class of each)
    has_depth = meta.get("depth") is not None and any(r.get("depth") for r in rows)
    feats = features(names, has_depth)
    schema = feats.arrow_schema
    problems: list[str] = []
    plan = _plan(src, rows, cfg.shard_bytes, problems)

    stage = out / STAGE
    key = hashlib.sha256(b"\0".join([
        input_bytes, json.dumps([__version__, datasets.__version__, pa.__version__,
                                 cfg.shard_bytes, ROWS_PER_GROUP]).encode()])).hexdigest()
    state = stage / "state.json"
    if resume:
        try:
            old = json.loads(state.read_text(encoding="utf-8")).get("key")
        except (OSError, ValueError, AttributeError):
            old = None
        if old != key:  # another tree or version: restart from scratch, only our own folder
            shutil.rmtree(stage)
            for name in FINAL:
                p = out / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    stage.mkdir(parents=True, exist_ok=True)
    atomic_write_json(state, {"key": key, "src": str(src)})

    split_rows = {s: 0 for s in HF_SPLITS.values()}
    shard_bytes: dict[str, int] = {}
    resumed = 0
    total = sum(len(r) for _, r in plan)
    bar = tqdm(total=total, desc="hf export", unit="sample", disable=not cfg.progress)
    pool = ThreadPoolExecutor(max_workers=cfg.workers or min(8, os.cpu_count() or 1))
    try:
        for name, shard_rows in plan:
            target = stage / name
            side = stage / (name + ".json")
            final = out / name
            done = None
            for p, s in ((target, side), (final, stage / "moved" / (name + ".json"))):
                if p.is_file() and s.is_file():
                    try:
                        done = json.loads(s.read_text(encoding="utf-8"))
                    except (OSError, ValueError):
                        done = None
                    if done is not None:
                        done["path"] = p
                        break
            if done is not None:
                resumed += 1
                bar.update(len(shard_rows))
                n, probs = int(done["rows"]), list(done["problems"])
                size = done["path"].stat().st_size
            else:
                probs = []
                n = _write_shard(target, schema, src, shard_rows, has_depth, len(names), probs, bar,
                                 pool)
                size = target.stat().st_size
                atomic_write_json(side, {"rows": n, "problems": probs})
            problems += probs
            split = name.split("/", 1)[1].split("-", 1)[0]
            split_rows[split] += n
            shard_bytes[name] = size
    finally:
        pool.shutdown(cancel_futures=True)
        bar.close()

    card = dataset_card(meta, feats, split_rows, shard_bytes, names, cfg.command, datasets)
    atomic_write_text(stage / "README.md", card)
    with atomic_path(stage / DATASET_JSON) as tmp:
        shutil.copyfile(src / DATASET_JSON, tmp)
    # move into place: shards first (their sidecars follow, so a re-run still knows them)
    (out / "data").mkdir(exist_ok=True)
    for name, _ in plan:
        if (stage / name).is_file():
            moved = stage / "moved" / (name + ".json")
            moved.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / (name + ".json"), moved)
            os.replace(stage / name, out / name)
    os.replace(stage / DATASET_JSON, out / DATASET_JSON)
    os.replace(stage / "README.md", out / "README.md")
    planned = {name for name, _ in plan}
    for e in os.scandir(out / "data"):  # an earlier export's shards that this one did not write
        if SHARD_NAME.fullmatch(e.name) and f"data/{e.name}" not in planned and e.is_file(follow_symlinks=False):
            os.unlink(e.path)
    shutil.rmtree(stage)
    return HubReport(out=out, rows=split_rows, shards=[n for n, _ in plan],
                     bytes=sum(shard_bytes.values()), resumed=resumed, problems=problems)


# ----------------------------------------------------------------------------- card
CITATIONS = [
    "S. Song, S. P. Lichtenberg, J. Xiao. SUN RGB-D: A RGB-D Scene Understanding Benchmark "
    "Suite. CVPR 2015.",
    "N. Silberman, D. Hoiem, P. Kohli, R. Fergus. Indoor Segmentation and Support Inference "
    "from RGBD Images. ECCV 2012. (NYU Depth v2)",
    "A. Janoch, S. Karayev, Y. Jia, J. T. Barron, M. Fritz, K. Saenko, T. Darrell. A "
    "Category-Level 3-D Object Dataset: Putting the Kinect to Work. ICCV Workshops 2011. (B3DO)",
    "J. Xiao, A. Owens, A. Torralba. SUN3D: A Database of Big Spaces Reconstructed using SfM "
    "and Object Labels. ICCV 2013.",
]
_NR = "_not recorded_"


def _md(text) -> str:
    """A value safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def card_header(meta: dict, feats, split_rows: dict[str, int], shard_bytes: dict[str, int],
                datasets) -> dict:
    """The YAML the Hub reads: configs/splits, features (from `datasets` itself), task, size."""
    splits = [s for s in HF_SPLITS.values() if any(n.startswith(f"data/{s}-") for n in shard_bytes)]
    header = {
        "pretty_name": str(meta.get("name") or "SUN RGB-D (sunrgbd-tools)"),
        "license": "other",
        "license_name": "sun-rgbd-terms",
        "license_link": str((meta.get("source") or {}).get("url") or "http://rgbd.cs.princeton.edu"),
        "task_categories": ["image-segmentation"],
        "task_ids": ["semantic-segmentation"],
        "size_categories": [_size_category(sum(split_rows.values()))],
        "tags": ["indoor", "rgb-d", "depth", "sun-rgbd", "cityscapes-style"],
        "configs": [{"config_name": "default", "data_files": [
            {"split": s, "path": f"data/{s}-*"} for s in splits]}],
    }
    sd = datasets.SplitDict()
    for s in splits:
        sd.add(datasets.SplitInfo(name=s, num_examples=split_rows[s], num_bytes=sum(
            b for n, b in shard_bytes.items() if n.startswith(f"data/{s}-"))))
    size = sum(shard_bytes.values())
    info = datasets.DatasetInfo(features=feats, splits=sd, download_size=size, dataset_size=size)
    from datasets.info import DatasetInfosDict

    DatasetInfosDict({"default": info}).to_dataset_card_data(header)
    return header


def dataset_card(meta: dict, feats, split_rows: dict[str, int], shard_bytes: dict[str, int],
                 names: list[str], command: str, datasets) -> str:
    """README.md: the Hub's YAML header, then what a user needs to trust and use the data;
    sealed (`seal_card`), so a re-run replaces the card only while nobody edited it."""
    import yaml  # a dependency of `datasets`

    header = card_header(meta, feats, split_rows, shard_bytes, datasets)
    y = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000)
    src = meta.get("source") or {}
    title = meta.get("name") or "SUN RGB-D"
    lines = ["---", y.rstrip("\n"), "---", "", f"# {title}", ""]
    if meta.get("description"):
        lines += [str(meta["description"]) + ".", ""]
    lines += [
        "Semantic segmentation of indoor RGB-D scenes, exported from a clean tree written by "
        "sunrgbd-tools (`sunrgbd convert`). Every image, label and depth "
        "file is stored byte for byte as in that tree (no re-encoding).", "",
        "## Loading", "", "```python", "import datasets", "import numpy as np",
        'ds = datasets.load_dataset("<this repo id or folder>")',
        'names = ds["train"].features["classes"].feature.names   # train id -> class name',
        'label = np.array(ds["train"][0]["label"])                # uint8 train ids, 255 = ignore',
        "```", "",
        "| column | type | meaning |", "|---|---|---|",
        "| `id` | string | sample id (the scene key below the sensor, `/` → `__`) |",
        "| `image` | Image | RGB image |",
        "| `label` | Image | single-channel uint8 PNG of train ids; 255 = ignore |",
    ]
    if "depth" in feats:
        d = meta.get("depth") or {}
        lines.append(f"| `depth` | Image | 16-bit PNG, depth in {d.get('unit', 'mm')}, "
                     f"{d.get('missing', 0)} = missing |")
    for c in hub_manifest_columns():
        kind, meaning = _CARD_ROWS.get(c, ("string", f"manifest.csv's `{c}` (docs/contracts.md)"))
        lines.append(f"| `{c}` | {kind} | {meaning} |")
    lines += [
        "| `classes` | list of ClassLabel | train ids present in the label; the ClassLabel names are the class table |",
        "",
        "## Source and citation", "",
        f"Source: {src.get('dataset') or 'SUN RGB-D'} ({src.get('url') or 'http://rgbd.cs.princeton.edu'}). "
        "SUN RGB-D gathers and re-annotates frames of NYU Depth v2, B3DO and SUN3D, and asks "
        "that all four be cited:", "",
    ]
    lines += [f"- {c}" for c in CITATIONS]
    lines += [
        "", "## Licence", "",
        "No standard open licence covers SUN RGB-D: its images and annotations come from the "
        "SUN RGB-D authors (and, through them, NYU Depth v2, B3DO and SUN3D), who publish them "
        "for research and ask for the citations above. This export is under their terms, hence "
        "`license: other`; check them on the SUN RGB-D page before using the data beyond "
        "research or redistributing it. The mapping tables (raw name → class) and the code that "
        "made this export are part of sunrgbd-tools, under the MIT licence.", "",
        "## Labels", "",
        f"- Label mode: `{meta.get('label_mode') or meta.get('label_source') or 'not recorded'}`"
        + (f" — {meta['label_mode_description']}" if meta.get("label_mode_description") else ""),
    ]
    mode = meta.get("label_mode") or meta.get("label_source")
    if mode == "official":
        lines.append("- These are SUN RGB-D's own seg37 labels (`SUNRGBD2Dseg.mat` `seglabel`), "
                     "the labels of published results.")
    else:
        lines.append("- These labels are **not** SUN RGB-D's official seg37 masks: raw object "
                     "names were mapped to the class table by sunrgbd-tools' mapping tables, so "
                     "scores on them are not comparable with published seg37 results.")
    lines.append(f"- Mapping checksum (sha256): `{meta.get('mapping_sha256') or 'not recorded'}`")
    for k, v in (meta.get("mapping_files") or {}).items():
        lines.append(f"  - `{k}`: `{v}`")
    lines.append(f"- Train ids 0..{len(names) - 1} ({len(names)} classes); "
                 f"{meta.get('ignore_index', IGNORE_INDEX)} = ignore (unlabelled).")
    lines += ["", "## Classes", ""]
    pixels = meta.get("class_pixel_counts")
    weights = meta.get("class_weights")
    method = meta.get("class_weights_default")
    if isinstance(weights, dict):
        method = method if method in weights else next(iter(weights), None)
        weights = weights.get(method) if method else None
    head, sep = "| id | train id | name | colour | ignored in eval |", "|---:|---:|---|---|---|"
    if isinstance(pixels, list):
        head, sep = head + " pixels |", sep + "---:|"
    if isinstance(weights, list):
        head, sep = head + f" weight ({method or 'recorded'}) |", sep + "---:|"
    lines += [head, sep]
    for c in meta.get("classes") or []:
        col = c.get("color") or []
        hexcol = "#" + "".join(f"{int(x):02x}" for x in col) if len(col) == 3 else ""
        tid = c.get("train_id")
        row = (f"| {c.get('id', '')} | {tid} | {_md(c.get('name', ''))} | {hexcol} | "
               f"{'yes' if c.get('ignore_in_eval') else 'no'} |")
        ok = isinstance(tid, int) and 0 <= tid < 255
        if isinstance(pixels, list):
            row += f" {pixels[tid] if ok and tid < len(pixels) else ''} |"
        if isinstance(weights, list):
            row += f" {format_value(weights[tid]) if ok and tid < len(weights) else ''} |"
        lines.append(row)
    lines += ["", "## Splits", "", "| split | rows here | samples in the clean tree |",
              "|---|---:|---:|"]
    tree_splits = meta.get("splits") or {}
    for tree_name, hub_name in HF_SPLITS.items():
        if hub_name in split_rows and (split_rows[hub_name] or tree_name in tree_splits):
            lines.append(f"| {hub_name} | {split_rows[hub_name]} | {tree_splits.get(tree_name, '')} |")
    vs = meta.get("val_split") or {}
    lines += ["", "train/test is SUN RGB-D's official split (`allsplit.mat`); validation: "
              + ({"trainvalsplit": "the toolbox's `trainvalsplit` (part of official train)",
                  "seeded": f"a seeded draw from official train ({format_value(vs.get('fraction'))} with "
                            f"seed {vs.get('seed')})"}.get(vs.get("source"), "not recorded")) + "."]
    lines += ["", "## Statistics", ""]
    keys = ["stats_split", "mean", "std", "depth_mean", "depth_std", "stats_sha256"]
    present = [k for k in keys if meta.get(k) is not None]
    if present:
        lines += [f"- {k}: {format_value(meta[k])}" for k in present]
        lines.append("- mean/std are of RGB in 0..1; depth in metres; class pixels and weights "
                     "are in the class table above (also in `dataset.json`).")
    else:
        lines.append("_not computed (`sunrgbd stats` had not run on the tree)_")
    probs = meta.get("problems") or {}
    if probs:
        lines += ["", "Converter problems: " + ", ".join(f"{k}: {v}" for k, v in probs.items())
                  + " (per sample in the tree's manifest.csv)."]
    cw = meta.get("created_with") or {}
    lines += ["", "## How it was made", "", "```"]
    lines.append(cw.get("command") or "# sunrgbd convert: command not recorded")
    if meta.get("stats_command"):
        lines.append(meta["stats_command"])
    elif meta.get("stats_split"):  # stats records its options, not its command line
        lines.append(f"sunrgbd stats CLEAN --split {meta['stats_split']} --method "
                     f"{meta.get('class_weights_default') or DEFAULT_WEIGHT_METHOD}"
                     "   # rebuilt from dataset.json's stats_split / class_weights_default")
    lines.append(command or "sunrgbd pack CLEAN --format hf --out DIR")
    lines += ["```", "",
              f"Converted with {cw.get('tool') or 'sunrgbd-tools'} {cw.get('version') or ''}".rstrip()
              + f"; exported with sunrgbd-tools {__version__}. `dataset.json` beside this card is "
              "the clean tree's own, unchanged.", ""]
    return seal_card("\n".join(lines))
