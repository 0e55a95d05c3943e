"""Files people look at after a run: metrics JSON/CSV and matplotlib figures (Agg backend).

Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from cleantree.classes import IGNORE_INDEX
from cleantree.files import atomic_path, atomic_write_json, atomic_write_text
from segtrain.config import TTAConfig


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


def colorize(labels: np.ndarray, colors: list[tuple[int, int, int]], ignore_index: int = IGNORE_INDEX) -> np.ndarray:
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


# per_class_iou.csv's score columns, each the metrics.summarize key it reads (a class's value,
# None when it has none): a new per-class score is one entry here
PER_CLASS_SCORES = {"iou": "per_class_iou", "accuracy": "per_class_accuracy"}


def write_per_class_csv(path: Path, summary: dict, mat: np.ndarray, names: list[str]) -> None:
    """One row per class. pred_pixels counts the predictions on evaluated ground truth only
    (pixels of an ignore_in_eval class count nowhere, as in metrics.summarize), so each IoU is
    tp / (gt_pixels + pred_pixels - tp) of the confusion matrix."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["train_id", "class", *PER_CLASS_SCORES, "gt_pixels", "pred_pixels", "status"])
    evaluated = np.array([name not in summary["ignored_classes"] for name in names], dtype=bool)
    gt, pred = mat.sum(axis=1), mat[evaluated].sum(axis=0)
    for i, name in enumerate(names):
        scores = (summary[key][name] for key in PER_CLASS_SCORES.values())
        status = ("ignored" if name in summary["ignored_classes"]
                  else "absent from ground truth" if name in summary["absent_classes"] else "evaluated")
        w.writerow([i, name, *("" if v is None else f"{v:.6f}" for v in scores), int(gt[i]), int(pred[i]), status])
    atomic_write_text(path, buf.getvalue())


def format_eval_line(metrics: dict, out) -> str:
    """`segtrain eval`'s console summary of a metrics.json (inference.run_eval's result), whose
    report is in `out`."""
    tta_note = TTAConfig(**metrics["tta"]).note()
    miou = "n/a" if metrics["miou"] is None else f"{metrics['miou']:.4f}"
    pa = "n/a" if metrics["pixel_accuracy"] is None else f"{metrics['pixel_accuracy']:.4f}"
    skipped = len(metrics["skipped_images"])
    left_out = f", {skipped} unreadable left out" if skipped else ""
    return (f"{metrics['split']}: {metrics['miou_rule']} mIoU {miou}{tta_note} (labels: {metrics['label_mode']}), "
            f"pixel accuracy {pa} over {metrics['num_images']} images ({metrics['classes_evaluated']} classes "
            f"evaluated, {len(metrics['absent_classes'])} absent from the ground truth{left_out}); report in {out}")


def _data_limit(values, floor: float = 0.05) -> float:
    """Upper axis limit that shows the data (a run at 0.09 mIoU is not drawn flat on 0-1)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return min(1.0, max(floor, 1.15 * max(finite))) if finite else 1.0


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
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    a.plot(epochs, col("train_loss"), marker="o", label="train")
    a.plot(epochs, col("val_loss"), marker="o", label="val")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.set_title("Loss")
    a.legend()
    shown = col("val_miou")
    b.plot(epochs, shown, marker="o", color="tab:green", label="val mIoU")
    for key in rows[0]:
        if key.startswith("val_miou_"):
            b.plot(epochs, col(key), linestyle="--", label=key.removeprefix("val_"))
            shown += col(key)
    b.set_xlabel("epoch")
    b.set_ylabel("mIoU")
    b.set_ylim(0, _data_limit(shown))  # scaled to the data: small differences stay visible
    b.grid(axis="y", alpha=0.3)
    b.set_title("Validation mIoU")
    b.legend()
    for ax in (a, b):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_per_class_iou(summary: dict, colors, path: Path) -> None:
    """Horizontal bars, one per class with its name at a readable size; every value is written
    at its bar, so an IoU of 0 ("0.00") and a class not scored ("n/a") never look alike."""
    plt = _pyplot()
    names = list(summary["per_class_iou"])
    vals = [summary["per_class_iou"][n] for n in names]
    n = len(names)
    fig, ax = plt.subplots(figsize=(8, 0.26 * n + 1.6))
    y = np.arange(n)
    heights = [0 if v is None else v for v in vals]
    ax.barh(y, heights, color=[np.array(c) / 255 for c in colors], edgecolor="black", linewidth=0.5)
    top = _data_limit(vals + [summary["miou"]])
    ignored, absent = set(summary["ignored_classes"]), set(summary["absent_classes"])
    for i, (name, v) in enumerate(zip(names, vals, strict=True)):
        if v is None:
            why = ("ignored in eval" if name in ignored else "absent from ground truth and prediction"
                   if summary.get("miou_rule", "standard") == "standard" else "absent from ground truth")
            ax.text(top * 0.01, i, f"n/a ({why})", va="center", fontsize=8, color="0.45", style="italic")
        else:
            if v == 0:  # a visible stub: scored, and scored zero
                ax.plot([0], [i], marker="|", markersize=11, markeredgewidth=2, color="black")
            extra = " (absent from ground truth)" if name in absent else ""
            shown = f"{v:.2f}" if v == 0 or v >= 0.01 else f"{v:.1e}"  # 0.004 is not "0.00"
            ax.text(v + top * 0.015, i, f"{shown}{extra}", va="center", fontsize=8)
    if summary["miou"] is not None:
        ax.axvline(summary["miou"], color="red", linestyle="--", linewidth=1,
                   label=f"mIoU {summary['miou']:.3f} ({summary.get('miou_rule', 'standard')} rule)")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(y, names, fontsize=9)
    ax.set_ylim(n - 0.5, -0.5)  # train id 0 at the top
    ax.set_xlim(0, top * 1.25)  # room for the value labels
    ax.set_xlabel("IoU")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Per-class IoU (n/a: not scored; 0.00: scored, no overlap)")
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(mat: np.ndarray, names: list[str], path: Path) -> None:
    """Row-normalised (each ground-truth class sums to 1) confusion matrix; rows without
    ground-truth pixels are grey (n/a), not a row of zeros."""
    plt = _pyplot()
    rows = mat.sum(axis=1, keepdims=True).astype(np.float64)
    norm = np.divide(mat, rows, out=np.zeros_like(mat, dtype=np.float64), where=rows > 0)
    norm = np.ma.masked_array(norm, mask=np.broadcast_to(rows == 0, norm.shape))
    n = len(names)
    side = max(6.0, 0.3 * n + 3)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    cmap = plt.get_cmap("Blues").with_extremes(bad="0.85")
    im = ax.imshow(norm, cmap=cmap, vmin=0, vmax=1)
    font = 9 if n <= 40 else 7
    ax.set_xticks(range(n), names, rotation=90, fontsize=font)
    ax.set_yticks(range(n), names, fontsize=font)
    if n <= 20:  # the share in each cell is readable at this size
        for i in range(n):
            for j in range(n):
                if rows[i, 0] > 0 and norm[i, j] >= 0.01:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.6 else "black")
    ax.set_xlabel("prediction", fontsize=11)
    ax.set_ylabel("ground truth", fontsize=11)
    ax.set_title("Confusion matrix (each ground-truth row sums to 1; grey: no ground-truth pixels)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the row's pixels")
    fig.tight_layout()
    _save(fig, path)


def present_classes(labels: np.ndarray, n: int) -> list[int]:
    """Train ids in a mask, most pixels first (ignore and out-of-table values left out)."""
    counts = np.bincount(labels.ravel(), minlength=256)[:n]
    return [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]


def plot_panels(rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], title: str, path: Path,
                names: list[str], colors: list[tuple[int, int, int]], ignore_index: int = IGNORE_INDEX,
                max_legend: int = 12) -> None:
    """One row per image: image | ground truth | prediction (train-id masks), each mask with a
    legend of the classes it shows (name + colour, most pixels first)."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(len(rows), 3, figsize=(13, 4.6 * len(rows)), squeeze=False)
    for r, (label, image, gt, pred) in enumerate(rows):
        for c, (arr, name) in enumerate(((image, "image"), (gt, "ground truth"), (pred, "prediction"))):
            ax = axes[r][c]
            ax.imshow(arr if c == 0 else colorize(arr, colors, ignore_index))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=11)
            if c == 0:
                continue
            ids = present_classes(arr, len(names))
            handles = [Patch(facecolor=np.array(colors[i]) / 255, edgecolor="black", linewidth=0.4,
                             label=names[i]) for i in ids[:max_legend]]
            if len(ids) > max_legend:
                handles.append(Patch(facecolor="white", edgecolor="white",
                                     label=f"+{len(ids) - max_legend} more"))
            if c == 1 and (arr == ignore_index).any():
                handles.append(Patch(facecolor="black", edgecolor="black", label="ignore / unlabelled"))
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=3,
                      fontsize=8, frameon=False, handlelength=1.2, columnspacing=0.8)
        axes[r][0].set_ylabel(label, fontsize=9)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    _save(fig, path)


def write_metrics_json(path: Path, obj: dict) -> None:
    atomic_write_json(path, obj, allow_nan=False)
