"""A scene that kills the pool worker converting it (tests of convert surviving a dead worker).

Workers start from a forkserver or spawn, so a monkeypatch in the test process never reaches
them; the scene itself carries the fault: reading its `path` in any process other than the one
that made it sends that process `sig`, as a segfault inside scipy or the OOM killer would."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from sunrgbd_tools.raw.scenes import SceneRef


def within(fn, seconds: float = 300):
    """fn() in a thread: a pool that waits forever for a dead worker's task fails the test
    instead of hanging it."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 (handed to the test)
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still waiting after {seconds} s (a dead worker's task lost)"
    if "error" in out:
        raise out["error"]
    return out["value"]


class DeadlyScene(SceneRef):
    """A SceneRef in the test process; a dead worker in the pool."""

    def __init__(self, key: str, path: Path, sig: int = signal.SIGSEGV):
        super().__init__(key, path)
        object.__setattr__(self, "_owner", os.getpid())
        object.__setattr__(self, "_sig", int(sig))

    def __getattribute__(self, name):
        if name == "path" and os.getpid() != object.__getattribute__(self, "_owner"):
            os.kill(os.getpid(), object.__getattribute__(self, "_sig"))
        return object.__getattribute__(self, name)


class FaultyScene(SceneRef):
    """A SceneRef in the test process; in a worker that converts it, reading its `path` raises
    `error` (a full disk, a Ctrl-C): what a monkeypatch in the test process cannot reach."""

    def __init__(self, key: str, path: Path, error: BaseException):
        super().__init__(key, path)
        object.__setattr__(self, "_owner", os.getpid())
        object.__setattr__(self, "_error", error)

    def __getattribute__(self, name):
        if name == "path" and os.getpid() != object.__getattribute__(self, "_owner"):
            raise object.__getattribute__(self, "_error")
        return object.__getattribute__(self, name)


def _die_unless_in(owner: int, sig: int, value: str) -> str:
    if os.getpid() != owner:
        os.kill(os.getpid(), sig)
    return value


class DeadlyStr(str):
    """A str in the test process; unpickled in any other process (a pool worker taking the task
    that holds it), it kills that process with `sig`."""

    def __new__(cls, value: str, sig: int = signal.SIGSEGV):
        s = super().__new__(cls, value)
        s._owner, s._sig = os.getpid(), int(sig)
        return s

    def __reduce__(self):
        return _die_unless_in, (self._owner, self._sig, str(self))


def lengths(task) -> list[tuple[str, int]]:
    """A chunk function for parallel.map_chunks: (prefix + item, its length) per item."""
    prefix, chunk = task
    return [(prefix + str(item), len(item)) for item in chunk]


def unpicklable_outcome(task: str):
    """A task function whose result ("result") or exception ("error") pickle cannot carry back."""
    if task == "result":
        return lambda: 0
    raise ValueError(lambda: 0)


def interrupt_then_sleep(task: tuple[int, float]) -> None:
    """Send Ctrl-C's SIGINT to process `pid` (the test), then sleep: a child still busy when
    its parent is interrupted."""
    import time

    pid, seconds = task
    os.kill(pid, signal.SIGINT)
    time.sleep(seconds)


def meet(task: tuple[str, str, str, float]) -> bool:
    """True when the process running task `me` saw the one running `other` alive at the same
    time (each holds a lock on its own file while it runs; a "met" file keeps the sighting);
    False after `seconds` alone."""
    import fcntl
    import time

    folder, me, other, seconds = task
    mine = open(Path(folder) / f"{me}.lock", "w")  # noqa: SIM115 (held, and locked, until this process ends)
    fcntl.flock(mine, fcntl.LOCK_EX)
    met = Path(folder) / "met"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if met.exists():
            return True
        with open(Path(folder) / f"{other}.lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # `other` holds it: running now
                met.touch()
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
        time.sleep(0.01)
    return False


def write_scene_or_die(job) -> str:
    """synthetic.generator._write_one, but the process writing scene index 3 gets SIGSEGV."""
    from sunrgbd_tools.synthetic.generator import _write_one

    if job[2] == 3:
        os.kill(os.getpid(), signal.SIGSEGV)
    return _write_one(job)
