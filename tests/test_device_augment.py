"""Batched on-device augmentation (segtrain.device_augment), on CPU tensors: masks are never
interpolated, image / mask / depth move together, parameters depend only on each sample's
seed, and `segtrain run --augment-on device` trains."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import yaml
from albumentations.augmentations.pixel import functional as AF
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from test_segtrain_transforms import assert_aligned, scene
from treebuilder import write_clean_tree

from segtrain.augment_params import AUGMENT_PARAMS, DEVICE_AUGMENTS
from segtrain.checkpoint import load_checkpoint
from segtrain.cli import main
from segtrain.config import TrainConfig
from segtrain.data import EpochSampler, load_dataset_info, make_loader, train_dataset
from segtrain.device_augment import (
    N_PARAMS,
    PARAMS_KEY,
    DeviceAugment,
    batch_params,
    colour_row,
    decode_row,
    param_row,
    resolve_augment_on,
    sample_params,
)
from segtrain.engine import train
from segtrain.utils import SegtrainError

AUG = DeviceAugment()
IDENTITY = param_row()
BASIC = AUGMENT_PARAMS["basic"]
TINY = ["--model-opt", "base_width=4", "--model-opt", "depth=2"]


def batch_of(images, masks, rows, depths=None) -> dict:
    b = {"image": torch.from_numpy(np.stack([i.transpose(2, 0, 1) for i in images])),
         "mask": torch.from_numpy(np.stack(masks)),
         PARAMS_KEY: torch.from_numpy(np.stack(rows))}
    if depths is not None:
        b["depth"] = torch.from_numpy(np.stack(depths))
    return b


def as_numpy(out: dict, i: int):
    return out["image"][i].permute(1, 2, 0).numpy(), out["mask"][i].numpy()


def test_parameters_follow_basic_distribution():
    """`basic`'s probabilities and ranges are augment_params.AUGMENT_PARAMS's, as the loader's."""
    rows = batch_params(range(2000)).numpy()
    assert rows.shape == (2000, N_PARAMS) and rows.dtype == np.float32
    d = [decode_row(r) for r in rows]
    flips = np.array([x.flip for x in d])
    scales = np.array([x.scale for x in d])
    shifts = np.array([(x.tx, x.ty) for x in d])
    jitter = np.array([x.jittered for x in d])
    for on, p in ((flips, BASIC.flip_p), (scales != 1.0, BASIC.affine_p), (jitter, BASIC.jitter_p)):  # independent
        assert p - 0.05 < on.mean() < p + 0.05
    assert 0.45 < (flips & jitter).mean() / BASIC.flip_p / BASIC.jitter_p / 2 < 0.55
    moved = scales != 1.0
    lo, hi = BASIC.scale
    assert scales[moved].min() >= lo - 1e-6 and scales[moved].max() <= hi + 1e-6
    assert scales[moved].min() < lo + 0.05 * (hi - lo) and scales[moved].max() > hi - 0.05 * (hi - lo)
    t = BASIC.translate
    assert np.abs(shifts).max() <= t + 1e-6 and np.abs(shifts[moved]).max() > 0.95 * t
    assert (shifts[~moved] == 0).all()
    assert np.array_equal(sample_params(7), sample_params(7))  # a pure function of the seed
    assert np.array_equal(sample_params(7), sample_params(7, "basic"))
    assert all(np.array_equal(sample_params(s, "none"), IDENTITY) for s in range(50))
    with pytest.raises(ValueError, match="--augment strong does not run on the device"):
        sample_params(7, "strong")


def test_colour_factors_follow_basic_ranges(monkeypatch):
    """The jitter's brightness, contrast and saturation factors span [1 - x, 1 + x] and the hue
    shift ±hue of AUGMENT_PARAMS (decode_row only says whether a row is jittered)."""
    import segtrain.device_augment as da

    drawn = []
    real = da.colour_row
    monkeypatch.setattr(da, "colour_row", lambda b, c, s, h: drawn.append((b, c, s, h)) or real(b, c, s, h))
    for seed in range(2000):
        sample_params(seed)
    f = np.array(drawn)
    assert len(f) > 0.5 * BASIC.jitter_p * 2000
    for col, x in zip(f[:, :3].T, (BASIC.brightness, BASIC.contrast, BASIC.saturation), strict=True):
        assert col.min() >= 1 - x - 1e-9 and col.max() <= 1 + x + 1e-9
        assert col.min() < 1 - 0.9 * x and col.max() > 1 + 0.9 * x  # both ends nearly reached
    h = f[:, 3]
    assert np.abs(h).max() <= BASIC.hue + 1e-9 and h.min() < -0.9 * BASIC.hue and h.max() > 0.9 * BASIC.hue


def test_a_row_decodes_to_what_built_it():
    row = param_row(True, 1.25, 0.07, -0.04, colour_row(1.1, 0.9, 1.0, 0.01))
    got = decode_row(row)
    assert got.flip and got.jittered and not decode_row(param_row(scale=0.8)).jittered
    assert (got.scale, got.tx, got.ty) == pytest.approx((1.25, 0.07, -0.04), abs=1e-6)


def test_identity_parameters_give_byte_identical_output():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (37, 53, 3), dtype=np.uint8) for _ in range(3)]
    masks = [rng.integers(0, 40, (37, 53), dtype=np.uint8) for _ in range(3)]
    masks[0][:5] = 255
    depths = [rng.random((37, 53), dtype=np.float32) * 8 for _ in range(3)]
    b = batch_of(images, masks, [IDENTITY] * 3, depths)
    out = AUG(b)
    for k in ("image", "mask", "depth"):
        assert out[k].dtype == b[k].dtype and torch.equal(out[k], b[k]), k


def test_flip_moves_image_mask_and_depth_together():
    h, w = 24, 40
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.arange(w) * 6  # a known pattern: red ramps left to right
    image[:, :10, 1] = 200
    mask = np.where(np.arange(w) < 10, 3, 7).astype(np.uint8)[None].repeat(h, 0)
    mask[:4, 30:] = 255
    depth = np.tile(np.arange(w, dtype=np.float32) / 10, (h, 1))
    out = AUG(batch_of([image], [mask], [param_row(flip=True)], [depth]))
    img, m = as_numpy(out, 0)
    assert np.array_equal(img, image[:, ::-1]) and np.array_equal(m, mask[:, ::-1])
    assert np.array_equal(out["depth"][0].numpy(), depth[:, ::-1])
    # a seed whose parameters are "flip only" gives exactly the flip too
    seed = next(s for s in range(100) if decode_row(sample_params(s))[:2] == (True, 1.0)
                and not decode_row(sample_params(s))[4])
    out = AUG(batch_of([image], [mask], [sample_params(seed)]))
    assert np.array_equal(as_numpy(out, 0)[1], mask[:, ::-1])


def test_every_seed_keeps_image_and_mask_aligned():
    """The transforms test's check: after warp + jitter each class region has one colour
    (the jitter is pointwise per image), different from the other classes'."""
    seeds = list(range(16))
    images, masks = zip(*(scene(s) for s in seeds), strict=True)
    out = AUG(batch_of(images, masks, [sample_params(s) for s in seeds]))
    checked = sum(assert_aligned(*as_numpy(out, i)) for i in range(len(seeds)))
    assert checked > 16 * 200


@settings(max_examples=60, deadline=None)
@given(seeds=st.lists(st.integers(0, 2**31 - 2), min_size=1, max_size=4),
       h=st.integers(2, 40), w=st.integers(2, 40), data=st.data())
def test_mask_values_are_input_values_or_ignore(seeds, h, w, data):
    masks, depths = [], []
    for i in range(len(seeds)):
        values = data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=4), label=f"values {i}")
        rng = np.random.default_rng(i)
        masks.append(np.asarray(values, np.uint8)[rng.integers(0, len(values), (h, w))])
        depths.append(rng.integers(0, 5, (h, w)).astype(np.float32) * 0.5)  # 0 = missing among them
    images = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(len(seeds))]
    out = AUG(batch_of(images, masks, [sample_params(s) for s in seeds], depths))
    for i in range(len(seeds)):
        assert set(np.unique(out["mask"][i].numpy())) <= set(np.unique(masks[i])) | {255}
        assert set(np.unique(out["depth"][i].numpy())) <= set(np.unique(depths[i])) | {0.0}


def test_depth_nearest_with_zero_outside_and_mask_ignore_there():
    h, w = 30, 50
    depth = (np.arange(h * w, dtype=np.float32).reshape(h, w) + 1) / 100  # every value distinct, none 0
    mask = (np.arange(h * w).reshape(h, w) % 37).astype(np.uint8)
    image = np.zeros((h, w, 3), np.uint8)
    out = AUG(batch_of([image], [mask], [param_row(scale=0.8, tx=0.1, ty=-0.05)], [depth]))
    d, m = out["depth"][0].numpy(), out["mask"][0].numpy()
    assert set(np.unique(d)) <= set(np.unique(depth)) | {0.0}
    outside = d == 0
    assert 0.2 < outside.mean() < 0.5  # shrunk and shifted: a border with no source pixels
    assert np.array_equal(outside, m == 255)  # the same pixels are missing in depth and ignored in the mask
    # nearest: each output depth names its source pixel, and the label there is that pixel's label
    src = np.rint(d[~outside] * 100).astype(int) - 1
    assert np.array_equal(m[~outside], mask.ravel()[src])


@pytest.mark.parametrize("seed", [1, 3, 8, 12])
def test_geometry_matches_the_loader_transform(seed):
    """Same parameters through OpenCV (what the loader's ReflectAffine does): the masks agree
    except along boundaries (half-pixel centre convention)."""
    image, mask = scene(seed, 64, 96)
    h, w = mask.shape
    flip, scale, tx, ty, _ = decode_row(param_row(flip=seed % 2 == 1, scale=0.8 + 0.1 * seed / 3, tx=0.07, ty=-0.04))
    ref = mask[:, ::-1] if flip else mask
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0, scale)
    m[:, 2] += (tx * w, ty * h)
    ref = cv2.warpAffine(np.ascontiguousarray(ref), m, (w, h), flags=cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    out = AUG(batch_of([image], [mask], [param_row(flip, scale, tx, ty)]))
    assert (as_numpy(out, 0)[1] == ref).mean() > 0.96


def test_colour_jitter_matches_albumentations_functions():
    """Brightness, contrast, saturation, hue in that order through albumentations' own
    functions: within two grey levels on average (albumentations truncates to uint8 after each
    step, which alone costs ~1; hue turns in YIQ here, through 8-bit HSV there)."""
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(40, 216, (48, 64, 3), dtype=np.uint8), (7, 7), 0)
    for b, c, s, h in [(1.15, 0.85, 1.2, 0.02), (0.85, 1.15, 0.8, -0.02), (1.0, 1.0, 1.0, 0.01)]:
        ref = AF.adjust_brightness_torchvision(image, b)
        ref = AF.adjust_contrast_torchvision(ref, c)
        ref = AF.adjust_saturation_torchvision(ref, s)
        ref = AF.adjust_hue_torchvision(ref, h)
        row = param_row(colour=colour_row(b, c, s, h))
        out = as_numpy(AUG(batch_of([image], [np.zeros((48, 64), np.uint8)], [row])), 0)[0]
        diff = np.abs(out.astype(int) - ref.astype(int))
        assert diff.mean() < 2.0 and np.percentile(diff, 99) <= 6, (b, c, s, h, diff.mean())


def test_same_seeds_same_output_whatever_else_is_in_the_batch():
    seeds = [11, 22, 33, 44]
    images, masks = zip(*(scene(s) for s in seeds), strict=True)
    full = AUG(batch_of(images, masks, [sample_params(s) for s in seeds]))
    again = AUG(batch_of(images, masks, [sample_params(s) for s in seeds]))
    assert all(torch.equal(full[k], again[k]) for k in ("image", "mask"))
    order = [2, 0, 3]  # other company, other positions
    part = AUG(batch_of([images[i] for i in order], [masks[i] for i in order],
                        [sample_params(seeds[i]) for i in order]))
    for j, i in enumerate(order):
        assert torch.equal(part["image"][j], full["image"][i]) and torch.equal(part["mask"][j], full["mask"][i])
    alone = AUG(batch_of([images[1]], [masks[1]], [sample_params(seeds[1])]))
    assert torch.equal(alone["image"][0], full["image"][1])


def test_no_host_sync_in_the_augmenter(monkeypatch):
    """The hot path never reads a tensor back (on CUDA each would stall the GPU queue)."""
    images, masks = zip(*(scene(s) for s in range(3)), strict=True)
    b = batch_of(images, masks, [sample_params(s) for s in range(3)],
                 [np.ones((64, 96), np.float32)] * 3)

    from test_segtrain_syncs import count_syncs  # every read the training loop is checked for

    with count_syncs(monkeypatch) as found:
        AUG(b)
    assert found == []


def test_resolve_augment_on():
    assert resolve_augment_on("auto", "basic", "cpu") == "loader"
    assert resolve_augment_on("auto", "basic", torch.device("cuda")) == "device"
    assert resolve_augment_on("auto", "none", "cuda:1") == "loader"  # nothing to augment
    assert resolve_augment_on("device", "none", "cuda") == "loader"
    assert resolve_augment_on("auto", "strong", "cuda") == "loader"
    assert resolve_augment_on("device", "basic", "cpu") == "device"
    assert resolve_augment_on("loader", "basic", "cuda") == "loader"
    with pytest.raises(SegtrainError, match=f"--augment-on device supports --augment {' or '.join(DEVICE_AUGMENTS)}, "
                       "not strong"):
        resolve_augment_on("device", "strong", "cuda")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_clean_tree(tmp_path_factory.mktemp("st-devaug") / "data",
                            counts={"train": 6, "val": 2, "test": 2}, size=(32, 48))


def test_loader_side_of_the_device_path(tree):
    """The loader only does the pre-batch geometry and attaches each sample's parameters,
    computed from the sampler's seed alone (so any worker count gives the same batches)."""
    info = load_dataset_info(tree.root)
    plain = train_dataset(info, "train", "none", crop=[24, 40])
    dev = train_dataset(info, "train", "basic", crop=[24, 40], augment_on="device")
    for key in [(0, 5), (3, 123456)]:
        a, b = plain[key], dev[key]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])  # same crop
        assert np.array_equal(b[PARAMS_KEY].numpy(), sample_params(key[1]))
    none_on = resolve_augment_on("device", "none", "cpu")
    assert PARAMS_KEY not in train_dataset(info, "train", "none", augment_on=none_on)[(0, 1)]
    batches = {}
    for workers in (0, 2):
        loader, sampler = make_loader(dev, 3, True, 7, workers, torch.device("cpu"), drop_last=True)
        sampler.set_epoch(2)
        batches[workers] = list(loader)
    for a, b in zip(batches[0], batches[2], strict=True):
        assert torch.equal(a[PARAMS_KEY], b[PARAMS_KEY]) and torch.equal(a["image"], b["image"])
    sampler = EpochSampler(6, True, seed=7)
    sampler.set_epoch(2)
    expected = batch_params([s for _, s in sampler][:3])
    assert torch.equal(batches[0][0][PARAMS_KEY], expected)
    with pytest.raises(SegtrainError, match="not strong"):
        train_dataset(info, "train", "strong", augment_on=resolve_augment_on("device", "strong", "cpu"))


def cfg_for(tree, out, **kw) -> TrainConfig:
    base = dict(model="unet_small", data=str(tree.root), out=str(out), model_options={"base_width": 4, "depth": 2},
                epochs=2, batch_size=2, lr=1e-2, workers=0, augment="basic", augment_on="device",
                scheduler="poly", device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_device_path_resumes_exactly(tree, tmp_path):
    full = train(cfg_for(tree, tmp_path / "full", epochs=2), progress=False)

    def interrupt(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg_for(tree, tmp_path / "part", epochs=2), progress=False, on_epoch_end=interrupt)
    resumed = train(cfg_for(tree, tmp_path / "part", epochs=2), resume=True, progress=False)
    assert full.epochs_completed == resumed.epochs_completed == 2
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "part" / "last.pt")
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    # and the augmentation did something: the loader path learns different weights
    loader = train(cfg_for(tree, tmp_path / "loader", epochs=2, augment_on="loader"), progress=False)
    c = load_checkpoint(loader.out / "last.pt")
    assert any(not torch.equal(v, c["model"][k]) for k, v in a["model"].items())


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_run_with_augment_on_device(tree, tmp_path):
    out = tmp_path / "run"
    r = invoke("run", "unet_small", "--data", tree.root, "--out", out, "--epochs", 1, "--batch-size", 2,
               "--workers", 0, "--device", "cpu", "--augment", "basic", "--augment-on", "device", *TINY)
    assert r.exit_code == 0, r.output
    assert "completed: 1 epochs" in r.stdout
    assert yaml.safe_load((out / "config.yaml").read_text())["augment_on"] == "device"
    assert "augment basic on the device, batched (--augment-on device)" in (out / "train.log").read_text()
    # auto on a CPU: the loader, and the log says so while config.yaml keeps "auto"
    r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "auto", "--epochs", 1,
               "--batch-size", 2, "--workers", 0, "--device", "cpu", "--augment-on", "auto", *TINY)
    assert r.exit_code == 0, r.output
    assert yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())["augment_on"] == "auto"
    assert "augment basic in the loader (--augment-on auto)" in (tmp_path / "auto" / "train.log").read_text()
    # the default is the loader, on any device
    r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "default", "--epochs", 1,
               "--batch-size", 2, "--workers", 0, "--device", "cpu", *TINY)
    assert r.exit_code == 0, r.output
    assert "augment basic in the loader (--augment-on loader)" in (tmp_path / "default" / "train.log").read_text()


@pytest.mark.parametrize("command", ["run", "bench"])
def test_cli_device_with_strong_is_a_usage_error(tree, tmp_path, command):
    args = (["run", "unet_small", "--out", tmp_path / "run"] if command == "run" else ["bench"])
    r = invoke(*args, "--data", tree.root, "--device", "cpu", "--augment", "strong", "--augment-on", "device")
    assert r.exit_code == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert lines == [f"Error: --augment-on device supports --augment {' or '.join(DEVICE_AUGMENTS)}, not strong; use "
                     "--augment-on loader or auto"]
    assert not (tmp_path / "run").exists()
