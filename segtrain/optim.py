"""Optimizers and learning-rate schedules, built from a TrainConfig: a linear warm-up, the
scheduler after it, and re-planning a resumed schedule over a new number of epochs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from segtrain.config import TrainConfig
from segtrain.utils import SegtrainError


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    return make_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay, cfg.momentum)


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """Adam, AdamW and SGD use their fused kernel (one launch for all parameters, and a bad
    step skipped on the device: see engine.train_step); RMSprop has none."""
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
    """Returns (scheduler or None, 'step' | 'epoch'): poly/cosine step per batch, plateau per epoch.
    After a warm-up of N steps poly/cosine are planned over the run's other steps (mmseg 1.x's
    `PolyLR(begin=N)`, torchvision's reference): they start at --lr when the warm-up ends."""
    total = cfg.epochs * steps_per_epoch - cfg.warmup_steps
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience), "epoch"
    if cfg.scheduler == "poly":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, PolyLR(total, cfg.poly_power)), "step"
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total)), "step"
    return None, "none"


def schedule_total(scheduler) -> int | None:
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
    old = schedule_total(scheduler)
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


class LinearWarmup:
    """The lr of the first `steps` optimizer steps: step t (from 0) trains at
    lr x (ratio + (1 - ratio) x t / steps), torch's LinearLR and mmseg's / torchvision's
    linear warm-up; `lr` is the one the scheduler starts from (--lr). At step `steps` the lr
    is --lr exactly and the scheduler takes over from its own first step (LRSchedule: it is
    not stepped during the warm-up, so plateau neither counts nor lowers).

    Its position is the run's global step, so it needs no state of its own in a checkpoint
    (`start_at` on --resume)."""

    def __init__(self, optimizer, lr: float, steps: int, ratio: float):
        self.optimizer, self.lr, self.steps, self.ratio = optimizer, lr, steps, ratio
        self.step_count = 0
        self._apply()

    @property
    def active(self) -> bool:
        """True while the lr is the warm-up's (the scheduler waits)."""
        return self.step_count < self.steps

    def factor(self, step: int) -> float:
        return 1.0 if step >= self.steps else self.ratio + (1.0 - self.ratio) * step / self.steps

    def step(self) -> None:
        """After an optimizer step: the lr of the next one."""
        self.step_count += 1
        self._apply()

    def start_at(self, global_step: int) -> None:
        """A resumed run at `global_step`: inside the warm-up, set its lr again (restoring a
        scheduler may have set the scheduler's own); after it, leave the restored lr alone."""
        self.step_count = min(global_step, self.steps)
        if self.active:
            self._apply()

    def _apply(self) -> None:
        lr = self.lr * self.factor(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr


@dataclass
class LRSchedule:
    """Who moves the lr, and when: the warm-up (if any) after each of its steps, then the
    scheduler (poly / cosine after each step, plateau after each epoch), which is not stepped
    while the warm-up sets the lr. The one owner of that rule: training, its epochs and
    --resume all go through it."""

    scheduler: object | None  # a torch lr scheduler; None for --scheduler none
    mode: str  # "step" | "epoch" | "none" (build_scheduler)
    warmup: LinearWarmup | None = None

    @property
    def warming_up(self) -> bool:
        return self.warmup is not None and self.warmup.active

    def after_step(self) -> None:
        """After an optimizer step: the warm-up's next lr, or a per-step scheduler's."""
        if self.warming_up:
            self.warmup.step()
        elif self.scheduler is not None and self.mode == "step":
            self.scheduler.step()

    def after_epoch(self, val_miou: float | None) -> None:
        """After an epoch's validation: plateau sees its val mIoU (0 when there is none),
        unless the epoch ended inside the warm-up."""
        if self.scheduler is not None and self.mode == "epoch" and not self.warming_up:
            self.scheduler.step(val_miou if val_miou is not None else 0.0)

    def state_dict(self) -> dict:
        """The scheduler's state (what a checkpoint saves; {} without one)."""
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def restore(self, state: dict | None, optimizer, global_step: int) -> tuple[int | None, int | None]:
        """A resumed run at `global_step`: the scheduler's saved `state`, re-planned over this
        run's steps (replan_schedule), then the warm-up's position (after the re-plan, which
        sets the scheduler's own lr). Returns (the total now, the old total when it changed,
        else None)."""
        planned = old_total = None
        if self.scheduler is not None and state:
            planned = schedule_total(self.scheduler)
            self.scheduler.load_state_dict(state)
            old_total = replan_schedule(self.scheduler, optimizer, planned)  # None for plateau: no total
        if self.warmup is not None:
            self.warmup.start_at(global_step)
        return planned, old_total


def build_warmup(cfg: TrainConfig, optimizer) -> LinearWarmup | None:
    """The --warmup-steps warm-up to --lr (None when 0). It sets the optimizer's lr at once:
    build_schedule builds it after the scheduler, which reads the optimizer's lr as its base."""
    return LinearWarmup(optimizer, cfg.lr, cfg.warmup_steps, cfg.warmup_ratio) if cfg.warmup_steps else None


def build_schedule(cfg: TrainConfig, optimizer, steps_per_epoch: int) -> LRSchedule:
    """The run's LRSchedule: the scheduler, then the warm-up (in that order: see build_warmup)."""
    scheduler, mode = build_scheduler(cfg, optimizer, steps_per_epoch)
    return LRSchedule(scheduler, mode, build_warmup(cfg, optimizer))
