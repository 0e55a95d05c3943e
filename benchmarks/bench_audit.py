"""Benchmark `sunrgbd mapping audit`: scenes/s and the ratio to a read-only floor.

The floor reads, for every scene, exactly what the audit reads (the official seglabel
from SUNRGBD2Dseg.mat, seg.mat or else the polygons painted by the converter's reader),
with the same pool, chunks and workers, and does nothing else; so the ratio is the cost
of the audit itself (joint histogram, aggregation, look-ups, the outputs). Runs alternate
(floor, audit, floor, audit, ...) and the best of each counts. The result is extrapolated
to the 3,784 frames of the real kv2 subset.

    python benchmarks/bench_audit.py                    # writes a 300-scene kv2-sized sample
    python benchmarks/bench_audit.py RAW_DIR            # an existing raw tree, read only
    python benchmarks/bench_audit.py --scenes 300 --workers 2 --repeats 3 --work /tmp/bench_audit
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click
from benchutil import best

from sunrgbd_tools.convert.scene_labels import read_scene_labels
from sunrgbd_tools.labels.audit import AuditConfig, _chunks, run_audit
from sunrgbd_tools.parallel import default_workers, map_chunks
from sunrgbd_tools.raw.base import RawDataError
from sunrgbd_tools.raw.official import OfficialLabels
from sunrgbd_tools.raw.scenes import discover_scenes

KV2_FRAMES = 3784


def _read_chunk(task) -> int:
    """The floor: read the official label and the raw labels of each scene, nothing else."""
    official, scenes = task
    n = 0
    for scene in scenes:
        try:
            off, _ = official.read(scene.key)
            read_scene_labels(scene, off.shape, "auto", [], {})
            n += 1
        except RawDataError:
            pass
    return n


def floor(src: Path, subset: str, workers: int) -> int:
    official = OfficialLabels(src)
    scenes = discover_scenes(src, subset)
    chunks = _chunks(scenes, workers)
    return sum(map_chunks(_read_chunk, official, chunks, workers, False, "floor"))


@click.command()
@click.argument("raw_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--scenes", default=300, show_default=True, help="Scenes to generate (without RAW_DIR).")
@click.option("--subset", default="kv2", show_default=True)
@click.option("--small-subset", default="kv2/align_kv2", show_default=True,
              help="A smaller subset timed too, to split fixed start-up cost from the cost per scene.")
@click.option("--workers", type=int, default=None, help="[default: number of cores]")
@click.option("--repeats", default=3, show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the generated sample here (re-used when it is already there).")
def main(raw_dir: Path | None, scenes: int, subset: str, small_subset: str, workers: int | None,
         repeats: int, work: Path | None) -> None:
    workers = workers or default_workers()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    with tempfile.TemporaryDirectory(prefix="bench_audit_") as tmp:
        if raw_dir is None:
            from sunrgbd_tools.synthetic.generator import make_sample

            raw_dir = (work or Path(tmp)) / f"sample{scenes}"
            t0 = time.perf_counter()
            make_sample(raw_dir, scenes=scenes, seed=0, quirks=False, workers=workers)
            print(f"sample: {scenes} scenes at 530x730 in {raw_dir} (made or resumed in "
                  f"{time.perf_counter() - t0:.1f} s)")
        times: dict[tuple[str, str], float] = {}
        counts: dict[str, int] = {}
        for sub in (subset, small_subset):
            counts[sub] = floor(raw_dir, sub, workers)
            out = Path(tmp) / "audit"

            def audit(sub=sub, out=out):
                res = run_audit(AuditConfig(src=str(raw_dir), out=str(out), subset=sub), workers=workers)
                shutil.rmtree(out)
                assert res.audited == counts[sub], (res.audited, counts[sub])

            # alternate floor and audit so both see the same machine load
            f = a = float("inf")
            for _ in range(repeats):
                f = min(f, best(lambda sub=sub: floor(raw_dir, sub, workers), 1))
                a = min(a, best(audit, 1))
            times[("floor", sub)], times[("audit", sub)] = f, a
        n, m = counts[subset], counts[small_subset]
        print(f"scenes: {n} of {subset}, {m} of {small_subset} in {raw_dir}; workers: {workers}, best of {repeats}")
        per = {}
        for what, label in (("floor", "floor (read official seglabel + seg.mat/polygons only)"),
                            ("audit", "sunrgbd mapping audit (all outputs written)")):
            t_n, t_m = times[(what, subset)], times[(what, small_subset)]
            slope = (t_n - t_m) / (n - m)
            fixed = t_n - slope * n
            per[what] = (slope, fixed)
            print(f"{label}: {t_n:.2f} s for {n} ({n / t_n:.1f} scenes/s), {t_m:.2f} s for {m}; "
                  f"{1000 * slope:.2f} ms/scene + {fixed:.2f} s fixed")
        print(f"ratio audit/floor time, {n} scenes: {times[('audit', subset)] / times[('floor', subset)]:.3f}; "
              f"per scene: {per['audit'][0] / per['floor'][0]:.3f}")
        slope, fixed = per["audit"]
        print(f"extrapolated to the {KV2_FRAMES} kv2 frames: {fixed + slope * KV2_FRAMES:.0f} s (aim < 180 s)")


if __name__ == "__main__":
    main()
