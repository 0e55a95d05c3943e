"""Feeding a device that never makes the host wait: a CPU proxy for issue 11.

The real input pipeline (480x640 PNG decode, `basic` augmentation, collate) feeds a
simulated training step that keeps the "device" busy for `--step-ms` per batch while the
host is free (what a sync-free training loop gives on a GPU). Two ways to iterate the
epochs are timed in the same run:

- per-epoch: a new DataLoader iterator per epoch (segtrain before issue 11): the workers
  start each epoch empty, so the device waits until one of them has built a whole batch;
- spanning: one iterator over all epochs (`make_loader(..., epochs=...)`, segtrain now):
  the workers build the next epoch's batches while this one ends.

Efficiency = ideal time (steps x step-ms) / measured time; 1.0 means the device never
waited. The loader-only rate (no step) says what the workers can supply at most. It also
times `Runtime.images` (uint8 batch -> normalised float, channels_last) against the
four-step formula it replaced (convert, divide, subtract, divide, re-layout), best of 5.

    python benchmarks/bench_feed.py                       # 48 images, 4 epochs, batch 8, 2 workers
    python benchmarks/bench_feed.py --images 96 --step-ms 300 --workers 2 --epochs 3
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

from benchutil import best  # noqa: E402
from treebuilder import write_clean_tree  # noqa: E402

from segtrain.data import load_dataset_info, make_loader, train_dataset  # noqa: E402
from segtrain.runtime import Runtime  # noqa: E402
from segtrain.utils import parse_hw  # noqa: E402


def _device_step(busy_until: float, step_s: float) -> float:
    """The device takes the batch when it is free and is busy for step_s after that."""
    now = time.perf_counter()
    start = max(now, busy_until)
    if start > now:
        time.sleep(start - now)
    return start + step_s


@click.command()
@click.option("--images", default=48, show_default=True, help="Training images written.")
@click.option("--size", default="480x640", show_default=True)
@click.option("--batch-size", default=8, show_default=True)
@click.option("--epochs", default=4, show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option("--step-ms", default=0.0, show_default=True,
              help="Simulated device time per batch [default: 1.25 x the loader-only time per batch, so "
              "the workers could supply 25% more than the device takes].")
def main(images: int, size: str, batch_size: int, epochs: int, workers: int, step_ms: float) -> None:
    torch.set_num_threads(1)
    h, w = parse_hw(size)
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_clean_tree(Path(tmp) / "data", counts={"train": images}, size=(h, w))
        info = load_dataset_info(tree.root)
        ds = train_dataset(info, "train", "basic")
        cpu = torch.device("cpu")

        loader, _ = make_loader(ds, batch_size, True, 0, workers, cpu, drop_last=True,
                                epochs=range(1, epochs + 1))
        per_epoch = loader.batch_sampler.per_epoch
        t0 = time.perf_counter()
        for _ in loader:
            pass
        loader_s = (time.perf_counter() - t0) / (per_epoch * epochs)
        del loader
        step_s = step_ms / 1000 if step_ms else 1.25 * loader_s

        def run_per_epoch() -> float:
            loader, sampler = make_loader(ds, batch_size, True, 0, workers, cpu, drop_last=True)
            t0, busy = time.perf_counter(), 0.0
            for epoch in range(1, epochs + 1):
                sampler.set_epoch(epoch)
                for _ in loader:
                    busy = _device_step(busy, step_s)
            return max(busy, time.perf_counter()) - t0

        def run_spanning() -> float:
            loader, _ = make_loader(ds, batch_size, True, 0, workers, cpu, drop_last=True,
                                    epochs=range(1, epochs + 1))
            t0, busy = time.perf_counter(), 0.0
            for _ in loader:
                busy = _device_step(busy, step_s)
            return max(busy, time.perf_counter()) - t0

        ideal = per_epoch * epochs * step_s
        a, b = min(run_per_epoch(), run_per_epoch()), min(run_spanning(), run_spanning())

        x = next(iter(make_loader(ds, batch_size, False, 0, 0, cpu)[0]))["image"]
        rt = Runtime(cpu, torch.tensor(info.mean).view(1, 3, 1, 1), torch.tensor(info.std).view(1, 3, 1, 1),
                     channels_last=True)

        def four_steps():
            y = x.float().div_(255.0)
            return ((y - rt.mean) / rt.std).contiguous(memory_format=torch.channels_last)

        assert torch.allclose(four_steps(), rt.images(x), atol=1e-5)
        norm_old, norm_new = best(four_steps, 5), best(lambda: rt.images(x), 5)
    print(f"$ python benchmarks/bench_feed.py {shlex.join(sys.argv[1:])}")
    print(f"{images} images {h}x{w}, batch {batch_size} ({per_epoch} per epoch), {epochs} epochs, "
          f"{workers} workers; loader alone {batch_size / loader_s:.1f} img/s; "
          f"device step {step_s * 1000:.0f} ms = {batch_size / step_s:.1f} img/s")
    print(f"per-epoch iterators: {a:.2f} s, efficiency {ideal / a:.2f}")
    print(f"one spanning iterator: {b:.2f} s, efficiency {ideal / b:.2f}  ({a / b:.2f}x faster)")
    print(f"normalising a batch ({batch_size}x3x{h}x{w}, 1 thread): {norm_new * 1000:.1f} ms against "
          f"{norm_old * 1000:.1f} ms for the four-step formula ({norm_old / norm_new:.2f}x)")


if __name__ == "__main__":
    main()
