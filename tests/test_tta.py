"""Test-time augmentation (`--scales`, `--flip`) on `segtrain eval` and `segtrain predict`.

The references here are computed from the model's own forward passes on flipped / scaled
inputs, written out in the test (segtrain.tta is never imported for them): the rule is
mmsegmentation's, each pass's logits upsampled to the output size, softmaxed, averaged.
"""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from click.testing import CliRunner
from treebuilder import write_clean_tree

from segtrain.checkpoint import load_checkpoint, model_from_checkpoint, runtime_for_checkpoint
from segtrain.cli import main
from segtrain.config import TTAConfig
from segtrain.data import eval_dataset, load_dataset_info
from segtrain.depth import encode_depth

TINY = ["--model-opt", "base_width=4", "--model-opt", "depth=2"]
TTA = ["--scales", "0.75,1,1.25", "--flip"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_clean_tree(tmp_path_factory.mktemp("tta") / "data", counts={"train": 6, "val": 2, "test": 3},
                            size=(32, 48), sensors=("kv2", "kv1"))


@pytest.fixture(scope="module")
def rgb_run(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("tta-rgb") / "run"
    r = invoke("run", "unet_small", "--data", tree.root, "--out", out, "--epochs", 4, "--batch-size", 2,
               "--lr", 0.01, "--augment", "none", "--workers", 0, "--device", "cpu", *TINY)
    assert r.exit_code == 0, r.output
    return out / "last.pt"


@pytest.fixture(scope="module")
def rgbd_run(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("tta-rgbd") / "run"
    r = invoke("run", "unet_small", "--data", tree.root, "--out", out, "--epochs", 2, "--batch-size", 2,
               "--lr", 0.01, "--augment", "none", "--workers", 0, "--device", "cpu", "--inputs", "rgbd",
               "--fusion", "mid", "--depth-encoding", "inverse", *TINY)
    assert r.exit_code == 0, r.output
    return out / "last.pt"


@pytest.fixture(scope="module")
def symmetric_ckpt(rgb_run, tmp_path_factory):
    """The trained checkpoint with every kernel made left-right symmetric: with max-pooling,
    3x3 convolutions, 2x2 stride-2 transposed convolutions and inputs divisible by the stride,
    the network is then exactly flip-equivariant (up to float rounding)."""
    ckpt = load_checkpoint(rgb_run)
    ckpt["model"] = {k: (v + v.flip(-1)) / 2 if k.endswith("weight") and v.ndim == 4 else v
                     for k, v in ckpt["model"].items()}
    path = tmp_path_factory.mktemp("tta-sym") / "sym.pt"
    torch.save(ckpt, path)
    return path


def _model(ckpt_path):
    ckpt = load_checkpoint(ckpt_path)
    rt = runtime_for_checkpoint(ckpt, torch.device("cpu"), amp=False)
    return model_from_checkpoint(ckpt).eval(), rt


@torch.inference_mode()
def reference_scores(model, rt, image, depth, out_size, scales=(1.0,), flip=False):
    """Mean softmax of the passes, written out independently of segtrain.tta. `image` (1, 3, h, w)
    uint8 at the network input size, `depth` (h, w) float32 metres or None."""
    rgb = rt.images(image)
    h, w = rgb.shape[-2:]
    total, n = 0, 0
    for s in scales:
        size = (max(1, int(h * s + 0.5)), max(1, int(w * s + 0.5)))  # mmseg's rounding
        parts = [rgb if size == (h, w) else F.interpolate(rgb, size=size, mode="bilinear", align_corners=False)]
        if depth is not None:  # the loader's rule: cv2 nearest-exact on the host, then encoded
            d = cv2.resize(depth, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT)
            parts.append(encode_depth(torch.from_numpy(d)[None], rt.depth_encoding, *rt.depth_stats))
        x = torch.cat(parts, dim=1)
        for flipped in (False, True) if flip else (False,):
            logits = model(x.flip(-1)).flip(-1) if flipped else model(x)
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
            total, n = total + logits.softmax(1), n + 1
    return total / n


@torch.inference_mode()
def plain_logits(model, rt, image, depth, out_size):
    """Eval / predict before TTA: one pass, its logits bilinearly upsampled."""
    x = rt.images(image)
    if depth is not None:
        x = torch.cat([x, encode_depth(torch.from_numpy(depth)[None], rt.depth_encoding, *rt.depth_stats)], 1)
    logits = model(x)
    return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)


def predict_inputs(image, size, depth_mm=None):
    """What predict feeds the network: the image resized to --size (cv2 linear), depth nearest."""
    x = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) if size else image
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
    if depth_mm is None:
        return t, None
    d = cv2.resize(depth_mm, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT) if size else depth_mm
    return t, d.astype(np.float32) / 1000.0


def confusion_csv(path) -> np.ndarray:
    with open(path) as f:
        rows = list(csv.reader(f))
    return np.array([[int(v) for v in r[1:]] for r in rows[1:]])


def reference_confusion(model, rt, tree, size, with_depth, scales, flip):
    """The test split's confusion matrix from reference predictions, one image at a time."""
    info = load_dataset_info(tree.root)
    ds = eval_dataset(info, "test", size, with_depth=with_depth)
    k = info.num_classes
    cm = np.zeros((k, k), dtype=np.int64)
    for i in range(len(ds)):
        item = ds[i]
        mask = item["mask"].numpy().astype(np.int64)
        depth = item["depth"].numpy() if with_depth else None
        pred = reference_scores(model, rt, item["image"][None], depth, mask.shape, scales, flip).argmax(1)[0]
        keep = mask != info.ignore_index
        cm += np.bincount(mask[keep] * k + pred.numpy()[keep], minlength=k * k).reshape(k, k)
    return cm


def test_eval_with_tta_equals_the_reference_and_records_it(rgb_run, tree, tmp_path):
    model, rt = _model(rgb_run)
    r = invoke("eval", rgb_run, "--data", tree.root, "--out", tmp_path / "rep", "--workers", 0, "--device", "cpu",
               "--batch-size", 1, "--size", "24x36", "--panels", 1, *TTA)
    assert r.exit_code == 0, r.output
    assert "mIoU " in r.stdout and "(TTA: flip, scales 0.75,1,1.25)" in r.stdout
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert m["tta"] == {"scales": [0.75, 1.0, 1.25], "flip": True}
    assert yaml.safe_load((tmp_path / "rep" / "eval_config.yaml").read_text())["tta"] == m["tta"]
    got = confusion_csv(tmp_path / "rep" / "confusion_matrix.csv")
    # 24x36 * 0.75 = 18x27: an odd width the model pads to its stride and crops back
    want = reference_confusion(model, rt, tree, (24, 36), False, (0.75, 1.0, 1.25), True)
    assert np.array_equal(got, want)
    plain = reference_confusion(model, rt, tree, (24, 36), False, (1.0,), False)
    assert not np.array_equal(want, plain)  # the augmentation changed predictions: a real check
    assert got.sum() == plain.sum()  # every labelled pixel still counted once, at label size
    assert np.trace(got) / got.sum() == pytest.approx(m["pixel_accuracy"])
    assert (tmp_path / "rep" / "panels_best.png").stat().st_size > 0


def test_predict_with_tta_equals_the_reference_at_the_image_size(rgb_run, tmp_path):
    model, rt = _model(rgb_run)
    rng = np.random.default_rng(3)
    src = tmp_path / "in"
    src.mkdir()
    images = {"odd": (rng.random((37, 53, 3)) * 255).astype(np.uint8),
              "wide": (rng.random((20, 90, 3)) * 255).astype(np.uint8)}
    for name, img in images.items():
        cv2.imwrite(str(src / f"{name}.png"), img[..., ::-1])  # RGB array -> BGR file
    r = invoke("predict", rgb_run, src, "--out", tmp_path / "out", "--device", "cpu", "--size", "24x36",
               "--scales", "0.5,1,1.5", "--flip")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("2 images predicted (TTA: flip, scales 0.5,1,1.5), 0 skipped")
    for name, img in images.items():
        got = cv2.imread(str(tmp_path / "out" / f"{name}_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
        assert got.shape == img.shape[:2]
        x, _ = predict_inputs(img, (24, 36))
        want = reference_scores(model, rt, x, None, img.shape[:2], (0.5, 1.0, 1.5), True).argmax(1)[0].numpy()
        assert np.array_equal(got, want.astype(np.uint8)), name
        assert cv2.imread(str(tmp_path / "out" / f"{name}_color.png")).shape == (*img.shape[:2], 3)


def test_default_flags_give_the_plain_path_byte_for_byte(rgb_run, tree, tmp_path):
    model, rt = _model(rgb_run)
    outs = {}
    for name, extra in (("default", ()), ("explicit", ("--scales", "1", "--no-flip"))):
        r = invoke("eval", rgb_run, "--data", tree.root, "--out", tmp_path / name, "--workers", 0, "--device",
                   "cpu", "--size", "24x36", "--panels", 0, *extra)
        assert r.exit_code == 0, r.output
        assert "TTA" not in r.stdout
        outs[name] = r.stdout.replace(str(tmp_path / name), "OUT")
    assert outs["default"] == outs["explicit"]
    for f in ("metrics.json", "per_class_iou.csv", "confusion_matrix.csv", "eval_config.yaml"):
        a = (tmp_path / "default" / f).read_bytes()
        b = (tmp_path / "explicit" / f).read_bytes().replace(str(tmp_path / "explicit").encode(),
                                                             str(tmp_path / "default").encode())
        assert a == b, f
    assert json.loads((tmp_path / "default" / "metrics.json").read_text())["tta"] == {"scales": [1.0], "flip": False}
    # the plain path: argmax of one pass's upsampled logits (no softmax, no averaging)
    info = load_dataset_info(tree.root)
    ds = eval_dataset(info, "test", (24, 36))
    k, cm = info.num_classes, 0
    for i in range(len(ds)):
        item = ds[i]
        mask = item["mask"].numpy().astype(np.int64)
        pred = plain_logits(model, rt, item["image"][None], None, mask.shape).argmax(1)[0].numpy()
        keep = mask != info.ignore_index
        cm = cm + np.bincount(mask[keep] * k + pred[keep], minlength=k * k).reshape(k, k)
    assert np.array_equal(confusion_csv(tmp_path / "default" / "confusion_matrix.csv"), cm)
    # predict: the masks of the plain pass, bit for bit
    img = (np.random.default_rng(5).random((37, 53, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "odd.png"), img[..., ::-1])
    r = invoke("predict", rgb_run, tmp_path / "odd.png", "--out", tmp_path / "pred", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert r.stdout == f"1 images predicted, 0 skipped; masks in {tmp_path / 'pred'}\n"
    x, _ = predict_inputs(img, None)
    want = plain_logits(model, rt, x, None, img.shape[:2]).argmax(1)[0].numpy().astype(np.uint8)
    assert np.array_equal(cv2.imread(str(tmp_path / "pred" / "odd_labelTrainIds.png"), cv2.IMREAD_UNCHANGED), want)


def test_a_flip_equivariant_model_predicts_the_same_with_and_without_flip(symmetric_ckpt, tree, tmp_path):
    images = tree.root / "leftImg8bit" / "test"
    masks = {}
    for name, extra in (("plain", ()), ("flip", ("--flip",))):
        r = invoke("predict", symmetric_ckpt, images, "--out", tmp_path / name, "--device", "cpu", *extra)
        assert r.exit_code == 0, r.output
        masks[name] = {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
                       for p in sorted((tmp_path / name).glob("*_labelTrainIds.png"))}
        r = invoke("eval", symmetric_ckpt, "--data", tree.root, "--out", tmp_path / f"ev-{name}", "--workers", 0,
                   "--device", "cpu", "--panels", 0, *extra)
        assert r.exit_code == 0, r.output
    assert len(masks["plain"]) == 3 and masks["plain"].keys() == masks["flip"].keys()
    for k, v in masks["plain"].items():
        assert np.array_equal(v, masks["flip"][k]), k
    assert sum(len(np.unique(v)) for v in masks["plain"].values()) > 6  # not a constant prediction
    assert np.array_equal(confusion_csv(tmp_path / "ev-plain" / "confusion_matrix.csv"),
                          confusion_csv(tmp_path / "ev-flip" / "confusion_matrix.csv"))


def test_an_rgbd_checkpoint_flips_and_scales_depth_with_the_image(rgbd_run, tree, tmp_path):
    model, rt = _model(rgbd_run)
    assert rt.inputs == "rgbd"
    images, depths = tmp_path / "images", tmp_path / "depth"
    for src, dst in ((tree.root / "leftImg8bit" / "test", images), (tree.root / "depth" / "test", depths)):
        dst.mkdir()
        for p in src.rglob("*.png"):
            (dst / p.name).write_bytes(p.read_bytes())
    r = invoke("predict", rgbd_run, images, "--depth", depths, "--out", tmp_path / "out", "--device", "cpu",
               "--size", "26x40", "--scales", "0.6,1.3", "--flip")
    assert r.exit_code == 0, r.output
    changed = False
    for p in sorted(images.glob("*.png")):
        stem = p.name.removesuffix("_leftImg8bit.png")
        img = cv2.imread(str(p))[..., ::-1]
        depth_mm = cv2.imread(str(depths / f"{stem}_depth.png"), cv2.IMREAD_UNCHANGED)
        got = cv2.imread(str(tmp_path / "out" / f"{stem}_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
        assert got.shape == img.shape[:2]
        x, d = predict_inputs(img, (26, 40), depth_mm)
        # 26x40 * 0.6 = 16x24, * 1.3 = 34x52: depth resized with cv2's nearest-exact rule, bit for bit
        want = reference_scores(model, rt, x, d, img.shape[:2], (0.6, 1.3), True).argmax(1)[0].numpy()
        assert np.array_equal(got, want.astype(np.uint8)), stem
        plain = plain_logits(model, rt, x, d, img.shape[:2]).argmax(1)[0].numpy()
        changed |= not np.array_equal(plain, want)
    assert changed
    r = invoke("eval", rgbd_run, "--data", tree.root, "--out", tmp_path / "rep", "--workers", 0, "--device", "cpu",
               "--batch-size", 1, "--scales", "0.75,1.5", "--flip", "--panels", 0)
    assert r.exit_code == 0, r.output
    want = reference_confusion(model, rt, tree, None, True, (0.75, 1.5), True)
    assert np.array_equal(confusion_csv(tmp_path / "rep" / "confusion_matrix.csv"), want)


@pytest.mark.parametrize(("scales", "message"), [
    ("0", "--scales '0': scale '0' must be greater than 0"),
    ("-0.5", "--scales '-0.5': scale '-0.5' must be greater than 0"),
    ("a,b", "--scales 'a,b': scale 'a' must be a number"),
    ("", "--scales '': scale '' must be a number"),
    ("1,,2", "--scales '1,,2': scale '' must be a number"),
    ("nan", "--scales 'nan': scale 'nan' must be a finite number"),
    ("5", "--scales '5': scale '5' must be at most 4"),
    ("1,1.0", "--scales 1,1: a scale is repeated"),
    (",".join(str(0.5 + i / 10) for i in range(9)), "at most 8 scales"),
])
@pytest.mark.parametrize("command", ["eval", "predict"])
def test_bad_scales_are_one_usage_error_line(rgb_run, tree, tmp_path, command, scales, message):
    out = tmp_path / "out"
    args = (["--data", tree.root] if command == "eval" else [tree.root / "leftImg8bit"])
    r = invoke(command, rgb_run, *args, "--out", out, "--device", "cpu", "--scales", scales)
    assert r.exit_code == 2
    assert r.stderr.splitlines() == [r.stderr.strip()] and r.stderr.startswith("Error: ")
    assert message in r.stderr
    assert not out.exists()  # nothing written


def test_library_callers_are_checked_too(rgb_run, tree, tmp_path):
    from segtrain.config import EvalConfig, PredictConfig, TTAConfig
    from segtrain.inference import run_eval, run_predict
    from segtrain.utils import SegtrainError

    with pytest.raises(SegtrainError, match=r"--scales \[0.0\]: scale 0.0 must be greater than 0"):
        run_eval(EvalConfig(checkpoint=str(rgb_run), data=str(tree.root), out=str(tmp_path / "e"),
                            tta=TTAConfig(scales=[0.0])), progress=False)
    with pytest.raises(SegtrainError, match="at least one scale"):
        run_predict(PredictConfig(checkpoint=str(rgb_run), inputs=[str(tree.root)], out=str(tmp_path / "p"),
                                  tta=TTAConfig(scales=[])), progress=False)
    assert not (tmp_path / "e").exists() and not (tmp_path / "p").exists()


def test_the_plain_setting_returns_the_logits_themselves(rgb_run):
    """Scores of the default setting are the logits (no softmax), so eval's loss and every
    argmax tie break exactly as before TTA existed."""
    from segtrain.config import TTAConfig
    from segtrain.tta import segment

    model, rt = _model(rgb_run)
    x = (torch.arange(3 * 20 * 30) % 251).to(torch.uint8).reshape(1, 3, 20, 30)
    with torch.inference_mode():
        got = segment(model, rt.images(x), rt, (23, 31), TTAConfig())
    assert torch.equal(got, plain_logits(model, rt, x, None, (23, 31)))


def test_evaluation_with_tta_reads_the_device_only_at_its_end(tree, monkeypatch):
    """No host sync per batch (issue 11's counter): the same count for one batch as for two."""
    from test_segtrain_syncs import count_syncs

    from segtrain.config import TTAConfig
    from segtrain.data import make_loader
    from segtrain.engine import evaluate
    from segtrain.losses import build_loss
    from segtrain.models import create_model
    from segtrain.runtime import Runtime

    torch.manual_seed(0)
    info = load_dataset_info(tree.root)
    ds = eval_dataset(info, "val", with_depth=True)
    tta = TTAConfig(scales=[0.5, 1.25], flip=True)
    for inputs in ("rgb", "rgbd"):
        rt = Runtime.create(torch.device("cpu"), info.mean, info.std, False, False, inputs)
        model = create_model("unet_small", info.num_classes, inputs=inputs, base_width=4, depth=2)
        counts = []
        for bs in (2, 1):
            loader, _ = make_loader(ds, bs, False, 0, 0, rt.device)
            with count_syncs(monkeypatch) as found:
                res = evaluate(model, loader, rt, info.num_classes, progress=False, tta=tta)
            counts.append(len(found))
            assert res.confusion.sum() > 0
        assert counts[0] == counts[1], inputs
    with pytest.raises(ValueError, match="not with test-time augmentation"):
        evaluate(model, loader, rt, info.num_classes, build_loss("ce", info.num_classes), progress=False, tta=tta)


@pytest.mark.parametrize(("src", "dst"), [((4, 4), (6, 6)), ((32, 48), (18, 27)), ((7, 5), (3, 9)),
                                          ((53, 37), (80, 41)), ((1, 3), (2, 1)), ((480, 640), (600, 800))])
def test_depth_channels_are_resized_as_cv2_nearest_exact_bit_for_bit(src, dst):
    """torch's nearest-exact breaks half-pixel ties differently (4 -> 6 is one): the scaled
    passes must resize depth exactly as the loader's cv2.resize does."""
    from segtrain.runtime import Runtime
    from segtrain.tta import resize_input

    rt = Runtime.create(torch.device("cpu"), (0.5,) * 3, (0.25,) * 3, False, False, "rgbd")
    x = torch.from_numpy(np.random.default_rng(0).random((1, 4, *src), dtype=np.float32))
    got = resize_input(x, dst, rt)
    want = cv2.resize(x[0, 3].numpy(), (dst[1], dst[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    assert np.array_equal(got[0, 3].numpy(), want)
    assert torch.equal(got[:, :3], F.interpolate(x[:, :3], size=dst, mode="bilinear", align_corners=False))


@pytest.mark.parametrize("tta", [TTAConfig(), TTAConfig([1.0], True), TTAConfig([0.5, 1.0, 1.25], True)])
@pytest.mark.parametrize("share", ["all", "third", "one"])
def test_predict_of_a_large_image_never_holds_all_class_scores(tree, rgb_run, tta, share, monkeypatch):
    """predict upsampled every class's scores to the image's size at once (a 12 MP photo: 1.9 GB,
    7.7 GB peak with TTA). Above `max_scores` floats segment_labels builds the argmax a few
    classes at a time (here: 13 classes, or one); the prediction is the reference's (mean
    softmax, written out independently) up to float rounding, and below it segment's argmax."""
    from segtrain.tta import segment, segment_labels

    model, rt = _model(rgb_run)
    x = (torch.arange(3 * 20 * 30) % 251).to(torch.uint8).reshape(1, 3, 20, 30)
    out_size = (40, 60)
    n = load_dataset_info(tree.root).num_classes  # 39 (the tree's class table)
    pixels = out_size[0] * out_size[1]
    max_scores = {"all": 10**9, "third": n * pixels // 3, "one": 1}[share]
    held = []
    real = F.interpolate
    monkeypatch.setattr(F, "interpolate", lambda t, *a, **k: held.append(t.shape[1]) or real(t, *a, **k))
    with torch.inference_mode():
        got = segment_labels(model, rt.images(x), rt, out_size, tta, max_scores=max_scores)
        monkeypatch.setattr(F, "interpolate", real)
        ref = reference_scores(model, rt, x, None, out_size, tta.scales, tta.flip).argmax(1)
        if max_scores >= n * pixels:
            assert torch.equal(got, segment(model, rt.images(x), rt, out_size, tta).argmax(1))
    upsampled = [c for c in held if c != 3]  # resize_input's colour channels are not scores
    assert max(upsampled) == (n if share == "all" else n // 3 if share == "third" else 1)
    assert (got == ref).float().mean() >= 0.999
    assert got.shape == (1, *out_size) and int(got.max()) < n


@pytest.mark.parametrize("tta", [TTAConfig([1.0], True), TTAConfig([0.5, 1.0], True)], ids=["flip", "0.5,1-flip"])
@pytest.mark.parametrize("max_scores", [39 * 24 * 36 // 3, 1])
def test_a_pass_at_the_output_size_keeps_its_logits_when_built_a_few_classes_at_a_time(tta, max_scores):
    """A checkpoint without --size (or --size = the photo's size) runs the scale-1 passes at
    the photo's size: their logits needed no upsampling, so the normaliser sweep's in-place
    softmax overwrote the stored logits themselves and the masks were wrong. A random conv
    head gives decisive logits of many classes, so any corruption shows."""
    from segtrain.runtime import Runtime
    from segtrain.tta import segment_labels

    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 39, 5, padding=2).eval()
    rt = Runtime.create(torch.device("cpu"), (0.5,) * 3, (0.25,) * 3, False, False)
    x = torch.from_numpy((np.random.default_rng(7).random((1, 3, 24, 36)) * 255).astype(np.uint8))
    with torch.inference_mode():
        got = segment_labels(model, rt.images(x), rt, (24, 36), tta, max_scores=max_scores)
        ref = reference_scores(model, rt, x, None, (24, 36), tta.scales, tta.flip)
    top2 = ref.topk(2, dim=1).values
    assert len(ref.argmax(1).unique()) >= 20 and float((top2[:, 0] - top2[:, 1]).median()) > 1e-3  # decisive
    assert (got == ref.argmax(1)).float().mean() >= 0.999
