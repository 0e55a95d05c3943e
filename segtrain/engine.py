"""Training, evaluation and prediction loops (torchvision-reference style, plain PyTorch).

CUDA-only speed features (autocast bf16/fp16 + GradScaler, channels_last, cudnn.benchmark,
torch.compile, pinned memory) are switched on only when the device is CUDA; a CPU run
never touches them and is deterministic for a given seed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from cleantree.files import atomic_path, atomic_write_json, atomic_write_text
from segtrain import distributed
from segtrain.config import TrainConfig, save_config, to_dict
from segtrain.data import (
    DataError,
    DatasetInfo,
    eval_dataset,
    load_dataset_info,
    make_loader,
    train_dataset,
)
from segtrain.depth import FALLBACK_DEPTH_STATS, encode_depth, uses_depth
from segtrain.device_augment import DeviceAugment, resolve_augment_on
from segtrain.losses import LOSSES, build_loss
from segtrain.metrics import ConfusionMatrix, image_miou, summarize
from segtrain.models import (
    MODELS,
    check_inputs,
    check_model,
    count_parameters,
    count_trainable,
    create_model,
)
from segtrain.models.hub import resolve_pretrained
from segtrain.models.pretrained import LoadReport, init_from_state, load_encoder_weights
from segtrain.utils import (
    SegtrainError,
    check_out_dir,
    environment_info,
    load_torch_file,
    parse_parts,
)

log = logging.getLogger("segtrain")

CHECKPOINT_FORMAT = "segtrain-checkpoint-v1"


class NonFiniteLossError(Exception):
    def __init__(self, epoch: int, step: int, global_step: int, value: float):
        super().__init__(f"loss became {value} at epoch {epoch}, step {step} (global step {global_step})")
        self.epoch, self.step, self.global_step, self.value = epoch, step, global_step, value


# ----------------------------------------------------------------------------- device


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
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def prepare_model(model: torch.nn.Module, rt: Runtime, compile_model: bool = False) -> torch.nn.Module:
    """Move to the device; CUDA gets channels_last, cudnn autotuning and optional compile."""
    model = model.to(rt.device)
    if rt.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if rt.channels_last:
            model = model.to(memory_format=torch.channels_last)
    if compile_model:
        return torch.compile(model)
    return model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- optim


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    return make_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay, cfg.momentum)


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """Adam, AdamW and SGD use their fused kernel (one launch for all parameters, and a bad
    step skipped on the device: see train_step); RMSprop has none."""
    params = list(params)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    kinds = {"adam": (torch.optim.Adam, {}), "adamw": (torch.optim.AdamW, {}),
             "sgd": (torch.optim.SGD, {"momentum": momentum})}
    if name not in kinds:
        raise SegtrainError(f"unknown optimizer {name!r}")
    cls, extra = kinds[name]
    try:
        return cls(params, lr=lr, weight_decay=weight_decay, fused=True, **extra)
    except RuntimeError:  # a device without fused kernels: the default implementation
        return cls(params, lr=lr, weight_decay=weight_decay, **extra)


class PolyLR:
    """lr = base * (1 - step/total)**power, a picklable callable (state_dict-safe)."""

    def __init__(self, total: int, power: float):
        self.total, self.power = max(1, total), power

    def __call__(self, step: int) -> float:
        return max(0.0, 1.0 - min(step, self.total) / self.total) ** self.power


def build_scheduler(cfg: TrainConfig, optimizer, steps_per_epoch: int):
    """Returns (scheduler or None, 'step' | 'epoch'): poly/cosine step per batch, plateau per epoch."""
    total = cfg.epochs * steps_per_epoch
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience), "epoch"
    if cfg.scheduler == "poly":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, PolyLR(total, cfg.poly_power)), "step"
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total)), "step"
    return None, "none"


def _schedule_total(scheduler) -> int | None:
    """Steps the per-step schedule is planned over (None for plateau / none)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR) and isinstance(scheduler.lr_lambdas[0], PolyLR):
        return scheduler.lr_lambdas[0].total
    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        return scheduler.T_max
    return None


def replan_schedule(scheduler, optimizer, total: int) -> int | None:
    """After a resumed scheduler's state is loaded (which restores the total it was planned
    for), plan it over `total` steps instead, as if the run had been started with the new
    --epochs: the lr of every parameter group is set to the new schedule's value at the
    current step. Returns the old total when it changed, else None. ReduceLROnPlateau has no
    total (it reacts to val mIoU), so it simply continues."""
    old = _schedule_total(scheduler)
    if old is None or old == total:
        return None
    step = scheduler.last_epoch
    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        scheduler.T_max = total
        eta = scheduler.eta_min
        lrs = [eta + (base - eta) * (1 + math.cos(math.pi * min(step, total) / total)) / 2
               for base in scheduler.base_lrs]
    else:
        scheduler.lr_lambdas[0].total = total
        lrs = [base * scheduler.lr_lambdas[0](step) for base in scheduler.base_lrs]
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    scheduler._last_lr = list(lrs)
    return old


def class_weight_method(cfg: TrainConfig, info: DatasetInfo) -> str | None:
    """Which dataset.json weights the CE term uses (None = unweighted)."""
    if cfg.class_weights == "none":
        return None
    if cfg.class_weights:
        return cfg.class_weights
    if LOSSES[cfg.loss].weighted_by_default:
        return info.default_weight_method or "median-freq"
    return None


# ----------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict:
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


def _set_rng_state(state: dict) -> None:
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
        atomic_write_json(out / f"segtrain-{kind}.json", {"format": f"segtrain-{kind}-v1", **info})


def check_classes(ckpt: dict, info: DatasetInfo, ckpt_path) -> None:
    """A checkpoint only fits a dataset with the same train-id class table."""
    mine = [(c["train_id"], c["name"]) for c in ckpt["classes"]]
    theirs = [(c.train_id, c.name) for c in info.classes]
    if mine != theirs:
        diff = next((f"train id {a[0]} is {a[1]!r} in the checkpoint but {b[1]!r} in the dataset"
                     for a, b in zip(mine, theirs, strict=False) if a != b),
                    f"{len(mine)} vs {len(theirs)} classes")
        raise DataError(f"{ckpt_path}: class table differs from {info.root / 'dataset.json'} ({diff})")


def checkpoint_inputs(ckpt: dict) -> tuple[str, str, str]:
    """(inputs, depth encoding, fusion) a checkpoint was trained with (older ones: RGB)."""
    return ckpt.get("inputs", "rgb"), ckpt.get("depth_encoding", "metres"), ckpt.get("fusion", "early")


def _network_inputs(inputs: str, encoding: str, fusion: str) -> str:
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


# ----------------------------------------------------------------------------- loops


def supports_device_skip(optimizer: torch.optim.Optimizer) -> bool:
    """True for fused optimizers: they take GradScaler's `found_inf` flag and skip an update
    on the device, so a bad step needs no host sync (Adam, AdamW, SGD on CPU and CUDA)."""
    return bool(optimizer.param_groups) and all(g.get("fused") for g in optimizer.param_groups)


def train_step(model, x, y, loss_fn, optimizer, scaler, rt: Runtime, grad_clip: float = 0.0,
               dist_info: distributed.DistInfo | None = None) -> torch.Tensor:
    """Forward, backward, step without waiting for the device. Returns the loss as a detached
    0-d float32 tensor on the device; nothing is read back here, so the host can queue the
    next batch's copy and kernels while this one runs.

    A non-finite loss never updates the weights: the gradients are poisoned (NaN), and the
    update is skipped on the device, as GradScaler does for fused optimizers (the fp16
    scaler finds the poisoned gradients itself; an optimizer without a fused kernel needs
    one sync to decide). Under DDP the loss is the mean over processes, so every process
    skips the same steps and the caller's periodic check stops all of them together."""
    with rt.autocast():
        logits = model(x)
    loss = loss_fn(logits, y)
    value = loss.detach().float()
    if dist_info is not None and dist_info.enabled:
        value = distributed.all_reduce_sum_(value.reshape(1).clone(), dist_info).reshape(()) / dist_info.world_size
    bad = ~torch.isfinite(value)
    optimizer.zero_grad(set_to_none=True)
    # a bad loss (here or on another process) poisons the gradients, so any inf check sees it
    scaler.scale(loss * torch.where(bad, torch.nan, 1.0)).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
    elif supports_device_skip(optimizer):
        optimizer.found_inf, optimizer.grad_scale = bad.float(), None
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf, optimizer.grad_scale
    elif not bool(bad):  # e.g. RMSprop: no fused kernel, so one sync per step
        optimizer.step()
    return value


# a training epoch reads the device back this often (and at its end): the non-finite check
# and the progress bar's loss; between reads the host runs ahead and keeps the device fed
CHECK_EVERY = 50


def train_one_epoch(model, batches, n_batches: int, loss_fn, optimizer, scaler, scheduler, sched_mode,
                    rt: Runtime, epoch: int, global_step: int, grad_clip: float, progress: bool = True,
                    dist_info: distributed.DistInfo | None = None,
                    check_every: int = CHECK_EVERY) -> tuple[float, int, int]:
    """One epoch: `n_batches` batches taken from the iterator `batches` (one iterator spans
    the run: data.EpochBatches). Returns (mean loss, global step, images seen by all processes).

    Losses are summed on the device; the first non-finite one (its step and value) is
    remembered there and read back every `check_every` steps and at the end, when
    NonFiniteLossError names it. Steps after it were real updates on good batches, but the
    run stops without saving, so the last checkpoint stays the last good state."""
    world = dist_info.world_size if dist_info is not None else 1
    model.train()
    device = rt.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    first_bad = torch.full((), -1, dtype=torch.int64, device=device)
    bad_value = torch.zeros((), dtype=torch.float32, device=device)
    count, images, start = 0, 0, global_step

    def check() -> None:
        bad_step, value, total = torch.stack([first_bad.double(), bad_value.double(), loss_sum]).tolist()
        if bad_step >= 0:
            raise NonFiniteLossError(epoch, int(bad_step), start + int(bad_step), value)
        bar.set_postfix(loss=f"{total / max(count, 1):.4f}")

    bar = tqdm(total=n_batches, desc=f"epoch {epoch}", leave=False, disable=not progress, unit="batch")
    for step in range(n_batches):
        x, y = rt.train_batch(next(batches))
        value = train_step(model, x, y, loss_fn, optimizer, scaler, rt, grad_clip, dist_info)
        is_bad = ~torch.isfinite(value)
        first_bad = torch.where(is_bad & (first_bad < 0), step, first_bad)
        bad_value = torch.where(is_bad & (first_bad == step), value, bad_value)
        loss_sum += value.double() * x.shape[0]
        if scheduler is not None and sched_mode == "step":
            scheduler.step()
        global_step += 1
        count += x.shape[0]
        images += x.shape[0] * world
        bar.update()
        if (step + 1) % check_every == 0:
            check()
    check()
    bar.close()
    return float(loss_sum) / max(count, 1), global_step, images


@dataclass
class EvalResult:
    confusion: np.ndarray
    per_sensor: dict[str, np.ndarray]
    loss: float
    image_scores: list[tuple[int, float]] = field(default_factory=list)  # (dataset index, image mIoU)


@torch.inference_mode()
def evaluate(model, loader, rt: Runtime, num_classes: int, loss_fn=None, eval_mask=None,
             per_image: bool = False, progress: bool = True, desc: str = "eval",
             dist_info: distributed.DistInfo | None = None, miou_rule: str = "standard") -> EvalResult:
    """Accumulate one confusion matrix over the split (and one per sensor) on the device.

    Under DDP each process evaluates its shard (no sample twice) and the matrices and loss
    sums are all-reduced, so every process returns the whole split's result."""
    model.eval()
    samples = getattr(loader.dataset, "samples", None)
    # one matrix per sensor of the split, known up front: the same groups on every process
    sensors = sorted({x.sensor for x in samples or []})
    group_of = {s: i for i, s in enumerate(sensors)}
    cm = ConfusionMatrix(num_classes, rt.device, groups=max(1, len(sensors)))
    total = torch.zeros((), dtype=torch.float64, device=rt.device)
    count = 0
    scores = []
    emask = torch.as_tensor(eval_mask if eval_mask is not None else np.ones(num_classes, bool))
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, unit="batch"):
        x, y = rt.batch_inputs(batch), rt.masks(batch["mask"])
        with rt.autocast():
            logits = model(x)
        logits = logits.float()
        if logits.shape[-2:] != y.shape[-2:]:
            logits = F.interpolate(logits, size=y.shape[-2:], mode="bilinear", align_corners=False)
        if loss_fn is not None:
            total += loss_fn(logits, y).double() * x.shape[0]
            count += x.shape[0]
        pred = logits.argmax(1)
        groups = torch.tensor([group_of.get(s, 0) for s in batch["sensor"]]).to(rt.device, non_blocking=True)
        cm.update(y, pred, groups)
        if per_image:
            for i, idx in enumerate(batch["index"].tolist()):
                scores.append((idx, image_miou(y[i], pred[i], num_classes, emask, miou_rule)))
    if dist_info is not None and dist_info.enabled:
        distributed.all_reduce_sum_(cm.mats, dist_info)
        sums = distributed.all_reduce_sum_(torch.stack([total, torch.tensor(float(count), dtype=torch.float64,
                                                                             device=rt.device)]), dist_info)
        total, count = sums[0], int(sums[1])
    return EvalResult(cm.numpy(), {s: cm.group_numpy(i) for s, i in group_of.items()},
                      float(total) / count if count else float("nan"), scores)


# ----------------------------------------------------------------------------- run


@dataclass
class RunResult:
    out: Path
    epochs_completed: int
    best_miou: float | None
    best_epoch: int | None
    stopped: str  # "completed", "early-stop", "non-finite-loss", "already-complete"
    history: list[dict]
    message: str = ""
    trainable_parameters: int = 0
    parameters: int = 0
    train_parts: str = "all"

    @property
    def train_time_s(self) -> float:
        """Wall time of all epochs (summed from the history, so it survives --resume)."""
        return float(sum(r.get("epoch_time_s") or 0.0 for r in self.history))


def _write_metrics_csv(path: Path, history: list[dict]) -> None:
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


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, on_epoch_end=None) -> RunResult:
    """Train `cfg.model` on `cfg.data`, writing everything to `cfg.out`.

    `on_epoch_end(epoch, row)` is called after each epoch's checkpoint is written (tests use it
    to interrupt a run). With `resume`, training continues from `out/last.pt` exactly. Under
    torchrun (WORLD_SIZE > 1) it trains with DistributedDataParallel; only rank 0 writes.
    """
    cfg.validate()
    # before the process group forms: no rank has written anything yet
    check_run_folder(cfg.out, resume)
    dist_info, device_name = distributed.setup(cfg.device)
    quiet = distributed.quiet_non_main(dist_info)
    try:
        return _train(cfg, dist_info, device_name, resume, progress and dist_info.is_main, on_epoch_end)
    finally:
        if quiet is not None:
            log.removeFilter(quiet)
        distributed.cleanup(dist_info)


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
    theirs, mine_ = checkpoint_inputs(src), (cfg.inputs, cfg.depth_encoding, cfg.fusion)
    if _network_inputs(*theirs) != _network_inputs(*mine_):
        raise SegtrainError(f"{cfg.init_from}: was trained with {_network_inputs(*theirs)}; --init-from needs "
                            f"the same, not {_network_inputs(*mine_)}")
    mine = [(c["train_id"], c["name"]) for c in src["classes"]]
    same_classes = mine == [(c.train_id, c.name) for c in info.classes]
    report = init_from_state(model, src["model"], str(cfg.init_from), same_classes)
    if not same_classes:
        report.note = (f"class table differs ({len(mine)} classes in {src.get('dataset', 'the checkpoint')}, "
                       f"{info.num_classes} here): head rebuilt")
    return report


def _train(cfg: TrainConfig, dist_info: distributed.DistInfo, device_name: str, resume: bool,
           progress: bool, on_epoch_end) -> RunResult:
    out = Path(cfg.out)
    info = load_dataset_info(cfg.data)
    device = resolve_device(device_name)
    if cfg.loss not in LOSSES:
        raise SegtrainError(f"unknown loss {cfg.loss!r}; available: {', '.join(LOSSES)}")
    try:
        options = check_model(cfg.model, cfg.model_options)
        check_inputs(cfg.model, cfg.model_options, cfg.inputs, cfg.fusion)
    except (KeyError, ValueError) as e:
        raise SegtrainError(e.args[0]) from None
    with_depth = uses_depth(cfg.inputs)
    world = dist_info.world_size
    if cfg.batch_size % world:
        raise SegtrainError(f"--batch-size {cfg.batch_size} is the global batch and must divide evenly over "
                            f"{world} processes")
    ckpt = None
    if resume:
        ckpt = load_checkpoint(out / "last.pt")
        check_classes(ckpt, info, out / "last.pt")
        if ckpt["model_name"] != cfg.model or ckpt["model_options"] != options:
            raise SegtrainError(f"{out / 'last.pt'}: was trained as {ckpt['model_name']} "
                                f"{ckpt['model_options']}, not {cfg.model} {options}")
        theirs = _network_inputs(*checkpoint_inputs(ckpt))
        if theirs != _network_inputs(cfg.inputs, cfg.depth_encoding, cfg.fusion):
            raise SegtrainError(f"{out / 'last.pt'}: was trained with {theirs}, not "
                                f"{_network_inputs(cfg.inputs, cfg.depth_encoding, cfg.fusion)}")
    elif (out / "last.pt").exists():
        raise SegtrainError(f"{out}: already holds a run (last.pt); use --resume or another --out")

    seed_everything(cfg.seed)
    try:
        model = create_model(cfg.model, info.num_classes, inputs=cfg.inputs, fusion=cfg.fusion,
                             **cfg.model_options)  # seeded init
    except ValueError as e:
        raise SegtrainError(str(e)) from None
    init_report = None
    if ckpt is None and cfg.pretrained:  # a resumed run has its own weights
        weights_file = resolve_pretrained(cfg.pretrained, cfg.model, options)
        init_report = load_encoder_weights(model, weights_file, cfg.model)
        if hasattr(model.encoder, "init_depth_from_rgb"):  # mid fusion: depth branch from the RGB one
            model.encoder.init_depth_from_rgb()
        if weights_file != cfg.pretrained:
            init_report.source = f"{cfg.pretrained} ({weights_file})"
    elif ckpt is None and cfg.init_from:
        init_report = init_from_checkpoint(model, cfg, info, options)
    parts = model.set_train_parts(parse_parts(cfg.train_parts))
    if cfg.sync_bn and dist_info.enabled:
        model = distributed.convert_sync_batchnorm(model, device)
    depth_mean, depth_std, _ = info.depth_stats() if with_depth else (*FALLBACK_DEPTH_STATS, "")
    rt = Runtime.create(device, info.mean, info.std, cfg.amp, cfg.channels_last, cfg.inputs,
                        cfg.depth_encoding, (depth_mean, depth_std))
    method = class_weight_method(cfg, info)
    weight_values = [float(w) for w in info.weights(method)] if method else None
    weight = torch.tensor(weight_values, dtype=torch.float32) if method else None
    loss_fn = build_loss(cfg.loss, info.num_classes, info.ignore_index, weight).to(device)

    augment_on = resolve_augment_on(cfg.augment_on, cfg.augment, device)
    if augment_on == "device" and cfg.augment != "none":
        rt.augment = DeviceAugment()
    train_ds = train_dataset(info, cfg.train_split, cfg.augment, cfg.size, cfg.crop, with_depth, augment_on)
    val_ds = eval_dataset(info, cfg.val_split, cfg.size, with_depth)
    per_process = cfg.batch_size // world
    shard = {"rank": dist_info.rank, "world_size": world}
    first_epoch = int(ckpt["epoch"]) + 1 if ckpt is not None else 1
    train_loader, train_sampler = make_loader(train_ds, per_process, True, cfg.seed, cfg.workers, device,
                                              drop_last=True, epochs=range(first_epoch, cfg.epochs + 1),
                                              max_batches=cfg.max_train_batches, **shard)
    if per_process > len(train_sampler):
        n = len(train_sampler) * world
        log.warning("warning: --batch-size %d is more than the %d images of split %r: every epoch is one "
                    "step on a batch of %d", cfg.batch_size, len(train_ds), cfg.train_split, n)
    val_bs = per_process if info.image_size is not None else 1
    val_loader, _ = make_loader(val_ds, val_bs, False, cfg.seed, cfg.workers, device, **shard)

    raw_model = prepare_model(model, rt)
    net = raw_model
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(raw_model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    # evaluation runs on the unwrapped model: shards may be uneven and DDP's forward would
    # wait on a buffer broadcast from processes that have already finished their shard
    eval_net = net if not dist_info.enabled else raw_model
    optimizer = build_optimizer(cfg, [p for p in raw_model.parameters() if p.requires_grad])
    steps = train_loader.batch_sampler.per_epoch
    scheduler, sched_mode = build_scheduler(cfg, optimizer, steps)
    scaler = rt.make_scaler()

    handler, level = None, log.level
    if dist_info.is_main:
        claim_run_folder(out, model=cfg.model)
        handler = logging.FileHandler(out / "train.log", encoding="utf-8")
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        if log.getEffectiveLevel() > logging.INFO:  # train.log gets the run log whatever the console shows
            log.setLevel(logging.INFO)
    setup = _Setup(cfg, info, out, rt, raw_model, net, loss_fn, method, weight_values, optimizer,
                   scheduler, sched_mode, scaler, train_ds, val_ds, train_loader, val_loader,
                   options, eval_net, dist_info, parts, init_report, augment_on)
    try:
        return _train_loop(setup, ckpt, progress, on_epoch_end)
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
            log.setLevel(level)


@dataclass
class _Setup:
    """Everything `train` builds before the first epoch."""

    cfg: TrainConfig
    info: DatasetInfo
    out: Path
    rt: Runtime
    raw_model: torch.nn.Module  # parameters / state_dict (never the compiled wrapper)
    net: torch.nn.Module  # what runs forward (compiled when --compile)
    loss_fn: torch.nn.Module
    weight_method: str | None
    weight_values: list[float] | None  # the resolved vector (None = unweighted)
    optimizer: torch.optim.Optimizer
    scheduler: object
    sched_mode: str
    scaler: torch.amp.GradScaler
    train_ds: object
    val_ds: object
    train_loader: object
    val_loader: object
    options: dict
    eval_net: torch.nn.Module
    dist_info: distributed.DistInfo
    parts: tuple[str, ...]
    init_report: LoadReport | None
    augment_on: str = "loader"  # resolved --augment-on: loader | device


def _train_loop(s: _Setup, ckpt: dict | None, progress: bool, on_epoch_end) -> RunResult:
    cfg, info, out, rt, raw_model, net = s.cfg, s.info, s.out, s.rt, s.raw_model, s.net
    loss_fn, method, optimizer, scheduler = s.loss_fn, s.weight_method, s.optimizer, s.scheduler
    sched_mode, scaler, train_ds, val_ds = s.sched_mode, s.scaler, s.train_ds, s.val_ds
    train_loader, val_loader = s.train_loader, s.val_loader
    options, device = s.options, s.rt.device
    eval_net, dist_info, main = s.eval_net, s.dist_info, s.dist_info.is_main
    start_epoch, global_step, history = 1, 0, []
    best_miou, best_epoch, since_best = -1.0, None, 0
    if ckpt is not None:
        raw_model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler"):
            planned = _schedule_total(scheduler)
            scheduler.load_state_dict(ckpt["scheduler"])
            old_total = replan_schedule(scheduler, optimizer, planned) if planned is not None else None
            if old_total is not None:
                log.info("%s schedule re-planned over %d steps (was %d): --epochs %d; lr now %.3g",
                         cfg.scheduler, planned, old_total, cfg.epochs, optimizer.param_groups[0]["lr"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch = int(ckpt["epoch"]) + 1
        global_step = int(ckpt["global_step"])
        history = list(ckpt["history"])
        best_miou, since_best = float(ckpt["best_miou"]), int(ckpt["epochs_since_best"])
        best_epoch = ckpt.get("best_epoch")
        _set_rng_state(ckpt["rng"])
        log.info("resuming %s from epoch %d", out, start_epoch)

    # the resolved weighting, not `class_weights: null`: what this run used, and what a
    # resume reuses even if the dataset's default method changes
    weights = s.weight_values
    cfg_saved = dataclasses.replace(cfg, class_weights=method or "none")
    if main:
        note = (f"class_weights {method} (dataset.json), by train id: "
                + ", ".join(f"{n} {w:.6g}" for n, w in zip(info.class_names, weights, strict=True))
                if method else "class_weights none: the loss is unweighted")
        save_config(cfg_saved, out / "config.yaml", comment=note)
        env = environment_info(str(device))
        env["world_size"] = dist_info.world_size
        atomic_write_json(out / "environment.json", env)
    params = count_parameters(raw_model)
    trainable = count_trainable(raw_model)
    log.info("model %s: %s parameters (%s); %d train / %d val images; device %s%s%s; loss %s%s; "
             "normalisation from %s; augment %s %s (--augment-on %s)", cfg.model, f"{params['total']:,}",
             ", ".join(f"{k} {v:,}" for k, v in params.items() if k != "total"), len(train_ds),
             len(val_ds), device, f" ({rt.amp_dtype})" if rt.amp_dtype else "",
             f" x {dist_info.world_size} processes (DDP{', SyncBatchNorm' if cfg.sync_bn else ''})"
             if dist_info.enabled else "", cfg.loss,
             f" weighted by {method}" if method else "", info.normalization_source, cfg.augment,
             "on the device, batched" if s.augment_on == "device" else "in the loader", cfg.augment_on)
    frozen = [p for p in raw_model.PARTS if p not in s.parts] if hasattr(raw_model, "PARTS") else []
    log.info("train parts %s: %s of %s parameters trainable (%s)%s", cfg.train_parts,
             f"{trainable['total']:,}", f"{params['total']:,}",
             ", ".join(f"{k} {v:,}" for k, v in trainable.items() if k != "total"),
             f"; frozen: {', '.join(frozen)} (weights and BatchNorm statistics)" if frozen else "")
    if uses_depth(cfg.inputs):
        log.info("inputs %s: depth encoded as %s, normalised with %.3g m / %.3g m (%s)%s", cfg.inputs,
                 cfg.depth_encoding, *rt.depth_stats,
                 "dataset.json" if info.depth_mean is not None else "fallback: no depth_mean/std",
                 f"; fusion {cfg.fusion}" if cfg.inputs == "rgbd" else "")
    if s.init_report is not None:
        log.info("%s: %s", "pretrained encoder" if cfg.pretrained else "init-from", s.init_report.summary())

    base = {
        "format": CHECKPOINT_FORMAT, "model_name": cfg.model, "model_options": options,
        "classes": [c.to_json() for c in info.classes], "ignore_index": info.ignore_index,
        "mean": list(info.mean), "std": list(info.std), "normalization_source": info.normalization_source,
        "size": cfg.size, "crop": cfg.crop, "config": to_dict(cfg_saved), "dataset": info.name,
        "class_weights": {"method": method or "none", "values": weights},
        "train_parts": cfg.train_parts, "trainable_parameters": trainable["total"],
        "parameters": params["total"], "world_size": dist_info.world_size,
    }
    if uses_depth(cfg.inputs):  # an RGB checkpoint stays as it was (absent keys read as rgb)
        base.update({"inputs": cfg.inputs, "depth_encoding": cfg.depth_encoding, "fusion": cfg.fusion,
                     "depth_mean": rt.depth_stats[0], "depth_std": rt.depth_stats[1],
                     "depth_normalization_source": "dataset.json" if info.depth_mean is not None
                     else "fallback"})
    stopped, message = "completed", ""
    if start_epoch > cfg.epochs:
        stopped = "already-complete"
    eval_mask = info.eval_mask
    batches = iter(train_loader) if start_epoch <= cfg.epochs else iter(())
    steps = train_loader.batch_sampler.per_epoch
    for epoch in range(start_epoch, cfg.epochs + 1):
        if cfg.early_stop and since_best >= cfg.early_stop:
            stopped = "early-stop"
            break
        t0 = time.perf_counter()
        try:
            train_loss, global_step, seen = train_one_epoch(
                net, batches, steps, loss_fn, optimizer, scaler, scheduler, sched_mode, rt, epoch,
                global_step, cfg.grad_clip, progress, dist_info)
        except NonFiniteLossError as e:
            last = f"last.pt (epoch {epoch - 1})" if epoch > 1 else "none (first epoch)"
            message = f"{e}; training stopped, last good checkpoint: {last}"
            log.error(message)
            stopped = "non-finite-loss"
            break
        t_train = time.perf_counter() - t0
        distributed.broadcast_buffers(raw_model, dist_info)
        res = evaluate(eval_net, val_loader, rt, info.num_classes, loss_fn, eval_mask, progress=progress,
                       desc="val", dist_info=dist_info)
        if not math.isfinite(res.loss):  # diverged weights: no checkpoint, never "best"
            last = f"last.pt (epoch {epoch - 1})" if epoch > 1 else "none (first epoch)"
            message = (f"validation loss became {res.loss} at epoch {epoch}; training stopped, last good "
                       f"checkpoint: {last}")
            log.error(message)
            stopped = "non-finite-loss"
            break
        summary = summarize(res.confusion, info.class_names, eval_mask, cfg.miou_rule)
        miou = summary["miou"]
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None and sched_mode == "epoch":
            scheduler.step(miou if miou is not None else 0.0)
        improved = miou is not None and miou > best_miou
        if improved:
            best_miou, best_epoch, since_best = miou, epoch, 0
        else:
            since_best += 1
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": res.loss, "val_miou": miou,
               "val_pixel_accuracy": summary["pixel_accuracy"], "lr": lr, "global_step": global_step}
        for sensor, mat in sorted(res.per_sensor.items()):
            row[f"val_miou_{sensor}"] = summarize(mat, info.class_names, eval_mask, cfg.miou_rule)["miou"]
        row["train_images_per_s"] = seen / t_train if t_train > 0 else None
        row["epoch_time_s"] = time.perf_counter() - t0
        history.append(row)
        state = {
            **base, "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else {},
            "scaler": scaler.state_dict(), "epoch": epoch, "global_step": global_step,
            "best_miou": best_miou, "best_epoch": best_epoch, "epochs_since_best": since_best,
            "history": history, "rng": _rng_state(), "val_miou": miou,
        }
        if main:
            save_checkpoint(out / "last.pt", state)
            if improved:
                save_checkpoint(out / "best.pt", state)
            _write_metrics_csv(out / "metrics.csv", history)
        log.info("epoch %d/%d  train_loss %s  val_loss %s  val_mIoU %s%s  lr %.3g  %.1f s",
                 epoch, cfg.epochs, _fmt(train_loss), _fmt(res.loss), _fmt(miou),
                 " (best)" if improved else "", lr, row["epoch_time_s"])
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    if stopped == "early-stop":
        log.info("early stop: no val mIoU improvement for %d epochs", cfg.early_stop)
    done = history[-1]["epoch"] if history else start_epoch - 1
    return RunResult(out, done, best_miou if best_epoch is not None else None, best_epoch, stopped,
                     history, message, trainable["total"], params["total"], cfg.train_parts)
