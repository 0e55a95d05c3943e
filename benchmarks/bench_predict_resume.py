"""What resuming `segtrain predict` saves: a fresh run over N photos, a re-run of the finished
folder (every image skipped by predict.json; median of 5, and the same with the record's input
stamps removed, i.e. decided by names as before them: the floor), a re-run after 10 % of the photos were replaced
under their names (predicted again: their size and mtime_ns differ from the record's), and a
resume after the last 30 % of the masks were lost (as an interrupted run leaves them), each
against the fresh run measured in the same run. The photos are a `sunrgbd sample` tree's
images at 240x320 copied to N names; the checkpoint is unet_small after one short epoch on
that tree. CPU.

Then what telling a replaced photo costs per photo: the os.stat the record compares, against
the sha256 of the file that a content check would need (every photo read on every re-run),
and the sha256 throughput, to scale to real photos (a phone JPEG is 2-5 MB).

    python benchmarks/bench_predict_resume.py --work /tmp/bpr            # 100 photos
    python benchmarks/bench_predict_resume.py --work /tmp/bpr --photos 300
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click

from segtrain.config import PredictConfig
from segtrain.inference import OUTPUT_SUFFIXES, RECORD, run_predict


def _cli(command, *args) -> None:
    """`sunrgbd`/`segtrain` as installed beside this interpreter (the venv's)."""
    subprocess.run([str(Path(sys.executable).with_name(command)), *map(str, args)], check=True, capture_output=True)


@click.command()
@click.option("--work", required=True, type=click.Path(), help="Scratch folder (emptied first).")
@click.option("--photos", default=100, show_default=True, help="Photos to predict.")
def main(work, photos):
    work = Path(work)
    shutil.rmtree(work, ignore_errors=True)
    _cli("sunrgbd", "sample", "--out", work / "raw", "--scenes", 16)
    _cli("sunrgbd", "convert", "--src", work / "raw", "--out", work / "clean", "--size", "240x320")
    _cli("segtrain", "run", "unet_small", "--data", work / "clean", "--out", work / "run", "--epochs", 1,
         "--max-train-batches", 2, "--device", "cpu", "--workers", 0)
    images = sorted((work / "clean" / "leftImg8bit").rglob("*.png"))
    (work / "photos").mkdir()
    for i in range(photos):
        shutil.copy(images[i % len(images)], work / "photos" / f"photo{i:04d}.png")
    cfg = PredictConfig(checkpoint=str(work / "run" / "last.pt"), inputs=[str(work / "photos")],
                        out=str(work / "masks"), device="cpu")

    def timed(label, fresh=None, repeat=1):
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            res = run_predict(cfg, progress=False)
            times.append(time.perf_counter() - t)
        s = statistics.median(times)
        print(f"{label:<44}{len(res.written) // 2:>10}{res.already:>10}{s:>10.3f}{s / (fresh or s):>8.3f}")
        return s

    print(f"{photos} photos at 240x320, unet_small, CPU")
    print(f"{'run':<44}{'predicted':>10}{'skipped':>10}{'s':>10}{'ratio':>8}")
    fresh = timed("fresh")
    stamped = timed("re-run of the finished folder (median of 5)", fresh, 5)
    record_path = work / "masks" / RECORD
    record = record_path.read_text()
    by_names = json.loads(record)
    del by_names["inputs"]  # a record of before input stamps: resumed by names, as all were
    record_path.write_text(json.dumps(by_names))
    names = timed("  the same, record without stamps (by names)", fresh, 5)
    record_path.write_text(record)
    print(f"stamps / names for the finished re-run: {stamped / names:.3f}")
    replaced = range(0, photos, 10)
    for i in replaced:  # another photo under the same name
        shutil.copy(images[(i + 1) % len(images)], work / "photos" / f"photo{i:04d}.png")
    timed(f"re-run, {len(replaced)} photos replaced", fresh)
    lost = range(photos - photos * 3 // 10, photos)
    for i in lost:
        for sfx in OUTPUT_SUFFIXES:
            (work / "masks" / f"photo{i:04d}{sfx}").unlink()
    timed(f"resume, last {len(lost)} masks lost", fresh)

    files = sorted((work / "photos").iterdir())
    t = time.perf_counter()
    for f in files:
        os.stat(f)
    stat_s = time.perf_counter() - t
    t = time.perf_counter()
    for f in files:
        hashlib.sha256(f.read_bytes()).hexdigest()
    hash_s = time.perf_counter() - t
    mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"per photo: os.stat {stat_s / len(files) * 1e6:.1f} us, sha256 {hash_s / len(files) * 1e6:.1f} us "
          f"({mb / len(files):.3f} MB each, page cache warm; sha256 {mb / hash_s:.0f} MB/s)")
    print(f"10,000 photos: stat {stat_s / len(files) * 1e4:.3f} s; sha256 of 3 MB phone photos "
          f"{3e4 / (mb / hash_s):.1f} s from the page cache, more from disk")


if __name__ == "__main__":
    main()
