"""Multi-process training on CPU: `torchrun --nproc_per_node=2 -m segtrain run` with gloo.

With SyncBatchNorm and no ignore pixels, two processes with batch 1 each do the same maths as
one process with batch 2, so the weights must agree to float rounding; the validation
metrics the DDP run logs must equal a single-process evaluation of its checkpoint (a split
of 3 images over 2 processes: nothing padded, nothing counted twice)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch
from treebuilder import write_clean_tree

from segtrain.checkpoint import load_checkpoint, model_from_checkpoint
from segtrain.config import TrainConfig
from segtrain.data import EpochSampler, eval_dataset, load_dataset_info, make_loader
from segtrain.engine import evaluate, train
from segtrain.losses import build_loss
from segtrain.metrics import summarize
from segtrain.runtime import Runtime

pytestmark = pytest.mark.slow  # two torchrun processes per fixture

ARGS = ["--epochs", "3", "--batch-size", "2", "--workers", "0", "--device", "cpu", "--augment", "none",
        "--model-opt", "width=8", "--model-opt", "depth=2", "--scheduler", "none", "--optimizer", "sgd",
        "--lr", "0.1", "--early-stop", "0"]



def test_sampler_shards_rebuild_the_single_process_batches():
    single = list(EpochSampler(7, shuffle=True, seed=3, drop_tail=True))
    shards = [list(EpochSampler(7, shuffle=True, seed=3, rank=r, world_size=2, drop_tail=True)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 3  # the odd sample is dropped, as a batch tail would be
    for step in range(3):  # per-process batch 1: step k of both processes = single batch k of size 2
        assert sorted([shards[0][step], shards[1][step]]) == sorted(single[2 * step:2 * step + 2])
    evals = [list(EpochSampler(7, shuffle=False, rank=r, world_size=2)) for r in (0, 1)]
    ids = [i for shard in evals for i, _ in shard]
    assert sorted(ids) == list(range(7)) and len(ids) == 7  # every sample once: no padding duplicates


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    # no unlabelled class: every image has the same number of labelled pixels, so the mean of the
    # per-process mean losses is the single-process mean loss
    tree = write_clean_tree(root / "data", counts={"train": 4, "val": 3}, size=(32, 48),
                            class_ids=[1, 2, 5, 7, 38], sensors=("kv2", "kv1"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_"))}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "segtrain", "run", "baseline", "--data", str(tree.root), "--out", str(root / "ddp"),
           "--sync-bn", *ARGS]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tree, root, proc


def test_ddp_run_writes_once_and_logs_world_size(ddp_run):
    tree, root, proc = ddp_run
    files = sorted(p.name for p in (root / "ddp").iterdir())
    assert files == ["best.pt", "config.yaml", "environment.json", "last.pt", "metrics.csv", "segtrain-run.json",
                     "train.log"]
    assert proc.stdout.count("completed: 3 epochs") == 1  # only rank 0 reports
    log = (root / "ddp" / "train.log").read_text()
    assert "x 2 processes (DDP, SyncBatchNorm)" in log and log.count("epoch 3/3") == 1
    rows = list(csv.DictReader(open(root / "ddp" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and rows[-1]["global_step"] == "6"


def test_ddp_metrics_equal_single_process_evaluation_of_its_checkpoint(ddp_run):
    tree, root, _ = ddp_run
    ckpt = load_checkpoint(root / "ddp" / "last.pt")
    assert ckpt["world_size"] == 2
    info = load_dataset_info(tree.root)
    model = model_from_checkpoint(ckpt)
    rt = Runtime.create(torch.device("cpu"), info.mean, info.std, amp=False, channels_last=False)
    loader, _ = make_loader(eval_dataset(info, "val"), 1, False, 0, 0, torch.device("cpu"))
    res = evaluate(model, loader, rt, info.num_classes, build_loss("ce", info.num_classes), info.eval_mask,
                   progress=False)
    s = summarize(res.confusion, info.class_names, info.eval_mask)
    assert res.confusion.sum() == 3 * 32 * 48  # 3 val images, each pixel once
    last = ckpt["history"][-1]
    assert last["val_miou"] == s["miou"]
    assert last["val_pixel_accuracy"] == s["pixel_accuracy"]
    for sensor in ("kv1", "kv2"):
        assert last[f"val_miou_{sensor}"] == summarize(res.per_sensor[sensor], info.class_names,
                                                      info.eval_mask)["miou"]
    assert last["val_loss"] == pytest.approx(res.loss, rel=1e-6)


def test_ddp_training_equals_single_process_training(ddp_run, tmp_path):
    tree, root, _ = ddp_run
    cfg = TrainConfig(model="baseline", data=str(tree.root), out=str(tmp_path / "single"), epochs=3,
                      batch_size=2, workers=0, device="cpu", augment="none", scheduler="none",
                      optimizer="sgd", lr=0.1, early_stop=0, model_options={"width": 8, "depth": 2})
    single = train(cfg, progress=False)
    ddp = load_checkpoint(root / "ddp" / "last.pt")
    one = load_checkpoint(tmp_path / "single" / "last.pt")
    for k, v in one["model"].items():
        torch.testing.assert_close(ddp["model"][k], v, rtol=1e-4, atol=1e-5, msg=k)
    for a, b in zip(single.history, ddp["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)


def test_ddp_non_finite_training_loss_stops_every_process_together(tmp_path):
    """--lr 1e30: the first step is finite and leaves the weights huge, so the second step's
    loss is inf/NaN. The loss is all-reduced on the device and checked at the epoch's end:
    both processes skip the bad updates, raise at the same step, and exit (no one waits in a
    collective); rank 0 alone reports it."""
    tree = write_clean_tree(tmp_path / "data", counts={"train": 8, "val": 2}, size=(32, 48),
                            class_ids=[1, 2, 5, 7, 38])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_"))}
    env["OMP_NUM_THREADS"] = "1"
    args = [a if a != "0.1" else "1e30" for a in ARGS]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "segtrain", "run", "baseline", "--data", str(tree.root), "--out", str(tmp_path / "run"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    errors = [ln for ln in proc.stderr.splitlines() if "loss became" in ln and ln.startswith("Error:")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-3000:]
    assert "epoch 1, step 1 (global step 1)" in errors[0], errors
    assert not (tmp_path / "run" / "last.pt").exists()
