"""What test-time augmentation (`segtrain eval --scales ... --flip`) costs, and what it gains.

Cost: `engine.evaluate` over a test split (the loader, the forward passes, the confusion
matrix) with the default (one pass), `--flip`, and `--scales 0.75,1,1.25 --flip`, as a ratio
to the plain evaluation timed in the same run (best of --repeats, modes alternating). The
floor is the forward work: the number of passes weighted by their pixel count (flip = 2,
0.75,1,1.25 + flip = 2 x (0.75² + 1 + 1.25²) = 6.25); above it are the resizes, the softmax
and the accumulation at the label size. CPU only (no device sync around the timer): GPU timings
come from `segtrain eval ... --device cuda` with and without the flags.

Gain (--learn): bench_learning's sample tree (--scenes: its 600 give 154 train / 285 test
images; 60 train too few images to mean anything), its unet_small CPU recipe for --epochs,
then `run_eval` of best.pt on the test split with each setting.

    python benchmarks/bench_tta.py                                  # cost: unet_small, 24 images of 120x160
    python benchmarks/bench_tta.py --size 240x320 --images 12
    python benchmarks/bench_tta.py --learn --work /tmp/btta --scenes 600 --epochs 8   # + mIoU of each setting
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import click
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from treebuilder import write_clean_tree  # noqa: E402

from segtrain.config import EvalConfig, TrainConfig, TTAConfig  # noqa: E402
from segtrain.data import eval_dataset, load_dataset_info, make_loader  # noqa: E402
from segtrain.engine import evaluate  # noqa: E402
from segtrain.models import create_model  # noqa: E402
from segtrain.runtime import Runtime  # noqa: E402
from segtrain.tta import scaled_size  # noqa: E402
from segtrain.utils import parse_hw  # noqa: E402

MODES = {
    "default": TTAConfig(),
    "--flip": TTAConfig(flip=True),
    "--scales 0.75,1,1.25 --flip": TTAConfig(scales=[0.75, 1.0, 1.25], flip=True),
}


def floor(tta: TTAConfig, size) -> float:
    """Forward work relative to one plain pass: passes weighted by their pixel count."""
    h, w = size
    return sum(a * b for a, b in (scaled_size(h, w, s) for s in tta.scales)) / (h * w) * (2 if tta.flip else 1)


def time_modes(size, images: int, batch_size: int, repeats: int, model_name: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_clean_tree(Path(tmp) / "data", counts={"train": 1, "test": images}, size=tuple(size))
        info = load_dataset_info(tree.root)
        rt = Runtime.create(torch.device("cpu"), info.mean, info.std, amp=False, channels_last=False)
        torch.manual_seed(0)
        model = create_model(model_name, info.num_classes)
        loader, _ = make_loader(eval_dataset(info, "test"), batch_size, False, 0, 0, rt.device)
        best = {}
        evaluate(model, loader, rt, info.num_classes, progress=False, tta=MODES["--flip"])  # warm-up
        for _ in range(repeats):
            for name, tta in MODES.items():
                t0 = time.perf_counter()
                evaluate(model, loader, rt, info.num_classes, progress=False, tta=tta)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
    plain = best["default"]
    return {name: {"ms_per_image": round(best[name] / images * 1e3, 2), "ratio": round(best[name] / plain, 3),
                   "floor": round(floor(tta, size), 3)} for name, tta in MODES.items()}


def measure_learning(work: Path, scenes: int, epochs: int) -> dict:
    """mIoU of each setting for one small trained checkpoint (bench_learning's tree and recipe)."""
    from bench_learning import RECIPES, make_tree

    from segtrain.engine import train
    from segtrain.inference import run_eval

    data, _ = make_tree(work, scenes)
    out = work / f"run-unet_small-{epochs}"
    if not (out / "best.pt").exists():
        train(TrainConfig(data=str(data), out=str(out), workers=2, **dict(RECIPES["unet_small"], epochs=epochs)),
              progress=False)
    result = {}
    for i, (name, tta) in enumerate(MODES.items()):
        t0 = time.perf_counter()
        m = run_eval(EvalConfig(checkpoint=str(out / "best.pt"), data=str(data), split="test", device="cpu",
                                out=str(work / f"report-{epochs}-{i}"), workers=2, panels=0, tta=tta),
                     progress=False)
        result[name] = {"miou": round(m["miou"], 4), "pixel_accuracy": round(m["pixel_accuracy"], 4),
                        "test_images": m["num_images"], "eval_s": round(time.perf_counter() - t0, 1)}
    return result


@click.command()
@click.option("--size", default="120x160", show_default=True, help="Test image size HxW (cost part).")
@click.option("--images", default=24, show_default=True, help="Test images (cost part).")
@click.option("--batch-size", default=4, show_default=True)
@click.option("--repeats", default=5, show_default=True)
@click.option("--threads", default=1, show_default=True,
              help="torch threads while timing (1: steadier on a shared machine).")
@click.option("--model", "model_name", default="unet_small", show_default=True)
@click.option("--learn", is_flag=True, help="Also train a small checkpoint and compare the mIoU of each setting.")
@click.option("--work", type=click.Path(), help="Folder for --learn's tree and run [default: a temporary one].")
@click.option("--scenes", default=600, show_default=True)
@click.option("--epochs", default=8, show_default=True)
def main(size, images, batch_size, repeats, threads, model_name, learn, work, scenes, epochs):
    print("$ python " + shlex.join(sys.argv))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    result = {"size": list(parse_hw(size)), "images": images, "model": model_name, "threads": threads,
              "cost": time_modes(parse_hw(size), images, batch_size, repeats, model_name)}
    torch.set_num_threads(before)
    for name, r in result["cost"].items():
        print(f"{name:<30} {r['ms_per_image']:>8.2f} ms/image  {r['ratio']:>6.2f}x plain  (floor {r['floor']:.2f}x)")
    if learn:
        tmp = None if work else tempfile.TemporaryDirectory()
        root = Path(work or tmp.name)
        root.mkdir(parents=True, exist_ok=True)
        result["learn"] = {"scenes": scenes, "epochs": epochs, **measure_learning(root, scenes, epochs)}
        for name in MODES:
            r = result["learn"][name]
            print(f"{name:<30} test mIoU {r['miou']:.4f}  pixel acc. {r['pixel_accuracy']:.4f}  "
                  f"({r['test_images']} images, eval {r['eval_s']} s)")
        if tmp is not None:
            tmp.cleanup()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
