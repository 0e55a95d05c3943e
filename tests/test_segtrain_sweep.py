"""`segtrain sweep` (grid -> run folders + comparison table), `segtrain bench` over several
models, and `segtrain dataset-json cityscapes` on a fake Cityscapes tree with a cross-domain
--init-from."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from treebuilder import write_clean_tree

from segtrain.checkpoint import load_checkpoint
from segtrain.cityscapes import CITYSCAPES_LABELS
from segtrain.cli import main
from segtrain.config import TrainConfig
from segtrain.data import list_samples, load_dataset_info, read_label
from segtrain.engine import train
from segtrain.sweep import split_values
from segtrain.utils import SegtrainError

TINY = ["--model-opt", "width=8", "--model-opt", "depth=2"]



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
