"""--warmup-steps / --warmup-ratio: a linear learning-rate warm-up before the scheduler. The lr
of every optimizer step is read as the run trains (the optimizer's lr when train_step is
called) and compared with the formula in docs/training.md; a run stopped inside the warm-up
and resumed trains at the same lrs to the same weights; 0 (the default) is the run of before."""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest
import torch
import yaml
from click.testing import CliRunner
from treebuilder import write_clean_tree
from valscores import pin_val_miou

from segtrain import engine
from segtrain.checkpoint import load_checkpoint, resume_config_diffs, save_checkpoint
from segtrain.cli import main
from segtrain.config import TrainConfig, load_config_file
from segtrain.engine import train
from segtrain.optim import PolyLR, build_warmup
from segtrain.sweep import SweepConfig, plan
from segtrain.utils import SegtrainError

TINY = {"base_width": 4, "depth": 2}
BASE = 1e-2
STEPS_PER_EPOCH = 2  # 4 training images, batch 2


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_clean_tree(tmp_path_factory.mktemp("warmup") / "data", counts={"train": 4, "val": 2, "test": 1},
                            size=(32, 48))


def cfg_for(tree, out, **kw) -> TrainConfig:
    base = dict(model="unet_small", data=str(tree.root), out=str(out), model_options=dict(TINY), epochs=5,
                batch_size=2, lr=BASE, workers=0, augment="basic", scheduler="poly", early_stop=0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def lrs(monkeypatch) -> list[float]:
    """The lr every training step of the runs in this test trains with, in order."""
    seen: list[float] = []
    real = engine.train_step

    def spy(model, x, y, loss_fn, optimizer, *args, **kwargs):
        seen.append(optimizer.param_groups[0]["lr"])
        return real(model, x, y, loss_fn, optimizer, *args, **kwargs)

    monkeypatch.setattr(engine, "train_step", spy)
    return seen


def warm(t: int, n: int, ratio: float) -> float:
    return BASE * (ratio + (1 - ratio) * t / n)


def expected(scheduler: str, total: int, n: int, ratio: float = 1e-3) -> list[float]:
    """docs/training.md: step t < n trains at lr x (ratio + (1 - ratio) t / n); then the
    scheduler from its own step 0, planned over the total - n steps after the warm-up."""
    out = []
    for t in range(total):
        if t < n:
            out.append(warm(t, n, ratio))
        elif scheduler == "poly":
            out.append(BASE * (1 - (t - n) / (total - n)) ** 0.9)
        elif scheduler == "cosine":
            out.append(BASE * (1 + math.cos(math.pi * (t - n) / (total - n))) / 2)
        else:
            out.append(BASE)
    return out


@pytest.mark.parametrize("scheduler", ["poly", "cosine", "none"])
def test_every_steps_lr_follows_the_formula(tree, tmp_path, lrs, scheduler, caplog):
    with caplog.at_level(logging.INFO, logger="segtrain"):
        res = train(cfg_for(tree, tmp_path / "run", scheduler=scheduler, warmup_steps=3, warmup_ratio=1e-3),
                    progress=False)
    assert res.epochs_completed == 5 and len(lrs) == 10
    assert lrs[:3] == [warm(t, 3, 1e-3) for t in range(3)]  # the warm-up's values exactly
    assert lrs[3] == BASE  # it ends at --lr exactly, the scheduler's first value
    assert lrs == pytest.approx(expected(scheduler, 10, 3), rel=1e-12, abs=1e-15)
    # metrics.csv's lr (docs/training.md): after the epoch's last step, so the next step's here
    assert [r["lr"] for r in res.history[:4]] == [lrs[2 * e] for e in range(1, 5)]
    after = {"poly": "poly over the steps after it", "cosine": "cosine over the steps after it", "none": "constant"}
    assert (f"lr warm-up: linear from 1e-05 to 0.01 over the first 3 optimizer steps, then {after[scheduler]}"
            in (tmp_path / "run" / "train.log").read_text())


def test_plateau_waits_for_the_warm_up_to_end(tree, tmp_path, lrs):
    """Plateau neither counts nor lowers during the warm-up: the epoch that ends at global
    step 2 (inside a 3-step warm-up) is not shown to it; after it, it runs as without one."""
    kw = dict(scheduler="plateau", plateau_patience=0, plateau_factor=0.5, augment="none", lr=BASE)
    train(cfg_for(tree, tmp_path / "run", warmup_steps=3, warmup_ratio=0.1, **kw), progress=False)
    assert lrs[:4] == [warm(t, 3, 0.1) for t in range(3)] + [BASE]
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["scheduler"]["last_epoch"] == 4  # epochs 2..5, not epoch 1
    for a, b in zip(lrs[3:], lrs[4:], strict=False):  # after it: only the plateau's halvings
        assert b in (a, a * 0.5)
    # metrics.csv's lr (docs/training.md): inside the warm-up the next step's, after it the
    # lr the epoch trained at (test_metrics_lr_under_plateau_is_the_epochs_own)
    assert [r["lr"] for r in ckpt["history"]] == [lrs[2]] + [lrs[2 * e - 1] for e in range(2, 6)]
    del lrs[:]
    train(cfg_for(tree, tmp_path / "plain", **kw), progress=False)
    assert load_checkpoint(tmp_path / "plain" / "last.pt")["scheduler"]["last_epoch"] == 5


def test_metrics_lr_under_plateau_is_the_epochs_own(tree, tmp_path, lrs, monkeypatch):
    """docs/training.md said the lr column is the next step's; under plateau (the default) it
    is the lr the epoch trained at: plateau lowers it after the row is read, and the next row
    shows the lowering (kept so: metrics.csv of default runs stays as it was)."""
    pin_val_miou(monkeypatch, [0.5, 0.4, 0.3])
    res = train(cfg_for(tree, tmp_path / "run", scheduler="plateau", plateau_patience=0, plateau_factor=0.5,
                        lr=1e-6, epochs=3, augment="none"), progress=False)
    assert lrs == [1e-6] * 4 + [5e-7] * 2  # epoch 2 did not improve: lowered after it
    assert [r["lr"] for r in res.history] == [1e-6, 1e-6, 5e-7]


def test_default_zero_is_the_schedule_of_before(tree, tmp_path, lrs):
    """No warm-up: poly over every step of the run, and cosine exactly as torch's
    CosineAnnealingLR over them (the schedulers of earlier versions, stepped alone)."""
    cfg = cfg_for(tree, tmp_path / "poly", epochs=3)
    assert (cfg.warmup_steps, cfg.warmup_ratio) == (0, 1e-3)
    assert build_warmup(cfg, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE)) is None
    train(cfg, progress=False)
    assert lrs == [BASE * PolyLR(6, 0.9)(t) for t in range(6)]
    ckpt = load_checkpoint(tmp_path / "poly" / "last.pt")
    assert ckpt["scheduler"]["last_epoch"] == 6
    del lrs[:]
    train(cfg_for(tree, tmp_path / "cos", epochs=3, scheduler="cosine"), progress=False)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6)
    want = []
    for _ in range(6):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert lrs == want


def interrupt_after(epoch_to_stop: int):
    def hook(epoch, row):
        if epoch == epoch_to_stop:
            raise KeyboardInterrupt
    return hook


@pytest.mark.parametrize("scheduler", ["poly", "cosine", "plateau"])
def test_a_run_stopped_inside_the_warm_up_resumes_exactly(tree, tmp_path, lrs, scheduler):
    """Stopped after epoch 1 (global step 2 of a 3-step warm-up), then --resume: the same lr
    at every step and, on CPU, the same weights as the unbroken run."""
    kw = dict(scheduler=scheduler, warmup_steps=3, warmup_ratio=0.01, plateau_patience=0, plateau_factor=0.5)
    train(cfg_for(tree, tmp_path / "full", **kw), progress=False)
    unbroken = list(lrs)
    del lrs[:]
    with pytest.raises(KeyboardInterrupt):
        train(cfg_for(tree, tmp_path / "part", **kw), progress=False, on_epoch_end=interrupt_after(1))
    assert load_checkpoint(tmp_path / "part" / "last.pt")["global_step"] == 2
    train(cfg_for(tree, tmp_path / "part", **kw), resume=True, progress=False)
    assert lrs == unbroken
    a = load_checkpoint(tmp_path / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "part" / "last.pt")
    assert all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())
    assert a["scheduler"] == b["scheduler"]


def test_a_larger_epochs_on_resume_replans_after_the_warm_up(tree, tmp_path, lrs):
    """--epochs 3 stopped inside the warm-up (global step 2 of 3), then --resume --epochs 5:
    the lrs of a run planned for 5 epochs from the start (poly: the same floats, so the same
    weights). A finished --epochs 3 run resumed with --epochs 5 keeps the lrs it trained with
    and continues at those of the 5-epoch plan."""
    kw = dict(warmup_steps=3, warmup_ratio=0.01)
    train(cfg_for(tree, tmp_path / "long", epochs=5, **kw), progress=False)
    planned = list(lrs)
    assert planned == pytest.approx(expected("poly", 10, 3, 0.01), rel=1e-12)
    del lrs[:]
    with pytest.raises(KeyboardInterrupt):
        train(cfg_for(tree, tmp_path / "ext", epochs=3, **kw), progress=False, on_epoch_end=interrupt_after(1))
    train(cfg_for(tree, tmp_path / "ext", epochs=5, **kw), resume=True, progress=False)
    assert lrs == planned
    a, b = load_checkpoint(tmp_path / "long" / "last.pt"), load_checkpoint(tmp_path / "ext" / "last.pt")
    assert all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())

    del lrs[:]
    train(cfg_for(tree, tmp_path / "ext3", epochs=3, **kw), progress=False)
    train(cfg_for(tree, tmp_path / "ext3", epochs=5, **kw), resume=True, progress=False)
    assert lrs[:6] == pytest.approx(expected("poly", 6, 3, 0.01), rel=1e-12)
    assert lrs[6:] == planned[6:]


def test_warmup_is_one_of_the_options_a_resume_may_not_change(tree, tmp_path):
    out = tmp_path / "run"
    train(cfg_for(tree, out, epochs=1, warmup_steps=3), progress=False)
    with pytest.raises(SegtrainError, match=r"--warmup-steps 5 \(the run: 3\)"):
        train(cfg_for(tree, out, epochs=2, warmup_steps=5), resume=True, progress=False)
    with pytest.raises(SegtrainError, match=r"--warmup-ratio 0.1 \(the run: 0.001\)"):
        train(cfg_for(tree, out, epochs=2, warmup_steps=3, warmup_ratio=0.1), resume=True, progress=False)
    # a checkpoint of an earlier version has no warm-up keys: it ran without one
    ckpt = load_checkpoint(out / "last.pt")
    for key in ("warmup_steps", "warmup_ratio"):
        del ckpt["config"][key]
    save_checkpoint(out / "last.pt", ckpt)
    with pytest.raises(SegtrainError, match=r"--warmup-steps 3 \(the run: 0\)"):
        train(cfg_for(tree, out, epochs=2, warmup_steps=3), resume=True, progress=False)
    assert train(cfg_for(tree, out, epochs=2), resume=True, progress=False).epochs_completed == 2


def test_the_ratio_is_not_compared_when_neither_side_warms_up(tree, tmp_path):
    """--warmup-ratio changes nothing without a warm-up: a sweep re-run with another ratio
    refused its warmup_steps=0 run (and a resume its run without warm-up). Now only the run
    that warms up is refused, and a resume of one without warm-up goes on."""
    sw = tmp_path / "sw"
    args = ["sweep", "unet_small", "--data", tree.root, "--out", sw, "--warmup-steps", "0,1", "--epochs", 1,
            "--batch-size", 2, "--workers", 0, "--device", "cpu", "--augment", "none", "--model-opt",
            "base_width=4", "--model-opt", "depth=2"]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    r = invoke(*args, "--warmup-ratio", 0.1)
    assert r.exit_code == 2
    assert r.stderr.strip() == (f"Error: {sw / '02-unet_small-warmup_steps=1'}: this sweep run was trained with "
                                "other options than given now (--warmup-ratio 0.1 (the run: 0.001)); re-run the "
                                "sweep with its options (--epochs may grow) or give the sweep a new --out")
    run = sw / "01-unet_small-warmup_steps=0"
    cfg = dataclasses.replace(TrainConfig(**load_config_file(run / "config.yaml")), epochs=2, warmup_ratio=0.1)
    assert train(cfg, resume=True, progress=False).epochs_completed == 2
    saved = load_checkpoint(run / "last.pt")["config"]  # a warm-up on one side: both compared
    assert resume_config_diffs(saved, dataclasses.replace(cfg, warmup_steps=2, warmup_ratio=0.5)) == [
        "--warmup-steps 2 (the run: 0)", "--warmup-ratio 0.5 (the run: 0.1)"]


def test_a_warm_up_as_long_as_the_run_is_said(tree, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="segtrain"):
        train(cfg_for(tree, tmp_path / "run", epochs=1, warmup_steps=2), progress=False)
    assert ("warning: --warmup-steps 2 is not shorter than the run (2 optimizer steps: --epochs 1 x 2 steps per "
            "epoch); the lr never reaches --lr 0.01") in caplog.text


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_flags_config_files_config_yaml_and_sweeps(tree, tmp_path):
    out = tmp_path / "run"
    r = invoke("run", "unet_small", "--data", tree.root, "--out", out, "--epochs", 1, "--batch-size", 2,
               "--workers", 0, "--device", "cpu", "--model-opt", "base_width=4", "--model-opt", "depth=2",
               "--scheduler", "cosine", "--warmup-steps", 1, "--warmup-ratio", 0.25)
    assert r.exit_code == 0, r.output
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["warmup_steps"], saved["warmup_ratio"]) == (1, 0.25)
    assert load_checkpoint(out / "last.pt")["config"]["warmup_steps"] == 1
    r = invoke("run", "unet_small", "--out", out, "--resume", "--epochs", 2, "--workers", 0)
    assert r.exit_code == 0 and r.output.startswith("completed: 2 epochs"), r.output

    for bad, why in ((["--warmup-steps", -1], "--warmup-steps -1: must be at least 0"),
                     (["--warmup-ratio", 0], "--warmup-ratio 0.0: must be greater than 0"),
                     (["--warmup-ratio", 1.5], "--warmup-ratio 1.5: must be at most 1")):
        r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "bad", *bad)
        assert r.exit_code == 2 and r.stderr.strip() == f"Error: {why}", r.output

    conf = tmp_path / "run.yaml"
    conf.write_text("warmup_steps: '100'\nwarmup_ratio: 1e-3\n")  # YAML 1.1 reads 1e-3 as text
    assert load_config_file(conf) == {"warmup_steps": 100, "warmup_ratio": 0.001}
    conf.write_text("warmup_steps: 1.5\n")
    with pytest.raises(SegtrainError, match="run.yaml: warmup_steps: 1.5 must be a whole number"):
        load_config_file(conf)

    runs = plan(SweepConfig(out=str(tmp_path / "sw"), base={"model": "unet_small", "data": str(tree.root),
                                                            "warmup_ratio": 0.1},
                            grid={"scheduler": ["poly", "cosine"], "warmup_steps": [0, 50]})).runs
    assert [r.name for r in runs] == ["01-scheduler=poly-warmup_steps=0", "02-scheduler=poly-warmup_steps=50",
                                      "03-scheduler=cosine-warmup_steps=0", "04-scheduler=cosine-warmup_steps=50"]
    assert [(r.config.warmup_steps, r.config.warmup_ratio) for r in runs][:2] == [(0, 0.1), (50, 0.1)]
    r = invoke("sweep", "unet_small", "--data", tree.root, "--out", tmp_path / "sw", "--warmup-steps", "0,50",
               "--warmup-ratio", 0.1, "--dry-run")
    assert r.exit_code == 0 and r.output.splitlines() == ["01-unet_small-warmup_steps=0",
                                                          "02-unet_small-warmup_steps=50", "2 runs"], r.output
