"""Dataset-level segmentation metrics from one confusion matrix (torchvision-reference style).

The matrix is accumulated on the device with bincount over every pixel of the split;
mIoU is computed once at the end, never as an average of per-batch mIoUs.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class ConfusionMatrix:
    """mats[group, gt, pred] pixel counts, one matrix per group (e.g. per sensor) of which
    `mat` is the sum; pixels whose label is not a class (ignore = 255, or any value >=
    num_classes) are skipped.

    `update` never reads the device back (no boolean indexing, no bincount, which syncs on
    CUDA to find its maximum): skipped pixels go to an extra bin that is dropped, and the
    counts are added with index_add_ (as fast as bincount on the CPU, exact on any device)."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", groups: int = 1):
        self.num_classes = num_classes
        self.mats = torch.zeros((groups, num_classes, num_classes), dtype=torch.int64, device=device)

    @property
    def mat(self) -> torch.Tensor:
        return self.mats.sum(0)

    def update(self, target: torch.Tensor, pred: torch.Tensor, group: torch.Tensor | None = None) -> None:
        """`group`: one group index per image of a (B, H, W) batch (default: group 0)."""
        n, g = self.num_classes, self.mats.shape[0]
        target = target.long()
        idx = n * target + pred.long()
        if group is not None:
            idx = idx + (n * n) * group.long().view(-1, *([1] * (target.dim() - 1)))
        idx = torch.where((target >= 0) & (target < n), idx, g * n * n).reshape(-1)
        counts = torch.zeros(g * n * n + 1, dtype=torch.int64, device=idx.device)
        counts.index_add_(0, idx, torch.ones(1, dtype=torch.int64, device=idx.device).expand_as(idx))
        self.mats += counts[: g * n * n].view(g, n, n)

    def numpy(self) -> np.ndarray:
        return self.mat.cpu().numpy()

    def group_numpy(self, group: int) -> np.ndarray:
        return self.mats[group].cpu().numpy()


def _clean(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


MIOU_RULES = ("standard", "gt-present")
"""standard: every evaluated class whose union (ground truth or prediction) is not empty counts,
IoU 0 when it is predicted but absent (mmsegmentation, torchmetrics macro, Cityscapes);
gt-present: only evaluated classes that occur in the ground truth count (segtrain's rule
before issue 13, kept to compare with numbers published with it)."""


def summarize(mat: np.ndarray, class_names: list[str], eval_mask: np.ndarray | None = None,
              rule: str = "standard") -> dict:
    """Metrics from a confusion matrix (rows ground truth, columns prediction).

    mIoU averages IoU over the evaluated (not ignore_in_eval) classes that `rule` counts (see
    MIOU_RULES): by default every class with a non-empty union, so a class predicted but absent
    from the ground truth counts as 0 as in other toolkits; with "gt-present" such classes are
    left out (null). Pixels whose ground truth is an ignored class count nowhere, as in
    cityscapesScripts (a train id of its own marked ignore_in_eval is trained, not scored). `absent_classes` lists evaluated classes absent from the ground truth;
    `miou_by_rule` gives both numbers so results from either convention can be compared.
    """
    if rule not in MIOU_RULES:
        raise ValueError(f"unknown mIoU rule {rule!r}; one of {', '.join(MIOU_RULES)}")
    mat = np.asarray(mat, dtype=np.int64)
    n = mat.shape[0]
    eval_mask = np.ones(n, dtype=bool) if eval_mask is None else np.asarray(eval_mask, dtype=bool)
    tp = np.diag(mat).astype(np.float64)
    gt = mat.sum(axis=1).astype(np.float64)
    # pixels whose ground truth is a class ignored in eval are ignored like unlabelled ones
    # (cityscapesScripts): predicting class c there is not a false positive of c
    pred = mat[eval_mask].sum(axis=0).astype(np.float64)
    union = gt + pred - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt > 0, tp / gt, np.nan)
    present = eval_mask & (gt > 0)
    counted = {"standard": eval_mask & (union > 0), "gt-present": present}
    by_rule = {r: float(np.mean(iou[m])) if m.any() else float("nan") for r, m in counted.items()}
    chosen = counted[rule]
    labelled = gt[eval_mask].sum()
    pixel_acc = float(tp[eval_mask].sum() / labelled) if labelled > 0 else float("nan")
    mean_acc = float(np.mean(acc[present])) if present.any() else float("nan")
    return {
        "miou": _clean(by_rule[rule]),
        "miou_rule": rule,
        "miou_by_rule": {r: _clean(v) for r, v in by_rule.items()},
        "pixel_accuracy": _clean(pixel_acc),
        "mean_class_accuracy": _clean(mean_acc),
        "per_class_iou": {name: _clean(v) for name, v in
                          zip(class_names, np.where(chosen, iou, np.nan), strict=True)},
        "per_class_accuracy": {name: _clean(v) for name, v in
                               zip(class_names, np.where(present, acc, np.nan), strict=True)},
        "classes_evaluated": int(chosen.sum()),
        "absent_classes": [name for name, m, g in zip(class_names, eval_mask, gt, strict=True) if m and g == 0],
        "ignored_classes": [name for name, m in zip(class_names, eval_mask, strict=True) if not m],
        "labelled_pixels": int(gt.sum()),
    }


def image_mious(target: torch.Tensor, pred: torch.Tensor, num_classes: int,
                eval_mask: np.ndarray | None = None, rule: str = "standard") -> list[float]:
    """mIoU under `rule` of each image of a (B, H, W) batch (for best/worst panels): one
    matrix per image, accumulated on the device together and read back once per batch."""
    b = target.shape[0]
    cm = ConfusionMatrix(num_classes, target.device, groups=b)
    cm.update(target, pred, torch.arange(b, device=target.device))
    mats = cm.mats.cpu().numpy()
    names = [str(i) for i in range(num_classes)]
    scores = [summarize(m, names, eval_mask, rule)["miou"] for m in mats]
    return [float("nan") if s is None else s for s in scores]
