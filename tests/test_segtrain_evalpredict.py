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
from segtrain_cli import error_line, invoke, snapshot
from treebuilder import write_clean_tree

TINY = ["--model-opt", "base_width=4", "--model-opt", "depth=2"]
FAST = ["--workers", 0, "--device", "cpu", "--augment", "none", *TINY]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("evp")
    return write_clean_tree(root / "data", counts={"train": 4, "val": 2, "test": 3}, size=(32, 48),
                            sensors=("kv2", "kv1"))


@pytest.fixture(scope="module")
def ckpt(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("evp-run") / "run"
    r = invoke("run", "unet_small", "--data", tree.root, "--out", out, "--epochs", 1, "--batch-size", 2, *FAST)
    assert r.exit_code == 0, r.output
    return out / "last.pt"


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
    take the first run's masks as new inputs (3, then 9 images, then 27 …)."""
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
    assert "3 images predicted, 0 skipped" in again.stdout
    assert "6 file(s) named like the masks predict writes for other inputs left out" in caplog.text
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
