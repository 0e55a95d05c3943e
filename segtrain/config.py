"""One dataclass per command; resolved configs are saved next to their outputs.

Precedence for `segtrain run`: dataclass defaults < the run folder's saved config.yaml
(only with --resume) < `--config FILE` < flags given on the command line.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from segtrain.utils import SegtrainError, atomic_write_text, parse_hw, parse_parts, parts_label

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULERS = ("plateau", "poly", "cosine", "none")
AUGMENTS = ("none", "basic", "strong")
DEVICES = ("auto", "cuda", "cpu")


def default_workers() -> int:
    """DataLoader workers: one per core up to 8 (decoding PNGs is the CPU-side bottleneck);
    under torchrun the cores are shared by the processes of this machine."""
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, min(8, (os.cpu_count() or 1) // local))


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved as runs/<name>/config.yaml)."""

    model: str = "unet"
    data: str = ""
    out: str = ""
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 100
    batch_size: int = 16
    size: list[int] | None = None  # [H, W]: resize every sample (image linear, mask nearest)
    crop: list[int] | None = None  # [H, W]: random crops for training, full images for val
    lr: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd and rmsprop
    optimizer: str = "adam"
    scheduler: str = "plateau"
    plateau_patience: int = 5
    plateau_factor: float = 0.1
    poly_power: float = 0.9
    loss: str = "ce"
    class_weights: str | None = None  # method in dataset.json class_weights; None = auto
    augment: str = "basic"
    early_stop: int = 10  # epochs without val mIoU improvement; 0 = off
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    amp: bool = True  # CUDA only: bf16 where supported, else fp16 with a grad scaler
    channels_last: bool = True  # CUDA only
    compile: bool = False  # torch.compile the model (CUDA recommended)
    device: str = "auto"
    workers: int = field(default_factory=default_workers)
    seed: int = 0
    train_split: str = "train"
    val_split: str = "val"
    max_train_batches: int = 0  # cap batches per epoch (quick experiments); 0 = all
    train_parts: str = "all"  # head | decoder,head | all: the rest is frozen (BN statistics too)
    pretrained: str | None = None  # encoder weights file (PyTorch or safetensors)
    init_from: str | None = None  # another run's checkpoint; the head is rebuilt for new classes
    sync_bn: bool = False  # SyncBatchNorm across processes under torchrun

    def validate(self) -> None:
        """Check values a flag parser cannot (raises SegtrainError, one line)."""
        if not self.data:
            raise SegtrainError("no dataset given: use --data DIR (a folder with dataset.json)")
        if not self.out:
            raise SegtrainError("no output folder given: use --out DIR")
        for name, allowed in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS),
                              ("augment", AUGMENTS), ("device", DEVICES)):
            if getattr(self, name) not in allowed:
                raise SegtrainError(f"{name} {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise SegtrainError(f"{name} must be at least 1")
        if self.lr <= 0:
            raise SegtrainError("lr must be positive")
        if self.size and self.crop:
            raise SegtrainError("give either --size or --crop, not both")
        self.size = list(parse_hw(self.size)) if self.size else None
        self.crop = list(parse_hw(self.crop)) if self.crop else None
        if self.workers < 0:
            raise SegtrainError("workers must be >= 0")
        try:
            self.train_parts = parts_label(parse_parts(self.train_parts))
        except ValueError as e:
            raise SegtrainError(str(e)) from None
        if self.pretrained and self.init_from:
            raise SegtrainError("give either --pretrained (encoder weights) or --init-from (a whole run), not both")


@dataclass
class EvalConfig:
    checkpoint: str = ""
    data: str = ""
    split: str = "test"
    out: str = ""
    batch_size: int = 4
    size: list[int] | None = None  # default: the size the checkpoint was trained with
    device: str = "auto"
    workers: int = field(default_factory=default_workers)
    panels: int = 4  # images in each of the best / worst panels
    amp: bool = True


@dataclass
class PredictConfig:
    checkpoint: str = ""
    inputs: list[str] = field(default_factory=list)
    out: str = ""
    size: list[int] | None = None
    device: str = "auto"
    amp: bool = True
    strict: bool = False


@dataclass
class BenchConfig:
    data: str = ""
    model: str = "unet_small"
    model_options: dict[str, Any] = field(default_factory=dict)
    size: list[int] | None = None
    batch_size: int = 8
    steps: int = 20
    warmup: int = 5
    augment: str = "basic"
    workers: int = field(default_factory=default_workers)
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    seed: int = 0
    train_parts: str = "all"


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg, path: str | Path) -> None:
    """Write the fully resolved config as YAML (keys in dataclass order), atomically."""
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def load_config_file(path: str | Path, cls=TrainConfig) -> dict[str, Any]:
    """Read a YAML config; unknown keys are an error that lists the valid ones."""
    p = Path(path)
    if not p.is_file():
        raise SegtrainError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise SegtrainError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SegtrainError(f"{p}: expected a mapping of option: value")
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise SegtrainError(f"{p}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    return data


def build_config(cls, *layers: dict[str, Any]):
    """Later layers override earlier ones; the result is a fresh dataclass instance."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items()})
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(merged) - valid)
    if unknown:
        raise SegtrainError(f"unknown option(s) {', '.join(unknown)}")
    return cls(**merged)
