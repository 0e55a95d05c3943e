"""Optimizers and learning-rate schedules, built from a TrainConfig, and re-planning a
resumed schedule over a new number of epochs."""

from __future__ import annotations

import math

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
