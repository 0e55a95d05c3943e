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
