"""Benchmark `sunrgbd fetch` of a local archive: the time per run against the run that hashes
every sample file twice (the way fetch worked before, measured in the same process).

fetch checks the archive's sha256, extracts it, hashes every file against SHA256SUMS in its
staging folder, then verifies the tree (decode, sizes, label values). Its verify used to hash
each sample file again against manifest.csv; it now compares the manifest's sha256 with the
one SHA256SUMS proved (`verify_tree(known=...)`). The baseline passes `known=None` (the old
double hash); runs alternate (baseline, fetch, ...), best of each.

    python benchmarks/bench_fetch.py                  # packs 120 kv2-sized samples in a temp dir
    python benchmarks/bench_fetch.py -n 300 --workers 2
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sunrgbd_tools.acquire import share  # noqa: E402
from sunrgbd_tools.acquire.share import FetchConfig, PackConfig, fetch, pack_tree  # noqa: E402

KV2_SIZE = (530, 730)  # (H, W) of kv2 images


def _timed(archive: Path, dest: Path, workers: int) -> float:
    shutil.rmtree(dest, ignore_errors=True)
    t0 = time.perf_counter()
    rep = fetch(FetchConfig(source=str(archive), dest=str(dest), progress=False, workers=workers))
    took = time.perf_counter() - t0
    assert rep.problems == [], rep.problems[:3]
    return took


@click.command()
@click.option("-n", "--samples", default=120, show_default=True)
@click.option("--workers", default=1, show_default=True)
@click.option("--repeats", default=3, show_default=True)
def main(samples: int, workers: int, repeats: int) -> None:
    print("command:", shlex.join([sys.executable, *sys.argv]))
    from treebuilder import write_clean_tree

    with tempfile.TemporaryDirectory(prefix="bench_fetch_") as tmp:
        tmp = Path(tmp)
        third = samples // 3
        clean = write_clean_tree(tmp / "clean", counts={"train": samples - 2 * third, "val": third,
                                                        "test": third}, size=KV2_SIZE, seed=0).root
        archive = tmp / "tree.zip"
        pack_tree(PackConfig(src=str(clean), out=str(archive), progress=False))
        print(f"{samples} samples of {KV2_SIZE[0]}x{KV2_SIZE[1]}, archive {archive.stat().st_size / 2**20:.1f} MiB, "
              f"workers {workers}")
        real = share._verify_fetched
        best = {"baseline": float("inf"), "fetch": float("inf")}
        for _ in range(repeats):
            share._verify_fetched = lambda report, cfg, hashed=None: real(report, cfg, None)  # hash twice
            try:
                best["baseline"] = min(best["baseline"], _timed(archive, tmp / "d", workers))
            finally:
                share._verify_fetched = real
            best["fetch"] = min(best["fetch"], _timed(archive, tmp / "d", workers))
        for k, v in best.items():
            print(f"{k:9s} {v:6.2f} s  {samples / v:6.1f} samples/s")
        print(f"fetch / baseline: {best['fetch'] / best['baseline']:.2f}")


if __name__ == "__main__":
    main()
