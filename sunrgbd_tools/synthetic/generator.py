"""`sunrgbd sample`: a synthetic SUN RGB-D raw tree in the exact on-disk format.

Why: the real dataset is a 6+ GB download, so the converter, stats, downloader and
trainer are developed and tested against this generator. It writes what the official
SUNRGBD.zip and SUNRGBDtoolbox.zip extract to (see docs/contracts.md "Raw tree") and
plants the known defects of the real files (docs/synthetic.md lists them).

This module runs a sample: it claims the output folder, writes the scenes (in parallel,
resumable) and the toolbox, and records SAMPLE.json. What a scene is lives in plan
(geometry, furniture), how it looks in render, its files in writers and toolbox, and
the ground truth tests compare against in truth.

Everything is a pure function of (seed, scene index): scene content does not depend on
how many scenes are generated, and the same arguments give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cleantree.files import atomic_write_text, dumps_json
from sunrgbd_tools.parallel import imap_surviving, pool_workers, signal_name
from sunrgbd_tools.synthetic.plan import ScenePlan, plan_scene
from sunrgbd_tools.synthetic.sample_json import (
    GENERATOR_REVISION,
    KV2_SIZE,
    SAMPLE_FILE,
    SampleConflict,
    SampleInfo,
    SampleParams,
    SceneInfo,
)
from sunrgbd_tools.synthetic.toolbox import write_2dseg, write_allsplit, write_meta
from sunrgbd_tools.synthetic.truth import image_labels
from sunrgbd_tools.synthetic.writers import write_scene
from sunrgbd_tools.synthetic.zips import RAW_ZIPS


def scene_info(plan: ScenePlan, official_index: int, names: list[str] | None = None) -> SceneInfo:
    labels = (["seg"] if plan.has_seg else []) + (["polygons"] if plan.has_polygons else [])
    if names is None:
        names = image_labels(plan)[1]
    return SceneInfo(
        index=plan.index, key=plan.key, sensor=plan.sensor, split=plan.split,
        image=f"SUNRGBD/{plan.key}/image/{plan.frame}.jpg", size=tuple(plan.size),
        scene_type=plan.scene_type, labels=labels, quirks=list(plan.quirks), names=names,
        official_index=official_index,
        intrinsics=[round(float(v), 6) for v in plan.intrinsics.ravel()],
        extrinsics=[round(float(v), 6) for v in plan.extrinsics[-1][1].ravel()],
        extrinsics_files=[f"{s}.txt" for s, _ in plan.extrinsics], depth=plan.has_depth)


def _check_target(out: Path, params: SampleParams) -> None:
    if out.exists() and not out.is_dir():
        raise SampleConflict(f"{out}: exists and is not a folder")
    ours = [n for n in ("SUNRGBD", "SUNRGBDtoolbox", SAMPLE_FILE, *RAW_ZIPS) if (out / n).exists()]
    if not ours:
        return
    try:
        doc = json.loads((out / SAMPLE_FILE).read_text(encoding="utf-8"))
        prev = SampleInfo.from_json(doc).params
        revision = int(doc.get("generator", {}).get("revision", 1))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise SampleConflict(
            f"{out / ours[0]}: already exists and was not written by `sunrgbd sample` "
            f"(no readable {SAMPLE_FILE}); refusing to overwrite it") from None
    if prev != params:
        raise SampleConflict(
            f"{out / ours[0]}: already holds a sample made with different arguments "
            f"({_describe(prev)}); refusing to overwrite it, choose another --out")
    if revision != GENERATOR_REVISION:
        raise SampleConflict(
            f"{out / SAMPLE_FILE}: was written by generator revision {revision}, this is "
            f"revision {GENERATOR_REVISION} (its scenes differ); refusing to mix them, "
            f"choose another --out")


def _describe(p: SampleParams) -> str:
    return (f"--scenes {p.scenes} --seed {p.seed} --{'quirks' if p.quirks else 'no-quirks'} "
            f"--size {p.size[0]}x{p.size[1]}")


class SampleWorkerDied(Exception):
    """A worker process died writing a scene (twice: once in the pool, once alone); one line
    naming the scene. SAMPLE.json still says incomplete, so the same command resumes."""


def _write_one(args: tuple[str, SampleParams, int]) -> str:
    root, params, index = args
    return write_scene(Path(root), params, index)


def _worker_died(job: tuple[str, SampleParams, int], sig: int):
    root, params, index = job
    raise SampleWorkerDied(f"{Path(root) / 'SUNRGBD' / plan_scene(params, index).key}: worker died "
                           f"({signal_name(sig)}) while writing this scene; run the same command "
                           "again to resume")


def make_sample(out: Path, scenes: int = 40, seed: int = 0, quirks: bool = True,
                size: tuple[int, int] = KV2_SIZE, workers: int = 1,
                progress: Callable[[str], None] | None = None) -> SampleInfo:
    """Write the synthetic raw tree under `out` and return what SAMPLE.json says.

    Raises SampleConflict when `out` holds a tree that was not made with the same
    arguments (nothing is overwritten then), SampleWorkerDied when a worker process dies. Re-running with the same arguments resumes
    and produces identical bytes; the result does not depend on `workers`.
    """
    out = Path(out)
    params = SampleParams(scenes, seed, quirks, tuple(size))
    _check_target(out, params)
    out.mkdir(parents=True, exist_ok=True)
    # claim the folder first, so an interrupted run can be resumed with the same arguments
    atomic_write_text(out / SAMPLE_FILE, dumps_json(SampleInfo(params, [], complete=False).to_json()))
    jobs = [(str(out), params, i) for i in range(scenes)]
    if workers > 1 and scenes > 1:
        # a dead worker (a crash in a library, the OOM killer) ended the run with a
        # BrokenProcessPool traceback; now SampleWorkerDied names its scene
        for key in imap_surviving(_write_one, jobs, pool_workers(workers, scenes), died=_worker_died):
            if progress:
                progress(key)
    else:
        for j in jobs:
            key = _write_one(j)
            if progress:
                progress(key)
    plans = [plan_scene(params, i) for i in range(scenes)]
    write_allsplit(out, plans)
    write_meta(out, plans)
    names = write_2dseg(out, plans)
    info = SampleInfo(params, [scene_info(p, i + 1, n) for i, (p, n) in enumerate(zip(plans, names, strict=True))],
                      complete=True)
    atomic_write_text(out / SAMPLE_FILE, dumps_json(info.to_json()))
    return info
