"""Acceptance round on `segtrain run --resume` and `sweep` as a demanding user uses them: a
resume never trains under options other than the run's own while recording new ones, never
rewrites a finished run's config for fewer epochs, restarts a run killed in its first epoch,
and a moved run folder says where its data path came from. Each test failed on the code
before the fix."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from segtrain_cli import error_line, invoke, snapshot
from treebuilder import write_clean_tree

from segtrain import engine
from segtrain.checkpoint import load_checkpoint
from segtrain.config import TrainConfig
from segtrain.engine import train
from segtrain.utils import SegtrainError

TINY = ["--model-opt", "base_width=4", "--model-opt", "depth=2"]
FAST = ["--workers", 0, "--device", "cpu", "--augment", "none", "--batch-size", 2, *TINY]


def metrics(folder: Path) -> list[dict]:
    with open(folder / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in ("train_images_per_s", "epoch_time_s")}
                for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_clean_tree(tmp_path_factory.mktemp("acc") / "data", counts={"train": 4, "val": 2, "test": 1},
                            size=(32, 48))


def cfg_for(tree, out, **kw) -> TrainConfig:
    base = dict(model="unet_small", data=str(tree.root), out=str(out), model_options={"base_width": 4, "depth": 2},
                epochs=2, batch_size=2, lr=1e-2, workers=0, augment="none", scheduler="plateau", device="cpu")
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def done_run(tree, tmp_path_factory):
    """A finished 2-epoch run (never modified by the tests: they copy it)."""
    out = tmp_path_factory.mktemp("acc-run") / "run"
    assert train(cfg_for(tree, out), progress=False).epochs_completed == 2
    return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_resume_with_other_training_options_is_refused_and_changes_nothing(tree, done_run, tmp_path):
    """`--resume --lr 0.1` used to train on at the checkpoint's lr (the restored optimizer
    won) while config.yaml recorded 0.1; `--augment basic` or `--seed` changed what the rest
    of the run saw. Now one line names each differing option; nothing is written."""
    run = copy_run(done_run, tmp_path / "run")
    before = snapshot(run)
    r = invoke("run", "unet_small", "--out", run, "--resume", "--epochs", 3, "--lr", 0.1, "--augment", "basic",
               "--seed", 3)
    assert r.exit_code == 2
    line = error_line(r)
    assert f"{run / 'last.pt'}: --resume continues the run as it was trained" in line
    assert "--lr 0.1 (the run: 0.01)" in line and "--augment 'basic' (the run: 'none')" in line
    assert "--seed 3 (the run: 0)" in line and "--init-from" in line
    assert snapshot(run) == before
    with pytest.raises(SegtrainError, match="--loss 'wce'"):  # the library refuses it too
        train(cfg_for(tree, run, epochs=3, loss="wce"), resume=True, progress=False)
    assert snapshot(run) == before


def test_resume_may_change_where_and_how_fast_and_how_long(tree, done_run, tmp_path):
    """--epochs (larger), --early-stop, --workers, --device and a moved --data still resume,
    and the run equals one planned that way from the start."""
    moved = tmp_path / "moved-data"
    copy_run(tree.root, moved)
    run = copy_run(done_run, tmp_path / "run")
    r = invoke("run", "unet_small", "--out", run, "--resume", "--epochs", 3, "--early-stop", 0, "--workers", 0,
               "--device", "cpu", "--data", moved)
    assert r.exit_code == 0, r.output
    full = train(cfg_for(tree, tmp_path / "full", epochs=3), progress=False)
    assert full.epochs_completed == 3
    assert metrics(run) == metrics(tmp_path / "full")
    a, b = load_checkpoint(run / "last.pt")["model"], load_checkpoint(tmp_path / "full" / "last.pt")["model"]
    assert all(torch.equal(v, b[k]) for k, v in a.items())


def test_resume_with_fewer_epochs_than_trained_is_refused(done_run, tmp_path):
    """It used to print "already-complete: 2 epochs" and rewrite config.yaml with `epochs: 1`,
    so config.yaml no longer described the checkpoint beside it."""
    run = copy_run(done_run, tmp_path / "run")
    before = snapshot(run)
    r = invoke("run", "unet_small", "--out", run, "--resume", "--epochs", 1)
    assert r.exit_code == 2
    assert error_line(r) == (f"Error: {run / 'last.pt'}: the run has trained 2 epochs, more than --epochs 1; "
                             f"give --epochs 2 or more to resume it")
    assert snapshot(run) == before
    r = invoke("run", "unet_small", "--out", run, "--resume")  # its own --epochs: complete, as before
    assert r.exit_code == 0 and r.output.startswith("already-complete: 2 epochs")


def test_resume_of_a_run_stopped_in_its_first_epoch_starts_it_again(tree, tmp_path, monkeypatch, caplog):
    """Killed before its first checkpoint, a run has config.yaml and its marker but no last.pt:
    `--resume` (what a restart script always passes) said "last.pt: checkpoint not found".
    Now it trains from epoch 1 with the saved config, exactly as an uninterrupted run."""
    run = tmp_path / "run"
    save_epoch = engine._save_epoch

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "_save_epoch", killed)
    r = invoke("run", "unet_small", "--data", tree.root, "--out", run, "--epochs", 2, "--lr", 0.01, *FAST)
    assert r.exit_code == 1  # click's Abort on Ctrl-C
    assert (run / "config.yaml").is_file() and not (run / "last.pt").exists()
    monkeypatch.setattr(engine, "_save_epoch", save_epoch)
    caplog.set_level("INFO", logger="segtrain")
    r = invoke("run", "unet_small", "--out", run, "--resume")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("completed: 2 epochs")
    assert "no last.pt yet (the run stopped in its first epoch); starting it from epoch 1" in caplog.text
    full = tmp_path / "full"
    assert invoke("run", "unet_small", "--data", tree.root, "--out", full, "--epochs", 2, "--lr", 0.01,
                  *FAST).exit_code == 0
    assert metrics(run) == metrics(full)
    # a folder that is no run at all still has nothing to resume
    (tmp_path / "empty").mkdir()
    r = invoke("run", "unet_small", "--out", tmp_path / "empty", "--resume")
    assert r.exit_code == 2 and "nothing to resume" in error_line(r)


def test_resume_of_a_moved_run_says_where_the_data_path_came_from(tree, tmp_path, monkeypatch):
    """config.yaml keeps --data as typed; resumed from another folder, the relative path
    used to fail as "data: data folder not found" with no hint where it came from."""
    copy_run(tree.root, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert invoke("run", "unet_small", "--data", "data", "--out", "run", "--epochs", 1, *FAST).exit_code == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    r = invoke("run", "unet_small", "--out", "../run", "--resume", "--epochs", 2)
    assert r.exit_code == 2
    assert error_line(r) == ("Error: data: data folder not found (the `data` of ../run/config.yaml); "
                             "give --data DIR")
    r = invoke("run", "unet_small", "--out", "../run", "--resume", "--epochs", 2, "--data", "../data")
    assert r.exit_code == 0, r.output


def test_sweep_rerun_with_other_options_is_refused_before_anything_is_written(tree, tmp_path):
    """Re-running a sweep with another fixed option (here --augment basic) reported the old
    runs as "completed (reused)" under the new options and rewrote their config.yaml to say
    so. Now it stops before writing, naming the run and the option; the same options (and a
    larger --epochs) still resume and reuse."""
    sweep = tmp_path / "sweep"
    args = ["sweep", "unet_small", "--data", tree.root, "--out", sweep, "--lr", "1e-2,1e-3", "--epochs", 1,
            "--device", "cpu", "--workers", 0, "--batch-size", 2, *TINY]
    assert invoke(*args, "--augment", "none").exit_code == 0
    before = snapshot(sweep)
    r = invoke(*args, "--augment", "basic")
    assert r.exit_code == 2
    line = error_line(r)
    assert "01-unet_small-lr=0.01: this sweep run was trained with other options than given now" in line
    assert "--augment 'basic' (the run: 'none')" in line and "new --out" in line
    assert snapshot(sweep) == before
    r = invoke(*args, "--augment", "none")
    assert r.exit_code == 0 and "completed (reused)" in r.output
    # other model options: the runs' checkpoints would refuse them one by one, after sweep.csv
    # had been rewritten with an error row per run
    before = snapshot(sweep)
    other = [a if a != "base_width=4" else "base_width=8" for a in args]
    r = invoke(*other, "--augment", "none")
    assert r.exit_code == 2
    assert "{'base_width': 8, 'depth': 2} (the run: {'base_width': 4, 'depth': 2})" in error_line(r)
    assert snapshot(sweep) == before
    # fewer epochs than the runs have trained: refused up front too (run --resume refuses it)
    grown = [*args[:args.index("--epochs") + 1], 2, *args[args.index("--epochs") + 2:]]
    assert invoke(*grown, "--augment", "none").exit_code == 0
    trained = snapshot(sweep)
    r = invoke(*args, "--augment", "none")
    assert r.exit_code == 2 and "--epochs 1 (the run has trained 2)" in error_line(r)
    assert snapshot(sweep) == trained


@pytest.mark.parametrize("command", ["run", "bench"])
def test_a_batch_of_one_with_1x1_features_is_one_line_not_a_traceback(tree, tmp_path, command):
    """--batch-size 1 (or a train split of one image) at a small --size: the deepest features
    are 1x1 and PyTorch's BatchNorm raised "Expected more than 1 value per channel when
    training" as a traceback (exit 1), from `run` and from `bench`. Now one line says which
    flags to change, exit 2."""
    if command == "run":
        r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "run", "--epochs", 1,
                   "--batch-size", 1, "--size", "16x16", "--workers", 0, "--device", "cpu")
    else:
        r = invoke("bench", "--data", tree.root, "--model", "unet_small", "--size", "16x16", "--batch-size", 1,
                   "--steps", 1, "--windows", 1, "--warmup", 0, "--workers", 0, "--device", "cpu")
    assert r.exit_code == 2, r.output
    assert error_line(r) == ("Error: a training batch of 1 image of 16x16 reaches a BatchNorm layer as features "
                             "of shape [1, 256, 1, 1], one value per channel, which BatchNorm cannot train on; use "
                             "more images per batch (--batch-size 2 or more, with at least 2 training images) or "
                             "larger images (--size / --crop)")
    if command == "run":  # nothing was trained: the same --out starts again with a batch of 2
        r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "run", "--epochs", 1,
                   "--batch-size", 2, "--size", "16x16", "--workers", 0, "--device", "cpu")
        assert r.exit_code == 0, r.output


def test_models_refuses_a_class_count_below_one():
    """`segtrain models --num-classes -3` was a traceback from the head's constructor."""
    r = invoke("models", "--num-classes", -3)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "Invalid value for '--num-classes': -3 is not in the range x>=1" in r.output


def test_resume_keeps_the_environment_of_earlier_sessions(done_run, tmp_path):
    """environment.json was rewritten by every --resume, so the command line that started the
    run (and the machine of its first epochs) was lost. Now earlier sessions are kept, oldest
    first, under `earlier_sessions`; a fresh run writes none."""
    run = copy_run(done_run, tmp_path / "run")
    first = json.loads((run / "environment.json").read_text())
    assert "earlier_sessions" not in first
    assert invoke("run", "unet_small", "--out", run, "--resume", "--epochs", 3).exit_code == 0
    second = json.loads((run / "environment.json").read_text())
    assert second["earlier_sessions"] == [first]
    assert invoke("run", "unet_small", "--out", run, "--resume", "--epochs", 4).exit_code == 0
    third = json.loads((run / "environment.json").read_text())
    assert third["earlier_sessions"] == [first, {k: v for k, v in second.items() if k != "earlier_sessions"}]
    before = snapshot(run)  # a finished run resumed again trains nothing and records nothing
    r = invoke("run", "unet_small", "--out", run, "--resume", "--workers", 0)
    assert r.exit_code == 0 and r.output.startswith("already-complete: 4 epochs")
    assert {k: v for k, v in snapshot(run).items() if k != "train.log"} == {
        k: v for k, v in before.items() if k != "train.log"}


def test_a_resume_weights_as_the_run_did_when_the_trees_default_changed(tree, tmp_path):
    """A resume that leaves class_weights unset (library callers, sweep runs) took today's
    dataset.json default; it continues with the method the run was trained with."""
    data = tmp_path / "data"
    shutil.copytree(tree.root, data)
    doc = json.loads((data / "dataset.json").read_text())
    n = len({c["train_id"] for c in doc["classes"] if c["train_id"] != 255})
    doc.update(class_weights={"median-freq": [1.0] * n, "inverse": [2.0] * n}, class_weights_default="median-freq")
    (data / "dataset.json").write_text(json.dumps(doc))
    out = tmp_path / "run"
    train(cfg_for(tree, out, data=str(data), loss="wce", epochs=1), progress=False)
    assert load_checkpoint(out / "last.pt")["class_weights"]["method"] == "median-freq"
    doc["class_weights_default"] = "inverse"
    (data / "dataset.json").write_text(json.dumps(doc))
    train(cfg_for(tree, out, data=str(data), loss="wce", epochs=2), resume=True, progress=False)
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["class_weights"] == {"method": "median-freq", "values": [1.0] * n}


def test_resume_may_move_the_augmentation_between_loader_and_device(done_run, tree, tmp_path):
    """--augment-on only chooses where the same --augment runs (measured equivalent): a resume
    on a machine with fewer cores per GPU may move it."""
    out = copy_run(done_run, tmp_path / "run")
    train(cfg_for(tree, out, epochs=3, augment_on="device"), resume=True, progress=False)
    assert load_checkpoint(out / "last.pt")["epoch"] == 3


def test_the_batchnorm_message_is_recognised_as_torch_compile_raises_it():
    """Under --compile, Dynamo wraps BatchNorm's ValueError in a RuntimeError with more lines;
    under DDP the hint counts the global batch."""
    text = ("Failed running call_function <function batch_norm>(*(FakeTensor(..., size=(1, 16, 1, 1)),)):\n"
            "Expected more than 1 value per channel when training, got input size torch.Size([1, 16, 1, 1])\n\n"
            "from user code: ...")
    err = engine.batchnorm_batch_error(RuntimeError(text), torch.zeros(1, 3, 16, 16), world=2)
    assert isinstance(err, SegtrainError) and "\n" not in str(err)
    assert "features of shape [1, 16, 1, 1]" in str(err) and "--batch-size 4 or more" in str(err)
    assert engine.batchnorm_batch_error(RuntimeError("CUDA out of memory"), torch.zeros(1, 3, 4, 4)) is None
