"""What resuming `segtrain predict` saves: a fresh run over N photos, a re-run of the finished
folder (every image skipped by predict.json), and a resume after the last 30 % of the masks
were lost (as an interrupted run leaves them), each against the fresh run measured in the
same run. The photos are a `sunrgbd sample` tree's images at 240x320 copied to N names; the
checkpoint is unet_small after one short epoch on that tree. CPU.

    python benchmarks/bench_predict_resume.py --work /tmp/bpr            # 100 photos
    python benchmarks/bench_predict_resume.py --work /tmp/bpr --photos 300
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from segtrain.config import PredictConfig
from segtrain.inference import OUTPUT_SUFFIXES, run_predict


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

    def timed(label, fresh=None):
        t = time.perf_counter()
        res = run_predict(cfg, progress=False)
        s = time.perf_counter() - t
        print(f"{label:<34}{len(res.written) // 2:>10}{res.already:>10}{s:>10.3f}{s / (fresh or s):>8.3f}")
        return s

    print(f"{photos} photos at 240x320, unet_small, CPU")
    print(f"{'run':<34}{'predicted':>10}{'skipped':>10}{'s':>10}{'ratio':>8}")
    fresh = timed("fresh")
    timed("re-run of the finished folder", fresh)
    lost = range(photos - photos * 3 // 10, photos)
    for i in lost:
        for sfx in OUTPUT_SUFFIXES:
            (work / "masks" / f"photo{i:04d}{sfx}").unlink()
    timed(f"resume, last {len(lost)} masks lost", fresh)


if __name__ == "__main__":
    main()
