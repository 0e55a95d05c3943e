"""Training and evaluation, read top to bottom like torchvision's segmentation reference
(references/segmentation/train.py): `train_one_epoch`, `evaluate`, and `train`, which builds
everything in order (device, data, model, loss, optimizer, resume state) and then loops
epochs. Where batches run lives in segtrain.runtime, optimizers and schedules in
segtrain.optim, checkpoints in segtrain.checkpoint, the run folder in segtrain.run_folder.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cleantree.dataset import DEFAULT_WEIGHT_METHOD
from segtrain import distributed
from segtrain.checkpoint import (
    RunState,
    checkpoint_meta,
    init_from_checkpoint,
    load_resume_checkpoint,
    restore_training,
    save_checkpoint,
    training_state,
)
from segtrain.config import TrainConfig, TTAConfig
from segtrain.data import (
    DataError,
    DatasetInfo,
    eval_dataset,
    load_dataset_info,
    make_loader,
    train_dataset,
)
from segtrain.depth import uses_depth
from segtrain.device_augment import DeviceAugment, resolve_augment_on
from segtrain.losses import LOSSES, build_loss
from segtrain.metrics import ConfusionMatrix, image_mious, summarize
from segtrain.models import (
    check_inputs,
    check_model,
    count_parameters,
    count_trainable,
    create_model,
)
from segtrain.models.hub import resolve_pretrained
from segtrain.models.pretrained import LoadReport, load_encoder_weights
from segtrain.optim import LRSchedule, build_optimizer, build_schedule
from segtrain.run_folder import (
    check_run_folder,
    claim_run_folder,
    is_run_folder,
    run_log,
    write_metrics_csv,
    write_run_config,
)
from segtrain.runtime import (
    Runtime,
    prepare_model,
    resolve_device,
    runtime_for_dataset,
    seed_everything,
)
from segtrain.tta import is_plain, segment
from segtrain.utils import SegtrainError

log = logging.getLogger("segtrain")


class NonFiniteLossError(Exception):
    def __init__(self, epoch: int, step: int, global_step: int, value: float):
        super().__init__(f"loss became {value} at epoch {epoch}, step {step} (global step {global_step})")
        self.epoch, self.step, self.global_step, self.value = epoch, step, global_step, value


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
        try:
            logits = model(x)
        except (ValueError, RuntimeError) as e:  # BatchNorm on 1x1 features of a batch of one (under
            # torch.compile the same text comes as a RuntimeError): a flag problem
            world = dist_info.world_size if dist_info is not None and dist_info.enabled else 1
            raise batchnorm_batch_error(e, x, world) or e from None
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


def batchnorm_batch_error(e: Exception, x: torch.Tensor, world: int = 1) -> SegtrainError | None:
    """PyTorch's BatchNorm refuses to train on one value per channel (a batch of one image
    whose deepest features are 1x1): that is a choice of flags, so say which (None for any
    other error). `world` processes each get `x`'s share of the global --batch-size."""
    text = str(e)
    if "Expected more than 1 value per channel when training" not in text:
        return None
    shape = re.search(r"got input size torch\.Size\((\[[^\]]*\])\)", text)
    n, _, h, w = x.shape
    return SegtrainError(f"a training batch of {n} image{'s' if n != 1 else ''} of {h}x{w} reaches a BatchNorm "
                         f"layer as features of shape {shape.group(1) if shape else '(one value per channel)'}, "
                         f"one value per channel, which BatchNorm cannot train on; use more images per batch "
                         f"(--batch-size {2 * world} or more, with at least 2 training images"
                         f"{' per process' if world > 1 else ''}) or larger images (--size / --crop)")


# a training epoch reads the device back this often (and at its end): the non-finite check
# and the progress bar's loss; between reads the host runs ahead and keeps the device fed
CHECK_EVERY = 50


def train_one_epoch(model, batches, n_batches: int, loss_fn, optimizer, scaler, schedule: LRSchedule | None,
                    rt: Runtime, epoch: int, global_step: int, grad_clip: float, progress: bool = True,
                    dist_info: distributed.DistInfo | None = None,
                    check_every: int = CHECK_EVERY) -> tuple[float, int, int]:
    """One epoch: `n_batches` batches taken from the iterator `batches` (one iterator spans
    the run: data.EpochBatches). Returns (mean loss, global step, images seen by all processes).
    `schedule` (None: a constant lr) sets the lr after each step: the warm-up's, or the scheduler's.

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
        if schedule is not None:
            schedule.after_step()
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
             dist_info: distributed.DistInfo | None = None, miou_rule: str = "standard",
             tta: TTAConfig | None = None) -> EvalResult:
    """Accumulate one confusion matrix over the split (and one per sensor) on the device.

    Under DDP each process evaluates its shard (no sample twice) and the matrices and loss
    sums are all-reduced, so every process returns the whole split's result. `tta` (eval's
    --scales / --flip) predicts from averaged probabilities, which have no loss."""
    if loss_fn is not None and not is_plain(tta):
        raise ValueError("evaluate: a loss is computed from plain logits, not with test-time augmentation")
    model.eval()
    samples = getattr(loader.dataset, "samples", None)
    # one matrix per sensor of the split, known up front: the same groups on every process
    sensors = sorted({x.sensor for x in samples or []})
    group_of = {s: i for i, s in enumerate(sensors)}
    cm = ConfusionMatrix(num_classes, rt.device, groups=max(1, len(sensors)))
    total = torch.zeros((), dtype=torch.float64, device=rt.device)
    count = 0
    scores = []
    emask = np.asarray(eval_mask, dtype=bool) if eval_mask is not None else None
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, unit="batch"):
        x, y = rt.batch_inputs(batch), rt.masks(batch["mask"])
        logits = segment(model, x, rt, y.shape[-2:], tta)  # plain: the logits; TTA: mean probabilities
        if loss_fn is not None:
            total += loss_fn(logits, y).double() * x.shape[0]
            count += x.shape[0]
        pred = logits.argmax(1)
        groups = torch.tensor([group_of.get(s, 0) for s in batch["sensor"]]).to(rt.device, non_blocking=True)
        cm.update(y, pred, groups)
        if per_image:
            scores += zip(batch["index"].tolist(), image_mious(y, pred, num_classes, emask, miou_rule), strict=True)
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
    finished = False
    try:
        result = _main(cfg, dist_info, device_name, resume, progress and dist_info.is_main, on_epoch_end)
        finished = True
        return result
    finally:
        if quiet is not None:
            log.removeFilter(quiet)
        distributed.cleanup(dist_info, finished)


def _main(cfg: TrainConfig, dist_info: distributed.DistInfo, device_name: str, resume: bool,
          progress: bool, on_epoch_end) -> RunResult:
    out, main = Path(cfg.out), dist_info.is_main
    info = load_dataset_info(cfg.data)
    device = resolve_device(device_name)
    options = _check_run(cfg, dist_info.world_size)
    ckpt = _checkpoint_to_resume(out, resume, cfg, info, options)
    start_epoch = int(ckpt["epoch"]) + 1 if ckpt is not None else 1
    finished = _finished(ckpt, cfg)

    # model: seeded init, then its starting weights (a resumed run loads its own later)
    seed_everything(cfg.seed)
    model, init_report = _build_model(cfg, info, options, fresh=ckpt is None)
    parts = model.set_train_parts(cfg.train_parts)
    if cfg.sync_bn and dist_info.enabled:
        model = distributed.convert_sync_batchnorm(model, device)
    rt = runtime_for_dataset(cfg, info, device)

    # loss: the resolved class weighting is what this run used, and what a resume reuses
    # even if the dataset's default method changes
    saved = ckpt.get("config") if ckpt is not None else None
    if cfg.class_weights is None and isinstance(saved, dict) and isinstance(saved.get("class_weights"), str):
        cfg = dataclasses.replace(cfg, class_weights=saved["class_weights"])
    method = class_weight_method(cfg, info)
    weights, weights_source, weights_note = resolve_class_weights(method, info, ckpt, out / "last.pt")
    loss_fn = build_loss(cfg.loss, info.num_classes, info.ignore_index,
                         torch.tensor(weights, dtype=torch.float32) if method else None).to(device)

    # data
    augment_on = resolve_augment_on(cfg.augment_on, cfg.augment, device)
    if augment_on == "device":
        rt.augment = DeviceAugment()
    train_loader, val_loader = _build_loaders(cfg, info, device, dist_info, augment_on, start_epoch)

    # network on the device; `net` trains, `eval_net` evaluates (see _wrap_model)
    raw_model = prepare_model(model, rt)
    net, eval_net = _wrap_model(raw_model, cfg, dist_info, device)

    # optimizer, schedule, gradient scaler
    optimizer = build_optimizer(cfg, [p for p in raw_model.parameters() if p.requires_grad])
    steps = train_loader.batch_sampler.per_epoch
    schedule = build_schedule(cfg, optimizer, steps)
    if schedule.warmup is not None and cfg.warmup_steps >= cfg.epochs * steps:
        log.warning("warning: --warmup-steps %d is not shorter than the run (%d optimizer steps: --epochs %d x "
                    "%d steps per epoch); the lr never reaches --lr %g", cfg.warmup_steps, cfg.epochs * steps,
                    cfg.epochs, steps, cfg.lr)
    scaler = rt.make_scaler()

    if main:
        claim_run_folder(out, model=cfg.model)
    with run_log(out, enabled=main):
        run = RunState()
        if ckpt is not None:
            run = restore_training(ckpt, raw_model, optimizer, schedule, scaler, cfg)
            log.info("resuming %s from epoch %d", out, start_epoch)
        if weights_note:
            log.info("%s", weights_note)
        cfg_saved = dataclasses.replace(cfg, class_weights=method or "none")
        if main and not finished:  # a finished run re-run (make demo) records no new session
            write_run_config(out, cfg_saved, info.class_names, weights, str(device), dist_info.world_size,
                             resume=resume, weights_source=weights_source)
        params, trainable = count_parameters(raw_model), count_trainable(raw_model)
        frozen = [p for p in raw_model.PARTS if p not in parts] if hasattr(raw_model, "PARTS") else []
        _log_setup(cfg, info, rt, dist_info, method, augment_on, len(train_loader.dataset),
                   len(val_loader.dataset), params, trainable, frozen, init_report)
        meta = checkpoint_meta(cfg_saved, options, info, rt, weights, params["total"], trainable["total"],
                               dist_info.world_size)

        stopped, message = ("already-complete" if start_epoch > cfg.epochs else "completed"), ""
        batches = iter(train_loader) if not finished else iter(())  # a finished run starts no workers
        for epoch in range(start_epoch, cfg.epochs + 1):
            if run.out_of_patience(cfg.early_stop):
                stopped = "early-stop"
                break
            t0 = time.perf_counter()
            try:
                train_loss, run.global_step, seen = train_one_epoch(
                    net, batches, steps, loss_fn, optimizer, scaler, schedule, rt, epoch,
                    run.global_step, cfg.grad_clip, progress, dist_info)
            except NonFiniteLossError as e:
                stopped, message = "non-finite-loss", _stopped_message(str(e), epoch)
                break
            t_train = time.perf_counter() - t0
            distributed.broadcast_buffers(raw_model, dist_info)
            res = evaluate(eval_net, val_loader, rt, info.num_classes, loss_fn, info.eval_mask,
                           progress=progress, desc="val", dist_info=dist_info)
            if not math.isfinite(res.loss):  # diverged weights: no checkpoint, never "best"
                what = f"validation loss became {res.loss} at epoch {epoch}"
                stopped, message = "non-finite-loss", _stopped_message(what, epoch)
                break
            row = _metrics_row(epoch, train_loss, res, info, cfg.miou_rule, optimizer.param_groups[0]["lr"],
                               run.global_step)
            schedule.after_epoch(row["val_miou"])
            improved = run.record(epoch, row["val_miou"])
            row["train_images_per_s"] = seen / t_train if t_train > 0 else None
            row["epoch_time_s"] = time.perf_counter() - t0
            run.history.append(row)
            if main:
                _save_epoch(out, training_state(meta, raw_model, optimizer, schedule, scaler, epoch, run,
                                                row["val_miou"]), improved, run.history)
            _log_epoch(row, cfg.epochs, improved)
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)

        if stopped == "early-stop":
            log.info("early stop: no val mIoU improvement for %d epochs", cfg.early_stop)
        done = run.history[-1]["epoch"] if run.history else start_epoch - 1
        return RunResult(out, done, run.best_miou if run.best_epoch is not None else None, run.best_epoch,
                         stopped, run.history, message, trainable["total"], params["total"], cfg.train_parts)


# ----------------------------------------------------------------------------- building a run


def _check_run(cfg: TrainConfig, world: int) -> dict:
    """Checks that need no files: the model and its options, the inputs it takes, the batch
    split over processes (the loss name is checked by cfg.validate). Returns the model's
    resolved options."""
    options = check_network(cfg)
    if cfg.batch_size % world:
        raise SegtrainError(f"--batch-size {cfg.batch_size} is the global batch and must divide evenly over "
                            f"{world} processes")
    return options


def check_network(cfg) -> dict:
    """The model, its options and the inputs it takes (a `run` or `bench` config), as one-line
    errors. Returns the model's resolved options."""
    try:
        options = check_model(cfg.model, cfg.model_options)
        check_inputs(cfg.model, cfg.model_options, cfg.inputs, cfg.fusion)
    except (KeyError, ValueError) as e:
        raise SegtrainError(e.args[0]) from None
    return options


def _checkpoint_to_resume(out: Path, resume: bool, cfg: TrainConfig, info: DatasetInfo,
                          options: dict) -> dict | None:
    """last.pt with --resume; without it, a folder that already holds a run is refused.
    A run stopped in its first epoch has no last.pt: --resume starts it again (what an
    uninterrupted run would have done), so a restart script can always pass --resume."""
    if resume:
        if not (out / "last.pt").exists() and is_run_folder(out):
            log.info("%s: no last.pt yet (the run stopped in its first epoch); starting it from epoch 1", out)
            return None
        return load_resume_checkpoint(out / "last.pt", cfg, info, options)
    if (out / "last.pt").exists():
        raise SegtrainError(f"{out}: already holds a run (last.pt); use --resume or another --out")
    return None


def _finished(ckpt: dict | None, cfg: TrainConfig) -> bool:
    """True when the run to resume has nothing left to train: all --epochs done, or stopped
    early and still out of patience under this --early-stop (a larger one trains on)."""
    if ckpt is None:
        return False
    return int(ckpt["epoch"]) >= cfg.epochs or RunState.from_checkpoint(ckpt).out_of_patience(cfg.early_stop)


def _build_model(cfg: TrainConfig, info: DatasetInfo, options: dict,
                 fresh: bool) -> tuple[torch.nn.Module, LoadReport | None]:
    """The model (initialised from the current RNG state) and, for a fresh run, its
    --pretrained encoder or --init-from weights, with the report of what loaded."""
    try:
        model = create_model(cfg.model, info.num_classes, inputs=cfg.inputs, fusion=cfg.fusion,
                             **cfg.model_options)
    except ValueError as e:
        raise SegtrainError(str(e)) from None
    if fresh and cfg.pretrained:
        weights_file = resolve_pretrained(cfg.pretrained, cfg.model, options)
        report = load_encoder_weights(model, weights_file, cfg.model)
        if hasattr(model.encoder, "init_depth_from_rgb"):  # mid fusion: depth branch from the RGB one
            model.encoder.init_depth_from_rgb()
        if weights_file != cfg.pretrained:
            report.source = f"{cfg.pretrained} ({weights_file})"
        return model, report
    if fresh and cfg.init_from:
        return model, init_from_checkpoint(model, cfg, info, options)
    return model, None


def _build_loaders(cfg: TrainConfig, info: DatasetInfo, device: torch.device, dist_info: distributed.DistInfo,
                   augment_on: str, start_epoch: int):
    """(train loader, val loader) of this process's shard. One iterator of the train loader
    spans all the epochs still to run (data.EpochBatches)."""
    with_depth = uses_depth(cfg.inputs)
    train_ds = train_dataset(info, cfg.train_split, cfg.augment, cfg.size, cfg.crop, with_depth, augment_on,
                             option="train_split in --config")
    val_ds = eval_dataset(info, cfg.val_split, cfg.size, with_depth, option="--val-split")
    world = dist_info.world_size
    per_process = cfg.batch_size // world
    shard = {"rank": dist_info.rank, "world_size": world}
    train_loader, train_sampler = make_loader(train_ds, per_process, True, cfg.seed, cfg.workers, device,
                                              drop_last=True, epochs=range(start_epoch, cfg.epochs + 1),
                                              max_batches=cfg.max_train_batches, **shard)
    if per_process > len(train_sampler):
        n = len(train_sampler) * world
        log.warning("warning: --batch-size %d is more than the %d images of split %r: every epoch is one "
                    "step on a batch of %d", cfg.batch_size, len(train_ds), cfg.train_split, n)
    val_bs = per_process if info.image_size is not None else 1
    val_loader, _ = make_loader(val_ds, val_bs, False, cfg.seed, cfg.workers, device, **shard)
    return train_loader, val_loader


def _wrap_model(raw_model: torch.nn.Module, cfg: TrainConfig, dist_info: distributed.DistInfo,
                device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the network that trains: DDP and/or compiled, the one that evaluates). Evaluation
    runs on the unwrapped model under DDP: shards may be uneven and DDP's forward would wait
    on a buffer broadcast from processes that have already finished their shard."""
    net = raw_model
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(raw_model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    return net, (net if not dist_info.enabled else raw_model)


def class_weight_method(cfg: TrainConfig, info: DatasetInfo) -> str | None:
    """Which dataset.json weights the CE term uses (None = unweighted, always for a loss that
    takes none: an older run's checkpoint may name a method it never used)."""
    if cfg.class_weights == "none" or not LOSSES[cfg.loss].uses_weights:
        return None
    if cfg.class_weights:
        return cfg.class_weights
    if LOSSES[cfg.loss].weighted_by_default:
        return info.default_weight_method or DEFAULT_WEIGHT_METHOD
    return None


def resolve_class_weights(method: str | None, info: DatasetInfo, ckpt: dict | None,
                          ckpt_path: Path) -> tuple[list[float] | None, str, str]:
    """(the CE weights of `method`, where they come from for config.yaml, a note for the log).
    A new run reads them from dataset.json; a resumed run continues with the values its
    checkpoint saved, so a tree whose statistics were recomputed since does not change the loss
    half-way (then the source is last.pt and the note says dataset.json now differs).
    Checkpoints without saved values read dataset.json, as they always did."""
    if not method:
        return None, "", ""
    saved = ckpt.get("class_weights") if ckpt is not None else None
    values = saved.get("values") if isinstance(saved, dict) and saved.get("method") == method else None
    if not isinstance(values, list) or len(values) != info.num_classes:
        return info.weights(method), "dataset.json", ""
    values = [float(v) for v in values]
    try:
        today = info.weights(method)
    except DataError:
        today = None
    if today == values:
        return values, "dataset.json", ""
    now = "no" if method not in info.class_weights else "other"
    return values, f"{ckpt_path.name}, the run's own", (f"class weights: the run's {method} values (from "
                                                        f"{ckpt_path}); {info.root / 'dataset.json'} now has "
                                                        f"{now} {method} values, not used")


def _log_setup(cfg: TrainConfig, info: DatasetInfo, rt: Runtime, dist_info: distributed.DistInfo,
               method: str | None, augment_on: str, n_train: int, n_val: int, params: dict, trainable: dict,
               frozen: list[str], init_report: LoadReport | None) -> None:
    """What this run trains, on what, how: the first lines of train.log."""
    log.info("model %s: %s parameters (%s); %d train / %d val images; device %s%s%s; loss %s%s; "
             "normalisation from %s; augment %s %s (--augment-on %s)", cfg.model, f"{params['total']:,}",
             ", ".join(f"{k} {v:,}" for k, v in params.items() if k != "total"), n_train, n_val,
             rt.device, f" ({rt.amp_dtype})" if rt.amp_dtype else "",
             f" x {dist_info.world_size} processes (DDP{', SyncBatchNorm' if cfg.sync_bn else ''})"
             if dist_info.enabled else "", cfg.loss,
             f" weighted by {method}" if method else "", info.normalization_source, cfg.augment,
             "on the device, batched" if augment_on == "device" else "in the loader", cfg.augment_on)
    log.info("train parts %s: %s of %s parameters trainable (%s)%s", cfg.train_parts,
             f"{trainable['total']:,}", f"{params['total']:,}",
             ", ".join(f"{k} {v:,}" for k, v in trainable.items() if k != "total"),
             f"; frozen: {', '.join(frozen)} (weights and BatchNorm statistics)" if frozen else "")
    if cfg.warmup_steps:
        after = {"none": "constant", "plateau": "plateau"}.get(cfg.scheduler,
                                                                f"{cfg.scheduler} over the steps after it")
        log.info("lr warm-up: linear from %g to %g over the first %d optimizer steps, then %s",
                 cfg.lr * cfg.warmup_ratio, cfg.lr, cfg.warmup_steps, after)
    if uses_depth(cfg.inputs):
        log.info("inputs %s: depth encoded as %s, normalised with %.3g m / %.3g m (%s)%s", cfg.inputs,
                 cfg.depth_encoding, *rt.depth_stats,
                 "dataset.json" if info.depth_mean is not None else "fallback: no depth_mean/std",
                 f"; fusion {cfg.fusion}" if cfg.inputs == "rgbd" else "")
    if init_report is not None:
        log.info("%s: %s", "pretrained encoder" if cfg.pretrained else "init-from", init_report.summary())


# ----------------------------------------------------------------------------- end of an epoch


def _metrics_row(epoch: int, train_loss: float, res: EvalResult, info: DatasetInfo, miou_rule: str,
                 lr: float, global_step: int) -> dict:
    """An epoch's metrics.csv row (the caller adds the speed and time columns)."""
    summary = summarize(res.confusion, info.class_names, info.eval_mask, miou_rule)
    row = {"epoch": epoch, "train_loss": train_loss, "val_loss": res.loss, "val_miou": summary["miou"],
           "val_pixel_accuracy": summary["pixel_accuracy"], "lr": lr, "global_step": global_step}
    for sensor, mat in sorted(res.per_sensor.items()):
        row[f"val_miou_{sensor}"] = summarize(mat, info.class_names, info.eval_mask, miou_rule)["miou"]
    return row


def _save_epoch(out: Path, state: dict, improved: bool, history: list[dict]) -> None:
    """last.pt, best.pt when the val mIoU improved, and metrics.csv so far."""
    save_checkpoint(out / "last.pt", state)
    if improved:
        save_checkpoint(out / "best.pt", state)
    write_metrics_csv(out / "metrics.csv", history)


def _log_epoch(row: dict, epochs: int, improved: bool) -> None:
    log.info("epoch %d/%d  train_loss %s  val_loss %s  val_mIoU %s%s  lr %.3g  %.1f s",
             row["epoch"], epochs, _fmt(row["train_loss"]), _fmt(row["val_loss"]), _fmt(row["val_miou"]),
             " (best)" if improved else "", row["lr"], row["epoch_time_s"])


def _stopped_message(what: str, epoch: int) -> str:
    """The error line of a run stopped at `epoch` by a non-finite loss (logged here)."""
    last = f"last.pt (epoch {epoch - 1})" if epoch > 1 else "none (first epoch)"
    message = f"{what}; training stopped, last good checkpoint: {last}"
    log.error(message)
    return message


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"
