"""Learning quality on a fixed `sunrgbd sample` tree: the documented recipe of a model, then
test mIoU under both rules (standard and the old gt-present) against a floor from the same
evaluation (always predicting the most frequent class), time and images/s. This is the number
that moves when someone changes a default.

    python benchmarks/bench_learning.py                       # unet_small, the CPU recipe (make demo's)
    python benchmarks/bench_learning.py --recipe unet         # GPU recipes: need --device cuda
    python benchmarks/bench_learning.py --work /tmp/bl --json-out bl.json
    python benchmarks/bench_learning.py --work /tmp/bl --epochs 8 --inputs rgbd   # RGB-D (issue 14)
    python benchmarks/bench_learning.py --work /tmp/bl --epochs 8 --augment basic --augment-on device
    python benchmarks/bench_learning.py --work /tmp/bl --epochs 8 --warmup-steps 38   # lr warm-up

The tree is made once under --work (sample 600 scenes at 240x320 -> convert kv2 at 120x160 ->
stats --weights; the same commands as `make demo`) and reused by later runs; each run trains
into a fresh folder under --work. Same inputs and flags give the same numbers on a CPU.
"""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from segtrain.config import AUGMENT_ON, AUGMENTS, FUSIONS, INPUTS, EvalConfig, TrainConfig
from segtrain.engine import train
from segtrain.inference import run_eval
from segtrain.metrics import summarize

BIN = Path(sys.executable).parent
# documented recipes (docs/training.md "The demo", docs/models.md); the GPU ones are to be
# measured on a GPU session
COMMON = dict(optimizer="adam", scheduler="poly", loss="wce", augment="none", early_stop=0, seed=0)
RECIPES = {
    "unet_small": dict(COMMON, model="unet_small", epochs=24, batch_size=4, lr=5e-3, device="cpu"),
    "unet": dict(COMMON, model="unet", epochs=40, batch_size=16, lr=1e-3, device="cuda"),
    "deeplabv3plus": dict(COMMON, model="deeplabv3plus", epochs=40, batch_size=16, lr=1e-3, device="cuda",
                          pretrained="resnet50.tv_in1k"),
    "convnext_upernet": dict(COMMON, model="convnext_upernet", epochs=40, batch_size=16, lr=1e-4,
                             optimizer="adamw", weight_decay=0.05, device="cuda",
                             pretrained="convnext_tiny.fb_in22k"),
}
TREE_COMMANDS = [
    ["sample", "--out", "{work}/raw", "--scenes", "{scenes}", "--seed", "0", "--size", "240x320"],
    ["convert", "--subset", "kv2", "--src", "{work}/raw", "--out", "{work}/clean", "--size", "120x160"],
    ["stats", "{work}/clean", "--weights", "--no-progress"],
]


def make_tree(work: Path, scenes: int) -> tuple[Path, float]:
    """The fixed sample tree (resumable: each command skips finished work)."""
    t0 = time.perf_counter()
    for args in TREE_COMMANDS:
        cmd = [str(BIN / "sunrgbd")] + [a.format(work=work, scenes=scenes) for a in args]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode not in (0, 1):  # 1: done, with the sample's planted defects reported
            sys.exit(f"bench_learning: {shlex.join(cmd)} failed:\n{r.stderr}")
    return work / "clean", time.perf_counter() - t0


def majority_floor(report: Path) -> dict[str, float]:
    """mIoU (both rules) of predicting the split's most frequent evaluated class everywhere,
    from the same evaluation's confusion matrix: the floor the model is measured against."""
    with open(report / "confusion_matrix.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    mat = np.array([[int(v) for v in r[1:]] for r in rows[1:]], dtype=np.int64)
    ignored = set(json.loads((report / "metrics.json").read_text(encoding="utf-8"))["ignored_classes"])
    mask = np.array([n not in ignored for n in names])
    gt = mat.sum(axis=1)
    c = int(np.argmax(np.where(mask, gt, -1)))
    floor = np.zeros_like(mat)
    floor[:, c] = gt
    s = summarize(floor, names, mask)
    return {"class": names[c], **s["miou_by_rule"]}


@click.command()
@click.option("--recipe", type=click.Choice(list(RECIPES)), default="unet_small", show_default=True)
@click.option("--work", type=click.Path(), help="Folder for the tree and runs [default: a temporary one].")
@click.option("--scenes", default=600, show_default=True)
@click.option("--epochs", type=int, help="Override the recipe's epochs (a quicker, different number).")
@click.option("--inputs", type=click.Choice(INPUTS), default="rgb", show_default=True,
              help="Network inputs (rgbd / depth: the tree's depth, see docs/training.md RGB-D).")
@click.option("--fusion", type=click.Choice(FUSIONS), default="early", show_default=True)
@click.option("--augment", type=click.Choice(AUGMENTS), help="Override the recipe's augmentation.")
@click.option("--augment-on", type=click.Choice(AUGMENT_ON), help="Where it runs (docs/training.md).")
@click.option("--seed", type=int, help="Override the recipe's seed (spread between runs).")
@click.option("--warmup-steps", type=int, help="Linear lr warm-up over the first N optimizer steps.")
@click.option("--warmup-ratio", type=float, help="The warm-up's start as a fraction of the lr.")
@click.option("--json-out", type=click.Path(), help="Also write the result as JSON.")
def main(recipe: str, work: str | None, scenes: int, epochs: int | None, inputs: str, fusion: str,
         augment: str | None, augment_on: str | None, seed: int | None, warmup_steps: int | None,
         warmup_ratio: float | None, json_out: str | None) -> None:
    opts = dict(RECIPES[recipe])
    if epochs:
        opts["epochs"] = epochs
    if inputs != "rgb":  # an RGB recipe stays exactly what it was
        opts.update(inputs=inputs, fusion=fusion)
    tag = "" if inputs == "rgb" else f"-{inputs}-{fusion}"
    for key, value, label in (("augment", augment, ""), ("augment_on", augment_on, ""), ("seed", seed, "seed"),
                              ("warmup_steps", warmup_steps, "warmup"), ("warmup_ratio", warmup_ratio, "ratio")):
        if value is not None:  # each override is in the run folder's name
            opts[key] = value
            tag += f"-{label}{value:g}" if isinstance(value, float) else f"-{label}{value}"
    if opts["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit(f"bench_learning: recipe {recipe} is a GPU recipe (no CUDA here); "
                     "to be measured on a GPU session")
    tmp = None if work else tempfile.TemporaryDirectory()
    root = Path(work or tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    data, t_tree = make_tree(root, scenes)
    out = root / f"run-{recipe}-{opts['epochs']}{tag}"
    n = 0
    while out.exists():  # a fresh run every time (the tree is what is reused)
        n += 1
        out = root / f"run-{recipe}-{opts['epochs']}{tag}-{n}"
    cfg = TrainConfig(data=str(data), out=str(out), workers=2, **opts)
    t0 = time.perf_counter()
    res = train(cfg, progress=False)
    t_train = time.perf_counter() - t0
    metrics = run_eval(EvalConfig(checkpoint=str(out / "best.pt"), data=str(data), split="test",
                                  out=str(out / "report"), device=opts["device"], workers=2), progress=False)
    floor = majority_floor(out / "report")
    images_per_s = [r["train_images_per_s"] for r in res.history if r.get("train_images_per_s")]
    result = {
        "recipe": recipe, "options": opts, "scenes": scenes, "tree_s": round(t_tree, 1),
        "train_s": round(t_train, 1), "epochs": res.epochs_completed, "best_epoch": res.best_epoch,
        "best_val_miou": res.best_miou, "test_images": metrics["num_images"],
        "test_miou_standard": metrics["miou_by_rule"]["standard"],
        "test_miou_gt_present": metrics["miou_by_rule"]["gt-present"],
        "test_pixel_accuracy": metrics["pixel_accuracy"],
        "floor_class": floor["class"], "floor_miou_standard": floor["standard"],
        "floor_miou_gt_present": floor["gt-present"],
        "over_floor_standard": metrics["miou_by_rule"]["standard"] / floor["standard"],
        "classes_scored_standard": metrics["classes_evaluated"],
        "absent_classes": len(metrics["absent_classes"]),
        "train_images_per_s": round(sum(images_per_s) / len(images_per_s), 2) if images_per_s else None,
    }
    print(json.dumps(result, indent=2))
    print(f"{recipe}: test mIoU {result['test_miou_standard']:.4f} standard, "
          f"{result['test_miou_gt_present']:.4f} gt-present (old rule); best val {res.best_miou:.4f} "
          f"(epoch {res.best_epoch}); train {t_train:.0f} s for {res.epochs_completed} epochs; floor "
          f"(always {floor['class']}) {floor['standard']:.4f} standard: {result['over_floor_standard']:.1f}x")
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
