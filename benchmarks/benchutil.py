"""Helpers the benchmark scripts share (run them as `python benchmarks/<name>.py`, which puts
this folder on sys.path)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path


def best(fn, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls of fn()."""
    fastest = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        fastest = min(fastest, time.perf_counter() - t0)
    return fastest


def timed_convert(raw: Path, out: Path, workers: int, **options) -> tuple[float, int]:
    """(seconds, samples written) of one `sunrgbd convert` into a fresh `out`."""
    from sunrgbd_tools.convert.pipeline import ConvertConfig, convert

    if out.exists():
        shutil.rmtree(out)
    t = time.perf_counter()
    s = convert(ConvertConfig(src=str(raw), out=str(out), **options), workers=workers)
    return time.perf_counter() - t, s.samples
