"""Training loop on tiny trees and tiny U-Nets (CPU): learning, resume, checkpoints, NaN stop."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import yaml
from treebuilder import write_clean_tree
from valscores import pin_val_miou

from segtrain import engine
from segtrain.checkpoint import load_checkpoint, model_from_checkpoint
from segtrain.config import TrainConfig
from segtrain.data import load_dataset_info, make_loader, train_dataset
from segtrain.engine import train, train_step
from segtrain.losses import build_loss
from segtrain.models import MODELS, count_parameters, create_model
from segtrain.runtime import Runtime

TINY = {"base_width": 4, "depth": 2}
TIME_COLUMNS = {"train_images_per_s", "epoch_time_s"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_clean_tree(tmp_path_factory.mktemp("st-train") / "data",
                            counts={"train": 4, "val": 2, "test": 2}, size=(32, 48))


def cfg_for(tree, out, **kw) -> TrainConfig:
    base = dict(model="unet_small", data=str(tree.root), out=str(out), model_options=dict(TINY),
                epochs=2, batch_size=2, lr=1e-2, workers=0, augment="basic", scheduler="poly")
    base.update(kw)
    return TrainConfig(**base)


def test_a_few_steps_lower_the_loss(tree):
    torch.manual_seed(0)
    info = load_dataset_info(tree.root)
    ds = train_dataset(info, "train", "none")
    loader, _ = make_loader(ds, 4, False, 0, 0, torch.device("cpu"))
    batch = next(iter(loader))
    rt = Runtime.create(torch.device("cpu"), info.mean, info.std, amp=True, channels_last=True)
    assert rt.amp_dtype is None and not rt.channels_last  # CUDA-only features stay off on CPU
    model = create_model("unet_small", info.num_classes, base_width=8, depth=2)
    loss_fn = build_loss("ce+dice", info.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    scaler = rt.make_scaler()
    x, y = rt.images(batch["image"]), rt.masks(batch["mask"])
    model.train()
    losses = [train_step(model, x, y, loss_fn, opt, scaler, rt) for _ in range(15)]
    assert losses[-1] < 0.7 * losses[0], losses


def test_unet_default_is_the_classic_31m_and_registry_errors_list_names():
    assert count_parameters(create_model("unet", 39))["total"] == pytest.approx(31.04e6, rel=0.01)
    m = create_model("unet_small", 5, base_width=4, depth=3, up="bilinear")
    assert m(torch.randn(1, 3, 25, 33)).shape == (1, 5, 25, 33)  # odd sizes work
    assert set(m.part_parameters()) == {"encoder", "decoder", "head"}
    with pytest.raises(KeyError, match="available: " + ", ".join(sorted(MODELS))):
        create_model("unet9000", 3)
    with pytest.raises(KeyError, match="valid: in_channels, base_width, depth, up"):
        create_model("unet", 3, width=3)


def read_metrics(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in csv.DictReader(f)]


def test_resume_equals_uninterrupted_run(tree, tmp_path):
    full = train(cfg_for(tree, tmp_path / "full", epochs=3), progress=False)
    assert full.stopped == "completed" and full.epochs_completed == 3

    def interrupt(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg_for(tree, tmp_path / "part", epochs=3), progress=False, on_epoch_end=interrupt)
    assert load_checkpoint(tmp_path / "part" / "last.pt")["epoch"] == 1
    resumed = train(cfg_for(tree, tmp_path / "part", epochs=3), resume=True, progress=False)
    assert resumed.epochs_completed == 3
    assert read_metrics(tmp_path / "full" / "metrics.csv") == read_metrics(tmp_path / "part" / "metrics.csv")
    a = load_checkpoint(tmp_path / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "part" / "last.pt")
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"]
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]


def test_checkpoint_round_trip_weights_only(tree, tmp_path):
    train(cfg_for(tree, tmp_path / "run", epochs=1), progress=False)
    for name in ("last.pt", "best.pt", "config.yaml", "metrics.csv", "environment.json", "train.log"):
        assert (tmp_path / "run" / name).is_file(), name
    ckpt = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "scaler", "epoch", "rng", "classes", "mean", "std"):
        assert key in ckpt, key
    assert [c["name"] for c in ckpt["classes"]][:2] == ["wall", "floor"]
    model = model_from_checkpoint(ckpt).eval()
    ref = create_model("unet_small", len(ckpt["classes"]), **TINY)
    ref.load_state_dict(ckpt["model"])
    x = torch.randn(1, 3, 32, 48)
    assert torch.equal(model(x), ref.eval()(x))
    assert not list((tmp_path / "run").glob(".*.tmp"))  # atomic writes leave no temporaries


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tree, tmp_path, monkeypatch):
    real_build = engine.build_loss

    def nan_on_third_training_step(*args, **kwargs):
        inner = real_build(*args, **kwargs)
        calls = {"n": 0}

        class Poisoned(torch.nn.Module):
            def forward(self, logits, target):
                loss = inner(logits, target)
                if torch.is_grad_enabled():
                    calls["n"] += 1
                    if calls["n"] == 3:
                        return loss * float("nan")
                return loss

        return Poisoned()

    monkeypatch.setattr(engine, "build_loss", nan_on_third_training_step)
    res = train(cfg_for(tree, tmp_path / "run", epochs=3), progress=False)
    assert res.stopped == "non-finite-loss"
    assert "epoch 2, step 0 (global step 2)" in res.message and "last.pt (epoch 1)" in res.message
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    assert len(read_metrics(tmp_path / "run" / "metrics.csv")) == 1


def test_early_stop_on_val_miou(tree, tmp_path, monkeypatch):
    """Val mIoU pinned (a tie is no improvement): best at epoch 2, stopped after 2 epochs
    without improvement, best.pt is epoch 2's."""
    pin_val_miou(monkeypatch, [0.2, 0.5, 0.5, 0.4, 0.9, 0.9])
    res = train(cfg_for(tree, tmp_path / "run", epochs=6, early_stop=2, augment="none", scheduler="none"),
                progress=False)
    assert res.stopped == "early-stop"
    assert res.epochs_completed == 4 and res.best_epoch == 2 and res.best_miou == 0.5
    assert load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 2


def test_weighted_ce_uses_dataset_weights(tree, tmp_path):
    import json

    data = tmp_path / "data"
    write_clean_tree(data, counts={"train": 2, "val": 1}, size=(32, 48))
    meta = json.loads((data / "dataset.json").read_text())
    n = meta["num_classes"]
    meta["class_weights"] = {"median-freq": [1.0 + i / n for i in range(n)], "default": "median-freq"}
    (data / "dataset.json").write_text(json.dumps(meta))
    info = load_dataset_info(data)
    cfg = TrainConfig(loss="wce")
    assert engine.class_weight_method(cfg, info) == "median-freq"
    assert engine.class_weight_method(TrainConfig(loss="ce"), info) is None
    with pytest.raises(Exception, match="no method 'enet'; available: median-freq"):
        info.weights("enet")
    res = train(TrainConfig(model="unet_small", data=str(data), out=str(tmp_path / "r"), model_options=TINY,
                            epochs=1, batch_size=2, workers=0, loss="wce"), progress=False)
    assert res.epochs_completed == 1
    ckpt = load_checkpoint(tmp_path / "r" / "last.pt")
    assert ckpt["class_weights"] == {"method": "median-freq", "values": pytest.approx(meta["class_weights"]
                                                                                      ["median-freq"])}
    assert ckpt["config"]["class_weights"] == "median-freq"
    text = (tmp_path / "r" / "config.yaml").read_text()
    assert "class_weights: median-freq" in text  # the resolved method, not null
    assert text.startswith("# class_weights median-freq (dataset.json), by train id: wall 1,")
    assert yaml.safe_load(text)["class_weights"] == "median-freq"  # the vector is a comment only
    plain = train(cfg_for(tree, tmp_path / "plain", epochs=1), progress=False)
    assert plain.epochs_completed == 1
    ckpt = load_checkpoint(tmp_path / "plain" / "last.pt")
    assert ckpt["class_weights"] == {"method": "none", "values": None}
    assert "class_weights: none" in (tmp_path / "plain" / "config.yaml").read_text()


def lrs(path: Path) -> list[float]:
    with open(path / "metrics.csv", newline="") as f:
        return [float(r["lr"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("scheduler", ["poly", "cosine", "plateau"])
def test_resume_with_more_epochs_continues_the_schedule_planned_for_the_new_total(tree, tmp_path, scheduler):
    """--epochs 2, then --resume --epochs 4: the resumed epochs train at the lr of a run planned
    for 4 epochs from the start (poly used to train at lr 0, cosine used to climb back up)."""
    kw = dict(scheduler=scheduler, early_stop=0, plateau_patience=0, plateau_factor=0.5)
    long = train(cfg_for(tree, tmp_path / "long", epochs=4, **kw), progress=False)
    assert long.epochs_completed == 4
    train(cfg_for(tree, tmp_path / "ext", epochs=2, **kw), progress=False)
    resumed = train(cfg_for(tree, tmp_path / "ext", epochs=4, **kw), resume=True, progress=False)
    assert resumed.epochs_completed == 4
    planned, extended = lrs(tmp_path / "long"), lrs(tmp_path / "ext")
    steps = load_checkpoint(tmp_path / "ext" / "last.pt")["global_step"]
    assert steps == 8  # 2 steps per epoch
    base = 1e-2
    if scheduler == "poly":  # lr logged after each epoch = the lr of the next step
        expect = [base * (1 - 2 * e / 8) ** 0.9 for e in (3, 4)]
    elif scheduler == "cosine":
        expect = [base * (1 + math.cos(math.pi * 2 * e / 8)) / 2 for e in (3, 4)]
    if scheduler != "plateau":
        assert extended[2:] == pytest.approx(expect, rel=1e-9, abs=1e-12)
        assert planned[2:] == pytest.approx(expect, rel=1e-9, abs=1e-12)
        assert extended[2] > 0  # poly used to train every resumed epoch at lr 0
        assert extended[3] < extended[2]  # still decaying, never climbing back
        log = (tmp_path / "ext" / "train.log").read_text()
        assert f"{scheduler} schedule re-planned over 8 steps (was 4)" in log
    else:  # ReduceLROnPlateau has no planned total: extending it is the same run
        assert extended == planned
        a = load_checkpoint(tmp_path / "long" / "last.pt")["model"]
        b = load_checkpoint(tmp_path / "ext" / "last.pt")["model"]
        assert all(torch.equal(v, b[k]) for k, v in a.items())
