"""`segtrain sweep` (grid -> run folders + comparison table), `segtrain bench` over several
models, and `segtrain dataset-json cityscapes` on a fake Cityscapes tree with a cross-domain
--init-from."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import re
import shutil
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from segtrain_cli import error_line
from treebuilder import write_clean_tree

from segtrain.checkpoint import load_checkpoint, resume_config_diffs
from segtrain.cityscapes import CITYSCAPES_LABELS
from segtrain.cli import NOT_IN_SWEEP, main
from segtrain.config import (
    DEVICE_AUGMENTS,
    LOSS_NAMES,
    NOT_FLAGS,
    OPTIMIZERS,
    RUN_OPTIONS,
    TrainConfig,
    load_config_file,
)
from segtrain.data import list_samples, load_dataset_info, read_label
from segtrain.engine import train
from segtrain.losses import LOSSES
from segtrain.sweep import GRID_KEYS, SweepConfig, run_sweep, split_values
from segtrain.utils import SegtrainError

TINY = ["--model-opt", "width=8", "--model-opt", "depth=2"]
CLI_TINY = ["--model-opt", "base_width=4", "--model-opt", "depth=2"]  # unet_small



def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_clean_tree(tmp_path_factory.mktemp("sweep") / "data", counts={"train": 4, "val": 2}, size=(32, 48))


def test_split_values():
    assert split_values("train_parts", "head,decoder,head,all") == ["head", "decoder,head", "all"]
    assert split_values("train_parts", "head|decoder|all") == ["head", "decoder", "all"]
    assert split_values("lr", "1e-2, 1e-3") == [0.01, 0.001]
    assert split_values("batch_size", "2,4") == [2, 4]
    with pytest.raises(SegtrainError, match="'decoder' does not end with head"):
        split_values("train_parts", "head,decoder")
    with pytest.raises(SegtrainError, match="--lr .fast.: .fast. must be a number"):
        split_values("lr", "fast")
    # one value without the head is one value, as `run --train-parts` takes it
    assert split_values("train_parts", "encoder,decoder") == ["encoder,decoder"]
    assert split_values("train_parts", "decoder") == ["decoder"]
    # every scalar run option, typed; a choice option names its valid values
    assert split_values("inputs", "rgb, rgbd") == ["rgb", "rgbd"]
    assert split_values("grad_clip", "0,1.5") == [0.0, 1.5]
    assert split_values("class_weights", "median-freq,none") == ["median-freq", "none"]
    for key, bad, names in (("optimizer", "adan", OPTIMIZERS), ("loss", "focal", LOSS_NAMES)):
        text = f"--{key} '{names[0]},{bad}': '{bad}' is not one of {', '.join(names)}"
        with pytest.raises(SegtrainError, match=f"^{re.escape(text)}$"):
            split_values(key, f"{names[0]},{bad}")
    with pytest.raises(SegtrainError, match="--early-stop '2,x': 'x' must be a whole number"):
        split_values("early_stop", "2,x")


# ------------------------------------------------------------------ one declaration per option

OLD_GRID_KEYS = ("model", "lr", "train_parts", "batch_size", "weight_decay", "optimizer", "scheduler",
                 "warmup_steps", "loss", "augment", "epochs", "seed")  # the hand-typed tuple grids nested in


def test_every_train_config_field_is_a_run_flag_or_named_with_its_reason(tmp_path):
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    flags = [o.name for o in RUN_OPTIONS]
    assert sorted(flags + list(NOT_FLAGS)) == sorted(fields)  # each field once: a new one cannot be forgotten
    # `run` is built from the table alone (plus MODEL, --config and --resume, which set no field)
    assert [p.name for p in main.commands["run"].params] == ["model", *flags[:2], "config_file", *flags[2:], "resume"]
    # config-file keys are the fields themselves: a file with every one is read
    (tmp_path / "all.yaml").write_text(yaml.safe_dump(dataclasses.asdict(TrainConfig(data="d", out="o")), sort_keys=False))
    assert list(load_config_file(tmp_path / "all.yaml")) == fields


def test_sweep_offers_every_run_option_under_the_same_flags():
    run = {p.name: p for p in main.commands["run"].params}
    sweep = {p.name: p for p in main.commands["sweep"].params}
    assert set(run) - set(sweep) == {"model", *NOT_IN_SWEEP}  # sweep's MODELS is a comma list of them
    assert set(sweep) - set(run) == {"models", "dry_run", "strict"}
    for name in set(run) & set(sweep):
        assert (sweep[name].opts, sweep[name].secondary_opts) == (run[name].opts, run[name].secondary_opts)
    # grid keys come from the field types: every number or text option, not switches, sizes, model options
    assert {"inputs", "fusion", "depth_encoding", "class_weights", "grad_clip", "augment_on", "miou_rule",
            "val_split", "pretrained", "warmup_ratio", "early_stop"} <= set(GRID_KEYS)
    assert not {"amp", "compile", "sync_bn", "size", "crop", "model_options", "data", "out"} & set(GRID_KEYS)
    # the keys sweeps always had keep their nesting (existing sweep folders' names and columns)
    assert [k for k in GRID_KEYS if k in OLD_GRID_KEYS] == list(OLD_GRID_KEYS)
    assert GRID_KEYS[:4] == ("model", "inputs", "depth_encoding", "fusion") and GRID_KEYS[-1] == "seed"


def test_sweep_takes_any_run_option_as_one_value_or_a_grid_column(tree, tmp_path):
    """Options sweep did not take before: a list is a grid column, one value (or a switch) is
    every run's, and a bad choice is refused before anything is written."""
    out = tmp_path / "s"
    r = invoke("sweep", "baseline", "--data", tree.root, "--out", out, "--loss", "ce,focal", *TINY)
    assert r.exit_code == 2 and not out.exists()
    assert error_line(r) == f"Error: --loss 'ce,focal': 'focal' is not one of {', '.join(LOSS_NAMES)}"
    r = invoke("sweep", "baseline", "--data", tree.root, "--out", out, "--grad-clip", "0,2.5", "--class-weights",
               "none", "--miou-rule", "gt-present", "--no-amp", "--train-parts", "encoder,decoder",
               "--augment-on", "loader", "--val-split", "val", "--epochs", 1, "--batch-size", 2, "--workers", 0,
               "--device", "cpu", *TINY)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [(row["run"], row["grad_clip"]) for row in rows] == [("01-baseline-grad_clip=0.0", "0.0"),
                                                               ("02-baseline-grad_clip=2.5", "2.5")]
    assert "| grad clip |" in (out / "sweep.md").read_text()
    for row in rows:
        saved = load_config_file(out / row["run"] / "config.yaml")
        assert saved["grad_clip"] == float(row["grad_clip"]) and saved["class_weights"] == "none"
        assert (saved["miou_rule"], saved["amp"], saved["train_parts"]) == ("gt-present", False, "encoder,decoder")


def test_sweep_over_rgb_and_rgbd_inputs_and_fusion(tree, tmp_path, caplog):
    """`--inputs rgb,rgbd --fusion early,mid` on an RGB-D tree: the three networks `run` accepts
    (mid fusion needs depth: rgb+mid is left out), each a run folder whose config.yaml and
    checkpoint say what it saw, one table with inputs and fusion columns; a re-run reuses them."""
    data = tree  # an RGB-D tree: write_clean_tree writes depth/<split>/<sensor>/<id>_depth.png
    assert len(list((data.root / "depth").rglob("*_depth.png"))) == 6
    out = tmp_path / "s"
    args = ["sweep", "unet_small", "--data", data.root, "--out", out, "--inputs", "rgb,rgbd", "--fusion", "early,mid",
            "--epochs", 1, "--batch-size", 2, "--workers", 0, "--device", "cpu", *CLI_TINY]
    names = ["01-unet_small-inputs=rgb-fusion=early", "02-unet_small-inputs=rgbd-fusion=early",
             "03-unet_small-inputs=rgbd-fusion=mid"]
    with caplog.at_level(logging.INFO, logger="segtrain"):
        r = invoke(*args, "--dry-run")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [*names, "left out: model=unet_small inputs=rgb fusion=mid: --fusion mid fuses "
                                     "RGB and depth: it needs --inputs rgbd", "3 runs, 1 left out"]
    assert ("sweep: model=unet_small inputs=rgb fusion=mid left out of the grid: --fusion mid fuses RGB and depth: "
            "it needs --inputs rgbd") in caplog.messages
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert list(rows[0])[:4] == ["run", "model", "inputs", "fusion"]
    assert [(row["run"], row["inputs"], row["fusion"], row["stopped"]) for row in rows] == [
        (n, n.split("inputs=")[1].split("-")[0], n.rsplit("=", 1)[1], "completed") for n in names]
    assert "| run | model | inputs | fusion |" in (out / "sweep.md").read_text()
    for row in rows:
        saved = load_config_file(out / row["run"] / "config.yaml")
        assert (saved["inputs"], saved["fusion"]) == (row["inputs"], row["fusion"])
        ckpt = load_checkpoint(out / row["run"] / "last.pt")
        assert (ckpt.get("inputs", "rgb"), ckpt.get("fusion", "early")) == (row["inputs"], row["fusion"])
    params = [int(row["params"]) for row in rows]
    assert params[0] < params[1] < params[2]  # depth channels in the stem, then a whole depth encoder
    r = invoke(*args)
    assert r.exit_code == 0 and [row["stopped"] for row in csv.DictReader(open(out / "sweep.csv"))] == [
        "completed (reused)"] * 3
    # an RGB network reads no depth: it is trained once, not once per --depth-encoding, and its
    # name and row say no encoding
    with caplog.at_level(logging.INFO, logger="segtrain"):
        r = invoke("sweep", "unet_small", "--data", data.root, "--out", tmp_path / "e", "--inputs", "rgb,rgbd",
                   "--depth-encoding", "inverse,metres", "--dry-run")
    why = "trains the same as 01-unet_small-inputs=rgb (--depth-encoding changes nothing with --inputs rgb)"
    assert r.stdout.splitlines() == ["01-unet_small-inputs=rgb", "02-unet_small-inputs=rgbd-depth_encoding=inverse",
                                     "03-unet_small-inputs=rgbd-depth_encoding=metres",
                                     f"left out: model=unet_small inputs=rgb depth_encoding=metres: {why}",
                                     "3 runs, 1 left out"]
    assert f"sweep: model=unet_small inputs=rgb depth_encoding=metres left out of the grid: {why}" in caplog.messages
    # a model without mid fusion is left out of a mixed grid; a grid with nothing left is refused
    r = invoke("sweep", "baseline,unet_small", "--data", data.root, "--out", tmp_path / "m", "--inputs", "rgbd",
               "--fusion", "mid", "--dry-run")
    assert r.exit_code == 0 and r.stdout.splitlines()[0] == "01-unet_small"
    assert r.stdout.splitlines()[-1] == "1 runs, 1 left out"
    r = invoke("sweep", "baseline", "--data", data.root, "--out", tmp_path / "m", "--inputs", "rgbd", "--fusion",
               "mid", "--dry-run")
    assert r.exit_code == 2 and "sweep run 01-baseline: model 'baseline' does not support --fusion mid" in error_line(r)


def test_sweep_leaves_out_only_what_no_run_can_combine(tree, tmp_path, caplog):
    """Combinations `run` refuses as such are left out, with a warning that -q keeps; every other
    error of a run refuses the sweep as it refuses `run`; with nothing left, every reason once."""
    base = ["--data", tree.root, "--out", tmp_path / "s", "--dry-run"]
    # a plain mistake in a run is not a combination to leave out: the rgbd run is not dropped
    r = invoke("sweep", "unet_small", *base, "--inputs", "rgb,rgbd", "--model-opt", "in_channels=4")
    assert r.exit_code == 2 and error_line(r) == ("Error: sweep run 02-unet_small-inputs=rgbd: --inputs sets the "
                                                  "input channels; drop --model-opt in_channels")
    r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "r", "--inputs", "rgbd", "--model-opt",
               "in_channels=4")
    assert r.exit_code == 2 and "drop --model-opt in_channels" in error_line(r)
    # strong augmentation does not run on the device: that point is left out, not the sweep refused
    with caplog.at_level(logging.INFO, logger="segtrain"):
        r = invoke("-q", "sweep", "baseline", *base, "--augment", "basic,strong", "--augment-on", "loader,device")
    why = (f"--augment-on device supports --augment {' or '.join(DEVICE_AUGMENTS)}, not strong; use --augment-on "
           "loader or auto")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["01-baseline-augment=basic-augment_on=loader",
                                     "02-baseline-augment=basic-augment_on=device",
                                     "03-baseline-augment=strong-augment_on=loader",
                                     f"left out: model=baseline augment=strong augment_on=device: {why}",
                                     "3 runs, 1 left out"]
    assert [(rec.levelno, rec.getMessage()) for rec in caplog.records if "left out" in rec.getMessage()] == [
        (logging.WARNING, f"sweep: model=baseline augment=strong augment_on=device left out of the grid: {why}")]
    # a weighting method with a loss that takes no class weights (run refuses it): that point is left out
    takes = ", ".join(name for name, spec in LOSSES.items() if spec.uses_weights)
    shutil.copytree(tree.root, tmp_path / "w")
    doc = json.loads((tree.root / "dataset.json").read_text())
    doc["class_weights"] = {"median-freq": [1.0] * load_dataset_info(tree.root).num_classes}
    (tmp_path / "w" / "dataset.json").write_text(json.dumps(doc))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="segtrain"):
        r = invoke("-q", "sweep", "baseline", "--data", tmp_path / "w", *base[2:], "--loss", "ce,dice",
                   "--class-weights", "none,median-freq")
    why = (f"--class-weights median-freq: --loss dice takes no class weights (the losses that do: {takes}); "
           "use --class-weights none or leave it out")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["01-baseline-loss=ce-class_weights=none",
                                     "02-baseline-loss=ce-class_weights=median-freq",
                                     "03-baseline-loss=dice-class_weights=none",
                                     f"left out: model=baseline loss=dice class_weights=median-freq: {why}",
                                     "3 runs, 1 left out"]
    assert [rec.getMessage() for rec in caplog.records if "left out" in rec.getMessage()] == [
        f"sweep: model=baseline loss=dice class_weights=median-freq left out of the grid: {why}"]
    # nothing can run: each distinct reason, with the first run it refused
    r = invoke("sweep", "baseline", *base, "--inputs", "rgb,rgbd", "--fusion", "mid")
    assert r.exit_code == 2 and error_line(r).startswith(
        "Error: sweep run 01-baseline-inputs=rgb: --fusion mid fuses RGB and depth: it needs --inputs rgbd; "
        "sweep run 01-baseline-inputs=rgbd: model 'baseline' does not support --fusion mid; valid: ")
    assert not (tmp_path / "s").exists()


def test_sweep_trains_no_run_twice(tree, tmp_path):
    """Values that change nothing for a run (config.moot_options) or nothing at all do not
    train it again; a re-run compares only what changes the run."""
    base = ["sweep", "unet_small", "--data", tree.root, "--out", tmp_path / "s", "--dry-run"]
    r = invoke(*base, "--lr", "1e-2,0.01,1e-3")
    assert r.exit_code == 0 and r.stdout.splitlines() == [
        "01-unet_small-lr=0.01", "02-unet_small-lr=0.001", "left out: model=unet_small lr=0.01: trains the same "
        "as 01-unet_small-lr=0.01", "2 runs, 1 left out"]
    r = invoke(*base, "--warmup-steps", "0,5", "--warmup-ratio", "0.001,0.1")
    assert r.exit_code == 0 and r.stdout.splitlines()[:3] == [
        "01-unet_small-warmup_steps=0", "02-unet_small-warmup_steps=5-warmup_ratio=0.001",
        "03-unet_small-warmup_steps=5-warmup_ratio=0.1"]
    saved = dataclasses.asdict(TrainConfig(inputs="rgb", depth_encoding="metres", warmup_ratio=0.5))
    assert resume_config_diffs(saved, TrainConfig(inputs="rgb", depth_encoding="inverse"), skip=()) == []
    assert resume_config_diffs({**saved, "inputs": "rgbd"}, TrainConfig(inputs="rgbd", depth_encoding="inverse"),
                               skip=()) == ["--depth-encoding 'inverse' (the run: 'metres')"]


def test_sweep_checks_the_tree_for_every_value_before_the_first_run(tree, tmp_path):
    """What `run` refuses in the tree before writing anything (class weights, splits, depth)
    refuses the sweep, --dry-run included, not the run when its turn comes; so does a loss the
    --config file names that no run has."""
    out = tmp_path / "s"
    base = ["sweep", "baseline", "--data", tree.root, "--out", out]
    for flags, error in (
        (["--class-weights", "none,bogus"], f"sweep run 02-baseline-class_weights=bogus: {tree.root / 'dataset.json'}: "),
        (["--val-split", "val,nosuch"], f"sweep run 02-baseline-val_split=nosuch: {tree.root}: split 'nosuch' has no "
                                        "samples (choose another with --val-split)"),
    ):
        for dry in (["--dry-run"], []):
            r = invoke(*base, *flags, *dry, *TINY)
            assert r.exit_code == 2 and error_line(r).startswith(f"Error: {error}"), r.output
            assert not out.exists()
    r = invoke("run", "baseline", "--data", tree.root, "--out", tmp_path / "r", "--class-weights", "bogus", *TINY)
    assert r.exit_code == 2 and f"{tree.root / 'dataset.json'}: " in error_line(r) and not (tmp_path / "r").exists()
    flat = write_clean_tree(tmp_path / "flat", counts={"train": 2, "val": 1}, size=(32, 48), depth=False)
    r = invoke("sweep", "unet_small", "--data", flat.root, "--out", out, "--inputs", "rgb,rgbd", "--dry-run")
    assert r.exit_code == 2 and error_line(r).startswith(
        f"Error: sweep run 02-unet_small-inputs=rgbd: {flat.root}: 2 of 2 samples of split 'train' have no depth")
    (tmp_path / "loss.yaml").write_text("loss: focal\n")
    for cmd in ([*base, "--dry-run"], ["run", "baseline", "--data", tree.root, "--out", tmp_path / "r"]):
        r = invoke(*cmd, "--config", tmp_path / "loss.yaml", *TINY)
        assert r.exit_code == 2 and f"loss 'focal' is not one of {', '.join(LOSS_NAMES)}" in error_line(r)
    assert not out.exists() and not (tmp_path / "r").exists()


def test_sweep_table_keeps_swept_epochs_apart_from_epochs_completed(tree, tmp_path):
    """--epochs as a grid column is the value asked for; what each run completed is its own
    column then (a sweep that does not sweep epochs keeps its one `epochs` column)."""
    def stops_early(cfg, resume, progress):
        return SimpleNamespace(best_miou=0.5, best_epoch=1, epochs_completed=1, trainable_parameters=3,
                               parameters=3, train_time_s=0.1, stopped="early-stop")

    cfg = SweepConfig(out=str(tmp_path / "s"), base={"data": str(tree.root), "model": "baseline"},
                      grid={"epochs": [2, 3]})
    run_sweep(cfg, progress=False, train_fn=stops_early)
    rows = list(csv.DictReader(open(tmp_path / "s" / "sweep.csv")))
    assert list(rows[0]) == ["run", "epochs", "best_val_miou", "best_epoch", "epochs_completed", "trainable_params",
                             "params", "time_s", "stopped"]
    assert [(row["epochs"], row["epochs_completed"]) for row in rows] == [("2", "1"), ("3", "1")]
    assert "| run | epochs | best val mIoU | best epoch | epochs completed |" in (tmp_path / "s" / "sweep.md").read_text()


def test_sweep_grid_table_and_rerun(tree, tmp_path):
    args = ["sweep", "baseline", "--data", tree.root, "--out", tmp_path / "s", "--lr", "1e-2,1e-3",
            "--train-parts", "head,decoder,head,all", "--epochs", 2, "--batch-size", 2, "--workers", 0,
            "--early-stop", 0, *TINY]
    r = invoke(*args, "--dry-run")
    assert r.exit_code == 0 and "6 runs" in r.stdout
    assert "01-baseline-lr=0.01-train_parts=head" in r.stdout and "04-baseline-lr=0.001-train_parts=head" in r.stdout
    assert not (tmp_path / "s").exists()
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "s" / "sweep.csv")))
    assert list(rows[0]) == ["run", "model", "lr", "train_parts", "best_val_miou", "best_epoch", "epochs",
                             "trainable_params", "params", "time_s", "stopped"]
    assert [(r["lr"], r["train_parts"]) for r in rows] == [
        ("0.01", "head"), ("0.01", "decoder,head"), ("0.01", "all"),
        ("0.001", "head"), ("0.001", "decoder,head"), ("0.001", "all")]
    trainable = [int(r["trainable_params"]) for r in rows[:3]]
    assert trainable[0] < trainable[1] < trainable[2] == int(rows[0]["params"])
    for row in rows:
        ckpt = load_checkpoint(tmp_path / "s" / row["run"] / "best.pt")
        assert float(row["best_val_miou"]) == pytest.approx(ckpt["best_miou"])
        assert int(row["best_epoch"]) == ckpt["best_epoch"] and row["stopped"] == "completed"
        assert int(row["trainable_params"]) == ckpt["trainable_parameters"]
    md = (tmp_path / "s" / "sweep.md").read_text()
    assert md.count("\n") == 8 and md.count("**") == 2 and "| train parts |" in md
    r = invoke(*args)  # a re-run reuses finished runs
    assert r.exit_code == 0
    again = list(csv.DictReader(open(tmp_path / "s" / "sweep.csv")))
    assert [r["stopped"] for r in again] == ["completed (reused)"] * 6
    assert [r["best_val_miou"] for r in again] == [r["best_val_miou"] for r in rows]


def test_sweep_rejects_a_bad_grid_before_training(tree, tmp_path):
    r = invoke("sweep", "baseline,unet9", "--data", tree.root, "--out", tmp_path / "s", *TINY)
    assert r.exit_code == 2 and "unknown model 'unet9'" in r.stderr
    assert not (tmp_path / "s").exists()


def test_bench_several_models(tree, tmp_path):
    r = invoke("bench", "--data", tree.root, "--model", "baseline,unet_small", "--batch-size", 2, "--steps", 1,
               "--warmup", 0, "--workers", 0, "--device", "cpu", "--train-parts", "head",
               "--json-out", tmp_path / "b.json")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "b.json").read_text())
    assert [x["model"] for x in res] == ["baseline", "unet_small"]
    for x in res:
        assert x["real_images_per_s"] > 0 and x["activations_mib"] > 0
        assert 0 < x["trainable_parameters"] < x["parameters"]
    assert "unet_small 32x48 batch 2" in r.stdout and "activations" in r.stdout
    r = invoke("bench", "--data", tree.root, "--model", "all,fcn", "--workers", 0)
    assert r.exit_code == 2 and "unknown model 'all'" in r.stderr


# ----------------------------------------------------------------------------- Cityscapes


def fake_cityscapes(root):
    """leftImg8bit + gtFine _labelIds for 2 train cities, 1 val city, a test image without label."""
    rng = np.random.default_rng(0)
    ids = [7, 8, 11, 21, 23, 24, 26, 0, 4, 33]
    for split, cities, n in (("train", ("aachen", "bochum"), 2), ("val", ("frankfurt",), 2), ("test", ("berlin",), 1)):
        for city in cities:
            for i in range(n):
                stem = f"{city}_{i:06d}_000019"
                lab = np.full((32, 64), rng.choice(ids), np.uint8)
                lab[8:24, 10:40] = rng.choice(ids)
                lab[:, 50:] = 26
                l32 = lab.astype(np.int32)
                img = (np.stack([l32 * 7, l32 * 3, 255 - l32 * 5], -1) % 256).astype(np.uint8)
                for folder, name, arr in (("leftImg8bit", "leftImg8bit", img), ("gtFine", "gtFine_labelIds", lab)):
                    if split == "test" and folder == "gtFine":
                        continue
                    p = root / folder / split / city / f"{stem}_{name}.png"
                    p.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(p), arr)


def test_dataset_json_cityscapes_and_cross_domain_init(tree, tmp_path):
    city = tmp_path / "cityscapes"
    fake_cityscapes(city)
    r = invoke("dataset-json", "cityscapes", city, "--strict")
    assert r.exit_code == 1  # the test image without gtFine label is reported
    assert "berlin_000000_000019_leftImg8bit.png: no gtFine label" in r.stderr
    assert "19 train classes, 34 label ids; train 4, val 2, test 1; 32x64; 1 problems" in r.stdout
    meta = json.loads((city / "dataset.json").read_text())
    assert meta["num_classes"] == 19 and meta["image_size"] == [32, 64] and meta["depth"] is None
    # the current schema, with a label mode eval prints next to the mIoU
    assert meta["schema_version"] == 2 and meta["label_mode"] == "gtFine"
    train_names = [c["name"] for c in sorted(meta["classes"], key=lambda c: c["train_id"]) if c["train_id"] != 255]
    assert train_names[:3] == ["road", "sidewalk", "building"] and train_names[-1] == "bicycle"
    assert [c["id"] for c in meta["classes"]] == list(range(34))
    assert len(CITYSCAPES_LABELS) == 34
    info = load_dataset_info(city)
    assert info.num_classes == 19 and info.class_names[13] == "car"
    sample = list_samples(info, "train")[0]
    assert sample.label_kind == "ids" and sample.sensor == "aachen"
    raw = cv2.imread(str(sample.label), cv2.IMREAD_UNCHANGED)
    lut = {cid: tid for _, cid, tid, *_ in CITYSCAPES_LABELS}
    assert np.array_equal(read_label(sample, info), np.vectorize(lut.get)(raw).astype(np.uint8))
    assert invoke("dataset-json", "cityscapes", city).exit_code == 0  # same content: rewritten quietly
    (city / "dataset.json").write_text("{}")
    r = invoke("dataset-json", "cityscapes", city)
    assert r.exit_code == 2 and "exists and differs; use --force" in r.stderr
    assert invoke("dataset-json", "cityscapes", city, "--force").exit_code == 0
    r = invoke("dataset-json", "cityscapes", tmp_path / "nowhere")
    assert r.exit_code == 2 and f"{tmp_path / 'nowhere'}: folder not found" in r.stderr
    # SUN RGB-D-style (39 classes) -> Cityscapes (19): the head is rebuilt, the rest transfers
    cfg = dict(model="baseline", model_options={"width": 8, "depth": 2}, epochs=1, batch_size=2, workers=0)
    train(TrainConfig(data=str(tree.root), out=str(tmp_path / "sun"), **cfg), progress=False)
    res = train(TrainConfig(data=str(city), out=str(tmp_path / "sun2city"), train_parts="head",
                            init_from=str(tmp_path / "sun" / "best.pt"), **cfg), progress=False)
    assert res.epochs_completed == 1 and res.best_miou is not None
    ckpt = load_checkpoint(tmp_path / "sun2city" / "last.pt")
    assert ckpt["model"]["head.weight"].shape[0] == 19 and ckpt["dataset"] == "cityscapes"
    src = load_checkpoint(tmp_path / "sun" / "best.pt")["model"]
    assert torch.equal(ckpt["model"]["encoder.layers.0.0.weight"], src["encoder.layers.0.0.weight"])
