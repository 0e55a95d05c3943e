"""`segtrain predict` resumes: an interrupted run re-run with the same command predicts only
the rest (predict.json in --out records the checkpoint and options that made the masks), a
changed checkpoint or flag predicts everything again, and a file predict did not write is
never overwritten nor taken for one of its masks."""

from __future__ import annotations

import json
import logging
import os
import shutil

import cv2
import pytest
from segtrain_cli import error_line, invoke, snapshot, tiny_checkpoint, tiny_tree

import segtrain.inference as inference
from segtrain import __version__


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return tiny_tree(tmp_path_factory, "pres")


@pytest.fixture(scope="module")
def ckpt(tree, tmp_path_factory):
    return tiny_checkpoint(tree, tmp_path_factory, "pres-run")


@pytest.fixture
def photos(tree, tmp_path):
    """A folder of 10 photos: the tree's 9 images as <id>.png and one of them as a JPEG."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in sorted((tree.root / "leftImg8bit").rglob("*.png")):
        shutil.copy(src, folder / src.name.replace("_leftImg8bit", ""))
    first = sorted(folder.glob("*.png"))[0]
    cv2.imwrite(str(folder / "phone.jpg"), cv2.imread(str(first)), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert len(list(folder.iterdir())) == 10
    return folder


@pytest.fixture
def model_calls(monkeypatch):
    """How many images the model was run on (inference.predict_array, counted)."""
    calls = []
    real = inference.predict_array

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(inference, "predict_array", counted)
    return calls


def _interrupted(monkeypatch, k, *args, between=False):
    """`predict ARGS` stopped by Ctrl-C as it writes the label mask of image k + 1 (`between`:
    its color mask, the label mask written)."""
    real, writes = inference.write_png, []

    def writer(path, array):
        writes.append(path)
        if len(writes) == 2 * k + 1 + between:
            raise KeyboardInterrupt
        real(path, array)

    with monkeypatch.context() as m:
        m.setattr(inference, "write_png", writer)
        r = invoke("predict", *args)
    assert r.exit_code != 0 and "images predicted" not in r.stdout, r.output


@pytest.mark.parametrize("between", [False, True], ids=["before-an-image", "between-its-masks"])
def test_an_interrupted_predict_resumes_and_ends_as_one_run(ckpt, photos, tmp_path, monkeypatch, model_calls, caplog,
                                                            between):
    """Stopped after 3 of 10 images, the same command predicted all 10 again; now it predicts
    the 7 others, and the folder is byte for byte that of one uninterrupted run. An image
    stopped between its two masks (its label mask written) is predicted again."""
    fresh = invoke("predict", ckpt, photos, "--out", tmp_path / "fresh", "--device", "cpu")
    assert fresh.exit_code == 0 and "10 images predicted, 0 skipped" in fresh.stdout, fresh.output
    _interrupted(monkeypatch, 3, ckpt, photos, "--out", tmp_path / "out", "--device", "cpu", between=between)
    assert len(list((tmp_path / "out").glob("*.png"))) == 6 + between
    model_calls.clear()
    caplog.set_level(logging.INFO, logger="segtrain")
    again = invoke("predict", ckpt, photos, "--out", tmp_path / "out", "--device", "cpu")
    assert again.exit_code == 0, again.output
    assert len(model_calls) == 7
    assert "3 of 10 already predicted, skipped" in caplog.text
    assert "7 images predicted, 3 already predicted, 0 skipped" in again.stdout
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "fresh")
    record = json.loads((tmp_path / "out" / "predict.json").read_text())
    assert record["checkpoint"]["sha256"] == inference.sha256_file(ckpt)
    assert record["options"]["flip"] is False and len(record["outputs"]) == 20

    model_calls.clear()  # finished: a third run predicts nothing and changes nothing
    third = invoke("predict", ckpt, photos, "--out", tmp_path / "out", "--device", "cpu", "--strict")
    assert third.exit_code == 0 and "0 images predicted, 10 already predicted, 0 skipped" in third.stdout
    assert not model_calls and snapshot(tmp_path / "out") == snapshot(tmp_path / "fresh")

    copy = tmp_path / "copy.pt"  # the same checkpoint under another name predicts the same masks
    shutil.copy(ckpt, copy)
    assert invoke("predict", copy, photos, "--out", tmp_path / "out", "--device", "cpu").exit_code == 0
    assert not model_calls


def test_a_changed_flag_predicts_everything_again(ckpt, photos, tmp_path, monkeypatch, model_calls, caplog):
    """Masks of plain passes, then `--flip` stopped after 4 images, then `--flip` again: the
    earlier run's masks are replaced, none taken for done; the end equals a fresh --flip run."""
    flip = invoke("predict", ckpt, photos, "--out", tmp_path / "flip", "--device", "cpu", "--flip")
    assert flip.exit_code == 0, flip.output
    out = tmp_path / "out"
    assert invoke("predict", ckpt, photos, "--out", out, "--device", "cpu").exit_code == 0
    plain = snapshot(out)
    assert plain != snapshot(tmp_path / "flip")
    caplog.set_level(logging.INFO, logger="segtrain")
    _interrupted(monkeypatch, 4, ckpt, photos, "--out", out, "--device", "cpu", "--flip")
    [why] = [r for r in caplog.records if "made by" in r.getMessage()]
    assert why.getMessage().startswith(f"{out / 'predict.json'}: made by other options (flip); its 20 earlier "
                                       "mask file(s) are replaced")
    assert why.levelno == logging.WARNING  # a finished run's masks are removed: shown under -q too
    assert len(list(out.glob("*.png"))) == 8  # the plain masks went before the first flipped one
    model_calls.clear()
    again = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu", "--flip")
    assert again.exit_code == 0 and len(model_calls) == 6, again.output
    assert snapshot(out) == snapshot(tmp_path / "flip")

    model_calls.clear()  # --size too is an option of the masks
    r = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu", "--flip", "--size", "16x24")
    assert r.exit_code == 0 and len(model_calls) == 10 and "10 images predicted (TTA: flip), 0 skipped" in r.stdout
    assert "made by other options (size)" in caplog.text


def _no_model(*args):
    raise AssertionError("the model was loaded")


def test_a_file_predict_did_not_write_is_never_overwritten(ckpt, photos, tmp_path, monkeypatch):
    """A user's `<stem>_color.png` in --out (no record names it) was overwritten by the mask;
    now it is refused before anything runs (the model is not loaded). Files of other names
    stay as they are."""
    out = tmp_path / "out"
    out.mkdir()
    stem = sorted(photos.glob("*.png"))[0].stem
    (out / f"{stem}_color.png").write_bytes(b"my own picture")
    (out / "notes.txt").write_text("keep")
    before = snapshot(out)
    with monkeypatch.context() as m:
        m.setattr(inference, "_load_model", _no_model)
        r = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert r.exit_code == 2
    assert error_line(r) == (f"Error: {out / stem}_color.png: exists and was not written by segtrain predict "
                             f"(not listed in {out / 'predict.json'}); predict would overwrite it (choose a "
                             "new or empty --out)")
    assert snapshot(out) == before

    (out / f"{stem}_color.png").unlink()  # a record's other files are predict's; the user's stay
    assert invoke("predict", ckpt, photos, "--out", out, "--device", "cpu").exit_code == 0
    (photos / "new.png").write_bytes((photos / f"{stem}.png").read_bytes())
    (out / "new_labelTrainIds.png").write_bytes(b"mine too")
    before = snapshot(out)
    r = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert r.exit_code == 2 and "new_labelTrainIds.png: exists and was not written" in error_line(r)
    assert snapshot(out) == before and (out / "notes.txt").read_text() == "keep"


def test_a_predict_json_that_is_no_record_is_refused(ckpt, photos, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predict.json").write_text('{"my": "settings"}')
    monkeypatch.setattr(inference, "_load_model", _no_model)  # refused before the model loads
    r = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert r.exit_code == 2
    assert error_line(r) == (f"Error: {out / 'predict.json'}: exists and is not a segtrain predict record; "
                             "predict would overwrite it (choose a new or empty --out)")
    assert snapshot(out) == {"predict.json": b'{"my": "settings"}'}


def test_a_users_own_color_png_is_an_input(ckpt, photos, tmp_path, caplog):
    """`x_color.png` beside `x.png` was taken for an earlier mask and left out; without a
    record naming it, it is a photo like any other. Predict's own masks are still left out."""
    stem = sorted(photos.glob("*.png"))[0].stem
    shutil.copy(photos / "phone.jpg", photos / f"{stem}_color.png")  # the user's own photo
    r = invoke("predict", ckpt, photos, "--out", tmp_path / "out", "--device", "cpu")
    assert r.exit_code == 0 and "11 images predicted, 0 skipped" in r.stdout, r.output
    assert (tmp_path / "out" / f"{stem}_color_labelTrainIds.png").is_file()

    caplog.set_level(logging.INFO, logger="segtrain")  # into the photos' own folder, twice
    assert invoke("predict", ckpt, photos, "--out", tmp_path / "out", "--device", "cpu").exit_code == 0
    r = invoke("predict", ckpt, photos, "--out", photos / "masks", "--device", "cpu")
    assert r.exit_code == 0 and "11 images predicted, 0 skipped" in r.stdout, r.output
    again = invoke("predict", ckpt, photos, "--out", photos / "masks", "--device", "cpu")
    assert again.exit_code == 0 and "0 images predicted, 11 already predicted, 0 skipped" in again.stdout
    assert "22 file(s) that predict wrote (listed in its predict.json) left out" in caplog.text


def test_a_record_naming_files_outside_out_replaces_none_of_them(ckpt, photos, tmp_path):
    """An edited record listing `../x_color.png` (or a non-mask name): a changed record removes
    the masks the earlier one lists, but only masks in --out itself."""
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "victim_color.png").write_bytes(b"keep")
    (out / "notes_color.txt").write_bytes(b"keep")
    (out / "predict.json").write_text(json.dumps({
        "tool": "segtrain predict", "version": "0.0", "checkpoint": {"sha256": "0"}, "options": {},
        "outputs": ["../victim_color.png", str(tmp_path / "victim_color.png"), "notes_color.txt", 7]}))
    r = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert r.exit_code == 0 and "10 images predicted, 0 skipped" in r.stdout, r.output
    assert (tmp_path / "victim_color.png").read_bytes() == b"keep" == (out / "notes_color.txt").read_bytes()


def test_a_record_of_another_version_is_replaced_with_a_warning(ckpt, photos, tmp_path, model_calls, caplog):
    """A record of another segtrain version: everything is predicted again, and the warning
    (shown under -q) names both versions."""
    out = tmp_path / "out"
    assert invoke("predict", ckpt, photos, "--out", out, "--device", "cpu").exit_code == 0
    record = json.loads((out / "predict.json").read_text())
    (out / "predict.json").write_text(json.dumps({**record, "version": "0.0"}))
    model_calls.clear()
    caplog.set_level(logging.INFO, logger="segtrain")
    r = invoke("-q", "predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert r.exit_code == 0 and len(model_calls) == 10, r.output
    [why] = [r for r in caplog.records if "made by" in r.getMessage()]
    assert why.levelno == logging.WARNING
    assert why.getMessage() == (f"{out / 'predict.json'}: made by segtrain 0.0 (this is {__version__}); its 20 "
                                "earlier mask file(s) are replaced, everything is predicted again")
    assert json.loads((out / "predict.json").read_text()) == record


def test_a_record_in_an_input_folder_leaves_its_masks_out(ckpt, photos, tmp_path, caplog):
    """`predict photos --out photos`, then `--out photos/masks`: photos/predict.json (not in
    --out) names the first run's masks, so they are not taken for photos."""
    assert invoke("predict", ckpt, photos, "--out", photos, "--device", "cpu").exit_code == 0
    assert len(list(photos.glob("*.png"))) == 9 + 20
    caplog.set_level(logging.INFO, logger="segtrain")
    r = invoke("predict", ckpt, photos, "--out", photos / "masks", "--device", "cpu")
    assert r.exit_code == 0 and "10 images predicted, 0 skipped" in r.stdout, r.output
    assert "20 file(s) that predict wrote (listed in its predict.json) left out" in caplog.text
    assert len(list((photos / "masks").glob("*.png"))) == 20


def test_files_named_that_the_record_lists_are_left_out(ckpt, photos, tmp_path, model_calls):
    """`predict photos/* --out photos` twice was refused (`x_color.png: is an input, and predict
    would overwrite it`) though photos/predict.json lists the masks: named files the record
    lists, and the record itself, are predict's own and left out as in a folder."""
    r = invoke("predict", ckpt, *sorted(photos.iterdir()), "--out", photos, "--device", "cpu")
    assert r.exit_code == 0 and "10 images predicted, 0 skipped" in r.stdout, r.output
    before = snapshot(photos)
    model_calls.clear()
    again = invoke("predict", ckpt, *sorted(photos.iterdir()), "--out", photos, "--device", "cpu", "--strict")
    assert again.exit_code == 0, again.output
    assert "0 images predicted, 10 already predicted, 0 skipped" in again.stdout
    assert not model_calls and snapshot(photos) == before


def test_a_photo_replaced_under_its_name_is_predicted_again(ckpt, photos, tmp_path, model_calls, caplog):
    """Resume went by names: a photo replaced after its masks were written kept the old
    photo's masks. predict.json now records each input's size and mtime_ns: a replaced photo
    (another size; or the same size, another mtime) is predicted again, the rest skipped, and
    the folder ends as a fresh run on the new photos. Only a touch (same bytes, new mtime)
    costs a needless prediction."""
    out = tmp_path / "out"
    pngs = sorted(photos.glob("*.png"))
    stored = [cv2.IMWRITE_PNG_COMPRESSION, 0]  # uncompressed: the file's size is the image's size
    cv2.imwrite(str(pngs[1]), cv2.imread(str(pngs[1])), stored)
    assert invoke("predict", ckpt, photos, "--out", out, "--device", "cpu").exit_code == 0
    record = json.loads((out / "predict.json").read_text())
    assert record["inputs"][pngs[0].stem] == {"size": pngs[0].stat().st_size, "mtime_ns": pngs[0].stat().st_mtime_ns}
    assert sorted(record["inputs"]) == sorted(p.stem for p in photos.iterdir())
    shutil.copy(photos / "phone.jpg", pngs[0])  # another photo under the same name (another size)
    before = pngs[1].stat()
    cv2.imwrite(str(pngs[1]), 255 - cv2.imread(str(pngs[1])), stored)  # the same size, another picture
    size, mtime = pngs[1].stat().st_size, pngs[1].stat().st_mtime_ns
    assert size == before.st_size and mtime != before.st_mtime_ns  # its mtime tells
    model_calls.clear()
    caplog.set_level(logging.INFO, logger="segtrain")
    r = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert r.exit_code == 0 and "2 images predicted, 8 already predicted, 0 skipped" in r.stdout, r.output
    assert len(model_calls) == 2
    assert "2 image(s) changed since their masks were written (size or modification time), predicted again" \
        in caplog.text
    fresh = invoke("predict", ckpt, photos, "--out", tmp_path / "fresh", "--device", "cpu")
    assert fresh.exit_code == 0
    assert snapshot(out) == snapshot(tmp_path / "fresh")
    assert json.loads((out / "predict.json").read_text())["inputs"][pngs[1].stem] == {"size": size,
                                                                                    "mtime_ns": mtime}

    model_calls.clear()  # the same size and bytes, another mtime: predicted again (the price of not hashing)
    os.utime(pngs[3], ns=(pngs[3].stat().st_atime_ns, pngs[3].stat().st_mtime_ns + 10**9))
    r = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert r.exit_code == 0 and len(model_calls) == 1 and snapshot(out) != snapshot(tmp_path / "fresh")
    model_calls.clear()
    assert invoke("predict", ckpt, photos, "--out", out, "--device", "cpu").exit_code == 0 and not model_calls


def test_a_replaced_photo_is_noticed_on_resume_and_its_masks_go(ckpt, photos, tmp_path, monkeypatch, model_calls):
    """Interrupted after 3 images, one of them replaced by an unreadable file: the resume
    predicts the 7 others, reports that one, and its old masks are gone (they were the old
    photo's), so a further re-run tries it again."""
    out = tmp_path / "out"
    _interrupted(monkeypatch, 3, ckpt, photos, "--out", out, "--device", "cpu")
    first = sorted(photos.iterdir())[0]
    stem = first.stem
    assert (out / f"{stem}_color.png").is_file()
    first.write_bytes(b"not an image any more")
    model_calls.clear()
    r = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert r.exit_code == 0 and "7 images predicted, 2 already predicted, 1 skipped" in r.stdout, r.output
    assert not (out / f"{stem}_color.png").exists() and not (out / f"{stem}_labelTrainIds.png").exists()
    again = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu", "--strict")
    assert again.exit_code == 1 and f"problem: {first}" in again.stderr


def test_a_photo_replaced_by_an_unreadable_file_loses_its_old_masks(ckpt, photos, tmp_path, model_calls, caplog):
    """A finished folder, one photo replaced by a file that no longer decodes: its old masks
    were removed only before the first new mask, and no other image was predicted, so they
    stayed (the old photo's masks beside a file that is no photo) while the log said it was
    "predicted again". They go now, the log says it could not be read, and every re-run tries
    it again; once it is a photo again it is predicted."""
    out = tmp_path / "out"
    assert invoke("predict", ckpt, photos, "--out", out, "--device", "cpu").exit_code == 0
    first = sorted(photos.iterdir())[0]
    record = (out / "predict.json").read_bytes()
    shutil.copy(first, tmp_path / f"kept{first.suffix}")
    first.write_bytes(b"\x89PNG\r\n\x1a\n not a photo any more")
    model_calls.clear()
    caplog.set_level(logging.INFO, logger="segtrain")
    r = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert r.exit_code == 0 and "0 images predicted, 9 already predicted, 1 skipped" in r.stdout, r.output
    assert f"problem: {first}: does not decode" in r.stderr and not model_calls
    assert not (out / f"{first.stem}_labelTrainIds.png").exists() and not (out / f"{first.stem}_color.png").exists()
    assert "1 image(s) changed since their masks were written (size or modification time): 0 predicted " \
           "again, 1 could not be read (their old masks removed)" in caplog.text
    assert "predicted again" not in caplog.text.replace("0 predicted again", "")
    assert (out / "predict.json").read_bytes() == record  # nothing predicted: the record as it was
    r = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu", "--strict")
    assert r.exit_code == 1 and f"problem: {first}" in r.stderr
    shutil.copy(tmp_path / f"kept{first.suffix}", first)
    r = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert r.exit_code == 0 and "1 images predicted, 9 already predicted, 0 skipped" in r.stdout, r.output
    assert invoke("predict", ckpt, photos, "--out", tmp_path / "fresh", "--device", "cpu").exit_code == 0
    assert snapshot(out) == snapshot(tmp_path / "fresh")


def test_a_record_without_input_stamps_still_resumes(ckpt, photos, tmp_path, model_calls):
    """A predict.json written before input stamps (no `inputs`) resumes by names as it did."""
    out = tmp_path / "out"
    assert invoke("predict", ckpt, photos, "--out", out, "--device", "cpu").exit_code == 0
    record = json.loads((out / "predict.json").read_text())
    del record["inputs"]
    (out / "predict.json").write_text(json.dumps(record))
    (out / f"{sorted(photos.iterdir())[0].stem}_color.png").unlink()
    shutil.copy(photos / "phone.jpg", sorted(photos.iterdir())[1])  # not noticed: nothing recorded for it
    model_calls.clear()
    r = invoke("predict", ckpt, photos, "--out", out, "--device", "cpu")
    assert r.exit_code == 0 and "1 images predicted, 9 already predicted, 0 skipped" in r.stdout, r.output
    assert len(model_calls) == 1
    stamps = json.loads((out / "predict.json").read_text())["inputs"]
    assert sorted(stamps) == sorted(p.stem for p in photos.iterdir())  # the new record has them all
