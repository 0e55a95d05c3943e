"""Class pixel counts, class weights and mean/std of a clean tree, in one streaming pass.

Training code needs loss weights and normalisation constants computed on the training
split only. Doing that by hand goes wrong in known ways (test pixels included, float32
sums drifting, infinite weights for classes that never occur), so this module:

* reads the split's rows from manifest.csv and decodes each sample's labelIds, image and
  depth PNG once, in a process pool; the workers return fixed-size integer accumulators,
  so memory does not grow with the number of images;
* keeps every sum an exact integer (per-channel sums of values and squares on the 0..255
  scale, depth sums in millimetres), so the result is the same for any worker count and
  any order, and mean/std are derived from the integers with one correctly rounded step;
* derives the weights of every method in `WEIGHTING` from the integer counts (docs/stats.md
  gives the formulas), and records a digest of the inputs (`stats_sha256`) so a re-run on
  an unchanged tree is a no-op and a changed tree is recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from cleantree.classes import IGNORE_INDEX as IGNORE
from cleantree.classes import TrainClass
from cleantree.dataset import (
    ABSENT,
    DATASET_JSON,
    DEFAULT_WEIGHT_METHOD,
    STATS_KEYS,
    ContractError,
    DatasetJson,
    dumps_dataset_json,
    read_dataset_json,
)
from cleantree.files import atomic_write_text, dumps_json
from cleantree.manifest import MANIFEST, ManifestError, SampleFileError, iter_manifest, sample_path
from cleantree.paths import STATS_FILE
from sunrgbd_tools import __version__
from sunrgbd_tools.parallel import default_workers, map_chunks, signal_name

STATS_SCHEMA = 2  # 2: median-freq's P_c counts every pixel of the images holding c (was: labelled ones)
ENET_C = 1.02  # ENet's c: bounds weights to [1/ln(1+c), 1/ln(c)] = [1.42, 50.5]
_CHUNK = 8  # samples per task: small results, even load, smooth progress
_HIST_EXACT = 1 << 24  # cv2.calcHist counts in float32: exact while a bin holds < 2**24


class StatsError(Exception):
    """The statistics cannot be computed; the message names the file and the problem."""


class StatsInputError(StatsError):
    """The tree itself is unusable (dataset.json / manifest.csv / split); nothing was read."""


class LabelValueError(StatsError):
    """labelIds PNGs hold values that are not ids of the class table; nothing was written."""


class AbsentClassWarning(UserWarning):
    """A trained class has no pixels in the split, so its weight is a fallback value."""


# ---- weighting methods ------------------------------------------------------------------
# Each takes, for the classes present in the split only, the pixel counts `n` and the
# pixels (all of them, unlabelled included) of the images containing each class `n_img`, and
# returns un-normalised weights.


def _inverse(n: np.ndarray, n_img: np.ndarray) -> np.ndarray:
    return n.sum() / n  # 1 / p


def _inverse_sqrt(n: np.ndarray, n_img: np.ndarray) -> np.ndarray:
    return np.sqrt(n.sum() / n)  # 1 / sqrt(p)


def _median_freq(n: np.ndarray, n_img: np.ndarray) -> np.ndarray:
    # Eigen & Fergus: pixels of c / "total number of pixels in images where c is present"
    # (SegNet; the reference code, e.g. ESANet's for SUN RGB-D, divides by h*w of those images)
    freq = n / n_img
    return np.median(freq) / freq


def _enet(n: np.ndarray, n_img: np.ndarray) -> np.ndarray:
    return 1.0 / np.log(ENET_C + n / n.sum())  # Paszke et al. 2016: 1 / ln(c + p)


def _none(n: np.ndarray, n_img: np.ndarray) -> np.ndarray:
    return np.ones(len(n))


WEIGHTING: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "median-freq": _median_freq,
    "inverse": _inverse,
    "inverse-sqrt": _inverse_sqrt,
    "enet": _enet,
    "none": _none,
}


def weighting_method(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    try:
        return WEIGHTING[name]
    except KeyError:
        raise ValueError(f"unknown weighting method {name!r}; valid: {', '.join(WEIGHTING)}") from None


def class_weights(
    method: str, pixels: Iterable[int], present_pixels: Iterable[int], ignored: Iterable[bool]
) -> tuple[list[float], list[int]]:
    """Weights per train id by `method`, and the train ids that had no pixels.

    Ignored classes get 0. Present classes get the method's weights scaled so their mean
    is 1. Absent classes get the largest present weight: a class never seen in training
    is at least as rare as the rarest seen one, and 1/0 would be infinite.
    """
    fn = weighting_method(method)
    n = np.asarray(list(pixels), dtype=np.float64)
    n_img = np.asarray(list(present_pixels), dtype=np.float64)
    ign = np.asarray(list(ignored), dtype=bool)
    present = (n > 0) & ~ign
    if not present.any():
        raise StatsError("no labelled pixels of any trained class: weights are undefined")
    w = np.zeros(len(n), dtype=np.float64)
    raw = np.asarray(fn(n[present], n_img[present]), dtype=np.float64)
    w[present] = raw * (present.sum() / raw.sum())
    absent = ~present & ~ign
    w[absent] = w[present].max()
    return [float(x) for x in w], [int(i) for i in np.flatnonzero(absent)]


# ---- configuration and tree -------------------------------------------------------------


@dataclass(frozen=True)
class StatsConfig:
    """Options of one `stats` run. Only split and method change the results (and are saved
    in stats.json); workers and force change how, not what."""

    split: str = "train"
    method: str = DEFAULT_WEIGHT_METHOD
    workers: int | None = None
    force: bool = False

    def to_json(self) -> dict:
        return {"split": self.split, "method": self.method}


@dataclass
class Tree:
    root: Path
    dataset: DatasetJson
    rows: list[dict]  # manifest rows of the chosen split, sorted by id

    @property
    def classes(self) -> tuple[TrainClass, ...]:
        """One per train id, indexed by train id (dataset.json's checked class table)."""
        return self.dataset.lookup.train_classes

    @property
    def id_to_train(self) -> np.ndarray:
        return self.dataset.lookup.id_to_train_id  # uint8[256], 255 for ignore and unknown ids

    @property
    def valid_ids(self) -> np.ndarray:
        return self.dataset.lookup.valid_ids  # bool[256]


def _label(c: TrainClass) -> str:
    """A train id's name in stats.json and messages: its classes joined by '+'."""
    return "+".join(c.names)


def load_tree(root: str | os.PathLike, split: str = "train") -> Tree:
    """Read dataset.json and the manifest rows of `split` (no image is opened)."""
    root = Path(root)
    if not root.is_dir():
        raise StatsInputError(f"{root}: not a folder")
    if not (root / DATASET_JSON).exists():
        raise StatsInputError(f"{root / DATASET_JSON}: not found (is this a clean tree written by `sunrgbd convert`?)")
    try:
        dataset = read_dataset_json(root / DATASET_JSON)
    except ContractError as e:
        raise StatsInputError(str(e)) from None
    mpath = root / MANIFEST
    need = {"id", "split", "image", "label_ids"}
    all_rows = []
    try:
        for line, r in iter_manifest(root, need):  # line: where the row ends (a cell may hold a line break)
            if any(r.get(k) is None for k in need):  # csv fills a short row with None
                raise StatsInputError(f"{mpath}: line {line} has fewer columns than the header (truncated?)")
            all_rows.append(r)
    except ManifestError as e:
        if e.missing:
            raise StatsInputError(f"{mpath}: needs columns {', '.join(sorted(need))}") from None
        if isinstance(e.cause, FileNotFoundError):
            raise StatsInputError(f"{mpath}: not found (is this a clean tree written by `sunrgbd convert`?)") from None
        raise StatsInputError(str(e)) from None
    rows = sorted((r for r in all_rows if r["split"] == split), key=lambda r: r["id"])
    if not rows:
        have = sorted({r["split"] for r in all_rows})
        raise StatsInputError(f"{mpath}: no samples in split {split!r} (splits: {', '.join(have) or 'none'})")
    return Tree(root, dataset, rows)


def _digests(tree: Tree, cfg: StatsConfig) -> tuple[str, str]:
    """(data digest, stats digest): the split's rows with their checksums and the class
    table; the stats digest adds the options. Equal digests mean equal results."""
    cols = ("id", "image", "image_sha256", "label_ids", "label_ids_sha256", "depth", "depth_sha256")
    data = {
        "stats_schema": STATS_SCHEMA,
        "split": cfg.split,
        "classes": tree.dataset.classes,
        "num_classes": None if tree.dataset.num_classes is ABSENT else tree.dataset.num_classes,
        "rows": [[r.get(c) or "" for c in cols] for r in tree.rows],
    }
    data_sha = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    opts = json.dumps({"data": data_sha, "config": cfg.to_json()}, sort_keys=True)
    return data_sha, hashlib.sha256(opts.encode()).hexdigest()


# ---- the pass ---------------------------------------------------------------------------


@dataclass
class Accumulator:
    """Exact integer sums over a set of samples; adding two gives the sums over both."""

    k: int
    samples: int = 0
    id_pixels: np.ndarray = None  # int64[256] pixels per labelIds value
    id_images: np.ndarray = None  # int64[256] images containing each value
    train_images: np.ndarray = None  # int64[k] images containing each train id
    train_present_pixels: np.ndarray = None  # int64[k] pixels (all, unlabelled too) of those images
    rgb_pixels: int = 0
    rgb_sum: list[int] = field(default_factory=lambda: [0, 0, 0])  # R, G, B on 0..255
    rgb_sumsq: list[int] = field(default_factory=lambda: [0, 0, 0])
    depth_pixels: int = 0  # valid (non-zero) depth pixels
    depth_sum: int = 0  # millimetres
    depth_sumsq: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (relative path, problem)
    skipped: int = 0
    bad_values: list[tuple[str, list[int]]] = field(default_factory=list)

    def __post_init__(self):
        for name, size in (("id_pixels", 256), ("id_images", 256), ("train_images", self.k),
                           ("train_present_pixels", self.k)):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(size, dtype=np.int64))

    def merge(self, o: Accumulator) -> None:
        self.samples += o.samples
        self.skipped += o.skipped
        for name in ("id_pixels", "id_images", "train_images", "train_present_pixels"):
            getattr(self, name).__iadd__(getattr(o, name))
        self.rgb_pixels += o.rgb_pixels
        self.rgb_sum = [a + b for a, b in zip(self.rgb_sum, o.rgb_sum, strict=True)]
        self.rgb_sumsq = [a + b for a, b in zip(self.rgb_sumsq, o.rgb_sumsq, strict=True)]
        self.depth_pixels += o.depth_pixels
        self.depth_sum += o.depth_sum
        self.depth_sumsq += o.depth_sumsq
        self.problems.extend(o.problems)
        self.bad_values.extend(o.bad_values)

    def sums_json(self) -> dict:
        """The integer sums, stored in stats.json: results can be re-derived from them."""
        return {
            "samples": self.samples,
            "id_pixels": [int(x) for x in self.id_pixels],
            "id_images": [int(x) for x in self.id_images],
            "train_images": [int(x) for x in self.train_images],
            "train_present_pixels": [int(x) for x in self.train_present_pixels],
            "rgb_pixels": self.rgb_pixels,
            "rgb_sum": self.rgb_sum,
            "rgb_sumsq": self.rgb_sumsq,
            "depth_pixels": self.depth_pixels,
            "depth_sum": self.depth_sum,
            "depth_sumsq": self.depth_sumsq,
        }

    @classmethod
    def from_sums(cls, k: int, s: dict) -> Accumulator:
        arr = {n: np.asarray(s[n], dtype=np.int64)
               for n in ("id_pixels", "id_images", "train_images", "train_present_pixels")}
        if arr["id_pixels"].shape != (256,) or arr["train_images"].shape != (k,):
            raise ValueError("sums do not match the class table")
        return cls(k, int(s["samples"]), rgb_pixels=int(s["rgb_pixels"]), rgb_sum=[int(x) for x in s["rgb_sum"]],
                   rgb_sumsq=[int(x) for x in s["rgb_sumsq"]], depth_pixels=int(s["depth_pixels"]),
                   depth_sum=int(s["depth_sum"]), depth_sumsq=int(s["depth_sumsq"]), **arr)


_V = np.arange(256, dtype=np.int64)
_V2 = _V * _V


def _hist_u8(a: np.ndarray, channel: int = 0) -> np.ndarray:
    """Exact int64[256] histogram of one channel of a uint8 image (cv2 is ~4x numpy)."""
    if a.shape[0] * a.shape[1] < _HIST_EXACT:
        return cv2.calcHist([a], [channel], None, [256], [0, 256]).ravel().astype(np.int64)
    plane = a if a.ndim == 2 else a[:, :, channel]
    return np.bincount(plane.ravel(), minlength=256).astype(np.int64)


def _imread(root: Path, rel: str, flags: int, acc: Accumulator) -> np.ndarray | None:
    img = cv2.imread(str(root / rel), flags)  # in a pool worker: libpng's own lines go nowhere (parallel)
    if img is None:
        acc.problems.append((rel, "missing" if not (root / rel).is_file() else "cannot be decoded"))
    return img


def _check(rel: str, arr: np.ndarray | None, ndim: int, dtype, shape, what: str, acc: Accumulator) -> bool:
    if arr is None:
        return False
    if arr.ndim != ndim or arr.dtype != dtype:
        chans = 1 if arr.ndim == 2 else arr.shape[2]
        acc.problems.append((rel, f"{what} must be single-channel {np.dtype(dtype).name}, "
                                  f"got {chans} channel(s) of {arr.dtype.name}"))
        return False
    if shape is not None and arr.shape[:2] != shape:
        acc.problems.append((rel, f"size {arr.shape[0]}x{arr.shape[1]} differs from its labelIds "
                                  f"{shape[0]}x{shape[1]}"))
        return False
    return True


def _scan_chunk(task) -> Accumulator:
    """Decode and accumulate one chunk of samples (runs in a worker process)."""
    (root, id_to_train, valid, k), samples = task
    acc = Accumulator(k)
    for image, label, depth in samples:
        lab = _imread(root, label, cv2.IMREAD_UNCHANGED, acc)
        img = _imread(root, image, cv2.IMREAD_COLOR, acc)
        dep = _imread(root, depth, cv2.IMREAD_UNCHANGED, acc) if depth else None
        ok = _check(label, lab, 2, np.uint8, None, "labelIds", acc)
        shape = lab.shape if ok else None
        ok = _check(image, img, 3, np.uint8, shape, "image", acc) and ok
        if depth:
            ok = _check(depth, dep, 2, np.uint16, shape, "depth", acc) and ok
        if not ok:
            acc.skipped += 1
            continue
        hist = _hist_u8(lab)
        bad = np.flatnonzero(hist * ~valid)
        if len(bad):
            acc.bad_values.append((label, [int(v) for v in bad]))
            continue
        t_hist = np.zeros(256, dtype=np.int64)
        np.add.at(t_hist, id_to_train, hist)
        present = t_hist[:k] > 0
        acc.samples += 1
        acc.id_pixels += hist
        acc.id_images += hist > 0
        acc.train_images += present
        acc.train_present_pixels += present * (lab.shape[0] * lab.shape[1])
        acc.rgb_pixels += img.shape[0] * img.shape[1]
        for c in range(3):  # cv2 decodes BGR; sums are stored RGB
            h = _hist_u8(img, c)
            acc.rgb_sum[2 - c] += int(h @ _V)
            acc.rgb_sumsq[2 - c] += int(h @ _V2)
        if dep is not None:
            d = dep.astype(np.int64).ravel()  # zeros (missing) add nothing to the sums
            acc.depth_pixels += int(np.count_nonzero(d))
            acc.depth_sum += int(d.sum())
            acc.depth_sumsq += int(d @ d)
    return acc


def _worker_died(k: int, sample: tuple[str, str, str], sig: int) -> Accumulator:
    """The sample whose worker process died (a library's segmentation fault, the OOM killer):
    reported under its labelIds file and skipped, so stats.json is recomputed on the next run."""
    acc = Accumulator(k)
    acc.problems.append((sample[1], f"worker died ({signal_name(sig)}) while reading its sample (sample skipped)"))
    acc.skipped += 1
    return acc


def sample_files(tree: Tree) -> list[tuple[str, str, str]]:
    """(image, labelIds, depth) relative paths per row; a path that leaves the tree is an
    input error (a manifest must never make us read outside the folder the user named)."""
    out = []
    for r in tree.rows:
        files = (r["image"], r["label_ids"], r.get("depth") or "")
        for key, f in zip(("image", "label_ids", "depth"), files, strict=True):
            if not f:
                continue
            try:
                sample_path(tree.root, r, key)
            except (SampleFileError, OSError):  # OSError: e.g. a name too long to resolve
                raise StatsInputError(f"{tree.root / MANIFEST}: row {r['id']}: path {f!r} is outside the tree "
                                      "or not a usable path") from None
        out.append(files)
    return out


def scan(tree: Tree, workers: int | None = None, progress: bool = False) -> Accumulator:
    """One pass over the split's files. The result is exact, so it does not depend on the
    number of workers or the order the chunks finish in."""
    files = sample_files(tree)
    k = len(tree.classes)
    chunks = [files[i:i + _CHUNK] for i in range(0, len(files), _CHUNK)]
    acc = Accumulator(k)
    for part in map_chunks(_scan_chunk, (tree.root, tree.id_to_train, tree.valid_ids, k), chunks,
                           workers or default_workers(), progress, f"stats {tree.root.name}",
                           died=partial(_worker_died, k)):
        acc.merge(part)
    acc.problems.sort()
    acc.bad_values.sort()
    return acc


# ---- results ----------------------------------------------------------------------------


def _mean_std(total: int, s: int, ss: int, scale: int) -> tuple[float, float]:
    """Mean and population std of values/scale from exact integer sums (one rounding)."""
    mean = float(Fraction(s, total * scale))
    var = Fraction(total * ss - s * s, total * total * scale * scale)
    return mean, math.sqrt(var)


def summarize(tree: Tree, acc: Accumulator, cfg: StatsConfig, data_sha: str, stats_sha: str) -> dict:
    """The content of stats.json, from the integer sums alone."""
    if acc.samples == 0:
        raise StatsError(f"{tree.root}: no readable sample in split {cfg.split!r}")
    weighting_method(cfg.method)
    k = len(tree.classes)
    train_pixels = np.zeros(256, dtype=np.int64)
    np.add.at(train_pixels, tree.id_to_train, acc.id_pixels)
    pixels = [int(x) for x in train_pixels[:k]]
    ignore_pixels = int(train_pixels[IGNORE])
    total = int(acc.id_pixels.sum())
    ignored = [c.ignore_in_eval for c in tree.classes]
    labelled = sum(p for p, ign in zip(pixels, ignored, strict=True) if not ign)
    present_px = [int(x) for x in acc.train_present_pixels]

    weights: dict[str, list[float]] = {}
    absent: list[int] = []
    for name in WEIGHTING:
        weights[name], absent = class_weights(name, pixels, present_px, ignored)
    warns = []
    if absent:
        names = ", ".join(f"{_label(tree.classes[t])} ({t})" for t in absent)
        warns.append(f"{len(absent)} class(es) have no pixels in split {cfg.split!r}: {names}; "
                     "their weights are set to the largest weight of a present class")
    if cfg.split != "train":  # the trainer reads these as the training statistics
        warns.append(f"split {cfg.split!r} is not 'train': its statistics replace the training ones in "
                     f"dataset.json (the class weights and mean/std segtrain trains with); use it only if "
                     f"{cfg.split!r} is the split you train on")
    classes = []
    for t, c in enumerate(tree.classes):
        n = pixels[t]
        classes.append({
            "train_id": t,
            "name": _label(c),
            "ids": list(c.ids),
            "ignore_in_eval": c.ignore_in_eval,
            "pixels": n,
            "frequency": n / labelled if labelled and not c.ignore_in_eval else 0.0,
            "images": int(acc.train_images[t]),
            "image_frequency": n / present_px[t] if present_px[t] else 0.0,
        })
    mean = std = None
    if acc.rgb_pixels:
        ms = [_mean_std(acc.rgb_pixels, acc.rgb_sum[c], acc.rgb_sumsq[c], 255) for c in range(3)]
        mean, std = [m for m, _ in ms], [s for _, s in ms]
    depth_mean = depth_std = None
    if acc.depth_pixels:
        depth_mean, depth_std = _mean_std(acc.depth_pixels, acc.depth_sum, acc.depth_sumsq, 1000)
    return {
        "schema_version": STATS_SCHEMA,
        "created_with": {"tool": "sunrgbd-tools", "version": __version__, "config": cfg.to_json()},
        "stats_split": cfg.split,
        "stats_sha256": stats_sha,
        "data_sha256": data_sha,
        "samples": {"split": len(tree.rows), "used": acc.samples, "skipped": len(tree.rows) - acc.samples},
        "problems": [{"file": f, "problem": p} for f, p in acc.problems],
        "warnings": warns,
        "pixels": {"total": total, "labelled": labelled, "ignore": ignore_pixels},
        "mean": mean,
        "std": std,
        "depth_mean": depth_mean,
        "depth_std": depth_std,
        "depth_valid_pixels": acc.depth_pixels,
        "class_pixel_counts": pixels,
        "class_image_counts": [c["images"] for c in classes],
        "class_weights": weights,
        "class_weights_default": cfg.method,
        "absent_train_ids": absent,
        "classes": classes,
        "sums": acc.sums_json(),
    }


@dataclass
class StatsResult:
    stats: dict
    path: Path  # stats.json
    reused: str  # "" (full pass), "sums" (weights re-derived from stored sums), "stats" (no-op)
    written: list[Path]  # files actually (re)written

    @property
    def problems(self) -> list[dict]:
        return self.stats["problems"]

    @property
    def warnings(self) -> list[str]:
        return self.stats["warnings"]


def _previous(path: Path) -> dict | None:
    try:
        prev = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return prev if isinstance(prev, dict) and prev.get("schema_version") == STATS_SCHEMA else None


def _write_if_changed(path: Path, text: str, written: list[Path]) -> None:
    """Rewrite `path` only when its text changes (an up-to-date tree is left untouched)."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(path, text)
    written.append(path)


def run_stats(root: str | os.PathLike, cfg: StatsConfig | None = None, progress: bool = False) -> StatsResult:
    """Compute (or reuse) the statistics of `cfg.split`, write CLEAN_DIR/stats.json and merge
    the summary keys into dataset.json.

    Reuse: a stats.json with the same digest and no skipped samples is returned as is (a
    skipped sample may have been repaired since, so such a result is recomputed). One with
    the same data digest but another method re-derives the weights from its stored sums.
    Raises LabelValueError (after the whole pass, listing files and values) when labelIds
    hold ids outside the class table, and writes nothing then.
    """
    cfg = cfg or StatsConfig()
    weighting_method(cfg.method)
    tree = load_tree(root, cfg.split)
    data_sha, stats_sha = _digests(tree, cfg)
    path = tree.root / STATS_FILE
    prev = None if cfg.force else _previous(path)
    clean_prev = prev is not None and prev.get("samples", {}).get("skipped") == 0
    stats = None
    reused = ""
    if clean_prev and prev.get("stats_sha256") == stats_sha:
        stats, reused = prev, "stats"
    elif clean_prev and prev.get("data_sha256") == data_sha:
        try:
            acc = Accumulator.from_sums(len(tree.classes), prev["sums"])
            stats, reused = summarize(tree, acc, cfg, data_sha, stats_sha), "sums"
        except (KeyError, TypeError, ValueError):
            stats = None
    if stats is None:
        acc = scan(tree, cfg.workers, progress)
        if acc.bad_values:
            shown = "; ".join(f"{tree.root / f}: values {', '.join(map(str, v))}" for f, v in acc.bad_values[:5])
            more = f" (and {len(acc.bad_values) - 5} more files)" if len(acc.bad_values) > 5 else ""
            raise LabelValueError(
                f"labelIds values outside the class table of {tree.root / DATASET_JSON}: {shown}{more}; "
                "nothing was written")
        stats = summarize(tree, acc, cfg, data_sha, stats_sha)
    for w in stats["warnings"]:
        warnings.warn(w, AbsentClassWarning, stacklevel=2)
    written: list[Path] = []
    _write_if_changed(path, dumps_json(stats), written)
    dataset = dataclasses.replace(tree.dataset, **{key: stats[key] for key in STATS_KEYS})
    _write_if_changed(tree.root / DATASET_JSON, dumps_dataset_json(dataset), written)
    return StatsResult(stats, path, reused, written)
