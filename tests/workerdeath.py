"""A scene that kills the pool worker converting it (tests of convert surviving a dead worker).

Workers start from a forkserver or spawn, so a monkeypatch in the test process never reaches
them; the scene itself carries the fault: reading its `path` in any process other than the one
that made it sends that process `sig`, as a segfault inside scipy or the OOM killer would."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from sunrgbd_tools.raw.scenes import SceneRef


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
