"""Where and how a batch runs: the device, normalisation from uint8, precision (autocast),
memory layout, depth encoding and optional batched augmentation on the device.

CUDA-only speed features here (autocast bf16/fp16 + GradScaler, channels_last,
cudnn.benchmark) are switched on only when the device is CUDA; a CPU run never touches them
and is deterministic for a given seed. (torch.compile is engine._wrap_model's, pinned
memory data.make_loader's.)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from cleantree.dataset import DATASET_JSON
from segtrain.depth import FALLBACK_DEPTH_STATS, encode_depth, uses_depth
from segtrain.utils import SegtrainError

log = logging.getLogger("segtrain")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise SegtrainError(f"--device {name} requested but CUDA is not available ({why}); use --device cpu")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise SegtrainError(f"--device {name!r} is not one of auto, cuda, cpu")
    return torch.device(name)


@dataclass
class Runtime:
    """How batches are put on the device and run: normalisation, precision, layout."""

    device: torch.device
    mean: torch.Tensor
    std: torch.Tensor
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    inputs: str = "rgb"  # rgb | rgbd | depth (segtrain.depth)
    depth_encoding: str = "metres"
    depth_stats: tuple[float, float] = FALLBACK_DEPTH_STATS  # metres (mean, std)
    # batch augmentation on the device: takes and returns a batch dict whose uint8 "image",
    # "mask" (and float "depth") are already on the device; None = augmented in the loader
    augment: Callable[[dict], dict] | None = None

    def __post_init__(self) -> None:
        # normalisation from uint8: x * scale + shift
        self.scale = 1.0 / (255.0 * self.std)
        self.shift = -self.mean / self.std

    @classmethod
    def create(cls, device: torch.device, mean, std, amp: bool, channels_last: bool, inputs: str = "rgb",
               depth_encoding: str = "metres", depth_stats=FALLBACK_DEPTH_STATS) -> Runtime:
        amp_dtype = None
        if device.type == "cuda" and amp:
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        return cls(device, m, s, amp_dtype, channels_last and device.type == "cuda", inputs, depth_encoding,
                   (float(depth_stats[0]), float(depth_stats[1])))

    def train_batch(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(network input, mask) of a training batch, augmented on the device first when
        `augment` is set (before normalisation, so it sees uint8 images like the loader)."""
        if self.augment is not None:
            batch = self.augment({k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                                  for k, v in batch.items()})
        return self.batch_inputs(batch), self.masks(batch["mask"])

    def batch_inputs(self, batch: dict) -> torch.Tensor:
        """The network input of a batch: normalised RGB, encoded depth, or both (RGB first)."""
        if self.inputs == "rgb":
            return self.images(batch["image"])
        d = encode_depth(batch["depth"].to(self.device, non_blocking=True).float(), self.depth_encoding,
                         *self.depth_stats)
        x = d if self.inputs == "depth" else torch.cat([self.images(batch["image"]), d], dim=1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def images(self, batch_images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW on the host -> normalised float on the device: x * 1/(255 std) - mean/std,
        in place after one conversion (about half the memory traffic of converting, dividing,
        subtracting and re-laying out in turn). Not one addcmul: a CPU fused multiply-add
        rounds differently in vectorised and scalar lanes, so results would depend on the
        thread count (DDP would no longer equal one process)."""
        x = batch_images.to(self.device, non_blocking=True)
        if self.channels_last:  # re-laid out as uint8, a quarter of the bytes of float
            x = x.contiguous(memory_format=torch.channels_last)
        return x.float().mul_(self.scale).add_(self.shift)

    def masks(self, batch_masks: torch.Tensor) -> torch.Tensor:
        return batch_masks.to(self.device, non_blocking=True).long()

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def make_scaler(self) -> torch.amp.GradScaler:
        # a scaler only matters for fp16; bf16 has fp32's range
        return torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    def sync(self) -> None:
        sync_device(self.device)


def sync_device(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU, which runs eagerly)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@cache
def _warn_imagenet(path) -> None:
    """Once per tree and process: `bench --model all` builds one runtime per model."""
    log.warning("%s has no mean/std (run `sunrgbd stats`); normalising with ImageNet values", path)


def runtime_for_dataset(cfg, info, device: torch.device) -> Runtime:
    """The Runtime of a `run` or `bench` config (amp, channels_last, inputs, depth_encoding)
    on a dataset: its normalisation, and its depth statistics when the inputs use depth."""
    if info.normalization_source == "imagenet":
        _warn_imagenet(info.root / DATASET_JSON)
    depth_stats = info.depth_stats()[:2] if uses_depth(cfg.inputs) else FALLBACK_DEPTH_STATS
    return Runtime.create(device, info.mean, info.std, cfg.amp, cfg.channels_last, cfg.inputs,
                          cfg.depth_encoding, depth_stats)


def prepare_model(model: torch.nn.Module, rt: Runtime) -> torch.nn.Module:
    """Move to the device; CUDA gets channels_last and cudnn autotuning."""
    model = model.to(rt.device)
    if rt.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if rt.channels_last:
            model = model.to(memory_format=torch.channels_last)
    return model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
