"""The run folder `segtrain run` owns: claiming it (never writing into a folder that is not
a segtrain run), and the files beside the checkpoints: config.yaml, environment.json,
metrics.csv and train.log."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch

from cleantree.files import atomic_write_json, atomic_write_text
from segtrain.config import TrainConfig, save_config
from segtrain.transforms import albumentations_version
from segtrain.utils import SegtrainError, check_out_dir

log = logging.getLogger("segtrain")


def is_run_folder(out: Path, kind: str = "run") -> bool:
    """True when `out` holds segtrain-<kind>.json with format segtrain-<kind>-v1 (what
    `segtrain run` / `sweep` write first into a folder they own)."""
    try:
        meta = json.loads((out / f"segtrain-{kind}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == f"segtrain-{kind}-v1"


def check_run_folder(out: str | Path, resume: bool = False, kind: str = "run") -> Path:
    """Refuse an --out that is a file, or a non-empty folder that is not a segtrain <kind>
    (so nothing the user keeps there is overwritten). With --resume the folder's own
    config.yaml and last.pt are checked instead."""
    out = check_out_dir(out)
    if resume or not out.is_dir():
        return out
    try:
        empty = next(out.iterdir(), None) is None
    except OSError as e:
        raise SegtrainError(f"{out}: cannot list the folder ({e.strerror or e})") from None
    if not empty and not is_run_folder(out, kind):
        raise SegtrainError(f"{out}: folder is not empty and is not a segtrain {kind} (no segtrain-{kind}.json); "
                            f"use a new or empty --out" + (", or --resume a run" if kind == "run" else ""))
    return out


def claim_run_folder(out: Path, kind: str = "run", **info) -> None:
    """Create `out` and mark it as a segtrain <kind> (deterministic content)."""
    out.mkdir(parents=True, exist_ok=True)
    if not is_run_folder(out, kind):
        atomic_write_json(out / f"segtrain-{kind}.json", {"format": f"segtrain-{kind}-v1", **info}, allow_nan=False)


def write_run_config(out: Path, cfg: TrainConfig, class_names: list[str], weights: list[float] | None,
                     device: str, world_size: int, resume: bool = False,
                     weights_source: str = "dataset.json") -> None:
    """config.yaml (the config as run, class_weights resolved; the weight vector, None when
    unweighted, and where it came from, as a comment at its top) and environment.json
    (versions and hardware; with `resume`, the earlier sessions' under `earlier_sessions`, so
    the command that started the run and the machines it ran on are not lost)."""
    note = (f"class_weights {cfg.class_weights} ({weights_source}), by train id: "
            + ", ".join(f"{n} {w:.6g}" for n, w in zip(class_names, weights, strict=True))
            if weights is not None else "class_weights none: the loss is unweighted")
    save_config(cfg, out / "config.yaml", comment=note)
    env = environment_info(device)
    env["world_size"] = world_size
    earlier = earlier_sessions(out / "environment.json") if resume else []
    if earlier:
        env["earlier_sessions"] = earlier
    atomic_write_json(out / "environment.json", env, allow_nan=False)


def earlier_sessions(path: Path) -> list[dict]:
    """The sessions an environment.json records, oldest first (none when it is missing or
    unreadable: it is a record for people, never needed to resume)."""
    try:
        env = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(env, dict):
        return []
    before = env.pop("earlier_sessions", [])
    before = [e for e in before if isinstance(e, dict)] if isinstance(before, list) else []
    return [*before, env]


def environment_info(device: str = "cpu") -> dict:
    """Versions and hardware a run used, saved next to its outputs for reproducibility."""
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "albumentations": albumentations_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "cuda_available": torch.cuda.is_available(),
        "cuda": torch.version.cuda,
        "command": " ".join(sys.argv),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cudnn"] = torch.backends.cudnn.version()
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    return info


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    """One row per epoch; the columns of every row in first-seen order (per-sensor mIoU
    columns appear with the sensors)."""
    if not history:
        return
    cols: list[str] = []
    for row in history:
        cols += [k for k in row if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in cols})
    atomic_write_text(path, buf.getvalue())


def epochs_recorded(path: Path) -> int:
    """The last epoch metrics.csv records (0 without one): a run folder's progress, read
    without loading its checkpoint."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            epochs = [int(r["epoch"]) for r in csv.DictReader(f) if (r.get("epoch") or "").isdigit()]
    except (OSError, KeyError, ValueError):
        return 0
    return max(epochs, default=0)


@contextmanager
def run_log(out: Path, enabled: bool = True) -> Iterator[None]:
    """While the block runs, the run's log also goes to out/train.log (INFO and up, with
    times), whatever the console shows."""
    if not enabled:
        yield
        return
    handler, level = logging.FileHandler(out / "train.log", encoding="utf-8"), log.level
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()
        log.setLevel(level)
