"""`segtrain eval` and `segtrain predict` used as a demanding user would: each test reproduces
one finding of the acceptance round (re-runs that predicted their own masks, skipped test
images missing from the report, EXIF-turned photos whose depth was refused) and checks the
fixed behaviour from the command line."""

from __future__ import annotations

import json
import logging
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image
from segtrain_cli import (
    FAST,
    error_line,
    invoke,
    segtrain_unprivileged,
    snapshot,
    tiny_checkpoint,
    tiny_tree,
)

from segtrain.inference import read_image_and_depth
from segtrain.utils import read_rgb


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return tiny_tree(tmp_path_factory, "evp")


@pytest.fixture(scope="module")
def ckpt(tree, tmp_path_factory):
    return tiny_checkpoint(tree, tmp_path_factory, "evp-run")


def _images(tree, folder, n=3):
    """Copy the first `n` test images of the tree into `folder` as <id>.png."""
    folder.mkdir(parents=True, exist_ok=True)
    for src in sorted((tree.root / "leftImg8bit" / "test").rglob("*.png"))[:n]:
        shutil.copy(src, folder / src.name.replace("_leftImg8bit", ""))
    return sorted(folder.glob("*.png"))


# ------------------------------------------------------- predict: its own masks are no inputs


@pytest.mark.parametrize("out_name", ["masks", "."])
def test_a_rerun_into_the_input_folder_does_not_predict_its_own_masks(tree, ckpt, tmp_path, out_name, caplog):
    """`predict photos/ --out photos/masks` (or `--out photos/`) twice: the second run used to
    take the first run's masks as new inputs (3, then 9 images, then 27 …). Its record
    (predict.json) names them; the re-run finds the 3 images already predicted."""
    photos = tmp_path / "photos"
    _images(tree, photos)
    out = photos / out_name
    first = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert first.exit_code == 0, first.output
    assert "3 images predicted, 0 skipped" in first.stdout
    written = snapshot(photos)
    caplog.set_level(logging.INFO, logger="segtrain")
    again = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert again.exit_code == 0, again.output
    assert "0 images predicted, 3 already predicted, 0 skipped" in again.stdout
    assert "6 file(s) that predict wrote (listed in its predict.json) left out" in caplog.text
    assert snapshot(photos) == written  # the same files, the same bytes: nothing new, nothing lost


def test_an_input_that_predict_would_overwrite_is_refused(tree, ckpt, tmp_path):
    """`predict photos/a.png photos/a_color.png --out photos/`: a's colour mask would replace the
    user's a_color.png. One line, exit 2, nothing written."""
    photos = tmp_path / "photos"
    a = _images(tree, photos, 1)[0]
    shutil.copy(a, photos / f"{a.stem}_color.png")
    before = snapshot(photos)
    r = invoke("predict", ckpt, a, photos / f"{a.stem}_color.png", "--out", photos, "--device", "cpu")
    assert r.exit_code == 2
    assert error_line(r) == (f"Error: {photos / a.stem}_color.png: is an input, and predict would overwrite "
                             "it with the mask of another input; choose another --out")
    assert snapshot(photos) == before
    # named explicitly with another --out, it is an image like any other
    r = invoke("predict", ckpt, a, photos / f"{a.stem}_color.png", "--out", tmp_path / "masks", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "2 images predicted" in r.stdout


# ------------------------------------------------------- eval: a partial split says so


def test_eval_names_the_test_images_it_left_out_and_strict_exits_1(tree, ckpt, tmp_path):
    """An unreadable test image used to vanish from the report: metrics.json scored 2 of 3
    images with no trace of the third, exit 0, and eval had no --strict."""
    data = tmp_path / "data"
    shutil.copytree(tree.root, data)
    bad = sorted((data / "leftImg8bit" / "test").rglob("*.png"))[0]
    bad.write_bytes(b"not a png")
    sample_id = bad.name.removesuffix("_leftImg8bit.png")
    for strict, code in ((False, 0), (True, 1)):
        out = tmp_path / f"report-{strict}"
        r = invoke("eval", ckpt, "--data", data, "--out", out, "--device", "cpu", "--workers", 0,
                   *(["--strict"] if strict else []))
        assert r.exit_code == code, r.output
        assert "over 2 images (" in r.stdout and "1 unreadable left out); report in" in r.stdout
        m = json.loads((out / "metrics.json").read_text())
        assert m["num_images"] == 2
        assert m["skipped_images"] == [{"id": sample_id, "problem": f"{bad}: not an image (no PNG/JPEG/BMP/TIFF/"
                                                                    "WebP/PNM/JPEG 2000 signature)"}]
    r = invoke("eval", ckpt, "--data", tree.root, "--out", tmp_path / "whole", "--device", "cpu", "--workers", 0,
               "--strict")
    assert r.exit_code == 0 and "left out" not in r.stdout
    assert json.loads((tmp_path / "whole" / "metrics.json").read_text())["skipped_images"] == []


# ------------------------------------------------------- predict: EXIF-turned photos with depth


@pytest.fixture(scope="module")
def rgbd_ckpt(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("evp-rgbd") / "run"
    r = invoke("run", "unet_small", "--data", tree.root, "--out", out, "--epochs", 1, "--batch-size", 2,
               "--inputs", "rgbd", *FAST)
    assert r.exit_code == 0, r.output
    return out / "last.pt"


def test_depth_is_turned_with_an_exif_rotated_photo(tree, rgbd_ckpt, tmp_path, capfd):
    """A JPEG with an EXIF orientation tag is turned upright, its depth PNG (no EXIF, the stored
    pixels' size) was not: every rotated photo was skipped ("size differs from its image").
    Now the depth is turned the same way: the masks equal those of the upright pixels with the
    turned depth, given as plain PNGs, for every orientation 2..8. A TIFF (OpenCV turns it even
    with IMREAD_IGNORE_ORIENTATION) was turned twice with --depth, so came out as stored; all of
    2..8 are checked (6 and 8 undo each other, the others themselves). cv2.imread fails on a TIFF
    of orientation 5..8 and prints a raw "[ERROR:0@…] imread_" block on the console; the
    cv2.imdecode it is now read with decodes it, turned, and prints nothing. With
    --keep-exif-orientation a TIFF is turned back to its stored pixels."""
    src = sorted((tree.root / "leftImg8bit" / "test").rglob("*.png"))[0]
    sid = src.name.removesuffix("_leftImg8bit.png")
    rgb = cv2.imread(str(src))[:, :, ::-1]
    depth = cv2.imread(str(next((tree.root / "depth").rglob(f"{sid}_depth.png"))), cv2.IMREAD_UNCHANGED)
    depth = depth + np.arange(depth.size, dtype=np.uint16).reshape(depth.shape)  # no symmetry to hide a wrong turn
    photos, depths, ref, ref_depths = (tmp_path / n for n in ("photos", "depth", "ref", "ref_depth"))
    for d in (photos, depths, ref, ref_depths):
        d.mkdir()
    for o in range(2, 9):
        im = Image.fromarray(np.ascontiguousarray(rgb))
        exif = im.getexif()
        exif[0x0112] = o
        im.save(photos / f"o{o}.jpg", exif=exif, quality=95)
        cv2.imwrite(str(depths / f"o{o}_depth.png"), depth)
        upright = cv2.imread(str(photos / f"o{o}.jpg"))  # as predict reads it (turned by cv2)
        assert upright.shape[:2] == (rgb.shape[:2] if o < 5 else rgb.shape[1::-1])
        cv2.imwrite(str(ref / f"o{o}.png"), upright)
    for o in range(2, 9):
        im = Image.fromarray(np.ascontiguousarray(rgb))
        exif = im.getexif()
        exif[0x0112] = o
        im.save(photos / f"t{o}.tif", exif=exif)
        cv2.imwrite(str(depths / f"t{o}_depth.png"), depth)
        upright = cv2.imdecode(np.fromfile(photos / f"t{o}.tif", np.uint8), cv2.IMREAD_COLOR)
        assert upright.shape[:2] == (rgb.shape[:2] if o < 5 else rgb.shape[1::-1])
        assert not np.array_equal(upright[:, :, ::-1], rgb)  # turned by its tag
        cv2.imwrite(str(ref / f"t{o}.png"), upright)
    turns = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.T,
             6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, -1)[::-1], 8: lambda a: np.rot90(a, 1)}
    for o, turn in turns.items():
        cv2.imwrite(str(ref_depths / f"o{o}_depth.png"), np.ascontiguousarray(turn(depth)))
        cv2.imwrite(str(ref_depths / f"t{o}_depth.png"), np.ascontiguousarray(turn(depth)))
    decoded, buffers = [], []  # each photo is decoded once (it was twice, and two full arrays compared)
    real_imread, real_imdecode = cv2.imread, cv2.imdecode
    capfd.readouterr()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(cv2, "imread", lambda path, *a: decoded.append(path) or real_imread(path, *a))
        m.setattr(cv2, "imdecode", lambda buf, *a: buffers.append(len(buf)) or real_imdecode(buf, *a))
        r = invoke("predict", rgbd_ckpt, photos, "--depth", depths, "--out", tmp_path / "out", "--device", "cpu")
    assert r.exit_code == 0 and "14 images predicted, 0 skipped" in r.stdout, r.output
    assert sorted(p for p in decoded if p.endswith((".jpg", ".tif"))) == sorted(str(p) for p in photos.glob("*.jpg"))
    assert sorted(buffers) == sorted(p.stat().st_size for p in photos.glob("*.tif"))  # a TIFF by imdecode only
    assert "imread_" not in capfd.readouterr().err  # no raw OpenCV error block on the console
    r = invoke("predict", rgbd_ckpt, ref, "--depth", ref_depths, "--out", tmp_path / "ref_out", "--device", "cpu")
    assert r.exit_code == 0 and "14 images predicted, 0 skipped" in r.stdout, r.output
    masks, ref_masks = ({k: v for k, v in snapshot(tmp_path / d).items() if k != "predict.json"}
                        for d in ("out", "ref_out"))  # the records differ: other --depth folders
    assert masks == ref_masks
    for photo in photos.iterdir():  # the pixels too: a one-epoch model's masks may not show a turn
        image, turned = read_image_and_depth(photo, str(depths), False)
        assert np.array_equal(image, cv2.imread(str(ref / f"{photo.stem}.png"))[:, :, ::-1]), photo.name
        assert np.array_equal(turned, cv2.imread(str(ref_depths / f"{photo.stem}_depth.png"), cv2.IMREAD_UNCHANGED))
    # --keep-exif-orientation: stored pixels and depth as they are, no turn
    r = invoke("predict", rgbd_ckpt, photos, "--depth", depths, "--out", tmp_path / "kept", "--device", "cpu",
               "--keep-exif-orientation")
    assert r.exit_code == 0 and "14 images predicted, 0 skipped" in r.stdout, r.output
    assert "imread_" not in capfd.readouterr().err
    for o in range(2, 9):
        assert cv2.imread(str(tmp_path / "kept" / f"o{o}_labelTrainIds.png"), cv2.IMREAD_UNCHANGED).shape == depth.shape
    # a TIFF, which OpenCV turns even when told not to, was predicted turned with its depth as
    # stored (out of line; its masks turned too): it is turned back, so photo, depth and masks are as stored
    stored, stored_depths = tmp_path / "stored", tmp_path / "stored_depth"
    stored.mkdir(), stored_depths.mkdir()
    for o in range(2, 9):
        image, kept = read_image_and_depth(photos / f"t{o}.tif", str(depths), True)
        assert np.array_equal(image, rgb) and np.array_equal(kept, depth), o
        cv2.imwrite(str(stored / f"t{o}.png"), rgb[:, :, ::-1])
        cv2.imwrite(str(stored_depths / f"t{o}_depth.png"), depth)
    # the undo is read_rgb's (exif_orientation=False promises the stored pixels), and only a file
    # with a TIFF signature is opened with Pillow for its tag (every JPEG was, with --keep-exif-orientation)
    opened, real_open = [], Image.open
    with pytest.MonkeyPatch.context() as m:
        m.setattr(Image, "open", lambda f, *a, **k: opened.append(f) or real_open(f, *a, **k))
        for o in range(2, 9):
            assert np.array_equal(read_rgb(photos / f"t{o}.tif", exif_orientation=False), rgb), o
            read_image_and_depth(photos / f"o{o}.jpg", None, True)
    assert len(opened) == 7
    r = invoke("predict", rgbd_ckpt, stored, "--depth", stored_depths, "--out", tmp_path / "stored_out", "--device",
               "cpu")
    assert r.exit_code == 0, r.output
    for o in range(2, 9):
        for sfx in ("_labelTrainIds.png", "_color.png"):
            assert (tmp_path / "kept" / f"t{o}{sfx}").read_bytes() == (tmp_path / "stored_out" / f"t{o}{sfx}").read_bytes()


def test_predict_says_when_it_is_the_depth_maps_that_are_missing(tree, rgbd_ckpt, tmp_path):
    """Every image readable but no depth map for any: the error said "none of the 2 input
    image(s) could be read", blaming the images. A depth map of another size than its image
    was called "unreadable": it is not usable."""
    photos, depths = tmp_path / "photos", tmp_path / "depth"
    images = _images(tree, photos, 2)
    depths.mkdir()
    r = invoke("predict", rgbd_ckpt, photos, "--depth", depths, "--out", tmp_path / "out", "--device", "cpu")
    assert r.exit_code == 2
    assert error_line(r) == "Error: none of the 2 input image(s) has a usable depth map (--depth); nothing predicted"
    assert r.stderr.count("problem: ") == 2 and f"{depths / images[0].stem}_depth.png" in r.stderr
    for image in images:  # of another size than the image
        cv2.imwrite(str(depths / f"{image.stem}_depth.png"), np.ones((5, 7), np.uint16))
    r = invoke("predict", rgbd_ckpt, photos, "--depth", depths, "--out", tmp_path / "out", "--device", "cpu")
    assert error_line(r) == "Error: none of the 2 input image(s) has a usable depth map (--depth); nothing predicted"
    assert "size (5, 7) differs from its image" in r.stderr
    for image in images:
        (depths / f"{image.stem}_depth.png").unlink()
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    r = invoke("predict", rgbd_ckpt, photos, "--depth", depths, "--out", tmp_path / "out", "--device", "cpu")
    assert error_line(r) == ("Error: none of the 3 input image(s) could be read with a usable depth map (1 image(s) "
                             "unreadable and 2 without a usable depth map); nothing predicted")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------- eval: --out with an earlier report


def test_a_new_report_leaves_no_figure_of_the_earlier_one(tree, ckpt, tmp_path):
    """eval of run A, then of a copied checkpoint (no metrics.csv) with --panels 0 into the same
    --out: A's panels and curves stayed beside B's metrics.json, as if they were B's."""
    out = tmp_path / "report"
    r = invoke("eval", ckpt, "--data", tree.root, "--out", out, "--device", "cpu", "--workers", 0)
    assert r.exit_code == 0, r.output
    assert {"panels_best.png", "panels_worst.png", "curves.png"} <= set(snapshot(out))
    lone = tmp_path / "elsewhere" / "b.pt"
    lone.parent.mkdir()
    shutil.copy(ckpt, lone)
    r = invoke("eval", lone, "--data", tree.root, "--out", out, "--device", "cpu", "--workers", 0, "--panels", 0)
    assert r.exit_code == 0, r.output
    files = json.loads((out / "metrics.json").read_text())["files"]
    assert sorted(snapshot(out)) == sorted([*files, "eval_config.yaml"])
    assert not {"panels_best.png", "panels_worst.png", "curves.png"} & set(snapshot(out))
    # an interrupted report (eval_config.yaml is written first) is replaced the same way
    (out / "metrics.json").unlink()
    shutil.copy(out / "per_class_iou.png", out / "panels_best.png")
    r = invoke("eval", lone, "--data", tree.root, "--out", out, "--device", "cpu", "--workers", 0, "--panels", 0)
    assert r.exit_code == 0, r.output
    assert sorted(snapshot(out)) == sorted([*files, "eval_config.yaml"])


@pytest.mark.parametrize("name", ["metrics.json", "curves.png"])
def test_eval_refuses_to_overwrite_a_file_that_is_no_report(tree, ckpt, tmp_path, name):
    """A folder of another tool (detectron2 writes metrics.json into its output folder) lost
    that file to eval's report. Now: one line, exit 2, the folder unchanged."""
    out = tmp_path / "theirs"
    out.mkdir()
    (out / name).write_bytes(b'{"iteration": 99}\n')
    (out / "model_final.pth").write_bytes(b"weights")
    before = snapshot(out)
    r = invoke("eval", ckpt, "--data", tree.root, "--out", out, "--device", "cpu", "--workers", 0)
    assert r.exit_code == 2
    assert error_line(r) == (f"Error: {out / name}: exists and is not part of a segtrain eval report; eval would "
                             "overwrite it (choose a new or empty --out)")
    assert snapshot(out) == before


def test_a_file_given_twice_is_predicted_once(tree, ckpt, tmp_path):
    """`predict photos/*.png photos/` named each file twice: "x.png: same name as x.png;
    outputs would collide", exit 2, nothing predicted."""
    photos = tmp_path / "photos"
    files = _images(tree, photos, 2)
    r = invoke("predict", ckpt, files[0], photos, tmp_path / "photos" / ".." / "photos" / files[1].name,
               "--out", tmp_path / "out", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "2 images predicted, 0 skipped" in r.stdout
    assert sorted(snapshot(tmp_path / "out")) == sorted(["predict.json", *(f"{f.stem}{s}" for f in files
                                                        for s in ("_labelTrainIds.png", "_color.png"))])
    # two different files with the same name are still refused
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(files[0], other / files[0].name)
    r = invoke("predict", ckpt, photos, other, "--out", tmp_path / "out2", "--device", "cpu")
    assert r.exit_code == 2
    assert error_line(r) == (f"Error: {other / files[0].name}: same name as {files[0]}; outputs would collide "
                             "(predict them separately)")


def test_a_folder_without_images_is_named(ckpt, tmp_path):
    """`predict notes/` on a folder of text files said only "no input images given"."""
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "a.txt").write_text("x")
    (notes / "sub" / "b.csv").write_text("y")
    r = invoke("predict", ckpt, notes, "--out", tmp_path / "out", "--device", "cpu")
    assert r.exit_code == 2
    assert error_line(r) == (f"Error: {notes}: no image files in it (.bmp, .jpeg, .jpg, .png, .tif, .tiff, "
                             ".webp); nothing predicted")
    assert not (tmp_path / "out").exists()


def _copy_with_one_40x60_sample(tree, data, split):
    """A copy of the 32x48 tree in `data` whose first `split` image and label are 40x60; returns the image."""
    shutil.copytree(tree.root, data)
    image = sorted((data / "leftImg8bit" / split).rglob("*.png"))[0]
    label = next((data / "gtFine").rglob(image.name.replace("_leftImg8bit.png", "_gtFine_labelTrainIds.png")))
    for path, interp in ((image, cv2.INTER_LINEAR), (label, cv2.INTER_NEAREST)):
        cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), (60, 40), interpolation=interp))
    return image


@pytest.mark.parametrize("workers", [0, 2])
def test_a_sample_of_another_size_than_image_size_is_one_line(tree, ckpt, tmp_path, workers):
    """dataset.json says image_size 32x48 but one test image (and its label) is 40x60: eval
    ended in PyTorch's collate traceback ("stack expects each tensor to be equal size", or
    "Trying to resize storage that is not resizable" from a worker), exit 1."""
    data = tmp_path / "data"
    image = _copy_with_one_40x60_sample(tree, data, "test")
    r = invoke("eval", ckpt, "--data", data, "--out", tmp_path / "report", "--device", "cpu", "--workers", workers)
    assert r.exit_code == 2
    assert error_line(r) == (f"Error: {image}: size 40x60 differs from image_size 32x48 in {data / 'dataset.json'} "
                             "(a tree of mixed sizes has image_size null)")
    assert not (tmp_path / "report").exists()


def test_a_train_image_of_another_size_trains_when_size_or_crop_resizes_both(tree, tmp_path):
    """The image_size check refused `run --size 32x48` (and --crop) on a tree with one 40x60
    train image, which trained fine before it: there image and mask are brought to one size.
    Without --size/--crop nothing resizes them and it is still refused."""
    data = tmp_path / "data"
    image = _copy_with_one_40x60_sample(tree, data, "train")
    for flags in (["--size", "32x48"], ["--crop", "32x32"]):
        r = invoke("run", "unet_small", "--data", data, "--out", tmp_path / flags[0].strip("-"), "--epochs", 1,
                   "--batch-size", 2, *FAST, *flags)
        assert r.exit_code == 0, r.output
    r = invoke("run", "unet_small", "--data", data, "--out", tmp_path / "plain", "--epochs", 1, "--batch-size", 2, *FAST)
    assert r.exit_code == 2
    assert error_line(r).startswith(f"Error: {image}: size 40x60 differs from image_size 32x48")


def test_an_out_folder_that_cannot_be_written_is_one_line_before_any_work(tree, ckpt, tmp_path):
    """`--out` under a read-only folder: eval ran the whole split, then ended in a
    PermissionError traceback when it made the folder (predict: at its first mask)."""
    photos = tmp_path / "photos"
    _images(tree, photos, 1)
    locked = tmp_path / "locked"
    _refused_in(locked, [(("eval", ckpt, "--data", tree.root, "--workers", 0, "--device", "cpu"), locked / "report"),
                         (("predict", ckpt, photos, "--device", "cpu"), locked / "masks"),
                         (("predict", ckpt, photos, "--device", "cpu"), locked)])


def _refused_in(locked, cases):
    """Each (args, out) run as a normal user with `out` in (or equal to) the read-only folder
    `locked` is one line, exit 2, and writes nothing."""
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for args, out in cases:
            r = segtrain_unprivileged(*args, "--out", out)
            assert r.returncode == 2, r.stderr
            where = f" ({locked} is not writable)" if out != locked else ""
            assert r.stderr.splitlines()[-1] == f"Error: {out}: permission denied, cannot write there{where}"
            assert "Traceback" not in r.stderr
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_a_run_or_sweep_out_that_cannot_be_written_is_one_line_before_any_work(tree, tmp_path):
    """`run --out locked/run`, `sweep --out locked/sw` (and `--out locked` itself) ended in a
    PermissionError traceback: every --out is checked by utils.check_out_dir."""
    locked = tmp_path / "locked"
    _refused_in(locked, [((cmd, "unet_small", "--data", tree.root, "--epochs", 1, *FAST), out)
                         for cmd in ("run", "sweep") for out in (locked / cmd, locked)])


# ------------------------------------------------------- predict: large photos


def decisive_checkpoint(ckpt, photo, path):
    """`ckpt` (one class everywhere after one epoch) with a random head on its standardised
    features at `photo`: decisive logits of several classes, so a mask built from corrupted
    scores cannot pass for the right one."""
    import torch

    from segtrain.checkpoint import load_checkpoint, model_from_checkpoint, runtime_for_checkpoint

    state = load_checkpoint(ckpt)
    model = model_from_checkpoint(state).eval()
    rt = runtime_for_checkpoint(state, torch.device("cpu"), amp=False)
    seen = []
    model.head.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    with torch.inference_mode():
        model(rt.images(torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None]))
    mean, std = seen[0].mean((0, 2, 3)), seen[0].std((0, 2, 3))
    scale = torch.where(std > 0, 4 / std, 0)
    weight = torch.randn(state["model"]["head.weight"].shape[:2], generator=torch.Generator().manual_seed(0)) * scale
    state["model"]["head.weight"] = weight[..., None, None]
    state["model"]["head.bias"] = -weight @ mean
    torch.save(state, path)
    return path


def test_predict_builds_a_large_mask_a_few_classes_at_a_time(tree, ckpt, tmp_path, monkeypatch):
    """A photo whose class scores exceed tta.MAX_SCORES is predicted without ever holding them
    all (tta._scores, which does, is not called); the masks are those of the one-go path up to
    float rounding, with and without TTA. The checkpoint has no --size, so the scale-1 passes
    run at the photo's own size (their logits once overwritten by the TTA sweep)."""
    from segtrain import tta

    photos = tmp_path / "photos"
    big = _images(tree, photos, 1)[0]
    cv2.imwrite(str(big), cv2.resize(cv2.imread(str(big)), (480, 320)))  # 39 x 320 x 480 = 6 M scores
    decisive_ckpt = decisive_checkpoint(ckpt, big, tmp_path / "decisive.pt")
    for flags in ([], ["--flip"], ["--flip", "--scales", "0.5,1"]):
        whole = invoke("predict", decisive_ckpt, photos, "--out", tmp_path / "whole", "--device", "cpu", *flags)
        assert whole.exit_code == 0, whole.output
        with monkeypatch.context() as m:
            m.setattr(tta, "MAX_SCORES", 2**20)
            m.setattr(tta, "_scores", lambda *a, **k: pytest.fail("all class scores held at once"))
            parts = invoke("predict", decisive_ckpt, photos, "--out", tmp_path / "parts", "--device", "cpu", *flags)
        assert parts.exit_code == 0, parts.output
        a, b = (cv2.imread(str(tmp_path / d / f"{big.stem}_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
                for d in ("whole", "parts"))
        assert a.shape == b.shape == (320, 480)
        assert len(np.unique(a)) >= 4 and np.bincount(a.ravel()).max() < 0.9 * a.size  # several classes
        assert (a == b).mean() >= 0.999
