"""Loss registry: ce, wce (class-weighted CE), dice (multi-class, ignore-aware), ce+dice.

A loss is a LOSSES entry (LossSpec); every entry keeps these rules, which the tests check for
each one (tests/test_segtrain_metrics.py, tests/test_segtrain_syncs.py):

- pixels labelled `ignore_index` count nowhere, and a batch with no labelled pixel gives 0
  (not NaN, and not Dice's 1), still attached to the graph: the NaN/inf detector fires only on
  real divergence and the run needs no special case for such a batch;
- no host sync: no `.item()`, boolean-mask indexing, `nonzero` or `bincount` on the device
  (scatter_add / torch.where instead), so a GPU step never waits for the host;
- computed in float32 even under autocast;
- class weights: `build` gets dataset.json's vector (or None). A loss with `uses_weights`
  changes with it; one without (dice) never gets a method: config.check_class_weights refuses
  `--class-weights METHOD` for it instead of recording a weighting that does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cleantree.classes import IGNORE_INDEX


class CrossEntropy(nn.Module):
    """(Weighted) cross-entropy, mean over labelled pixels (weighted mean when weighted)."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, weight: torch.Tensor | None = None):
        super().__init__()
        self.ignore_index = ignore_index
        self.num_classes = num_classes
        self.register_buffer("weight", None if weight is None else weight.float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        total = F.cross_entropy(logits, target, weight=self.weight, ignore_index=self.ignore_index,
                                reduction="sum")
        valid = target != self.ignore_index
        if self.weight is None:
            denom = valid.sum()
        else:
            # zero where ignored rather than a boolean-mask index (which waits for the device)
            denom = torch.where(valid, self.weight[target.clamp(max=self.num_classes - 1)], 0.0).sum()
        return total / denom.clamp(min=1e-12)


class DiceLoss(nn.Module):
    """1 - soft Dice, per class over the whole batch, averaged over classes in the labels.

    Computed with scatter_add instead of a one-hot tensor (which would be C times the
    size of the batch at 480x640 and 39 classes).
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, smooth: float = 1.0):
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        c = self.num_classes
        probs = logits.float().softmax(dim=1)
        valid = target != self.ignore_index
        t = torch.where(valid, target, torch.zeros_like(target)).long()
        vf = valid.unsqueeze(1).to(probs.dtype)
        p_sum = (probs * vf).sum(dim=(0, 2, 3))
        p_true = probs.gather(1, t.unsqueeze(1)).squeeze(1)
        # ignored pixels add 0 to class 0 (no boolean indexing or bincount: no host sync)
        tf = t.reshape(-1)
        inter = torch.zeros(c, device=probs.device, dtype=probs.dtype).scatter_add_(
            0, tf, (p_true * vf.squeeze(1)).reshape(-1))
        g_sum = torch.zeros(c, device=probs.device, dtype=torch.int64).index_add_(
            0, tf, valid.reshape(-1).long()).to(probs.dtype)
        dice = (2 * inter + self.smooth) / (p_sum + g_sum + self.smooth)
        present = (g_sum > 0).to(probs.dtype)
        # no labelled pixel: 0 (still attached to the graph), as the module docstring promises
        return (1.0 - (dice * present).sum() / present.sum().clamp(min=1.0)) * (present.sum() > 0)


class CEDice(nn.Module):
    def __init__(self, ce: CrossEntropy, dice: DiceLoss):
        super().__init__()
        self.ce, self.dice = ce, dice

    def forward(self, logits, target):
        return self.ce(logits, target) + self.dice(logits, target)


@dataclass(frozen=True)
class LossSpec:
    build: Callable[..., nn.Module]  # (num_classes, ignore_index, weight or None) -> module
    weighted_by_default: bool  # uses dataset.json class weights unless --class-weights none
    description: str
    # whether `build` uses its weight: an explicit --class-weights METHOD is refused for a loss
    # that does not (segtrain.config.check_class_weights), rather than recorded but dropped
    uses_weights: bool = True


LOSSES: dict[str, LossSpec] = {
    "ce": LossSpec(lambda n, ig, w: CrossEntropy(n, ig, w), False, "cross-entropy"),
    "wce": LossSpec(lambda n, ig, w: CrossEntropy(n, ig, w), True,
                    "cross-entropy weighted by dataset.json class_weights"),
    "dice": LossSpec(lambda n, ig, w: DiceLoss(n, ig), False, "multi-class soft Dice", uses_weights=False),
    "ce+dice": LossSpec(lambda n, ig, w: CEDice(CrossEntropy(n, ig, w), DiceLoss(n, ig)), False,
                        "cross-entropy (weighted with --class-weights) + Dice"),
}


def build_loss(name: str, num_classes: int, ignore_index: int = IGNORE_INDEX,
               weight: torch.Tensor | None = None) -> nn.Module:
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; available: {', '.join(LOSSES)}")
    return LOSSES[name].build(num_classes, ignore_index, weight)
