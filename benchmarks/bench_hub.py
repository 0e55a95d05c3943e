"""Benchmark `sunrgbd pack --format hf`: samples/s and the ratio to a copy-only floor.

The floor reads every file the export stores (image, train-id label, depth) and appends
its bytes to one output file, nothing else: the I/O no export can avoid. The export adds
the sha256 check against manifest.csv, decoding the label (the `classes` column), the
arrow tables, parquet framing and the card; a second floor adds the sha256 and the label
decode, so the gap left is arrow + parquet. Runs alternate (floors, export, ...), best of each.

    python benchmarks/bench_hub.py                  # writes 300 kv2-sized samples to a temp dir
    python benchmarks/bench_hub.py CLEAN_DIR        # an existing (converted) tree, read only
"""

from __future__ import annotations

import csv
import hashlib
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sunrgbd_tools.acquire.hub import HubConfig, export_hf  # noqa: E402

KV2_SIZE = (530, 730)  # (H, W) of kv2 images


def floor(clean: Path, out: Path, verify: bool = False) -> int:
    """Floor 1: every stored file's bytes appended to `out`. With `verify`, floor 2: plus the
    checks the export makes by design (sha256 of every file, decoding the label),
    single-threaded; the gap from floor 2 to the export is arrow + parquet."""
    with open(clean / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    n = 0
    with open(out, "wb") as dst:
        for r in rows:
            for key in ("image", "label_train_ids", "depth"):
                if not r.get(key):
                    continue
                data = (clean / r[key]).read_bytes()
                if verify:
                    assert hashlib.sha256(data).hexdigest() == r[f"{key}_sha256"]
                    if key == "label_train_ids":
                        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                n += dst.write(data)
    return n


@click.command()
@click.argument("clean_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-n", "--samples", default=300, show_default=True, help="Samples to write (without CLEAN_DIR).")
@click.option("--repeats", default=3, show_default=True)
def main(clean_dir: Path | None, samples: int, repeats: int) -> None:
    print("command:", shlex.join([sys.executable, *sys.argv]))
    with tempfile.TemporaryDirectory(prefix="bench_hub_") as tmp:
        tmp = Path(tmp)
        if clean_dir is None:
            from treebuilder import write_clean_tree

            t0 = time.perf_counter()
            clean_dir = tmp / "clean"
            third = samples // 3
            write_clean_tree(clean_dir, counts={"train": samples - 2 * third, "val": third,
                                                "test": third}, size=KV2_SIZE, seed=0)
            print(f"wrote {samples} samples of {KV2_SIZE[0]}x{KV2_SIZE[1]} in {time.perf_counter() - t0:.1f} s")
        best = {"floor": float("inf"), "checks": float("inf"), "export": float("inf")}
        nbytes = 0
        for i in range(repeats):
            t0 = time.perf_counter()
            nbytes = floor(clean_dir, tmp / "floor.bin")
            best["floor"] = min(best["floor"], time.perf_counter() - t0)
            (tmp / "floor.bin").unlink()
            t0 = time.perf_counter()
            floor(clean_dir, tmp / "floor.bin", verify=True)
            best["checks"] = min(best["checks"], time.perf_counter() - t0)
            (tmp / "floor.bin").unlink()
            out = tmp / f"hf{i}"
            t0 = time.perf_counter()
            rep = export_hf(HubConfig(src=str(clean_dir), out=str(out), progress=False))
            best["export"] = min(best["export"], time.perf_counter() - t0)
            shutil.rmtree(out)
        n = sum(rep.rows.values())
        print(f"samples: {n} ({nbytes / 1e6:.1f} MB of files), best of {repeats}")
        print(f"floor (read + append the same bytes): {n / best['floor']:.1f} samples/s")
        print(f"floor + sha256 + label decode (1 thread): {n / best['checks']:.1f} samples/s")
        print(f"pack --format hf:                     {n / best['export']:.1f} samples/s")
        print(f"ratio export/floor time: {best['export'] / best['floor']:.3f}")
        print(f"ratio export/(floor + checks) time: {best['export'] / best['checks']:.3f}")


if __name__ == "__main__":
    main()
