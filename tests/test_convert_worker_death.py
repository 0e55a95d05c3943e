"""convert survives a worker process that dies on one scene (a segmentation fault inside a
library, the kernel's OOM killer): multiprocessing.Pool lost the task and convert waited for it
forever. Now the scene is reported and skipped, the rest converted, and a re-run finishes it.
docs/robustness.md."""

from __future__ import annotations

import signal

import pytest
from test_convert import _cfg, _tree_bytes, build_raw
from workerdeath import DeadlyScene, within

import sunrgbd_tools.convert.pipeline as convert_mod
from cleantree.paths import PROBLEMS_FILE
from sunrgbd_tools.convert.pipeline import convert


def _convert_within(cfg, workers: int, seconds: float = 300):
    """convert in a thread: a pool that waits forever fails the test instead of hanging it."""
    return within(lambda: convert(cfg, workers=workers), seconds)


@pytest.mark.parametrize("sig, workers", [(signal.SIGSEGV, 2), (signal.SIGKILL, 2), (signal.SIGSEGV, 1)])
def test_a_dead_worker_costs_its_scene_only(tmp_path, monkeypatch, sig, workers):
    root = tmp_path / "raw"
    build_raw(root, n_kv2=4)
    full = _convert_within(_cfg(root, tmp_path / "full", size=(30, 40)), workers=1)
    assert full.samples == 4  # the default subset, kv2

    real = convert_mod.discover
    victim = {}

    def discover_with_a_deadly_scene(src, subset):
        found = real(src, subset)
        s = found.scenes[1]
        found.scenes[1] = victim["scene"] = DeadlyScene(s.key, s.path, sig)
        return found

    monkeypatch.setattr(convert_mod, "discover", discover_with_a_deadly_scene)
    out = tmp_path / "out"
    s = _convert_within(_cfg(root, out, size=(30, 40)), workers=workers)  # --workers 1 is protected too
    name = signal.Signals(sig).name
    line = f"{victim['scene'].path}: worker died (signal {int(sig)}, {name}) while converting it (scene skipped)"
    assert s.samples == 3 and s.skipped == 1 and line in s.problems, s.problems
    assert line in (out / PROBLEMS_FILE).read_text(encoding="utf-8").splitlines()

    # the re-run has one scene left, so one worker: the scene that still kills is reported again
    # (with one worker run in-process, it killed convert itself and no manifest was written)
    s = _convert_within(_cfg(root, out, size=(30, 40)), workers=2)
    assert s.resumed == 3 and s.samples == 3 and s.skipped == 1 and s.problems == [line], s.problems
    assert line in (out / PROBLEMS_FILE).read_text(encoding="utf-8").splitlines()

    monkeypatch.setattr(convert_mod, "discover", real)  # the scene is readable again: the re-run finishes
    again = _convert_within(_cfg(root, out, size=(30, 40)), workers=2)
    assert again.resumed == 3 and again.samples == 4 and not again.problems
    a, b = _tree_bytes(out), _tree_bytes(tmp_path / "full")
    assert a.pop("dataset.json").replace(b"/out", b"/full") == b.pop("dataset.json")  # it records --out
    assert a == b
