"""Benchmark the cost of an epoch boundary to a consumer slower than the loader (a GPU that the
loader could keep fed): the training loader iterated one epoch at a time, as `segtrain run`
does (`for batch in loader` per epoch: the workers' prefetch restarts from empty at each new
iterator), against one sampler epoch that spans every batch (what `segtrain bench` does).
The consumer waits --step-ms per batch (a stand-in for the GPU's step); the floor is that
wait alone (batch / step time). Runs alternate; the best of --repeats counts.

    python benchmarks/bench_epoch_restart.py                  # 80 train images (a 320-scene sample), 480x640
    python benchmarks/bench_epoch_restart.py --train 400 --step-ms 150
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from pathlib import Path

import click
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cleantree import write_clean_tree  # noqa: E402

from segtrain.bench import _Repeated  # noqa: E402
from segtrain.data import load_dataset_info, make_loader, train_dataset  # noqa: E402
from segtrain.utils import parse_hw  # noqa: E402


def per_epoch(ds, bs, workers):
    loader, sampler = make_loader(ds, bs, True, 0, workers, torch.device("cpu"), drop_last=True)
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def continuous(ds, bs, workers):
    loader, _ = make_loader(_Repeated(ds, 1000), bs, True, 0, workers, torch.device("cpu"), drop_last=True)
    yield from loader


def rate(batches, bs: int, warmup: int, steps: int, step_s: float) -> float:
    for _ in range(warmup):
        next(batches)
        time.sleep(step_s)
    t0 = time.perf_counter()
    for _ in range(steps):
        next(batches)
        time.sleep(step_s)
    elapsed = time.perf_counter() - t0
    batches.close()
    return steps * bs / elapsed


@click.command()
@click.option("--train", default=80, show_default=True, help="Train images in the tree.")
@click.option("--size", default="480x640", show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option("--step-ms", default=200.0, show_default=True, help="The consumer's time per batch.")
@click.option("--steps", default=30, show_default=True)
@click.option("--warmup", default=5, show_default=True)
@click.option("--repeats", default=2, show_default=True)
def main(train, size, batch_size, workers, step_ms, steps, warmup, repeats):
    h, w = parse_hw(size)
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_clean_tree(Path(tmp) / "data", counts={"train": train, "val": 1}, size=(h, w))
        info = load_dataset_info(tree.root)
        ds = train_dataset(info, "train", "basic", size=[h, w])
        best = {"per-epoch iterators": 0.0, "one spanning epoch": 0.0}
        for _ in range(repeats):
            for name, make in (("per-epoch iterators", per_epoch), ("one spanning epoch", continuous)):
                best[name] = max(best[name], rate(make(ds, batch_size, workers), batch_size, warmup, steps,
                                                  step_ms / 1000))
    floor = batch_size / (step_ms / 1000)
    print("$ python benchmarks/bench_epoch_restart.py " + shlex.join(sys.argv[1:]))
    print(f"{train} train images = {train // batch_size} batches of {batch_size} per epoch, {size}, "
          f"{workers} workers, consumer {step_ms:.0f} ms/batch (floor {floor:.1f} img/s)")
    for name, r in best.items():
        print(f"  {name:<20} {r:7.1f} img/s  ratio to floor {r / floor:.2f}")


if __name__ == "__main__":
    main()
