"""The clean-tree contract as a PyTorch Dataset (dataset.json + manifest.csv + PNGs).

segtrain knows only this contract (docs/contracts.md), never the converter, so any
Cityscapes-style tree with a dataset.json works. Without manifest.csv the samples are
found by globbing the standard Cityscapes names
(leftImg8bit/<split>/<city>/<id>_leftImg8bit.png and gtFine/.../<id>_gtFine_labelTrainIds.png,
or _labelIds.png mapped through the class table), with the city folder as the sensor.

Images are returned as uint8 CHW tensors and normalised on the device (4x less to copy
than float32); masks as uint8 with 255 = ignore.
"""

from __future__ import annotations

import logging
import random
import warnings
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cleantree.classes import IGNORE_INDEX
from cleantree.dataset import ABSENT, DATASET_JSON, ContractError, read_dataset_json, short
from cleantree.files import os_cause
from cleantree.manifest import MANIFEST, ManifestError, SampleFileError, iter_manifest, sample_path
from cleantree.paths import (
    DEPTH_DIR,
    DEPTH_SUFFIX,
    IMAGE_DIR,
    IMAGE_SUFFIX,
    LABEL_DIR,
    LABEL_IDS_SUFFIX,
    LABEL_TRAIN_IDS_SUFFIX,
)
from segtrain.config import usable_cores
from segtrain.device_augment import PARAMS_KEY, sample_params
from segtrain.transforms import build_eval_transform, build_train_transform
from segtrain.utils import SegtrainError, check_readable_image, read_rgb, read_unchanged

log = logging.getLogger("segtrain")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DataError(SegtrainError):
    """The dataset does not follow the contract: names the file and the problem."""


@dataclass(frozen=True)
class TrainClass:
    train_id: int
    name: str
    color: tuple[int, int, int]
    ignore_in_eval: bool

    def to_json(self) -> dict:
        return {"train_id": self.train_id, "name": self.name, "color": list(self.color),
                "ignore_in_eval": self.ignore_in_eval}


def classes_from_json(rows: list[dict]) -> list[TrainClass]:
    return [TrainClass(int(r["train_id"]), str(r["name"]), tuple(int(c) for c in r["color"]),
                       bool(r["ignore_in_eval"])) for r in rows]


@dataclass
class DatasetInfo:
    """What dataset.json says, reduced to what training needs."""

    root: Path
    name: str
    classes: list[TrainClass]  # index == train id
    ignore_index: int
    id_to_train_id: np.ndarray  # (256,) uint8 look-up for _labelIds masks
    known_ids: np.ndarray  # (256,) bool: ids present in the class table
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    normalization_source: str
    class_weights: dict[str, list[float]] = field(default_factory=dict)
    default_weight_method: str | None = None
    image_size: tuple[int, int] | None = None
    has_depth: bool = False
    label_mode: str = "not recorded"  # which labels the tree holds; printed next to every mIoU
    depth_mean: float | None = None  # metres over valid pixels (`sunrgbd stats`); None = not computed
    depth_std: float | None = None

    def depth_stats(self) -> tuple[float, float, str]:
        """(mean, std, source) for depth normalisation; segtrain.depth says the fallback."""
        from segtrain.depth import FALLBACK_DEPTH_STATS

        if self.depth_mean is not None and self.depth_std is not None:
            return self.depth_mean, self.depth_std, "dataset.json"
        log.warning("%s has no depth_mean/depth_std (run `sunrgbd stats`); normalising depth with "
                    "%.1f m / %.1f m", self.root / "dataset.json", *FALLBACK_DEPTH_STATS)
        return (*FALLBACK_DEPTH_STATS, "fallback")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def eval_mask(self) -> np.ndarray:
        return np.array([not c.ignore_in_eval for c in self.classes], dtype=bool)

    def weights(self, method: str) -> list[float]:
        """Class weights from dataset.json (written by `sunrgbd stats --weights`)."""
        if not self.class_weights:
            raise DataError(f"{self.root / 'dataset.json'}: has no class_weights; run "
                            "`sunrgbd stats DIR --weights` or use --class-weights none")
        if method not in self.class_weights:
            raise DataError(f"{self.root / 'dataset.json'}: class_weights has no method {method!r}; "
                            f"available: {', '.join(sorted(self.class_weights))}")
        w = self.class_weights[method]
        if len(w) != self.num_classes:
            raise DataError(f"{self.root / 'dataset.json'}: class_weights[{method!r}] has {len(w)} "
                            f"values for {self.num_classes} classes")
        return [float(v) for v in w]


def load_dataset_info(root: str | Path) -> DatasetInfo:
    """Read and check dataset.json (cleantree's one reader); every problem is one line
    naming the file."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: " + ("is a file, not a data folder" if root.exists() else "data folder not found"))
    path = root / DATASET_JSON
    if not path.is_file():
        raise DataError(f"{root}: no dataset.json (not a clean tree; convert it with "
                        "`sunrgbd convert` or write a dataset.json with the class table)")
    try:
        doc = read_dataset_json(path)
        classes = [TrainClass(c.train_id, c.name, c.color, c.ignore_in_eval) for c in doc.lookup.train_classes]
        norm = doc.normalization()
        weights, default_method = doc.weight_table()
        size = doc.image_hw()
        depth_norm = doc.depth_normalization()
    except ContractError as e:
        raise DataError(str(e)) from None
    if norm is not None:
        (mean, std), source = norm, "dataset.json"
    else:  # runtime_for_dataset warns: eval and predict normalise as the checkpoint says instead
        mean, std, source = IMAGENET_MEAN, IMAGENET_STD, "imagenet"
    depth_mean, depth_std = depth_norm if depth_norm is not None else (None, None)
    name = doc.name if doc.name is not ABSENT else root.name
    return DatasetInfo(
        root=root, name=name if isinstance(name, str) else short(name), classes=classes, ignore_index=IGNORE_INDEX,
        id_to_train_id=doc.lookup.id_to_train_id, known_ids=doc.lookup.valid_ids, mean=mean, std=std,
        normalization_source=source, class_weights=weights, default_weight_method=default_method,
        image_size=size, has_depth=bool(doc.depth),
        label_mode=doc.label_mode_text(), depth_mean=depth_mean, depth_std=depth_std,
    )


@dataclass(frozen=True)
class Sample:
    id: str
    split: str
    sensor: str
    image: Path
    label: Path
    label_kind: str  # "train_ids" or "ids"
    depth: Path | None = None


def _manifest_samples(info: DatasetInfo, split: str) -> list[Sample]:
    path = info.root / MANIFEST
    try:
        return _manifest_rows(info, split, path)
    except ManifestError as e:
        if e.cause is None:  # missing columns
            raise DataError(str(e)) from None
        if isinstance(e.cause, OSError):
            raise DataError(f"{path}: {os_cause(e.cause)}") from None
        if isinstance(e.cause, UnicodeDecodeError):
            raise DataError(f"{path}: not UTF-8 text") from None
        raise DataError(f"{path}: not a readable CSV ({e.cause})") from None  # e.g. a NUL byte, an over-long field


def _manifest_rows(info: DatasetInfo, split: str, path: Path) -> list[Sample]:
    out = []
    for line, row in iter_manifest(info.root, need=("id", "split", "image", "label_train_ids")):
        if row["split"] != split:
            continue
        if not all(row.get(k) for k in ("id", "image", "label_train_ids")):
            raise DataError(f"{path}: line {line} of split {split} lacks id, image or label_train_ids")
        image, label = _inside(info, row, "image", path, line), _inside(info, row, "label_train_ids", path, line)
        depth = _inside(info, row, "depth", path, line) if row.get("depth") else None
        out.append(Sample(row["id"], split, row.get("sensor") or "", image, label, "train_ids", depth))
    return out


def _inside(info: DatasetInfo, row: dict, key: str, path: Path, line: int) -> Path:
    """The file `row[key]` names, refused when it leaves the tree (a manifest must never make
    training read a file outside the folder the user named)."""
    try:
        return sample_path(info.root, row, key)
    except (SampleFileError, OSError):  # OSError: a name too long to resolve
        raise DataError(f"{path}: line {line}: {key} {row[key]!r} leads outside the tree "
                        "(absolute, '..' or a symbolic link) or is not a usable path") from None


def _glob_samples(info: DatasetInfo, split: str) -> list[Sample]:
    out = []
    for img in sorted((info.root / IMAGE_DIR / split).glob(f"*/*{IMAGE_SUFFIX}.*")):
        if img.name.startswith(".") or img.parent.name.startswith("."):
            continue
        city = img.parent.name
        sid = img.name[: -len(IMAGE_SUFFIX + img.suffix)]
        gt = info.root / LABEL_DIR / split / city
        label, kind = gt / f"{sid}{LABEL_TRAIN_IDS_SUFFIX}", "train_ids"
        if not label.exists() and (gt / f"{sid}{LABEL_IDS_SUFFIX}").exists():
            label, kind = gt / f"{sid}{LABEL_IDS_SUFFIX}", "ids"
        depth = info.root / DEPTH_DIR / split / city / f"{sid}{DEPTH_SUFFIX}"
        out.append(Sample(sid, split, city, img, label, kind, depth if depth.exists() else None))
    return out


def _exists(path: Path) -> bool:
    """False only when the file is really absent (a folder we may not enter counts as present:
    reading it then reports "permission denied" instead of a wrong "not found")."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def list_samples(info: DatasetInfo, split: str, with_depth: bool = False,
                 skipped: list[tuple[str, str]] | None = None) -> list[Sample]:
    """Samples of one split, from manifest.csv or (without one) by globbing. A missing image
    or label file is an error (the tree breaks the contract); one that exists but cannot be
    read (permission denied, empty, not an image) is reported and its sample skipped (and
    appended to `skipped` as (id, problem), for reports that must say so). With
    `with_depth` the depth file is checked the same way."""
    if (info.root / "manifest.csv").is_file():
        samples = _manifest_samples(info, split)
    else:
        samples = _glob_samples(info, split)
    readable, first = [], None
    for s in samples:
        for p in (s.image, s.label):
            if not _exists(p):
                raise DataError(f"{p}: file not found (sample {s.id}, split {split})")
        try:
            for p in (s.image, s.label, *([s.depth] if with_depth and s.depth else [])):
                check_readable_image(p)
        except SegtrainError as e:  # a file that exists but cannot be read: report, skip, go on
            log.warning("problem: %s; sample %s of split %s skipped", e, s.id, split)
            first = first or str(e)
            if skipped is not None:
                skipped.append((s.id, str(e)))
            continue
        readable.append(s)
    if samples and not readable:
        raise DataError(f"{info.root}: none of the {len(samples)} samples of split {split!r} can be read "
                        f"(first: {first})")
    if len(readable) < len(samples):
        log.warning("%d of %d samples of split %s skipped (unreadable files)", len(samples) - len(readable),
                    len(samples), split)
    return readable


def read_label(sample: Sample, info: DatasetInfo) -> np.ndarray:
    """Train-id mask (uint8, 255 = ignore), checked against the class table."""
    raw = read_unchanged(sample.label)
    if raw.dtype != np.uint8:
        raise DataError(f"{sample.label}: label must be 8-bit, got {raw.dtype}")
    if sample.label_kind == "ids":
        if not info.known_ids[raw].all():
            bad = np.unique(raw[~info.known_ids[raw]])
            raise DataError(f"{sample.label}: label id(s) {bad.tolist()} not in the class table")
        return info.id_to_train_id[raw]
    n, ignore = info.num_classes, info.ignore_index
    if int(raw.max()) >= n:
        bad = np.unique(raw[(raw >= n) & (raw != ignore)])
        if bad.size:
            raise DataError(f"{sample.label}: mask value(s) {bad.tolist()} outside the class table "
                            f"(train ids 0..{n - 1}, {ignore} = ignore)")
    return raw


class SegDataset(Dataset):
    """RGB + train-id mask (+ depth in metres when `with_depth`).

    `__getitem__` takes an index or (index, augmentation seed): the seed comes from
    `EpochSampler`, so augmentations depend only on (run seed, epoch, sample) — the same
    for any worker count and after `--resume`.
    """

    def __init__(self, info: DatasetInfo, samples: list[Sample], transform=None,
                 image_transform=None, with_depth: bool = False, augment_params=None,
                 resized: bool = False):
        self.info = info
        self.samples = samples
        self.transform = transform  # joint image + mask (+ depth)
        self.image_transform = image_transform  # image only (evaluation resize)
        self.with_depth = with_depth
        # seed -> float32 row of on-device augmentation parameters (segtrain.device_augment),
        # computed here in the worker so the main process only copies a pinned tensor
        self.augment_params = augment_params
        # `transform` brings image and mask to one size (train --size / --crop): an image of
        # another size than dataset.json's image_size then batches like the others; otherwise
        # (eval resizes the image only) it would not batch and is refused
        self.resized = resized

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        s = self.samples[index]
        image = read_rgb(s.image)
        mask = read_label(s, self.info)
        if image.shape[:2] != mask.shape:
            raise DataError(f"{s.label}: size {mask.shape} differs from its image {image.shape[:2]}")
        expected = self.info.image_size
        if expected is not None and not self.resized and tuple(image.shape[:2]) != tuple(expected):
            raise DataError(f"{s.image}: size {image.shape[0]}x{image.shape[1]} differs from image_size "
                            f"{expected[0]}x{expected[1]} in {self.info.root / DATASET_JSON} (a tree of "
                            "mixed sizes has image_size null)")
        depth = None
        if self.with_depth:
            if s.depth is None:
                raise DataError(f"sample {s.id}: no depth file but depth was requested")
            depth = read_depth(s.depth, image)
        return image, mask, depth

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        image, mask, depth = self.load(index)
        if self.transform is not None:
            if seed is not None:
                self.transform.set_random_seed(seed)
            args = {"image": image, "mask": mask}
            if depth is not None:
                args["depth"] = depth
            out = self.transform(**args)
            image, mask, depth = out["image"], out["mask"], out.get("depth")
        if self.image_transform is not None:
            image = self.image_transform(image=image)["image"]
            if depth is not None and depth.shape[:2] != image.shape[:2]:
                # nearest (pixel centres): depth is never interpolated across an edge or a hole
                depth = cv2.resize(depth, (image.shape[1], image.shape[0]),
                                   interpolation=cv2.INTER_NEAREST_EXACT)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.from_numpy(np.ascontiguousarray(mask)),
            "index": index,
            "sensor": self.samples[index].sensor,
        }
        if depth is not None:
            item["depth"] = torch.from_numpy(depth.astype(np.float32) / 1000.0)
        if self.augment_params is not None:
            if seed is None:
                raise ValueError("on-device augmentation needs (index, seed) keys from EpochSampler")
            item[PARAMS_KEY] = torch.from_numpy(self.augment_params(seed))
        return item


class EpochSampler(Sampler):
    """Yields (index, augmentation seed) pairs, a pure function of (seed, epoch).

    Like DistributedSampler, call `set_epoch` before each epoch. Because nothing depends on
    hidden RNG state, a resumed run sees exactly the batches an uninterrupted run would.

    With `world_size` > 1 process `rank` takes positions rank, rank + W, … of the same
    permutation (seeds unchanged). `drop_tail` (training) first cuts the permutation to a
    multiple of W, so every process runs the same number of steps and the union of the
    per-process batches of a step is the single-process batch; without it (evaluation) the
    shards are uneven but cover every sample exactly once (no padding duplicates).
    """

    def __init__(self, n: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_tail: bool = False):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0
        self.rank, self.world_size, self.drop_tail = rank, world_size, drop_tail

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _total(self) -> int:
        return self.n - self.n % self.world_size if self.drop_tail else self.n

    def __len__(self) -> int:
        return len(range(self.rank, self._total(), self.world_size))

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2**31 - 1, (self.n,), generator=g)
        for i in order[: self._total()][self.rank::self.world_size].tolist():
            yield i, int(seeds[i])


def drops_tail(drop_last: bool, n: int, batch_size: int) -> bool:
    """Whether `drop_last` drops the partial tail of `n` samples: not when it is the only batch."""
    return drop_last and n > batch_size


class EpochBatches(Sampler):
    """The batches of `sampler`'s epochs in `epochs`, back to back, for one DataLoader
    iterator that spans the whole run: its workers go on building the next epoch's first
    batches while this epoch ends and while validation runs. (A new iterator per epoch
    leaves the device idle at every epoch start until a worker has built a whole batch.)

    Each epoch is batched on its own, as a per-epoch loader would: `drop_last` drops its
    partial tail (unless that is its only batch), `max_batches` caps it."""

    def __init__(self, sampler: EpochSampler, batch_size: int, drop_last: bool, epochs: range,
                 max_batches: int = 0):
        self.sampler, self.batch_size, self.epochs = sampler, batch_size, epochs
        n = len(sampler)
        full = n // batch_size if drops_tail(drop_last, n, batch_size) else -(-n // batch_size)
        self.per_epoch = min(full, max_batches) if max_batches else full

    def __len__(self) -> int:
        return self.per_epoch * len(self.epochs)

    def __iter__(self):
        for epoch in self.epochs:
            self.sampler.set_epoch(epoch)
            keys = iter(self.sampler)
            for _ in range(self.per_epoch):
                yield [k for _, k in zip(range(self.batch_size), keys, strict=False)]


def seed_worker(worker_id: int) -> None:
    """Seed numpy/random per worker from torch's per-worker seed (workers are the parallelism)."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


@cache
def _warn_workers(workers: int, cores: int) -> None:
    """Said once, in our words; PyTorch's own UserWarning (printed twice, with its source
    line, for every loader) is dropped."""
    log.warning("warning: --workers %d is more than the %d CPU cores this process may use; loading "
                "may be slower than with %d", workers, cores, cores)
    warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)


def make_loader(dataset: SegDataset, batch_size: int, shuffle: bool, seed: int, workers: int,
                device: torch.device, drop_last: bool = False, rank: int = 0,
                world_size: int = 1, epochs: range | None = None,
                max_batches: int = 0) -> tuple[DataLoader, EpochSampler]:
    """`batch_size` is per process; with world_size > 1 the loader reads this rank's shard
    (training shards when `drop_last`, evaluation shards otherwise: see EpochSampler).
    With `epochs`, one iterator of the loader yields all those epochs (see EpochBatches;
    `max_batches` caps each) and `loader.batch_sampler.per_epoch` says how many per epoch."""
    sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size,
                           drop_tail=drop_last)
    cores = usable_cores()
    if workers > cores:
        _warn_workers(workers, cores)
    if workers > 0:
        # OpenCV's thread pool does not survive fork(): a worker forked after the main process
        # used it can deadlock in its first cv2 call. Stop the pool before the workers fork
        # (they are the parallelism anyway).
        cv2.setNumThreads(0)
    g = torch.Generator()
    g.manual_seed(seed)
    if epochs is not None:
        batching = {"batch_sampler": EpochBatches(sampler, batch_size, drop_last, epochs, max_batches)}
    else:
        batching = {"batch_size": batch_size, "sampler": sampler,
                    "drop_last": drops_tail(drop_last, len(sampler), batch_size)}
    loader = DataLoader(
        dataset, num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
        worker_init_fn=seed_worker, generator=g, prefetch_factor=4 if workers > 0 else None, **batching,
    )
    return loader, sampler


def _check_depth(info: DatasetInfo, split: str, samples: list[Sample]) -> None:
    missing = [s.id for s in samples if s.depth is None]
    if missing:
        raise DataError(f"{info.root}: {len(missing)} of {len(samples)} samples of split {split!r} have no "
                        f"depth file (e.g. {missing[0]}) but the inputs need depth (converted with --no-depth?)")


def read_depth(path: Path, like: np.ndarray) -> np.ndarray:
    """uint16 millimetres (0 = missing) of the same size as `like` (an image)."""
    depth = read_unchanged(path)
    if depth.ndim != 2 or depth.dtype != np.uint16:
        raise DataError(f"{path}: depth must be single-channel 16-bit millimetres, got "
                        f"{depth.dtype} with shape {depth.shape}")
    if depth.shape != like.shape[:2]:
        raise DataError(f"{path}: size {depth.shape} differs from its image {like.shape[:2]}")
    return depth


def _no_samples(info: DatasetInfo, split: str, option: str | None) -> DataError:
    hint = f" (choose another with {option})" if option else ""
    return DataError(f"{info.root}: split {split!r} has no samples{hint}")


def train_dataset(info: DatasetInfo, split: str, augment: str, size=None, crop=None,
                  with_depth: bool = False, augment_on: str = "loader", option: str | None = None) -> SegDataset:
    """`augment_on` as device_augment.resolve_augment_on returns it. "device": the loader only
    resizes / pads / crops and attaches each sample's parameters; `--augment` itself runs
    batched on the device (segtrain.device_augment)."""
    if augment_on not in ("loader", "device"):
        raise ValueError(f"augment_on {augment_on!r} is not resolved to loader or device")
    samples = list_samples(info, split, with_depth)
    if not samples:
        raise _no_samples(info, split, option)
    if with_depth:
        _check_depth(info, split, samples)
    if not size and not crop and info.image_size is None:
        raise DataError(f"{info.root}: samples have different sizes (image_size is null); "
                        "give --size HxW or --crop HxW")
    on_loader = augment_on == "loader"  # else the loader only resizes and attaches the parameters
    return SegDataset(info, samples, transform=build_train_transform(augment if on_loader else "none", size, crop),
                      with_depth=with_depth,
                      augment_params=None if on_loader else partial(sample_params, augment=augment),
                      resized=bool(size or crop))


def eval_dataset(info: DatasetInfo, split: str, size=None, with_depth: bool = False,
                 option: str | None = None, skipped: list[tuple[str, str]] | None = None) -> SegDataset:
    """`option` names the flag that chose `split`, for the error when it has no samples;
    `skipped` collects the unreadable samples left out (see list_samples)."""
    samples = list_samples(info, split, with_depth, skipped)
    if not samples:
        raise _no_samples(info, split, option)
    if with_depth:
        _check_depth(info, split, samples)
    return SegDataset(info, samples, image_transform=build_eval_transform(size), with_depth=with_depth)
