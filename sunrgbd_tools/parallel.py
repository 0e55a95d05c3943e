"""Process pools: how many workers by default, and pools that stay safe once OpenCV or
h5py have started threads. Every per-sample step (convert, verify, stats, audit, sample) uses it.

Forking a process whose libraries run thread pools can deadlock the child: we saw a
forked convert worker hang forever in `cv2.setNumThreads` after the parent had used
OpenCV. Every pool therefore starts its workers from a clean forkserver (spawn where there
is none), which is also Python's default from 3.14.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Iterable


def pool_context():
    """The multiprocessing context every per-sample pool in this package uses."""
    return mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already; cv2's own threads would contend


def default_workers() -> int:
    """The cores this process may run on (CPU affinity: taskset, containers), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def pool_workers(workers: int | None, tasks: int) -> int:
    """Processes to start for `tasks` pieces of work: the request (default: the cores), never more
    than there are tasks. Each worker imports numpy and OpenCV (~0.3 s of CPU and tens of MB), so
    `--workers 1000` over 26 scenes once started 1000 of them and ran for minutes."""
    return max(1, min(workers or default_workers(), tasks))


def progress_bar(desc: str, unit: str = "scene", **opts):
    """The `progress(iterable, total)` callback the per-sample loops take: a tqdm bar on stderr
    (one wrapper for convert, verify, fetch and mapping check; `opts` go to tqdm)."""
    from tqdm import tqdm

    def wrap(it, total):
        return tqdm(it, total=total, desc=desc, unit=unit, file=sys.stderr, **opts)

    return wrap


def map_chunks(fn, tasks: list, workers: int, progress: bool, sizes: list[int], desc: str) -> Iterable:
    """Yield fn(task) for each task (in any order) over a pool of `workers` processes,
    with a tqdm bar on stderr counting samples (stats, the audit and their benchmark floors)."""
    from tqdm import tqdm

    bar = tqdm(total=sum(sizes), unit="img", desc=desc, disable=not progress, leave=False)
    workers = pool_workers(workers, len(tasks))
    try:
        if workers == 1:
            for task, n in zip(tasks, sizes, strict=True):
                yield fn(task)
                bar.update(n)
            return

        ctx = pool_context()
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            for i, res in pool.imap_unordered(_indexed, [(fn, i, t) for i, t in enumerate(tasks)]):
                yield res
                bar.update(sizes[i])
    finally:
        bar.close()


def _indexed(arg):
    fn, i, task = arg
    return i, fn(task)
