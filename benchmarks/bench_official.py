"""`convert --labels official` and `sample --zips` against baselines measured in the same run.

1. convert --labels official (SUNRGBD2Dseg.mat seglabel, one HDF5 reference read per scene)
   vs --labels seg (each scene's seg.mat), same tree, size and workers: the ratio says what
   the benchmark mode costs over the default label source.
2. write_raw_zips (SUNRGBD.zip + SUNRGBDtoolbox.zip) vs a floor that reads the same files and
   writes their bytes to one file per archive: what packing costs beyond moving the bytes.

    python benchmarks/bench_official.py --scenes 150 --workers 2 [--repeats 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchutil import timed_convert

from sunrgbd_tools.synthetic.zips import RAW_ZIPS, write_raw_zips

KV2_FRAMES = 3784


def timed_zips(raw: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t = time.perf_counter()
    write_raw_zips(raw, out)
    return time.perf_counter() - t


def timed_floor(raw: Path, out: Path) -> float:
    """Read every file that goes into the zips and write the bytes to one file per archive:
    the I/O no packer can avoid."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t = time.perf_counter()
    for name, top in RAW_ZIPS.items():
        with open(out / name, "wb") as w:
            for p in sorted((raw / top).rglob("*")):
                if p.is_file():
                    w.write(p.read_bytes())
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=150)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3, help="best of N runs of each measurement")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-official-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "raw"
    if not (raw / "SUNRGBD").exists():
        from sunrgbd_tools.synthetic.generator import make_sample

        make_sample(raw, scenes=args.scenes, seed=0, quirks=False, workers=args.workers)
    seg_s = off_s = zip_s = copy_s = float("inf")
    for _ in range(args.repeats):  # alternating, so a burst of load hits both sides
        t, n = timed_convert(raw, work / "seg", args.workers, labels="seg")
        seg_s = min(seg_s, t)
        t, m = timed_convert(raw, work / "official", args.workers, labels="official")
        off_s = min(off_s, t)
        zip_s = min(zip_s, timed_zips(raw, work / "zips"))
        copy_s = min(copy_s, timed_floor(raw, work / "floor"))
    size = sum((work / "zips" / n).stat().st_size for n in RAW_ZIPS)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {os.cpu_count()} cores, workers={args.workers}, native 530x730, best of {args.repeats}")
    print(f"convert --labels seg      : {n} frames in {seg_s:.2f} s = {n / seg_s:.1f} frames/s")
    print(f"convert --labels official : {m} frames in {off_s:.2f} s = {m / off_s:.1f} frames/s")
    print(f"ratio official / seg      : {off_s / seg_s:.2f}")
    print(f"write_raw_zips            : {args.scenes} scenes, {size / 2**20:.1f} MiB in {zip_s:.2f} s")
    print(f"floor: read the same files, write their bytes to one file per archive: {copy_s:.2f} s")
    print(f"ratio zips / floor        : {zip_s / copy_s:.2f}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
