"""Benchmark the cost of `parallel._quietly` (fd 2 on os.devnull around each pool task, so C
libraries' own lines stay off the console) against the same call without it.

It runs once per task (a chunk of 8 samples in stats, 4 in verify, a scene in convert), in the
worker process; here in one process, best of `--repeats`:

    python benchmarks/bench_quiet.py                      # 20,000 empty tasks
    python benchmarks/bench_quiet.py -n 50000 --repeats 5
"""

from __future__ import annotations

import shlex
import sys
import time

import click

from sunrgbd_tools.parallel import _quietly


def _noop(task):
    return task


def _best(fn, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, time.perf_counter() - t)
    return best / n


@click.command()
@click.option("-n", "tasks", default=20000, show_default=True, help="Tasks per timing.")
@click.option("--repeats", default=3, show_default=True)
def main(tasks: int, repeats: int) -> None:
    _quietly(_noop, 0)  # opens os.devnull and the stderr stream once, as a worker's first task does
    plain = _best(_noop, tasks, repeats)
    quiet = _best(lambda i: _quietly(_noop, i), tasks, repeats)
    print(f"command: python benchmarks/bench_quiet.py {shlex.join(sys.argv[1:])}".rstrip())
    print(f"plain call: {plain * 1e6:.2f} us/task")
    print(f"_quietly:   {quiet * 1e6:.2f} us/task")
    print(f"cost of the redirection: {(quiet - plain) * 1e6:.2f} us per task")


if __name__ == "__main__":
    main()
