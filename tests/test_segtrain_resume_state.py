"""--resume loose ends: a finished (early-stopped) run resumed again writes nothing, and a
resumed run optimises the loss it was trained with (the class-weight values it saved, not
whatever dataset.json holds today, and config.yaml says so). The tests that describe a bug
failed on the code before its fix; the "more patience trains on" and "old checkpoints read
dataset.json" ones guard behaviour that already worked."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from treebuilder import write_clean_tree
from valscores import pin_val_miou

from segtrain import engine
from segtrain.checkpoint import load_checkpoint, save_checkpoint
from segtrain.cli import main
from segtrain.config import TrainConfig
from segtrain.engine import train

TINY = {"base_width": 4, "depth": 2}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_clean_tree(tmp_path_factory.mktemp("resume-state") / "data",
                            counts={"train": 4, "val": 2, "test": 1}, size=(32, 48))


def cfg_for(data, out, **kw) -> TrainConfig:
    base = dict(model="unet_small", data=str(data), out=str(out), model_options=dict(TINY), epochs=2,
                batch_size=2, lr=1e-2, workers=0, augment="none", scheduler="plateau", device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def state(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder`: its bytes and its modification time (ns)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_untouched_but_the_log(before: dict, after: dict) -> None:
    """Same files, same bytes, same mtimes; train.log only grew (this session's lines)."""
    assert sorted(after) == sorted(before)
    for name, (data, mtime) in before.items():
        if name == "train.log":
            assert after[name][0].startswith(data)
        else:
            assert after[name] == (data, mtime), name


@pytest.fixture(scope="module")
def stopped_run(tree, tmp_path_factory):
    """A run early-stopped at epoch 2 of 6, its val mIoU pinned (never modified by the tests:
    they copy it)."""
    out = tmp_path_factory.mktemp("early") / "run"
    with pytest.MonkeyPatch.context() as mp:
        pin_val_miou(mp, [0.5, 0.4])
        res = train(cfg_for(tree.root, out, epochs=6, lr=1e-9, early_stop=1, scheduler="none"), progress=False)
    assert res.stopped == "early-stop" and res.epochs_completed == 2
    return out


def test_an_early_stopped_run_resumed_again_writes_nothing(tree, stopped_run, tmp_path):
    """Its re-resume appended an `earlier_sessions` entry to environment.json and rewrote
    config.yaml (and started the loader's workers) though it trained nothing."""
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    before = state(run)
    r = CliRunner().invoke(main, ["run", "unet_small", "--out", str(run), "--resume"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("early-stop: 2 epochs"), r.output
    assert_untouched_but_the_log(before, state(run))
    res = train(cfg_for(tree.root, run, epochs=6, lr=1e-9, early_stop=1, scheduler="none"), resume=True,
                progress=False)  # the library too, and with a larger --epochs the run is still over
    assert (res.stopped, res.epochs_completed, res.best_epoch) == ("early-stop", 2, 1)
    res = train(cfg_for(tree.root, run, epochs=8, lr=1e-9, early_stop=1, scheduler="none"), resume=True,
                progress=False)
    assert res.stopped == "early-stop" and res.epochs_completed == 2
    assert_untouched_but_the_log(before, state(run))
    assert "early stop: no val mIoU improvement for 1 epochs" in (run / "train.log").read_text()


def test_an_early_stopped_run_resumed_with_more_patience_trains_on(tree, stopped_run, tmp_path):
    """--early-stop may change on --resume: with more patience the run is not over."""
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    first = json.loads((run / "environment.json").read_text())
    res = train(cfg_for(tree.root, run, epochs=3, lr=1e-9, early_stop=0, scheduler="none"), resume=True,
                progress=False)
    assert res.stopped == "completed" and res.epochs_completed == 3
    assert json.loads((run / "environment.json").read_text())["earlier_sessions"] == [first]


# ----------------------------------------------------------------------------- class weights


def weighted_tree(src: Path, dst: Path, values: dict[str, list[float]], default: str = "median-freq") -> Path:
    shutil.copytree(src, dst)
    set_weights(dst, values, default)
    return dst


def set_weights(data: Path, values: dict[str, list[float]], default: str = "median-freq") -> None:
    doc = json.loads((data / "dataset.json").read_text())
    doc.update(class_weights=values, class_weights_default=default)
    (data / "dataset.json").write_text(json.dumps(doc))


def num_classes(data: Path) -> int:
    doc = json.loads((data / "dataset.json").read_text())
    return len({c["train_id"] for c in doc["classes"] if c["train_id"] != 255})


def test_a_resume_optimises_the_weights_it_saved_not_todays(tree, tmp_path, caplog):
    """`sunrgbd stats --weights` run again between two sessions gave the resumed epochs other
    class weights under the same method name: the run silently optimised another loss. Now
    the values in the checkpoint win, one log line says dataset.json differs, config.yaml's
    comment names last.pt as their source (it said dataset.json), and the run equals an
    uninterrupted one."""
    n = num_classes(tree.root)
    old = [1.0 + i / n for i in range(n)]
    new = [2.0 - i / n for i in range(n)]
    full_data = weighted_tree(tree.root, tmp_path / "full-data", {"median-freq": old})
    full = train(cfg_for(full_data, tmp_path / "full", loss="wce", epochs=2), progress=False)
    assert full.epochs_completed == 2

    data = weighted_tree(tree.root, tmp_path / "data", {"median-freq": old})
    out = tmp_path / "run"
    train(cfg_for(data, out, loss="wce", epochs=1), progress=False)
    set_weights(data, {"median-freq": new})  # statistics recomputed on the tree
    with caplog.at_level(logging.INFO, logger="segtrain"):
        train(cfg_for(data, out, loss="wce", epochs=2), resume=True, progress=False)
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["class_weights"] == {"method": "median-freq", "values": pytest.approx(old)}
    lines = [r.getMessage() for r in caplog.records if "class weights" in r.getMessage()]
    assert lines == [f"class weights: the run's median-freq values (from {out / 'last.pt'}); "
                     f"{data / 'dataset.json'} now has other median-freq values, not used"]
    text = (out / "config.yaml").read_text()
    assert text.startswith("# class_weights median-freq (last.pt, the run's own), by train id: wall 1,")
    fresh = (tmp_path / "full" / "config.yaml").read_text()
    assert fresh.startswith("# class_weights median-freq (dataset.json), by train id: wall 1,")
    a, b = load_checkpoint(tmp_path / "full" / "last.pt")["model"], ckpt["model"]
    assert all(torch.equal(v, b[k]) for k, v in a.items())  # the loss of an unbroken run


def test_a_resume_keeps_its_weights_when_the_method_left_dataset_json(tree, tmp_path, caplog):
    """The method may be gone from dataset.json altogether: the saved values still continue
    the run (it used to stop with `class_weights has no method`)."""
    n = num_classes(tree.root)
    data = weighted_tree(tree.root, tmp_path / "data", {"median-freq": [1.5] * n})
    out = tmp_path / "run"
    train(cfg_for(data, out, loss="wce", epochs=1), progress=False)
    set_weights(data, {"inverse": [3.0] * n}, default="inverse")
    with caplog.at_level(logging.INFO, logger="segtrain"):
        res = train(cfg_for(data, out, loss="wce", epochs=2), resume=True, progress=False)
    assert res.epochs_completed == 2
    assert load_checkpoint(out / "last.pt")["class_weights"] == {"method": "median-freq", "values": [1.5] * n}
    assert any(f"{data / 'dataset.json'} now has no median-freq values" in r.getMessage()
               for r in caplog.records)


def test_same_values_say_nothing_and_old_checkpoints_read_dataset_json(tree, tmp_path, caplog, monkeypatch):
    """Unchanged statistics: no line. A checkpoint from before the values were saved (no
    `values`) takes them from dataset.json, as it always did."""
    n = num_classes(tree.root)
    data = weighted_tree(tree.root, tmp_path / "data", {"median-freq": [1.5] * n})
    out = tmp_path / "run"
    train(cfg_for(data, out, loss="wce", epochs=1), progress=False)
    with caplog.at_level(logging.INFO, logger="segtrain"):
        train(cfg_for(data, out, loss="wce", epochs=2), resume=True, progress=False)
    assert not [r for r in caplog.records if "class weights" in r.getMessage()]

    ckpt = load_checkpoint(out / "last.pt")
    ckpt["class_weights"] = {"method": "median-freq", "values": None}  # as an older version wrote it
    save_checkpoint(out / "last.pt", ckpt)
    set_weights(data, {"median-freq": [2.5] * n})
    seen = {}
    real = engine.build_loss

    def spy(name, num, ignore, weights=None):
        seen["weights"] = None if weights is None else weights.tolist()
        return real(name, num, ignore, weights)

    monkeypatch.setattr(engine, "build_loss", spy)
    train(cfg_for(data, out, loss="wce", epochs=3), resume=True, progress=False)
    assert seen["weights"] == [2.5] * n
    assert load_checkpoint(out / "last.pt")["class_weights"] == {"method": "median-freq", "values": [2.5] * n}


def test_a_loss_without_class_weights_refuses_a_method_and_an_old_run_of_it_resumes(tree, tmp_path):
    """`--loss dice --class-weights median-freq` wrote `class_weights: median-freq` (and the
    vector) into config.yaml and trained unweighted: dice drops the weights. Now an explicit
    method with a loss that takes none is refused in one line, auto resolves to none, and a run
    folder written before (config.yaml and checkpoint naming the method) resumes, unweighted as
    it trained, its config.yaml saying so."""
    from segtrain.config import UnsupportedCombination
    from segtrain.data import load_dataset_info
    from segtrain.losses import LOSSES

    data = weighted_tree(tree.root, tmp_path / "data", {"median-freq": [1.5] * num_classes(tree.root)})
    info = load_dataset_info(data)
    takes = ", ".join(name for name, spec in LOSSES.items() if spec.uses_weights)
    without = [name for name, spec in LOSSES.items() if not spec.uses_weights]
    assert without  # dice
    for loss in without:
        why = (f"--class-weights median-freq: --loss {loss} takes no class weights (the losses that do: {takes}); "
               "use --class-weights none or leave it out")
        with pytest.raises(UnsupportedCombination) as e:
            cfg_for(data, tmp_path / "x", loss=loss, class_weights="median-freq").validate()
        assert str(e.value) == why
        out = tmp_path / f"cli-{loss}"
        r = CliRunner().invoke(main, ["run", "unet_small", "--data", str(data), "--out", str(out), "--loss", loss,
                                      "--class-weights", "median-freq", "--workers", "0", "--epochs", "1",
                                      "--model-opt", "base_width=4", "--model-opt", "depth=2"])
        assert r.exit_code == 2 and r.stderr.splitlines() == [f"Error: {why}"], r.output
        assert not out.exists()
        for method in (None, "none"):
            cfg = cfg_for(data, tmp_path / "x", loss=loss, class_weights=method)
            cfg.validate()
            assert engine.class_weight_method(cfg, info) is None
    for name, spec in LOSSES.items():  # the losses that take weights still take them
        if spec.uses_weights:
            cfg_for(data, tmp_path / "x", loss=name, class_weights="median-freq").validate()

    # a dice run as the old code wrote it: the method in config.yaml and in its checkpoint
    out = tmp_path / "old"
    train(cfg_for(data, out, loss="dice", epochs=1), progress=False)
    assert "class_weights: none" in (out / "config.yaml").read_text()
    ckpt = load_checkpoint(out / "last.pt")
    ckpt["config"]["class_weights"] = "median-freq"
    ckpt["class_weights"] = {"method": "median-freq", "values": [1.5] * info.num_classes}
    save_checkpoint(out / "last.pt", ckpt)
    text = (out / "config.yaml").read_text().replace("class_weights: none", "class_weights: median-freq")
    (out / "config.yaml").write_text(text)
    r = CliRunner().invoke(main, ["run", "unet_small", "--out", str(out), "--resume", "--epochs", "2"])
    assert r.exit_code == 0 and r.output.startswith("completed: 2 epochs"), r.output
    text = (out / "config.yaml").read_text()
    assert text.startswith("# class_weights none: the loss is unweighted") and "class_weights: none" in text


def test_resuming_a_weighted_run_with_another_loss_names_the_loss(tree, tmp_path):
    """`--resume --loss dice` on a ce run trained with median-freq said dice takes no class
    weights (the user gave none): the resume layer decided from the saved loss. Now the resume
    check names what changed."""
    data = weighted_tree(tree.root, tmp_path / "data", {"median-freq": [1.5] * num_classes(tree.root)})
    out = tmp_path / "run"
    train(cfg_for(data, out, loss="ce", class_weights="median-freq", epochs=1), progress=False)
    r = CliRunner().invoke(main, ["run", "unet_small", "--out", str(out), "--resume", "--epochs", "2",
                                  "--loss", "dice"])
    assert r.exit_code == 2, r.output
    assert "--loss 'dice' (the run: 'ce')" in r.stderr and "takes no class weights" not in r.stderr, r.stderr

