"""The `segtrain` command end to end on a tiny tree: run, eval, predict, models, bench,
and the one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from treebuilder import write_clean_tree

from segtrain.cli import main
from segtrain.config import LOSS_NAMES, MID_FUSION_MODELS, MIOU_RULES, short_model_list
from segtrain.losses import LOSSES
from segtrain.models import MODELS, fusion_models

TINY = ["--model-opt", "base_width=4", "--model-opt", "depth=2"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def error_line(result) -> str:
    """The single 'Error: ...' line of a failed command."""
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tree and a 2-epoch run made through the CLI (with a config file under the flags)."""
    root = tmp_path_factory.mktemp("st-cli")
    tree = write_clean_tree(root / "data", counts={"train": 4, "val": 2, "test": 3}, size=(32, 48),
                            sensors=("kv2", "kv1"))
    (root / "run.yaml").write_text(yaml.safe_dump({"epochs": 5, "lr": 0.01, "batch_size": 2, "augment": "none",
                                                   "model_options": {"base_width": 4, "depth": 3}}))
    # --model-opt overrides the file's model_options key by key: base_width 4 from the file, depth 2
    r = invoke("run", "unet_small", "--data", tree.root, "--out", root / "run", "--config", root / "run.yaml",
               "--epochs", 2, "--workers", 0, "--device", "cpu", "--model-opt", "depth=2")
    assert r.exit_code == 0, r.output
    assert "completed: 2 epochs" in r.stdout
    return tree, root


def test_run_writes_resolved_config_with_flags_over_file(trained):
    tree, root = trained
    cfg = yaml.safe_load((root / "run" / "config.yaml").read_text())
    assert cfg["epochs"] == 2 and cfg["lr"] == 0.01 and cfg["augment"] == "none"  # flag > file > default
    assert cfg["model_options"] == {"base_width": 4, "depth": 2}
    rows = list(csv.DictReader(open(root / "run" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "val_loss", "val_miou", "val_miou_kv1", "val_miou_kv2", "lr"} <= set(rows[0])


def test_eval_writes_report(trained, tmp_path):
    tree, root = trained
    r = invoke("eval", root / "run" / "best.pt", "--data", tree.root, "--split", "test", "--out",
               tmp_path / "rep", "--workers", 0, "--panels", 2)
    assert r.exit_code == 0, r.output
    for name in ("metrics.json", "per_class_iou.csv", "confusion_matrix.csv", "per_class_iou.png",
                 "confusion_matrix.png", "curves.png", "panels_best.png", "panels_worst.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0, name
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert 0 <= m["miou"] <= 1 and 0 <= m["pixel_accuracy"] <= 1
    assert m["num_images"] == 3 and len(m["best_images"]) == 2
    assert set(m["per_sensor_miou"]) == {"kv1", "kv2"}
    n = len(m["per_class_iou"])
    with open(tmp_path / "rep" / "confusion_matrix.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "gt\\pred" and rows[0][1:3] == ["wall", "floor"] and rows[1][0] == "wall"
    assert len(rows) == n + 1 and all(len(r) == n + 1 for r in rows)
    mat = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    gt = sum(int((cv2.imread(str(p), cv2.IMREAD_UNCHANGED) != 255).sum())
             for p in (tree.root / "gtFine" / "test").rglob("*_labelTrainIds.png"))
    assert mat.sum() == gt  # every labelled test pixel counted once, at label resolution
    acc = np.trace(mat) / mat.sum()
    assert m["pixel_accuracy"] == pytest.approx(acc)
    for img in ("panels_best.png", "curves.png"):
        assert cv2.imread(str(tmp_path / "rep" / img)) is not None


def test_predict_writes_masks_at_original_size_and_skips_bad_images(trained, tmp_path):
    tree, root = trained
    src = tmp_path / "in"
    src.mkdir()
    img = (np.random.default_rng(0).random((37, 53, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(src / "odd.jpg"), img)
    (src / "broken.png").write_bytes(b"not a png")
    test_img = next((tree.root / "leftImg8bit" / "test").rglob("*.png"))
    r = invoke("predict", root / "run" / "last.pt", src / "odd.jpg", test_img, src / "broken.png",
               "--out", tmp_path / "out", "--strict")
    assert r.exit_code == 1  # one image skipped under --strict
    assert "2 images predicted, 1 skipped" in r.stdout and "broken.png" in r.stderr
    lab = cv2.imread(str(tmp_path / "out" / "odd_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
    col = cv2.imread(str(tmp_path / "out" / "odd_color.png"))
    assert lab.shape == (37, 53) and col.shape == (37, 53, 3) and lab.max() < 39
    stem = test_img.name.removesuffix("_leftImg8bit.png")
    assert cv2.imread(str(tmp_path / "out" / f"{stem}_labelTrainIds.png"), cv2.IMREAD_UNCHANGED).shape == (32, 48)


def test_eval_records_the_miou_rule_and_both_numbers(trained, tmp_path):
    tree, root = trained
    got = {}
    for rule in ("standard", "gt-present"):
        extra = () if rule == "standard" else ("--miou-rule", rule)  # standard is the default
        r = invoke("eval", root / "run" / "best.pt", "--data", tree.root, "--out", tmp_path / rule,
                   "--workers", 0, "--panels", 0, *extra)
        assert r.exit_code == 0, r.output
        m = json.loads((tmp_path / rule / "metrics.json").read_text())
        assert m["miou_rule"] == rule and m["miou"] == m["miou_by_rule"][rule]
        assert r.stdout.startswith(f"test: {rule} mIoU ")
        got[rule] = m
    assert got["standard"]["miou_by_rule"] == got["gt-present"]["miou_by_rule"]
    # the standard rule scores every class it predicts (0 when absent), so it never scores fewer
    assert got["standard"]["classes_evaluated"] >= got["gt-present"]["classes_evaluated"]
    predicted_absent = [c for c in got["standard"]["absent_classes"]
                        if got["standard"]["per_class_iou"][c] is not None]
    assert all(got["standard"]["per_class_iou"][c] == 0.0 for c in predicted_absent)
    assert all(got["gt-present"]["per_class_iou"][c] is None for c in predicted_absent)
    r = invoke("eval", root / "run" / "best.pt", "--data", tree.root, "--out", tmp_path / "x",
               "--miou-rule", "macro")
    assert r.exit_code == 2 and f"'macro' is not one of {', '.join(map(repr, MIOU_RULES))}" in r.stderr


def test_predict_follows_exif_orientation_unless_told_to_keep_the_stored_pixels(trained, tmp_path):
    from PIL import Image

    tree, root = trained
    src = tmp_path / "in"
    src.mkdir()
    stored = (np.random.default_rng(1).random((20, 30, 3)) * 255).astype(np.uint8)  # H 20, W 30
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": viewers show it 30 high, 20 wide
    Image.fromarray(stored).save(src / "phone.jpg", exif=exif)
    r = invoke("predict", root / "run" / "last.pt", src / "phone.jpg", "--out", tmp_path / "upright")
    assert r.exit_code == 0, r.output
    r = invoke("predict", root / "run" / "last.pt", src / "phone.jpg", "--out", tmp_path / "stored",
               "--keep-exif-orientation")
    assert r.exit_code == 0, r.output
    upright = cv2.imread(str(tmp_path / "upright" / "phone_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
    kept = cv2.imread(str(tmp_path / "stored" / "phone_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
    assert upright.shape == (30, 20) and kept.shape == (20, 30)
    assert "EXIF orientation" in invoke("predict", "--help").stdout


def test_models_lists_registry_with_parameter_counts():
    r = invoke("models")
    assert r.exit_code == 0
    assert "31,040,103" in r.stdout and "unet_small" in r.stdout and "encoder" in r.stdout


def test_bench_reports_both_modes_and_ratio(trained, tmp_path):
    tree, _ = trained
    r = invoke("bench", "--data", tree.root, "--batch-size", 2, "--steps", 2, "--warmup", 1,
               "--workers", 0, "--device", "cpu", *TINY, "--json-out", tmp_path / "b.json")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "b.json").read_text())
    assert res["real_images_per_s"] > 0 and res["synthetic_images_per_s"] > 0
    assert res["real_over_synthetic"] == pytest.approx(res["real_images_per_s"] / res["synthetic_images_per_s"])


# ---------------------------------------------------------------------------- bad input


def test_error_no_dataset_json(tmp_path):
    (tmp_path / "empty").mkdir()
    r = invoke("run", "unet_small", "--data", tmp_path / "empty", "--out", tmp_path / "run", "--workers", 0)
    assert r.exit_code == 2
    assert "no dataset.json" in error_line(r)


def test_error_missing_file(tmp_path):
    tree = write_clean_tree(tmp_path / "data", counts={"train": 2, "val": 1}, size=(32, 48))
    victim = next((tree.root / "leftImg8bit" / "train").rglob("*.png"))
    victim.unlink()
    r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "run", "--workers", 0, *TINY)
    assert r.exit_code == 2
    line = error_line(r)
    assert str(victim) in line and "file not found" in line


@pytest.mark.parametrize("workers", [0, 1])
def test_error_mask_value_outside_class_table(tmp_path, workers):
    tree = write_clean_tree(tmp_path / "data", counts={"train": 2, "val": 1}, size=(32, 48))
    bad = next((tree.root / "gtFine" / "train").rglob("*_labelTrainIds.png"))
    mask = cv2.imread(str(bad), cv2.IMREAD_UNCHANGED)
    mask[:3, :3] = 77
    cv2.imwrite(str(bad), mask)
    r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "run", "--workers", workers,
               "--epochs", 1, "--batch-size", 2, *TINY)
    assert r.exit_code == 2
    line = error_line(r)
    assert bad.name in line and "[77]" in line and "outside the class table" in line


def test_error_checkpoint_from_another_class_table(trained, tmp_path):
    tree, root = trained
    other = tmp_path / "other"
    shutil.copytree(tree.root, other)
    meta = json.loads((other / "dataset.json").read_text())
    meta["classes"][2]["name"] = "sofa_bed"
    (other / "dataset.json").write_text(json.dumps(meta))
    r = invoke("eval", root / "run" / "best.pt", "--data", other, "--out", tmp_path / "rep", "--workers", 0)
    assert r.exit_code == 2
    line = error_line(r)
    assert "class table differs" in line and "'floor'" in line and "'sofa_bed'" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_error_cuda_requested_without_cuda(trained, tmp_path):
    tree, _ = trained
    r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "run", "--device", "cuda", *TINY)
    assert r.exit_code == 2
    assert "CUDA is not available" in error_line(r)


def test_error_bad_checkpoint_and_unknown_model(trained, tmp_path):
    tree, _ = trained
    (tmp_path / "junk.pt").write_bytes(b"junk")
    r = invoke("eval", tmp_path / "junk.pt", "--data", tree.root, "--out", tmp_path / "rep")
    assert r.exit_code == 2 and "not a loadable checkpoint" in error_line(r)
    r = invoke("run", "resnet", "--data", tree.root, "--out", tmp_path / "run")
    assert r.exit_code == 2 and f"unknown model 'resnet'; available: {', '.join(sorted(MODELS))}" in error_line(r)
    r = invoke("run", "unet_small", "--data", tree.root, "--size", "48by64")
    assert r.exit_code == 2


def test_light_name_tuples_equal_their_registries():
    """The help's loss and mid-fusion lists live in segtrain.config so `--help` needs no torch;
    they must name exactly what segtrain.losses and segtrain.models register."""
    assert LOSS_NAMES == tuple(LOSSES)
    assert sorted(MID_FUSION_MODELS) == sorted(fusion_models("mid"))
    assert short_model_list(["unet", "unet_small", "fcn8s", "baseline"]) == "unet*, fcn8s, baseline"


def test_help_lists_come_from_the_tuples_without_loading_torch():
    code = """
import contextlib, io, json, sys
from segtrain.cli import main
out = {}
for cmd in ("run", "sweep"):
    with contextlib.redirect_stdout(io.StringIO()) as f:
        try:
            main([cmd, "--help"], prog_name="segtrain")
        except SystemExit:
            pass
    out[cmd] = f.getvalue()
print(json.dumps({"torch": "torch" in sys.modules, **out}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["torch"] is False
    run_help, sweep_help = " ".join(got["run"].split()), " ".join(got["sweep"].split())
    assert f"[{'|'.join(LOSS_NAMES)}]" in run_help
    assert f"SE fusion per stage ({short_model_list(MID_FUSION_MODELS)})" in run_help
    assert f"--loss [{'|'.join(LOSS_NAMES)}],... [default: ce]" in sweep_help  # a comma list of run's choices
