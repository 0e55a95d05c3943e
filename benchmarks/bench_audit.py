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

from sunrgbd_tools.convert import _read_labels
from sunrgbd_tools.mapping_audit import AuditConfig, _chunks, run_audit
from sunrgbd_tools.official import OfficialLabels
from sunrgbd_tools.raw import RawDataError, discover_scenes
from sunrgbd_tools.stats import default_workers, map_chunks

KV2_FRAMES = 3784


def _read_chunk(task) -> int:
    """The floor: read the official label and the raw labels of each scene, nothing else."""
    official, scenes = task
    n = 0
    for scene in scenes:
        try:
            off, _ = official.read(scene.key, seg37=True)
            _read_labels(scene, off.shape, "auto", [])
            n += 1
        except RawDataError:
            pass
    return n


def floor(src: Path, subset: str, workers: int) -> int:
    official = OfficialLabels(src)
    scenes = discover_scenes(src, subset)
    chunks = _chunks(scenes, workers)
    return sum(map_chunks(_read_chunk, [(official, c) for c in chunks], workers, False,
                          [len(c) for c in chunks], "floor"))


@click.command()
@click.argument("raw_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--scenes", default=300, show_default=True, help="Scenes to generate (without RAW_DIR).")
@click.option("--subset", default="kv2", show_default=True)
@click.option("--workers", type=int, default=None, help="[default: number of cores]")
@click.option("--repeats", default=3, show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the generated sample here (re-used when it is already there).")
def main(raw_dir: Path | None, scenes: int, subset: str, workers: int | None, repeats: int,
         work: Path | None) -> None:
    workers = workers or default_workers()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    with tempfile.TemporaryDirectory(prefix="bench_audit_") as tmp:
        if raw_dir is None:
            from sunrgbd_tools.synthetic import make_sample

            raw_dir = (work or Path(tmp)) / f"sample{scenes}"
            t0 = time.perf_counter()
            make_sample(raw_dir, scenes=scenes, seed=0, quirks=False, workers=workers)
            print(f"sample: {scenes} scenes at 530x730 in {raw_dir} ({time.perf_counter() - t0:.1f} s)")
        best = {"floor": float("inf"), "audit": float("inf")}
        n = audited = 0
        for r in range(repeats):
            t0 = time.perf_counter()
            n = floor(raw_dir, subset, workers)
            best["floor"] = min(best["floor"], time.perf_counter() - t0)
            out = Path(tmp) / f"audit{r}"
            t0 = time.perf_counter()
            res = run_audit(AuditConfig(src=str(raw_dir), out=str(out), subset=subset), workers=workers)
            best["audit"] = min(best["audit"], time.perf_counter() - t0)
            audited = res.audited
            shutil.rmtree(out)
        assert audited == n, (audited, n)
        f_sps, a_sps = n / best["floor"], n / best["audit"]
        print(f"scenes: {n} of {subset} in {raw_dir}, workers: {workers}, best of {repeats}")
        print(f"floor (read official seglabel + seg.mat/polygons only): {best['floor']:.2f} s, {f_sps:.1f} scenes/s")
        print(f"sunrgbd mapping audit (all outputs written):           {best['audit']:.2f} s, {a_sps:.1f} scenes/s")
        print(f"ratio audit/floor time: {best['audit'] / best['floor']:.3f}")
        print(f"extrapolated to the {KV2_FRAMES} kv2 frames: {KV2_FRAMES / a_sps:.0f} s (aim < 180 s)")


if __name__ == "__main__":
    main()
