"""Benchmark `sunrgbd stats`: images/s and the ratio to a decode-only floor.

The floor decodes the same PNGs (image + labelIds + depth) with the same pool, chunking
and number of workers, and does nothing else, so the ratio is the cost of the statistics
themselves. Runs alternate (floor, stats, floor, stats, ...) and the best of each counts.

    python benchmarks/bench_stats.py                 # writes 300 kv2-sized samples to a temp dir
    python benchmarks/bench_stats.py CLEAN_DIR       # an existing (converted) tree, read only
    python benchmarks/bench_stats.py -n 600 --workers 2 --repeats 3
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from pathlib import Path

import click
import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sunrgbd_tools.parallel import default_workers, map_chunks  # noqa: E402
from sunrgbd_tools.stats import (  # noqa: E402
    _CHUNK,
    StatsConfig,
    _digests,
    load_tree,
    sample_files,
    scan,
    summarize,
)

KV2_SIZE = (530, 730)  # (H, W) of kv2 images


def _decode_chunk(task) -> int:
    """The floor: decode each file exactly as stats does, and nothing else."""
    root, samples = task
    n = 0
    for image, label, depth in samples:
        n += cv2.imread(str(root / label), cv2.IMREAD_UNCHANGED) is not None
        n += cv2.imread(str(root / image), cv2.IMREAD_COLOR) is not None
        if depth:
            n += cv2.imread(str(root / depth), cv2.IMREAD_UNCHANGED) is not None
    return n


def floor(tree, workers: int) -> int:
    files = sample_files(tree)
    chunks = [files[i:i + _CHUNK] for i in range(0, len(files), _CHUNK)]
    return sum(map_chunks(_decode_chunk, tree.root, chunks, workers, False, "floor"))


def stats_pass(tree, workers: int) -> dict:
    cfg = StatsConfig(workers=workers)
    acc = scan(tree, workers, progress=False)
    return summarize(tree, acc, cfg, *_digests(tree, cfg))


@click.command()
@click.argument("clean_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-n", "--samples", default=300, show_default=True, help="Samples to write (without CLEAN_DIR).")
@click.option("--workers", type=int, default=None, help="[default: number of cores]")
@click.option("--repeats", default=3, show_default=True)
def main(clean_dir: Path | None, samples: int, workers: int | None, repeats: int) -> None:
    workers = workers or default_workers()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    with tempfile.TemporaryDirectory(prefix="bench_stats_") as tmp:
        if clean_dir is None:
            from treebuilder import write_clean_tree

            t0 = time.perf_counter()
            clean_dir = Path(tmp) / "clean"
            write_clean_tree(clean_dir, counts={"train": samples}, size=KV2_SIZE, seed=0)
            print(f"wrote {samples} samples of {KV2_SIZE[0]}x{KV2_SIZE[1]} in {time.perf_counter() - t0:.1f} s")
        tree = load_tree(clean_dir, "train")
        n = len(tree.rows)
        best = {"floor": float("inf"), "stats": float("inf")}
        for _ in range(repeats):
            for name, fn in (("floor", floor), ("stats", stats_pass)):
                t0 = time.perf_counter()
                fn(tree, workers)
                best[name] = min(best[name], time.perf_counter() - t0)
        f_ips, s_ips = n / best["floor"], n / best["stats"]
        print(f"samples: {n} (train split of {clean_dir}), workers: {workers}, best of {repeats}")
        print(f"floor (decode image+label+depth only): {f_ips:.1f} images/s")
        print(f"sunrgbd stats pass:                    {s_ips:.1f} images/s")
        print(f"ratio stats/floor time: {best['stats'] / best['floor']:.3f}")


if __name__ == "__main__":
    main()
