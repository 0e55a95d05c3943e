"""verify, stats and `mapping audit` survive a worker process that dies on one sample (a
segmentation fault inside a library, the kernel's OOM killer): multiprocessing.Pool lost the task
and the command waited for it forever. Now the sample is reported as a problem naming it, the rest
are processed, and the exit code is that of any bad sample. docs/robustness.md."""

from __future__ import annotations

import signal

import pytest
from click.testing import CliRunner
from treebuilder import write_clean_tree
from workerdeath import (
    DeadlyScene,
    DeadlyStr,
    interrupt_then_sleep,
    lengths,
    meet,
    unpicklable_outcome,
    within,
)

import sunrgbd_tools.convert.verify as verify_mod
import sunrgbd_tools.labels.audit as audit_mod
import sunrgbd_tools.stats as stats_mod
from sunrgbd_tools.cli.main import main
from sunrgbd_tools.parallel import imap_surviving, map_chunks
from sunrgbd_tools.synthetic.generator import make_sample

pytestmark = pytest.mark.filterwarnings("ignore::sunrgbd_tools.stats.AbsentClassWarning")


def _cli(*args):
    return within(lambda: CliRunner().invoke(main, [*map(str, args)]))


@pytest.mark.parametrize("workers", [2, 1])  # one worker runs in a child too, not in this process
def test_map_chunks_names_the_item_that_kills_its_worker(workers):
    chunks = [["a", "bb"], ["ccc", DeadlyStr("dddd"), "eeeee"], ["ffffff"]]
    died = []
    got = within(lambda: sorted(map_chunks(lengths, "x", chunks, workers, False, "t",
                                            died=lambda item, sig: died.append((item, sig)) or [(f"dead {item}", -1)])))
    assert died == [("dddd", int(signal.SIGSEGV))]
    # the chunk that held it was split: its other items still give their results
    assert got == sorted([[("xa", 1), ("xbb", 2)], [("xccc", 3)], [("dead dddd", -1)], [("xeeeee", 5)], [("xffffff", 6)]])
    with pytest.raises(RuntimeError, match=r"worker process died \(signal 11, SIGSEGV\)"):
        within(lambda: list(map_chunks(lengths, "x", chunks, workers, False, "t")))


@pytest.mark.parametrize("workers", [2, 1])
def test_verify_reports_the_sample_whose_worker_died(tmp_path, monkeypatch, workers):
    root = tmp_path / "clean"
    write_clean_tree(root, counts={"train": 10, "val": 2})
    res = _cli("verify", root, "--workers", "2", "--no-progress")
    assert res.exit_code == 0 and "12 samples OK" in res.output, res.output

    real = verify_mod.read_manifest
    victim = {}

    def rows_with_a_deadly_one(root, *a, **kw):
        rows = real(root, *a, **kw)
        victim["id"] = rows[5]["id"]
        rows[5]["id"] = DeadlyStr(rows[5]["id"])
        return rows

    monkeypatch.setattr(verify_mod, "read_manifest", rows_with_a_deadly_one)
    res = _cli("verify", root, "--workers", workers, "--no-progress")
    line = f"{root / 'manifest.csv'}: sample {victim['id']}: worker died (signal 11, SIGSEGV) while checking it"
    assert res.exit_code == 1, res.output
    assert res.output.splitlines() == [line, f"{root}: 12 samples, 1 problem(s)"]


@pytest.mark.parametrize("workers", [2, 1])
def test_stats_reports_the_sample_whose_worker_died(tmp_path, monkeypatch, workers):
    root = tmp_path / "clean"
    write_clean_tree(root, counts={"train": 20, "val": 2})
    real = stats_mod.sample_files
    victim = {}

    def files_with_a_deadly_one(tree):
        files = real(tree)
        image, label, depth = files[9]
        files[9] = (image, DeadlyStr(label, signal.SIGKILL), depth)  # as the OOM killer would
        victim["label"] = label
        return files

    monkeypatch.setattr(stats_mod, "sample_files", files_with_a_deadly_one)
    res = _cli("stats", root, "--workers", workers, "--no-progress")
    line = f"problem: {root / victim['label']}: worker died (signal 9, SIGKILL) while reading its sample (sample skipped)"
    assert res.exit_code == 0, res.output
    assert line in res.output.splitlines() and "1 problem(s) reported, 1 sample(s) skipped" in res.output

    res = _cli("stats", root, "--workers", workers, "--no-progress", "--strict")  # recomputed: a sample was skipped
    assert res.exit_code == 1 and line in res.output.splitlines(), res.output

    monkeypatch.setattr(stats_mod, "sample_files", real)  # readable again: the re-run counts all 20
    assert within(lambda: stats_mod.run_stats(root, stats_mod.StatsConfig(workers=2))).stats["samples"] == {
        "split": 20, "used": 20, "skipped": 0}


@pytest.mark.parametrize("workers", [2, 1])
def test_audit_reports_the_scene_whose_worker_died(tmp_path, monkeypatch, workers):
    root = tmp_path / "raw"
    make_sample(root, scenes=6, seed=1, quirks=False, size=(60, 80))
    real = audit_mod.discover
    victim = {}

    def discover_with_a_deadly_scene(src, subset):
        found = real(src, subset)
        s = found.scenes[2]
        found.scenes[2] = victim["scene"] = DeadlyScene(s.key, s.path)
        return found

    monkeypatch.setattr(audit_mod, "discover", discover_with_a_deadly_scene)
    res = _cli("mapping", "audit", "--src", root, "--out", tmp_path / "a", "--workers", workers, "--no-progress")
    line = f"problem: {victim['scene'].path}: worker died (signal 11, SIGSEGV) while auditing it (scene skipped)"
    assert res.exit_code == 0 and line in res.output.splitlines(), res.output
    result = within(lambda: audit_mod.run_audit(audit_mod.AuditConfig(src=str(root), out=str(tmp_path / "b")),
                                                 workers=workers, write=False))
    assert result.skipped == 1 and result.audited == result.scenes - 1 > 0
    res = _cli("mapping", "audit", "--src", root, "--out", tmp_path / "c", "--workers", workers, "--no-progress", "--strict")
    assert res.exit_code == 1 and line in res.output.splitlines(), res.output


def test_tasks_in_flight_when_the_pool_breaks_run_again_side_by_side(tmp_path):
    """After a death every task in flight runs again alone, most of them never started: they
    ran one after another, each paying a process start; now up to `workers` at once."""
    tasks = [DeadlyStr("a"), (str(tmp_path), "b", "c", 20.0), (str(tmp_path), "c", "b", 20.0)]
    died = []
    got = within(lambda: list(imap_surviving(_meet_or_name, tasks, 2, died=lambda t, s: died.append(t) or "dead")))
    assert died == ["a"] and got == ["dead", True, True]  # b and c were alive at the same time


def _meet_or_name(task):
    return task if isinstance(task, str) else meet(task)


@pytest.mark.parametrize("what", ["result", "error"])
def test_an_unpicklable_outcome_of_a_task_run_alone_is_its_error_not_a_death(what):
    """A result or exception pickle cannot carry back made the lone child exit 1, reported as
    "worker died (exit status 1)"; now the real error is raised."""
    died = []
    pattern = r"PicklingError|Can't pickle" if what == "result" else r"ValueError\(<function"
    with pytest.raises(RuntimeError, match=pattern):  # a death first, so `what` runs alone
        within(lambda: list(imap_surviving(unpicklable_outcome, [DeadlyStr("x"), what], 1,
                                            died=lambda t, s: died.append(t))))
    assert died == ["x"]


def test_an_interrupted_rerun_leaves_no_child_running():
    """Ctrl-C while a task ran alone left its child running (the interrupted parent then
    waited for it at exit); now the child is ended and joined."""
    import multiprocessing as mp
    import os

    before = set(mp.active_children())
    with pytest.raises(KeyboardInterrupt):  # the lone child sends this process SIGINT, then sleeps
        list(imap_surviving(interrupt_then_sleep, [DeadlyStr("x"), (os.getpid(), 120.0)], 1,
                            died=lambda t, s: None))
    assert set(mp.active_children()) <= before
