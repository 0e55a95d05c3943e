"""RGB-D training (issue 14): depth stays aligned through every augmentation, missing depth
stays missing, normalisation, the fusion registry, checkpoints and refusal of mismatched inputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_segtrain_cli import TINY, error_line, invoke
from treebuilder import write_clean_tree

from segtrain.checkpoint import load_checkpoint
from segtrain.data import Sample, SegDataset, eval_dataset, load_dataset_info, train_dataset
from segtrain.depth import FALLBACK_DEPTH_STATS, encode_depth
from segtrain.models import create_model, fusion_models
from segtrain.models.fusion import FUSIONS, TwoBranchEncoder
from segtrain.models.pretrained import _fit, load_encoder_weights
from segtrain.runtime import Runtime
from segtrain.transforms import build_train_transform

N = 64
MISSING_CLASS = 4  # pixels of this class have no depth in the source


def _coordinate_sample():
    """Depth encodes its own pixel coordinates (1 + y*N + x mm), the label is a function of
    them, and depth is missing (0) exactly where the label is MISSING_CLASS."""
    y, x = np.mgrid[0:N, 0:N]
    label = (((x // 8) + (y // 8)) % 5).astype(np.uint8)
    depth = (1 + y * N + x).astype(np.uint16)
    depth[label == MISSING_CLASS] = 0
    image = np.stack([x * 4, y * 4, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    return image, label, depth


class _Coordinates(SegDataset):
    def __init__(self, transform):
        sample = Sample("coords", "train", "kv2", Path("-"), Path("-"), "train_ids", Path("-"))
        super().__init__(info=None, samples=[sample], transform=transform, with_depth=True)

    def load(self, index):
        return _coordinate_sample()


@pytest.mark.parametrize("augment,crop", [("basic", None), ("strong", None), ("strong", (48, 80))])
def test_depth_moves_with_the_mask_through_every_augmentation(augment, crop):
    ds = _Coordinates(build_train_transform(augment, crop=crop))
    moved = 0
    for seed in range(25):
        item = ds[(0, seed)]
        mask = item["mask"].numpy()
        mm = np.rint(item["depth"].numpy() * 1000).astype(np.int64)
        assert mm.shape == mask.shape
        invented = mask == 255
        # regions a transform invents are ignore in the mask and missing in depth, nothing else
        assert (mm[invented] == 0).all()
        # missing depth stays missing: exactly where the (moved) label says the source had none
        assert ((mm == 0) == (invented | (mask == MISSING_CLASS))).all()
        # every valid depth value is a source pixel (never interpolated) whose label is the mask's
        valid = mm > 0
        sy, sx = (mm[valid] - 1) // N, (mm[valid] - 1) % N
        assert (mask[valid] == (((sx // 8) + (sy // 8)) % 5)).all()
        moved += int(not np.array_equal(mm[valid], np.sort(mm[valid])))
    assert moved > 0  # the geometric transforms did act


def test_depth_follows_the_image_under_geometry_and_ignores_colour():
    """With flips / affine warps the image (R = 4x, G = 4y) and depth decode to the same place
    (up to linear interpolation of the image); colour jitter changes the image only."""
    ds = _Coordinates(build_train_transform("basic"))
    checked = 0
    for seed in range(10):
        item = ds[(0, seed)]
        mm = np.rint(item["depth"].numpy() * 1000).astype(np.int64)
        image = item["image"].numpy().astype(float)
        valid = (mm > 0) & (item["mask"].numpy() != 255)
        sy, sx = (mm[valid] - 1) // N, (mm[valid] - 1) % N
        if image[2][valid].std() == 0 and abs(image[2][valid].mean() - 128) < 1:  # no colour jitter drawn
            assert np.median(np.abs(image[0][valid] / 4 - sx)) <= 1.0
            assert np.median(np.abs(image[1][valid] / 4 - sy)) <= 1.0
            checked += 1
        assert (np.rint(item["depth"].numpy() * 1000)[valid] > 0).all()  # colour never reaches depth
    assert checked > 0


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_clean_tree(tmp_path_factory.mktemp("rgbd") / "data", counts={"train": 4, "val": 2, "test": 2},
                            size=(32, 48), sensors=("kv2", "kv1"))


def test_eval_resize_moves_depth_nearest_and_keeps_holes(tree):
    info = load_dataset_info(tree.root)
    ds = eval_dataset(info, "val", size=(16, 24), with_depth=True)
    _, _, raw = ds.load(0)
    item = ds[0]
    mm = np.rint(item["depth"].numpy() * 1000)
    assert mm.shape == (16, 24) == tuple(item["image"].shape[1:])
    assert set(np.unique(mm)) <= set(np.unique(raw))  # nearest: no value invented
    assert (mm == 0).any()  # the tree's holes are still holes
    plain = eval_dataset(info, "val", with_depth=True)[0]
    assert torch.equal(plain["depth"], torch.from_numpy(raw.astype(np.float32) / 1000))


def test_depth_normalisation_and_its_fallback(tree, caplog):
    metres = torch.tensor([[[0.0, 1.0, 3.0, 20.0]]])
    x = encode_depth(metres, "metres", 2.0, 0.5)
    assert x.shape == (1, 1, 1, 4)
    assert x.flatten().tolist() == [0.0, -2.0, 2.0, (10.0 - 2.0) / 0.5]  # missing -> 0, clipped at 10 m
    inv = encode_depth(metres, "inverse", 2.0, 0.5).flatten().tolist()
    assert inv[0] == 0.0 and inv[1] == pytest.approx(1.0) and inv[2] == pytest.approx(2 / 3 - 1)
    assert inv[3] == pytest.approx(2 / 10 - 1)
    info = load_dataset_info(tree.root)
    with caplog.at_level(logging.WARNING, logger="segtrain"):
        assert info.depth_stats() == (*FALLBACK_DEPTH_STATS, "fallback")
    assert "depth_mean" in caplog.text
    meta = json.loads((tree.root / "dataset.json").read_text())
    path = tree.root.parent / "withstats"
    path.mkdir(exist_ok=True)
    (path / "dataset.json").write_text(json.dumps({**meta, "depth_mean": 2.5, "depth_std": 0.8}))
    assert load_dataset_info(path).depth_stats() == (2.5, 0.8, "dataset.json")


def test_runtime_puts_depth_after_rgb(tree):
    info = load_dataset_info(tree.root)
    ds = train_dataset(info, "train", "none", with_depth=True)
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ("image", "depth")}
    cpu = torch.device("cpu")
    rgbd = Runtime.create(cpu, info.mean, info.std, False, False, "rgbd", "metres", (2.0, 1.0))
    rgb = Runtime.create(cpu, info.mean, info.std, False, False)
    x = rgbd.batch_inputs(batch)
    assert x.shape == (2, 4, 32, 48)
    assert torch.equal(x[:, :3], rgb.batch_inputs(batch))
    assert torch.equal(x[:, 3], encode_depth(batch["depth"], "metres", 2.0, 1.0)[:, 0])
    depth_only = Runtime.create(cpu, info.mean, info.std, False, False, "depth", "inverse", (2.0, 1.0))
    assert depth_only.batch_inputs(batch).shape == (2, 1, 32, 48)


def test_fusion_registry_builds_every_supported_pair_and_lists_the_valid_ones():
    from segtrain.config import FUSIONS as FUSION_CHOICES

    assert tuple(FUSIONS) == FUSION_CHOICES
    x = torch.randn(2, 4, 32, 32)
    for fusion in FUSIONS:
        for name in ("unet_small", "deeplabv3plus"):
            opts = {"base_width": 4} if name == "unet_small" else {"backbone": "resnet18", "base_width": 8}
            model = create_model(name, 5, inputs="rgbd", fusion=fusion, **opts).eval()
            assert model(x).shape == (2, 5, 32, 32)
            assert isinstance(model.encoder, TwoBranchEncoder) == (fusion == "mid")
    depth = create_model("unet_small", 5, inputs="depth", base_width=4).eval()
    assert depth(torch.randn(1, 1, 32, 32)).shape == (1, 5, 32, 32)
    assert "baseline" not in fusion_models("mid") and "baseline" in fusion_models("early")
    with pytest.raises(ValueError, match="--fusion mid: .*deeplabv3plus"):
        create_model("baseline", 5, inputs="rgbd", fusion="mid")
    with pytest.raises(ValueError, match="needs --inputs rgbd"):
        create_model("unet_small", 5, inputs="depth", fusion="mid")
    with pytest.raises(ValueError, match="needs --inputs rgbd"):
        create_model("unet_small", 5, fusion="mid")
    fcn = create_model("fcn8s", 5, inputs="rgbd", fusion="mid", backbone="resnet18", base_width=8).eval()
    assert fcn(x).shape == (2, 5, 32, 32)
    with pytest.raises(ValueError, match="in_channels"):
        create_model("unet_small", 5, inputs="rgbd", in_channels=4)


def test_pretrained_rgb_first_conv_extends_with_the_mean_filter():
    rgb = torch.randn(8, 3, 7, 7)
    four = _fit(rgb, torch.zeros(8, 4, 7, 7))
    assert torch.equal(four[:, :3], rgb) and torch.allclose(four[:, 3], rgb.mean(1))
    assert torch.allclose(_fit(rgb, torch.zeros(8, 1, 7, 7))[:, 0], rgb.mean(1))
    assert _fit(rgb, torch.zeros(8, 2, 7, 7)) is None
    model = create_model("unet_small", 5, inputs="rgbd", fusion="mid", base_width=4)
    model.encoder.init_depth_from_rgb()
    w_rgb = model.encoder.rgb.stages[0][0].weight
    assert torch.allclose(model.encoder.depth.stages[0][0].weight, w_rgb.mean(1, keepdim=True))
    assert torch.equal(model.encoder.depth.stages[1][1][0].weight, model.encoder.rgb.stages[1][1][0].weight)



def test_pretrained_resnet_weights_load_into_both_fusion_designs(tmp_path):
    src = create_model("deeplabv3plus", 5, backbone="resnet18", base_width=8)
    torch.save(src.encoder.state_dict(), tmp_path / "enc.pt")
    early = create_model("deeplabv3plus", 5, inputs="rgbd", backbone="resnet18", base_width=8)
    assert not load_encoder_weights(early, tmp_path / "enc.pt").missing
    assert torch.equal(early.encoder.conv1.weight[:, :3], src.encoder.conv1.weight)
    mid = create_model("deeplabv3plus", 5, inputs="rgbd", fusion="mid", backbone="resnet18", base_width=8)
    report = load_encoder_weights(mid, tmp_path / "enc.pt")
    assert "rgb branch" in report.layout and all(k.startswith(("depth.", "se_")) for k in report.missing)
    mid.encoder.init_depth_from_rgb()
    assert torch.allclose(mid.encoder.depth.conv1.weight, src.encoder.conv1.weight.mean(1, keepdim=True))
    assert torch.equal(mid.encoder.depth.layer2[0].conv1.weight, src.encoder.layer2[0].conv1.weight)


# ----------------------------------------------------------------------------- CLI



@pytest.fixture(scope="module")
def rgbd_run(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("rgbd-run") / "run"
    r = invoke("run", "unet_small", "--data", tree.root, "--out", out, "--epochs", 1, "--batch-size", 2,
               "--workers", 0, "--inputs", "rgbd", "--fusion", "mid", "--depth-encoding", "inverse", *TINY)
    assert r.exit_code == 0, r.output
    return out


def test_checkpoint_records_inputs_and_round_trips(rgbd_run, tree, tmp_path):
    ckpt = load_checkpoint(rgbd_run / "best.pt")
    assert (ckpt["inputs"], ckpt["depth_encoding"], ckpt["fusion"]) == ("rgbd", "inverse", "mid")
    assert (ckpt["depth_mean"], ckpt["depth_std"]) == FALLBACK_DEPTH_STATS
    r = invoke("eval", rgbd_run / "best.pt", "--data", tree.root, "--split", "test", "--out", tmp_path / "ev",
               "--workers", 0)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["num_images"] == 2
    # resume with other inputs is refused
    r = invoke("run", "unet_small", "--data", tree.root, "--out", rgbd_run, "--resume", "--epochs", 2,
               "--inputs", "rgbd", "--fusion", "early")
    assert r.exit_code == 2 and "--fusion mid" in error_line(r)


def test_predict_needs_depth_exactly_when_the_checkpoint_does(rgbd_run, tree, tmp_path):
    images, depths = tmp_path / "images", tmp_path / "depth"
    for src, dst in ((tree.root / "leftImg8bit" / "test", images), (tree.root / "depth" / "test", depths)):
        dst.mkdir()
        for p in src.rglob("*.png"):
            (dst / p.name).write_bytes(p.read_bytes())
    r = invoke("predict", rgbd_run / "best.pt", images, "--out", tmp_path / "p0")
    assert r.exit_code == 2 and "--inputs rgbd; give --depth DIR" in error_line(r)
    r = invoke("predict", rgbd_run / "best.pt", images, "--depth", depths, "--out", tmp_path / "p1")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "p1").glob("*_labelTrainIds.png"))) == 2
    # a depth map of the wrong size is one problem line, that image skipped
    victim = sorted(depths.glob("*.png"))[0]
    cv2.imwrite(str(victim), np.ones((5, 5), np.uint16))
    r = invoke("predict", rgbd_run / "best.pt", images, "--depth", depths, "--out", tmp_path / "p2", "--strict")
    assert r.exit_code == 1 and "differs from its image" in r.stderr
    # an RGB checkpoint takes no depth
    rgb_out = tmp_path / "rgb"
    assert invoke("run", "unet_small", "--data", tree.root, "--out", rgb_out, "--epochs", 1, "--batch-size", 2,
                  "--workers", 0, *TINY).exit_code == 0
    assert "inputs" not in load_checkpoint(rgb_out / "last.pt")  # RGB checkpoints unchanged
    r = invoke("predict", rgb_out / "last.pt", images, "--depth", depths, "--out", tmp_path / "p3")
    assert r.exit_code == 2 and "takes no --depth" in error_line(r)


def test_predict_resume_notices_a_replaced_depth_map(rgbd_run, tree, tmp_path):
    """predict.json stamps each input's depth map too: one replaced after its masks were
    written (same name) predicts that image again; the other stays skipped."""
    images, depths = tmp_path / "images", tmp_path / "depth"
    for src, dst in ((tree.root / "leftImg8bit" / "test", images), (tree.root / "depth" / "test", depths)):
        dst.mkdir()
        for p in src.rglob("*.png"):
            (dst / p.name).write_bytes(p.read_bytes())
    args = ("predict", rgbd_run / "best.pt", images, "--depth", depths, "--out", tmp_path / "p")
    assert invoke(*args).exit_code == 0
    victim = sorted(depths.glob("*.png"))[0]
    cv2.imwrite(str(victim), cv2.imread(str(victim), cv2.IMREAD_UNCHANGED) // 2)
    r = invoke(*args)
    assert r.exit_code == 0 and "1 images predicted, 1 already predicted, 0 skipped" in r.stdout, r.output


def test_depth_inputs_on_a_tree_without_depth_are_refused(rgbd_run, tmp_path):
    nodepth = write_clean_tree(tmp_path / "nodepth", counts={"train": 2, "val": 1, "test": 1}, size=(32, 48),
                               depth=False)
    r = invoke("eval", rgbd_run / "best.pt", "--data", nodepth.root, "--split", "test", "--out", tmp_path / "ev",
               "--workers", 0)
    assert r.exit_code == 2 and "no depth file" in error_line(r)
    r = invoke("run", "unet_small", "--data", nodepth.root, "--out", tmp_path / "r", "--epochs", 1,
               "--inputs", "depth", "--workers", 0, *TINY)
    assert r.exit_code == 2 and "no depth file" in error_line(r)
    r = invoke("run", "baseline", "--data", nodepth.root, "--out", tmp_path / "r2", "--inputs", "rgbd",
               "--fusion", "mid")
    assert r.exit_code == 2 and "valid: --fusion early:" in error_line(r)


def test_bench_and_models_know_the_inputs(tree):
    r = invoke("bench", "--data", tree.root, "--model", "unet_small", *TINY, "--batch-size", 2, "--steps", 1,
               "--warmup", 0, "--workers", 0, "--inputs", "rgbd", "--fusion", "mid", "--device", "cpu")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout[: r.stdout.rindex("}") + 1])
    assert (result["inputs"], result["fusion"]) == ("rgbd", "mid")
    r = invoke("models")
    assert r.exit_code == 0 and "--fusion mid" in r.stdout and "--inputs rgb|rgbd|depth" in r.stdout
