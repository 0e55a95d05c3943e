"""Files people look at after a run: metrics JSON/CSV and matplotlib figures (Agg backend).

Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from segtrain.utils import atomic_path, atomic_write_json, atomic_write_text


def _pyplot():
    """matplotlib with the non-interactive Agg backend (no display needed), imported lazily."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def colorize(labels: np.ndarray, colors: list[tuple[int, int, int]], ignore_index: int = 255) -> np.ndarray:
    """Train-id mask -> RGB image with the class table's colours (ignore = black)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    for i, c in enumerate(colors):
        lut[i] = c
    lut[ignore_index] = (0, 0, 0)
    return lut[labels]


def write_confusion_csv(path: Path, mat: np.ndarray, names: list[str]) -> None:
    """Pixel counts; rows = ground truth, columns = prediction; header row + index column."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["gt\\pred", *names])
    for name, row in zip(names, mat, strict=True):
        w.writerow([name, *(int(v) for v in row)])
    atomic_write_text(path, buf.getvalue())


def write_per_class_csv(path: Path, summary: dict, mat: np.ndarray, names: list[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["train_id", "class", "iou", "accuracy", "gt_pixels", "pred_pixels", "status"])
    gt, pred = mat.sum(axis=1), mat.sum(axis=0)
    for i, name in enumerate(names):
        iou, acc = summary["per_class_iou"][name], summary["per_class_accuracy"][name]
        status = ("ignored" if name in summary["ignored_classes"]
                  else "absent from ground truth" if name in summary["absent_classes"] else "evaluated")
        w.writerow([i, name, "" if iou is None else f"{iou:.6f}", "" if acc is None else f"{acc:.6f}",
                    int(gt[i]), int(pred[i]), status])
    atomic_write_text(path, buf.getvalue())


def plot_curves(metrics_csv: Path, path: Path) -> bool:
    """Loss and mIoU per epoch from a run's metrics.csv; False when there is nothing to plot."""
    if not metrics_csv.is_file():
        return False
    with open(metrics_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return False

    def col(name):
        return [float(r[name]) if r.get(name) not in (None, "") else math.nan for r in rows]

    plt = _pyplot()
    epochs = col("epoch")
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(epochs, col("train_loss"), marker="o", label="train")
    a.plot(epochs, col("val_loss"), marker="o", label="val")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.set_title("Loss")
    a.legend()
    b.plot(epochs, col("val_miou"), marker="o", color="tab:green", label="val mIoU")
    for key in rows[0]:
        if key.startswith("val_miou_"):
            b.plot(epochs, col(key), linestyle="--", label=key.removeprefix("val_"))
    b.set_xlabel("epoch")
    b.set_ylabel("mIoU")
    b.set_ylim(0, 1)
    b.set_title("Validation mIoU")
    b.legend()
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_per_class_iou(summary: dict, colors, path: Path) -> None:
    plt = _pyplot()
    names = list(summary["per_class_iou"])
    vals = [summary["per_class_iou"][n] for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(names) + 2), 4))
    x = np.arange(len(names))
    heights = [0 if v is None else v for v in vals]
    ax.bar(x, heights, color=[np.array(c) / 255 for c in colors], edgecolor="black", linewidth=0.4)
    for i, v in enumerate(vals):
        if v is None:
            ax.text(i, 0.01, "n/a", rotation=90, ha="center", va="bottom", fontsize=6)
    ax.axhline(summary["miou"] or 0, color="red", linestyle="--", linewidth=1,
               label=f"mIoU {summary['miou'] or 0:.3f}")
    ax.set_xticks(x, names, rotation=90, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    ax.set_title("Per-class IoU (n/a: class absent from the ground truth)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(mat: np.ndarray, names: list[str], path: Path) -> None:
    """Row-normalised (each ground-truth class sums to 1) confusion matrix."""
    plt = _pyplot()
    rows = mat.sum(axis=1, keepdims=True).astype(np.float64)
    norm = np.divide(mat, rows, out=np.zeros_like(mat, dtype=np.float64), where=rows > 0)
    n = len(names)
    fig, ax = plt.subplots(figsize=(max(5, 0.25 * n + 2), max(4.5, 0.25 * n + 1.5)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=90, fontsize=6)
    ax.set_yticks(range(n), names, fontsize=6)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title("Confusion matrix (rows normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    _save(fig, path)


def plot_panels(rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], title: str, path: Path) -> None:
    """One row per image: image | ground truth | prediction."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 2.6 * len(rows)), squeeze=False)
    for r, (label, image, gt, pred) in enumerate(rows):
        for c, (arr, name) in enumerate(((image, "image"), (gt, "ground truth"), (pred, "prediction"))):
            ax = axes[r][c]
            ax.imshow(arr)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
        axes[r][0].set_ylabel(label, fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def write_metrics_json(path: Path, obj: dict) -> None:
    atomic_write_json(path, obj)
