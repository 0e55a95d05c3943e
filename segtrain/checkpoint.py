"""Checkpoints: what last.pt / best.pt hold, and writing, reading and resuming from them.

A checkpoint is a plain dict of tensors and containers (read with weights_only=True): the
format tag, what eval / predict need to rebuild the model and its inputs (model name and
options, class table, normalisation, depth encoding: `checkpoint_meta`), and what --resume
needs to continue exactly (weights, optimizer, scheduler, scaler, RunState, RNG states).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cleantree.files import atomic_path
from segtrain.config import TrainConfig, flag, moot_options, show_value, to_dict
from segtrain.data import DataError, DatasetInfo
from segtrain.depth import FALLBACK_DEPTH_STATS, uses_depth
from segtrain.models import MODELS, create_model
from segtrain.models.pretrained import LoadReport, init_from_state
from segtrain.optim import LRSchedule
from segtrain.runtime import Runtime
from segtrain.utils import SegtrainError, load_torch_file

log = logging.getLogger("segtrain")

CHECKPOINT_FORMAT = "segtrain-checkpoint-v1"


def rng_state() -> dict:
    """torch, numpy, Python (and CUDA) RNG states as tensors and plain containers, so a
    resumed run draws the same augmentations and shuffles (weights_only can load them)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Undo of rng_state."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, obj: dict) -> None:
    """torch.save to a temporary name, then rename (never a half-written checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Load with weights_only=True (no pickled code); one-line errors for bad files."""
    path = Path(path)
    if not path.exists():
        raise SegtrainError(f"{path}: checkpoint not found")
    ckpt = load_torch_file(path, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise SegtrainError(f"{path}: not a segtrain checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return ckpt


def check_classes(ckpt: dict, info: DatasetInfo, ckpt_path) -> None:
    """A checkpoint only fits a dataset with the same train-id class table."""
    mine, theirs = class_tables(ckpt, info)
    if mine != theirs:
        diff = next((f"train id {a[0]} is {a[1]!r} in the checkpoint but {b[1]!r} in the dataset"
                     for a, b in zip(mine, theirs, strict=False) if a != b),
                    f"{len(mine)} vs {len(theirs)} classes")
        raise DataError(f"{ckpt_path}: class table differs from {info.root / 'dataset.json'} ({diff})")


def class_tables(ckpt: dict, info: DatasetInfo) -> tuple[list, list]:
    """(train id, name) pairs of the checkpoint's class table and of the dataset's."""
    return [(c["train_id"], c["name"]) for c in ckpt["classes"]], [(c.train_id, c.name) for c in info.classes]


def inputs_differ(ckpt: dict, cfg: TrainConfig) -> tuple[str, str] | None:
    """(the checkpoint's, the config's) network-input flags when they differ, else None."""
    theirs = network_inputs(*checkpoint_inputs(ckpt))
    mine = network_inputs(cfg.inputs, cfg.depth_encoding, cfg.fusion)
    return (theirs, mine) if theirs != mine else None


def checkpoint_inputs(ckpt: dict) -> tuple[str, str, str]:
    """(inputs, depth encoding, fusion) a checkpoint was trained with (older ones: RGB)."""
    return ckpt.get("inputs", "rgb"), ckpt.get("depth_encoding", "metres"), ckpt.get("fusion", "early")


def network_inputs(inputs: str, encoding: str, fusion: str) -> str:
    """The flags that change what the network sees, as a user types them (rgb: none matter)."""
    if inputs == "rgb":
        return "--inputs rgb"
    return f"--inputs {inputs} --depth-encoding {encoding} --fusion {fusion}"


def runtime_for_checkpoint(ckpt: dict, device: torch.device, amp: bool) -> Runtime:
    inputs, encoding, _ = checkpoint_inputs(ckpt)
    stats = (ckpt.get("depth_mean", FALLBACK_DEPTH_STATS[0]), ckpt.get("depth_std", FALLBACK_DEPTH_STATS[1]))
    return Runtime.create(device, ckpt["mean"], ckpt["std"], amp, channels_last=True, inputs=inputs,
                          depth_encoding=encoding, depth_stats=stats)


def model_from_checkpoint(ckpt: dict) -> torch.nn.Module:
    inputs, _, fusion = checkpoint_inputs(ckpt)
    model = create_model(ckpt["model_name"], len(ckpt["classes"]), inputs=inputs, fusion=fusion,
                         **ckpt["model_options"])
    model.load_state_dict(ckpt["model"])
    return model


def init_from_checkpoint(model: torch.nn.Module, cfg: TrainConfig, info: DatasetInfo,
                         options: dict) -> LoadReport:
    """Start from another run's weights: same architecture, any class table (the head is
    rebuilt when the classes differ, everything else loads)."""
    src = load_checkpoint(cfg.init_from)
    same_arch = (src["model_name"] in MODELS and MODELS[src["model_name"]].builder is MODELS[cfg.model].builder
                 and src["model_options"] == options)
    if not same_arch:
        opts = " ".join(f"--model-opt {k}={v}" for k, v in src["model_options"].items())
        raise SegtrainError(f"{cfg.init_from}: was trained as {src['model_name']} ({opts}); --init-from needs "
                            f"the same architecture, not {cfg.model} {options}")
    differ = inputs_differ(src, cfg)
    if differ:
        raise SegtrainError(f"{cfg.init_from}: was trained with {differ[0]}; --init-from needs "
                            f"the same, not {differ[1]}")
    mine, theirs = class_tables(src, info)
    same_classes = mine == theirs
    report = init_from_state(model, src["model"], str(cfg.init_from), same_classes)
    if not same_classes:
        report.note = (f"class table differs ({len(mine)} classes in {src.get('dataset', 'the checkpoint')}, "
                       f"{info.num_classes} here): head rebuilt")
    return report


def load_resume_checkpoint(path: Path, cfg: TrainConfig, info: DatasetInfo, options: dict) -> dict:
    """The checkpoint --resume continues from, refused (one line) unless it was trained on the
    same class table, as the same model with the same options, on the same network inputs,
    with the same training options (`check_resume_config`) and not past `cfg.epochs`."""
    ckpt = load_checkpoint(path)
    check_classes(ckpt, info, path)
    if ckpt["model_name"] != cfg.model or ckpt["model_options"] != options:
        raise SegtrainError(f"{path}: was trained as {ckpt['model_name']} "
                            f"{ckpt['model_options']}, not {cfg.model} {options}")
    differ = inputs_differ(ckpt, cfg)
    if differ:
        raise SegtrainError(f"{path}: was trained with {differ[0]}, not {differ[1]}")
    check_resume_config(ckpt.get("config"), cfg, path)
    done = int(ckpt["epoch"])
    if done > cfg.epochs:
        raise SegtrainError(f"{path}: the run has trained {done} epochs, more than --epochs {cfg.epochs}; "
                            f"give --epochs {done} or more to resume it")
    return ckpt


# What --resume may change: where the files are, how fast it runs, how long it trains (a
# larger --epochs re-plans the schedule). The rest decides what the run computes: a new --lr
# used to be dropped (the optimizer's restored lr won) while config.yaml recorded it.
# (`augment_on` only chooses where the same --augment runs: measured equivalent, docs/performance.md)
RESUME_MAY_CHANGE = ("data", "out", "epochs", "early_stop", "workers", "device", "amp", "compile",
                     "channels_last", "augment_on")
# compared by load_resume_checkpoint's own checks, with their own messages
RESUME_CHECKED_ELSEWHERE = ("model", "model_options", "inputs", "depth_encoding", "fusion")
# options added after runs were first saved, with the default that is what those runs did: a
# saved config without them is compared as if it had that default (others absent are not compared)
RESUME_ABSENT_IS_DEFAULT = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                            if f.name in ("warmup_steps", "warmup_ratio")}


def resume_config_diffs(saved, cfg: TrainConfig, skip: tuple[str, ...] = RESUME_CHECKED_ELSEWHERE) -> list[str]:
    """The training options of `cfg` that differ from `saved`, a run's own config (its
    checkpoint's, or its config.yaml read back), as `--lr 0.01 (the run: 0.0001)`. Options in
    RESUME_MAY_CHANGE and `skip` are not compared; `class_weights` unset means "as the run
    resolved it" (a resume takes the method from its checkpoint). A key `saved` lacks is not
    compared (an older run), except RESUME_ABSENT_IS_DEFAULT's, compared with their default.
    An option that changes nothing on either side (config.moot_options: `warmup_ratio` when
    neither warms up) is not compared."""
    if not isinstance(saved, dict):
        return []
    diffs = []
    mine = to_dict(cfg)
    moot = moot_options(mine).keys() & moot_options({**RESUME_ABSENT_IS_DEFAULT, **saved}).keys()
    for key, value in mine.items():
        if key in RESUME_MAY_CHANGE or key in skip or (key not in saved and key not in RESUME_ABSENT_IS_DEFAULT):
            continue
        if (key == "class_weights" and value is None) or key in moot:
            continue
        theirs = saved.get(key, RESUME_ABSENT_IS_DEFAULT.get(key))
        if value != theirs:
            diffs.append(f"{flag(key)} {show_value(value)} (the run: {show_value(theirs)})")
    return diffs


def check_resume_config(saved, cfg: TrainConfig, path) -> None:
    """Refuse, in one line naming each option, a resume whose training options differ from the
    run's own (`saved`, read from `path`)."""
    diffs = resume_config_diffs(saved, cfg)
    if diffs:
        may = ", ".join(flag(k) for k in RESUME_MAY_CHANGE if k not in ("out", "channels_last"))
        raise SegtrainError(f"{path}: --resume continues the run as it was trained, but {'; '.join(diffs)}; "
                            f"only {may} may change on --resume (to train these weights with other options, "
                            f"start a new --out with --init-from {path})")


def checkpoint_meta(cfg: TrainConfig, options: dict, info: DatasetInfo, rt: Runtime, weights: list[float] | None,
                    parameters: int, trainable: int, world_size: int) -> dict:
    """The keys every checkpoint of a run shares: how to rebuild the model and feed it.
    `cfg` is the config as saved (class_weights resolved to a method or 'none')."""
    meta = {
        "format": CHECKPOINT_FORMAT, "model_name": cfg.model, "model_options": options,
        "classes": [c.to_json() for c in info.classes], "ignore_index": info.ignore_index,
        "mean": list(info.mean), "std": list(info.std), "normalization_source": info.normalization_source,
        "size": cfg.size, "crop": cfg.crop, "config": to_dict(cfg), "dataset": info.name,
        "class_weights": {"method": cfg.class_weights, "values": weights},
        "train_parts": cfg.train_parts, "trainable_parameters": trainable,
        "parameters": parameters, "world_size": world_size,
    }
    if uses_depth(cfg.inputs):  # an RGB checkpoint stays as it was (absent keys read as rgb)
        meta.update({"inputs": cfg.inputs, "depth_encoding": cfg.depth_encoding, "fusion": cfg.fusion,
                     "depth_mean": rt.depth_stats[0], "depth_std": rt.depth_stats[1],
                     "depth_normalization_source": "dataset.json" if info.depth_mean is not None
                     else "fallback"})
    return meta


@dataclass
class RunState:
    """Where a run stands after its last epoch: the counters, metrics history and best val
    mIoU so far (what early stopping watches). Saved in every checkpoint; --resume restores it."""

    global_step: int = 0
    history: list[dict] = field(default_factory=list)  # one metrics.csv row per epoch
    best_miou: float = -1.0
    best_epoch: int | None = None
    since_best: int = 0  # epochs without a val mIoU improvement

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> RunState:
        return cls(int(ckpt["global_step"]), list(ckpt["history"]), float(ckpt["best_miou"]),
                   ckpt.get("best_epoch"), int(ckpt["epochs_since_best"]))

    def out_of_patience(self, early_stop: int) -> bool:
        """True when --early-stop `early_stop` (0 = off) ends the run here: that many epochs
        without a val mIoU improvement."""
        return bool(early_stop) and self.since_best >= early_stop

    def record(self, epoch: int, miou: float | None) -> bool:
        """Count an epoch's val mIoU; True when it is the best so far."""
        improved = miou is not None and miou > self.best_miou
        if improved:
            self.best_miou, self.best_epoch, self.since_best = miou, epoch, 0
        else:
            self.since_best += 1
        return improved


def training_state(meta: dict, model: torch.nn.Module, optimizer, schedule: LRSchedule, scaler, epoch: int,
                   run: RunState, miou: float | None) -> dict:
    """A whole checkpoint after `epoch`: `meta` plus everything --resume continues from."""
    return {
        **meta, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": schedule.state_dict(),
        "scaler": scaler.state_dict(), "epoch": epoch, "global_step": run.global_step,
        "best_miou": run.best_miou, "best_epoch": run.best_epoch, "epochs_since_best": run.since_best,
        "history": run.history, "rng": rng_state(), "val_miou": miou,
    }


def restore_training(ckpt: dict, model: torch.nn.Module, optimizer, schedule: LRSchedule, scaler,
                     cfg: TrainConfig) -> RunState:
    """Put weights, optimizer, schedule, scaler and RNG states back as `ckpt` left them.
    A poly / cosine schedule is re-planned over this run's --epochs (logged when it changes);
    a run stopped inside its --warmup-steps continues the warm-up from its global step."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    run = RunState.from_checkpoint(ckpt)
    planned, old_total = schedule.restore(ckpt.get("scheduler"), optimizer, run.global_step)
    if old_total is not None:
        log.info("%s schedule re-planned over %d steps (was %d): --epochs %d; lr now %.3g",
                 cfg.scheduler, planned, old_total, cfg.epochs, optimizer.param_groups[0]["lr"])
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    return run
