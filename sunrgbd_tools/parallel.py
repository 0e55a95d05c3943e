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
from collections.abc import Iterator
from functools import partial


def pool_context():
    """The multiprocessing context every per-sample pool in this package uses."""
    return mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")


# Per worker process: (a descriptor on os.devnull, a text stream on the stderr the process
# started with). Opened by the first task, kept for the process's life (`_quietly`).
_QUIET: tuple[int, object] | None = None


def _quietly(fn, task):
    """fn(task) in a pool worker with file descriptor 2 on os.devnull: what C libraries write
    there themselves (libpng's `libpng error: IDAT: CRC error`, libjpeg's `Corrupt JPEG data: …`,
    OpenCV's `[ WARN:0@…]`) is dropped; it named no file and the batch reports the file in a
    line of its own. Python's own writes (sys.stderr: warnings, a traceback printed in the child)
    go to the real stderr through a stream opened once per process, and so does faulthandler's
    dump of a crash when it is enabled (PYTHONFAULTHANDLER=1, -X faulthandler); what a C library
    prints as it aborts (glibc's `free(): invalid pointer`) is lost, and the parent still names the
    sample with the signal. Never called in the main process: its progress bars write fd 2."""
    global _QUIET
    if _QUIET is None:
        import faulthandler

        try:
            real = os.dup(2)
        except OSError:  # no stderr at all (a daemon's closed fd 2): nothing to keep quiet
            return fn(task)
        ours = os.fdopen(real, "w", buffering=1, errors="backslashreplace",
                         encoding=getattr(sys.stderr, "encoding", None) or "utf-8")
        if faulthandler.is_enabled():
            faulthandler.enable(file=ours, all_threads=True)
        _QUIET = (os.open(os.devnull, os.O_WRONLY), ours)
    devnull, ours = _QUIET
    before = sys.stderr
    if before is not None:
        before.flush()  # Python's pending text goes where it was going
    os.dup2(devnull, 2)
    sys.stderr = ours
    try:
        return fn(task)
    finally:
        ours.flush()
        sys.stderr = before
        os.dup2(ours.fileno(), 2)


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


def map_chunks(fn, shared, chunks: list[list], workers: int, progress: bool, desc: str,
               died=None) -> Iterator:
    """Yield fn((shared, chunk)) for each chunk (in any order) over a pool of `workers`
    processes (imap_surviving), with a tqdm bar on stderr counting items (stats, verify, the
    audit and their benchmark floors).

    A chunk whose worker dies, and dies again when run alone, is split: each of its items runs
    alone, the others yield fn((shared, [item])) and the one that kills its process yields
    died(item, signal number), so the report names that sample and the batch goes on
    (multiprocessing.Pool lost the chunk and waited for it forever)."""
    from tqdm import tqdm

    bar = tqdm(total=sum(map(len, chunks)), unit="img", desc=desc, disable=not progress, leave=False)
    workers = pool_workers(workers, len(chunks))
    it = None
    try:  # one worker too runs in a child: a crash there costs its sample, not the command
        it = imap_surviving(_chunk_call, [(fn, shared, c) for c in chunks], workers,
                            initializer=_init_worker, died=partial(_split_chunk, died, workers))
        for n, results in it:
            yield from results
            bar.update(n)
    finally:
        if it is not None:
            it.close()  # ends the pool's workers now, also when the caller stops early
        bar.close()


def _chunk_call(task) -> tuple[int, list]:
    fn, shared, chunk = task
    return len(chunk), [fn((shared, chunk))]


def _split_chunk(died, workers: int, task, sig: int) -> tuple[int, list]:
    """A chunk whose process died twice: each item alone, so the one that kills names itself."""
    fn, shared, chunk = task
    if len(chunk) == 1:
        return 1, [_died(died, chunk[0], sig)]
    out = []
    for _, res in _run_each_alone(pool_context(), _chunk_call, [(fn, shared, [item]) for item in chunk],
                                  _init_worker, (), lambda t, s: (1, [_died(died, t[2][0], s)]), workers):
        out.extend(res)
    return len(chunk), out


def _died(died, item, sig: int):
    if died is None:
        raise RuntimeError(f"a worker process died ({signal_name(sig)})")
    return died(item, sig)


def signal_name(sig: int) -> str:
    """`signal 11, SIGSEGV` for a process killed by signal 11; `exit status N` for -N."""
    import signal

    if sig > 0:
        try:
            return f"signal {sig}, {signal.Signals(sig).name}"
        except ValueError:
            return f"signal {sig}"
    return f"exit status {-sig}"


def imap_surviving(fn, tasks: list, workers: int, initializer=None, initargs=(), died=None) -> Iterator:
    """Yield fn(task) for each task over `workers` processes, in any order, surviving a worker
    that dies (a segmentation fault in a library, the kernel's OOM killer): multiprocessing.Pool
    loses that task and waits for it forever, and a ProcessPoolExecutor breaks for every task.

    When the pool breaks, each task that was in flight is run again alone in its own process
    (up to `workers` at once); one whose process dies again yields died(task, signal number),
    the others their results, and a fresh pool takes the remaining tasks. An exception fn
    raises is raised here. One worker is a child process too: in the caller's own process the
    task that crashes would take the command with it. Each task runs `_quietly`: what C
    libraries print to fd 2 is dropped, Python's own stderr is kept."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = pool_context()
    todo = list(reversed(tasks))  # pop() takes them in order
    while todo:
        ex = ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs)
        running: dict = {}
        broken = False
        try:
            while todo or running:
                while todo and len(running) < 2 * workers:  # bounded: few suspects when one dies
                    try:
                        running[ex.submit(_quietly, fn, todo[-1])] = todo[-1]
                    except BrokenProcessPool:
                        broken = True
                        break
                    todo.pop()
                if broken:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in [f for f in running if f in done]:  # submission order, not the set's
                    if isinstance(fut.exception(), BrokenProcessPool):
                        broken = True
                        continue
                    running.pop(fut)
                    yield fut.result()
                if broken:
                    break
        finally:
            _stop(ex)
        # the pool broke: finished ones stand, the rest run again, each alone in its own process
        # (up to `workers` at once: most of them never started, or were only unlucky)
        suspects = [task for fut, task in running.items() if not _succeeded(fut)]
        again = iter(_run_each_alone(ctx, fn, suspects, initializer, initargs, died, workers))
        for fut in running:  # submission order: deterministic for the same finished set
            if _succeeded(fut):
                yield fut.result()
            else:
                yield next(again)


def _succeeded(fut) -> bool:
    """A future that finished with a result (not cancelled, not broken with its pool)."""
    return fut.done() and not fut.cancelled() and fut.exception() is None


def _stop(ex) -> None:
    """Shut a pool down now: cancel what has not started, end the workers (as Pool.terminate).

    ProcessPoolExecutor has no public way to end busy workers before Python 3.14's
    `terminate_workers()`: shutdown(wait=False) lets a running task (a scene stuck in a library,
    or one the caller no longer wants) run on, so we read its private `_processes` (a dict
    pid -> Process on 3.8-3.13); without it we fall back to that plain shutdown."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join()


def _run_each_alone(ctx, fn, tasks: list, initializer, initargs, died, workers: int) -> list:
    """fn(task) for each task, each in a process of its own (up to `workers` at a time), in
    task order; a task whose process dies gives died(task, signal number), or raises
    RuntimeError without `died`. The first exception fn raised (in task order) is raised."""
    from multiprocessing.connection import wait

    outcome: list = [None] * len(tasks)
    waiting = list(reversed(range(len(tasks))))
    live: dict = {}  # the read end of each child's pipe -> (task index, process)
    try:
        while waiting or live:
            while waiting and len(live) < max(1, workers):
                i = waiting.pop()
                recv, send = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_alone, args=(send, fn, tasks[i], initializer, initargs))
                try:
                    p.start()
                except BaseException:
                    recv.close()
                    raise
                finally:
                    send.close()
                live[recv] = (i, p)
            for recv in wait(list(live)):
                i, p = live[recv]  # stays in `live` until joined: the finally below ends it otherwise
                try:
                    outcome[i] = recv.recv()
                except EOFError:  # it died before sending anything
                    outcome[i] = None
                p.join()
                del live[recv]
                recv.close()
                if outcome[i] is None:
                    outcome[i] = ("died", -(p.exitcode or 0))
    finally:  # interrupted (Ctrl-C) or failed: end the children still running, leave none behind
        for recv, (_, p) in live.items():
            recv.close()
            if p.is_alive():
                p.terminate()
            p.join()
    out = []
    for task, (kind, value) in zip(tasks, outcome, strict=True):
        if kind == "error":
            raise value
        if kind == "died":
            value = _died(died, task, value)
        out.append(value)
    return out


def _alone(send, fn, task, initializer, initargs) -> None:
    try:  # an initializer that fails is an error to raise, not a dead worker
        if initializer is not None:
            initializer(*initargs)
        out = ("result", _quietly(fn, task))
    except Exception as e:
        out = ("error", e)
    try:
        send.send(out)
    except Exception as e:  # a result or exception pickle cannot carry: say what it was, not "exit 1"
        send.send(("error", RuntimeError(repr(out[1] if out[0] == "error" else e))))
    send.close()
