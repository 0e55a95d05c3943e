"""Benchmark segtrain's sample reading: `read_rgb` / `read_unchanged` (cv2.imread, and on a
failure a Python read that names the cause) against bare cv2.imread + cvtColor (the floor),
and the up-front readability check of `list_samples` (open + 16 bytes per file, once per run)
against listing alone, and read_rgb's TIFF signature check (open + 4 bytes of every image it
reads) against a decode. Runs alternate and the best of each counts.

    python benchmarks/bench_segtrain_read.py                 # writes 200 samples of 480x640 to a temp dir
    python benchmarks/bench_segtrain_read.py -n 300 --size 120x160 --repeats 5
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path

import click
import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from benchutil import best  # noqa: E402
from treebuilder import write_clean_tree  # noqa: E402

from segtrain import data, utils  # noqa: E402
from segtrain.utils import parse_hw, read_rgb, read_unchanged  # noqa: E402


@click.command()
@click.option("-n", "count", default=200, show_default=True, help="Training samples to write.")
@click.option("--size", default="480x640", show_default=True)
@click.option("--repeats", default=5, show_default=True)
def main(count: int, size: str, repeats: int) -> None:
    cv2.setNumThreads(1)
    h, w = parse_hw(size)
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_clean_tree(Path(tmp) / "data", counts={"train": count}, size=(h, w))
        info = data.load_dataset_info(tree.root)
        samples = data.list_samples(info, "train")

        def floor():
            for s in samples:
                cv2.cvtColor(cv2.imread(str(s.image), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                cv2.imread(str(s.label), cv2.IMREAD_UNCHANGED)

        def segtrain_read():
            for s in samples:
                read_rgb(s.image)
                read_unchanged(s.label)

        def listing():
            data._manifest_samples(info, "train")

        def listing_checked():
            data.list_samples(info, "train")

        def tiff_check():
            for s in samples:
                utils._is_tiff(s.image)

        results = {}
        for _ in range(2):  # alternate so that load changes hit both
            results["floor"] = min(results.get("floor", 1e9), best(floor, repeats))
            results["read"] = min(results.get("read", 1e9), best(segtrain_read, repeats))
            results["list"] = min(results.get("list", 1e9), best(listing, repeats))
            results["checked"] = min(results.get("checked", 1e9), best(listing_checked, repeats))
            results["tiff"] = min(results.get("tiff", 1e9), best(tiff_check, repeats))
    per = {k: v / count * 1e3 for k, v in results.items()}
    print(f"$ python benchmarks/bench_segtrain_read.py {shlex.join(sys.argv[1:])}")
    print(f"{count} samples of {h}x{w} (image + label), best of {repeats} x 2 alternating runs")
    print(f"decode: bare cv2.imread {per['floor']:.3f} ms/sample, segtrain readers {per['read']:.3f} ms/sample, "
          f"ratio {results['read'] / results['floor']:.3f}")
    print(f"list_samples: manifest only {per['list']:.4f} ms/sample, with the readability check "
          f"{per['checked']:.4f} ms/sample (+{per['checked'] - per['list']:.4f} ms, "
          f"{(per['checked'] - per['list']) / per['read'] * 100:.2f} % of one decode)")
    print(f"read_rgb's TIFF signature check: {per['tiff']:.4f} ms/image, "
          f"{per['tiff'] / per['read'] * 100:.2f} % of one sample's decode")


if __name__ == "__main__":
    main()
