"""Issue 15, segtrain: every bad input gets one `Error:` line naming the file or option (exit 2),
nothing the user had is overwritten, unreadable samples are skipped with a report, and the
console shows no raw library noise. Each test reproduces one finding of the issue."""

from __future__ import annotations

import logging
import os
import pickle
import shutil

import cv2
import numpy as np
import pytest
import torch
import yaml
from segtrain_cli import FAST, TINY, error_line, invoke, snapshot, tiny_checkpoint, tiny_tree
from segtrain_cli import segtrain_unprivileged as _segtrain

from segtrain import engine, run_folder
from segtrain.config import TrainConfig, build_config, load_config_file
from segtrain.data import list_samples, load_dataset_info
from segtrain.utils import SegtrainError, load_torch_file, read_rgb, read_unchanged


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return tiny_tree(tmp_path_factory, "bad")


@pytest.fixture(scope="module")
def ckpt(tree, tmp_path_factory):
    return tiny_checkpoint(tree, tmp_path_factory, "bad-run")


# ---------------------------------------------------------------------------- --out is not a run


def test_run_refuses_a_non_empty_folder_that_is_not_a_run(tree, tmp_path):
    mine = tmp_path / "u"
    mine.mkdir()
    (mine / "config.yaml").write_text("mine\n")
    (mine / "metrics.csv").write_text("my numbers\n")
    before = snapshot(mine)
    r = invoke("run", "unet_small", "--data", tree.root, "--out", mine, "--epochs", 1, *FAST)
    assert r.exit_code == 2
    line = error_line(r)
    assert str(mine) in line and "not a segtrain run" in line and "segtrain-run.json" in line
    r = invoke("run", "unet_small", "--data", tree.root, "--out", mine, "--epochs", 1, "--resume", *FAST)
    assert r.exit_code == 2 and "config.yaml" in error_line(r)
    assert snapshot(mine) == before  # nothing replaced, nothing added


def test_run_folder_is_recognised_by_its_marker(tree, tmp_path):
    out = tmp_path / "run"
    r = invoke("run", "unet_small", "--data", tree.root, "--out", out, "--epochs", 1, "--batch-size", 2, *FAST)
    assert r.exit_code == 0, r.output
    assert run_folder.is_run_folder(out)
    assert yaml.safe_load((out / "segtrain-run.json").read_text()) == {"format": "segtrain-run-v1",
                                                                       "model": "unet_small"}
    r = invoke("run", "unet_small", "--data", tree.root, "--out", out, "--epochs", 1, *FAST)
    assert r.exit_code == 2 and "already holds a run" in error_line(r)
    # a run interrupted before its first checkpoint may simply be started again
    (out / "last.pt").unlink()
    (out / "best.pt").unlink()
    r = invoke("run", "unet_small", "--data", tree.root, "--out", out, "--epochs", 1, "--batch-size", 2, *FAST)
    assert r.exit_code == 0, r.output
    # a marker with another format is not one
    (out / "segtrain-run.json").write_text('{"format": "something-else"}')
    assert not run_folder.is_run_folder(out)


def test_sweep_refuses_a_non_empty_folder_that_is_not_a_sweep(tree, tmp_path):
    mine = tmp_path / "s"
    mine.mkdir()
    (mine / "sweep.md").write_text("my notes\n")
    r = invoke("sweep", "unet_small", "--data", tree.root, "--out", mine, "--epochs", 1, "--device", "cpu")
    assert r.exit_code == 2 and "not a segtrain sweep" in error_line(r)
    assert snapshot(mine) == {"sweep.md": b"my notes\n"}


# ---------------------------------------------------------------------------- non-finite validation loss


def test_nonfinite_validation_loss_is_never_best(tree, tmp_path):
    """--lr 1e30: one step leaves the weights non-finite while the training loss of that step
    was finite; the validation loss is NaN, and used to be logged "(best)" and saved as best.pt."""
    out = tmp_path / "run"
    r = invoke("run", "unet_small", "--data", tree.root, "--out", out, "--lr", "1e30", "--epochs", 2,
               "--batch-size", 4, "--max-train-batches", 1, *FAST)
    assert r.exit_code == 1
    assert "validation loss became nan at epoch 1" in error_line(r)
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()


def test_nonfinite_validation_loss_keeps_the_last_good_checkpoint(tree, tmp_path, monkeypatch):
    real = engine.evaluate
    calls = []

    def evaluate(*args, **kwargs):  # epoch 2's validation diverges, with a perfect-looking mIoU
        res = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            res.loss = float("inf")
            res.confusion = np.diag(np.diag(res.confusion) + res.confusion.sum(1))
        return res

    monkeypatch.setattr(engine, "evaluate", evaluate)
    cfg = build_config(TrainConfig, {"model": "unet_small", "data": str(tree.root), "out": str(tmp_path / "r"),
                                     "epochs": 3, "batch_size": 2, "workers": 0, "device": "cpu",
                                     "augment": "none", "model_options": {"base_width": 4, "depth": 2}})
    res = engine.train(cfg, progress=False)
    assert res.stopped == "non-finite-loss" and "validation loss became inf at epoch 2" in res.message
    assert res.best_epoch == 1 and [r["epoch"] for r in res.history] == [1]
    for name in ("last.pt", "best.pt"):
        assert torch.load(tmp_path / "r" / name, weights_only=True)["epoch"] == 1


def test_a_library_call_with_an_unknown_loss_is_one_error_before_anything(tree, tmp_path):
    """engine.train called directly (no CLI) with a loss not in the registry: one SegtrainError
    naming it and the valid ones, and nothing written. It guards the library path, as the CLI
    tests guard the command; which check raises it is not what it shows."""
    cfg = TrainConfig(model="unet_small", data=str(tree.root), out=str(tmp_path / "r"), loss="focal", device="cpu")
    with pytest.raises(SegtrainError) as e:
        engine.train(cfg, progress=False)
    assert str(e.value) == "loss 'focal' is not one of ce, wce, dice, ce+dice"
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------- one Error line, exit 2


@pytest.mark.parametrize("command", ["run", "eval", "predict", "sweep"])
def test_out_that_is_a_file(command, tree, ckpt, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    args = {"run": ["run", "unet_small", "--data", tree.root, *FAST],
            "eval": ["eval", ckpt, "--data", tree.root, "--workers", 0],
            "predict": ["predict", ckpt, tree.root / "leftImg8bit" / "test"],
            "sweep": ["sweep", "unet_small", "--data", tree.root]}[command]
    for out in (afile, afile / "sub"):
        r = invoke(*args, "--out", out)
        assert r.exit_code == 2, r.output
        line = error_line(r)
        assert str(out) in line and ("is not a folder" in line or "is a file, not a folder" in line)
    assert afile.read_text() == "keep me"


def test_bench_json_out_that_is_a_folder_is_refused_before_benchmarking(tree, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="segtrain")
    r = invoke("bench", "--data", tree.root, "--json-out", tmp_path, "--workers", 0, "--device", "cpu")
    assert r.exit_code == 2
    assert str(tmp_path) in error_line(r) and "is a folder" in error_line(r)
    assert "synthetic batches" not in caplog.text  # refused before any step was timed


def test_bench_json_out_in_a_folder_that_cannot_be_written_is_refused_before_benchmarking(tree, tmp_path):
    """`--json-out locked/b.json` (or under a folder still to be made there): the whole bench ran,
    then ended in a PermissionError traceback when it wrote the JSON (only --out folders were
    checked for writing)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for out in (locked / "b.json", locked / "new" / "b.json"):
            r = _segtrain("bench", "--data", tree.root, "--batch-size", 2, "--steps", 1, "--warmup", 1,
                          "--workers", 0, "--device", "cpu", *TINY, "--json-out", out)
            assert r.returncode == 2, r.stderr
            assert r.stderr.splitlines()[-1] == f"Error: {out}: permission denied, cannot write there ({locked} is not writable)"
            assert "synthetic batches" not in r.stderr  # refused before any step was timed
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("flag,value,why", [
    ("--lr", "nan", "must be a finite number"),
    ("--lr", "inf", "must be a finite number"),
    ("--lr", "-1e-3", "must be greater than 0"),
    ("--lr", "0", "must be greater than 0"),
    ("--weight-decay", "-0.1", "must be at least 0"),
    ("--grad-clip", "nan", "must be a finite number"),
    ("--epochs", "0", "must be at least 1"),
    ("--batch-size", "-2", "must be at least 1"),
    ("--early-stop", "-1", "must be at least 0"),
    ("--max-train-batches", "-5", "must be at least 0"),
    ("--workers", "-1", "must be at least 0"),
    ("--seed", "-1", "must be at least 0"),
])
def test_run_rejects_bad_numbers(flag, value, why, tree, tmp_path):
    r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "r", *FAST, flag, value)
    assert r.exit_code == 2
    assert error_line(r).startswith(f"Error: {flag} ") and error_line(r).endswith(f": {why}")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args,flag", [
    (["eval", "CKPT", "--data", "TREE", "--out", "OUT", "--batch-size", 0], "--batch-size"),
    (["eval", "CKPT", "--data", "TREE", "--out", "OUT", "--panels", -1], "--panels"),
    (["eval", "CKPT", "--data", "TREE", "--out", "OUT", "--workers", -2], "--workers"),
    (["bench", "--data", "TREE", "--steps", 0], "--steps"),
    (["bench", "--data", "TREE", "--warmup", -1], "--warmup"),
    (["bench", "--data", "TREE", "--batch-size", 0], "--batch-size"),
    (["sweep", "unet_small", "--data", "TREE", "--out", "OUT", "--lr", "nan,1e-3"], "--lr"),
    (["sweep", "unet_small", "--data", "TREE", "--out", "OUT", "--epochs", "2,-1"], "--epochs"),
])
def test_other_commands_reject_bad_numbers(args, flag, tree, ckpt, tmp_path):
    subst = {"CKPT": ckpt, "TREE": tree.root, "OUT": tmp_path / "o"}
    r = invoke(*[subst.get(a, a) if isinstance(a, str) else a for a in args])
    assert r.exit_code == 2
    assert flag in error_line(r)
    assert not (tmp_path / "o").exists()


def test_config_yaml_values(tree, tmp_path):
    """PyYAML reads `1e-4` as a string (YAML 1.1): numeric text is accepted for number fields;
    anything else names the file and the key."""
    good = tmp_path / "good.yaml"
    good.write_text("lr: 1e-4\nweight_decay: '0'\nepochs: '1'\nbatch_size: 2\nsize: 32x48\n")
    assert load_config_file(good) == {"lr": 1e-4, "weight_decay": 0.0, "epochs": 1, "batch_size": 2,
                                      "size": [32, 48]}
    r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "r", "--config", good, *FAST)
    assert r.exit_code == 0, r.output
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["lr"] == 1e-4
    for text, key, why in [("epochs: banana", "epochs", "must be a whole number"),
                           ("epochs: 2.5", "epochs", "must be a whole number"),
                           ("lr: .nan", "lr", "must be a finite number"),
                           ("lr: -1", "lr", "must be greater than 0"),
                           ("amp: maybe", "amp", "must be true or false"),
                           ("size: big", "size", "must be HxW"),
                           ("optimizer: 3", "optimizer", "must be text"),
                           ("model_options: [1, 2]", "model_options", "must be a mapping")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text + "\n")
        r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "r2", "--config", bad, *FAST)
        assert r.exit_code == 2, text
        line = error_line(r)
        assert line.startswith(f"Error: {bad}: {key}: ") and why in line, line
    assert not (tmp_path / "r2").exists()
    r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "r2", "--config", tmp_path, *FAST)
    assert r.exit_code == 2 and "is a folder" in error_line(r)
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00lr")
    r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "r2", "--config",
               tmp_path / "bin.yaml", *FAST)
    assert r.exit_code == 2 and "not a text file" in error_line(r)


@pytest.mark.parametrize("opt,why", [("base_width=abc", "must be a whole number"),
                                     ("depth=-1", "must be a whole number >= 0"),
                                     ("up=3", "must be text"),
                                     ("base_width=[", "not valid YAML")])
def test_bad_model_option_values(opt, why, tree, tmp_path):
    for cmd in (["run", "unet_small", "--out", tmp_path / "r"], ["bench"]):
        r = invoke(*cmd, "--data", tree.root, "--model-opt", opt, "--workers", 0, "--device", "cpu")
        assert r.exit_code == 2
        line = error_line(r)
        assert opt.split("=")[0] in line and why in line, line


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_checkpoint_files_that_are_not_checkpoints(tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = tmp_path / "notes.pt"
    text.write_text("hello world\n")
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": _Evil()}, pickled)
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps(_Evil(), protocol=2))
    img = next((tree.root / "leftImg8bit" / "test").rglob("*.png"))
    for path, words in ((text, "a text file"), (pickled, "pickled Python objects such as posix.system"),
                        (legacy, "pickled Python objects")):
        runs = [invoke("eval", path, "--data", tree.root, "--out", tmp_path / "rep"),
                invoke("predict", path, img, "--out", tmp_path / "pred"),
                invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "r", "--init-from", path,
                       *FAST),
                invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "r2", "--pretrained", path,
                       *FAST)]
        for r in runs:
            assert r.exit_code == 2
            line = error_line(r)
            assert str(path) in line and words in line, line
            assert "weights_only" not in r.output and "trust" not in r.output
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(SegtrainError, match="is a folder, not a file"):
        load_torch_file(tmp_path)


# ---------------------------------------------------------------------------- unreadable inputs


def test_readers_name_the_plain_cause(tmp_path, capfd):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    good = np.zeros((8, 8), np.uint8)
    ok, buf = cv2.imencode(".png", good)
    (tmp_path / "cut.png").write_bytes(buf.tobytes()[:40])
    cases = {tmp_path / "missing.png": "file not found", tmp_path: "is a folder, not a file",
             tmp_path / "empty.png": "empty file", tmp_path / "text.png": "does not decode",
             tmp_path / "cut.png": "does not decode"}
    from segtrain.utils import quiet_opencv

    quiet_opencv()
    for path, why in cases.items():
        for reader in (read_rgb, read_unchanged):
            with pytest.raises(SegtrainError) as e:
                reader(path)
            assert str(e.value) == f"{path}: {why}" or str(e.value).startswith(f"{path}: {why}")
    assert "WARN" not in capfd.readouterr().err  # no "[ WARN:0@…] findDecoder / imdecode" noise


def test_a_truncated_tiff_is_one_problem_without_opencv_lines(tmp_path, capfd):
    """libtiff's "[ERROR:0@…] TIFF_Error TIFFFillStrip …" and OpenCV's "imdecode_ … can't read
    data" lines are not printed (also under quiet_opencv, which keeps errors on); OpenCV's log
    level is as it was afterwards."""
    import io

    from PIL import Image

    from segtrain.utils import quiet_opencv

    buf = io.BytesIO()  # Pillow writes the directory first: the cut falls in the pixel strip
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    Image.fromarray(pixels).save(buf, format="TIFF")
    cut = tmp_path / "cut.tif"
    cut.write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
    quiet_opencv()
    level = cv2.utils.logging.getLogLevel()
    with pytest.raises(SegtrainError) as e:
        read_rgb(cut)
    assert str(e.value) == f"{cut}: does not decode as an image (corrupt or not an image format)"
    err = capfd.readouterr().err
    assert "ERROR" not in err and "TIFF" not in err, err
    assert cv2.utils.logging.getLogLevel() == level


def test_unreadable_sample_is_skipped_with_a_report(tree, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(tree.root, data)
    bad = next((data / "gtFine" / "train").rglob("*_labelTrainIds.png"))
    bad.write_text("this is not a PNG")
    info = load_dataset_info(data)
    with caplog.at_level(logging.WARNING, logger="segtrain"):
        samples = list_samples(info, "train")
    assert len(samples) == 3 and all(s.label != bad for s in samples)
    assert f"problem: {bad}: not an image" in caplog.text and "1 of 4 samples of split train skipped" in caplog.text
    for label in (data / "gtFine" / "train").rglob("*_labelTrainIds.png"):
        label.write_bytes(b"")
    with pytest.raises(SegtrainError, match=r"none of the 4 samples of split 'train' can be read \(first: .*: empty file\)"):
        list_samples(info, "train")
    with pytest.raises(SegtrainError, match="is a file, not a data folder"):
        load_dataset_info(data / "dataset.json")


def _only_own_lines(stderr: str) -> None:
    """Nothing on the console but segtrain's own lines (no OpenCV WARN, no Python warnings)."""
    for line in stderr.splitlines():
        assert line.startswith(("segtrain: ", "problem: ", "Error: ")), stderr


def test_predict_unreadable_images(tree, ckpt, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    img = next((tree.root / "leftImg8bit" / "test").rglob("*.png"))
    shutil.copy(img, src / "a.png")
    shutil.copy(img, src / "locked.png")
    (src / "locked.png").chmod(0)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    r = _segtrain("predict", ckpt, src, "--out", tmp_path / "out", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert f"problem: {src / 'locked.png'}: permission denied (skipped)" in r.stderr
    assert f"problem: {src / 'broken.jpg'}: does not decode" in r.stderr
    assert "1 images predicted, 2 skipped" in r.stdout
    _only_own_lines(r.stderr)
    # no readable input at all: a usage error (exit 2), not "0 images predicted"
    r = _segtrain("predict", ckpt, src / "locked.png", src / "broken.jpg", "--out", tmp_path / "out2",
                  "--device", "cpu")
    assert r.returncode == 2
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")] == [
        "Error: none of the 2 input image(s) could be read; nothing predicted"]
    _only_own_lines(r.stderr)
    assert not (tmp_path / "out2").exists()


def test_run_skips_an_unreadable_training_image(tree, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tree.root, data)
    locked = next((data / "leftImg8bit" / "train").rglob("*.png"))
    locked.chmod(0)
    r = _segtrain("run", "unet_small", "--data", data, "--out", tmp_path / "r", "--epochs", 1, "--batch-size", 100,
                  *FAST)
    assert r.returncode == 0, r.stderr
    assert f"problem: {locked}: permission denied; sample" in r.stderr
    assert "1 of 4 samples of split train skipped" in r.stderr
    # 3 readable training images and a batch of 100: said, not silently one small batch
    assert "--batch-size 100 is more than the 3 images of split 'train'" in r.stderr
    _only_own_lines(r.stderr)


def test_bench_shows_progress_on_stderr(tree, tmp_path):
    r = _segtrain("bench", "--data", tree.root, "--batch-size", 2, "--steps", 1, "--warmup", 1, "--workers", 0,
                  "--device", "cpu", *TINY, "--json-out", tmp_path / "b.json")
    assert r.returncode == 0, r.stderr
    assert "unet_small synthetic batches: 1 warm-up + 1 timed steps" in r.stderr
    assert "unet_small real input pipeline: 1 warm-up + 1 timed steps" in r.stderr
    _only_own_lines(r.stderr)
    assert (tmp_path / "b.json").is_file()


def test_depth_checked_only_when_used_and_manifest_errors(tree, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tree.root, data)
    depth = next((data / "depth" / "train").rglob("*_depth.png"))
    depth.write_bytes(b"")
    info = load_dataset_info(data)
    assert len(list_samples(info, "train")) == 4  # training without depth keeps the sample
    assert depth not in [s.depth for s in list_samples(info, "train", with_depth=True)]
    manifest = data / "manifest.csv"
    lines = manifest.read_text().splitlines()
    train_row = next(i for i, ln in enumerate(lines) if ",train," in ln)
    manifest.write_text("\n".join(lines[:train_row] + [lines[train_row].split(",")[0] + ",train"]) + "\n")
    with pytest.raises(SegtrainError, match=rf"{manifest}: line {train_row + 1} of split train lacks id, image"):
        list_samples(info, "train")
    manifest.write_bytes(b"id,split\n\xff\xfe\n")
    with pytest.raises(SegtrainError, match=f"{manifest}: not UTF-8 text"):
        list_samples(info, "train")


def test_a_split_without_samples_names_the_option_that_chose_it(tree, ckpt, tmp_path):
    """`split 'valid' has no samples` alone left the user to find which flag picked it."""
    r = invoke("run", "unet_small", "--data", tree.root, "--out", tmp_path / "r", "--epochs", 1,
               "--val-split", "valid", *FAST)
    assert r.exit_code == 2
    assert error_line(r).endswith("split 'valid' has no samples (choose another with --val-split)")
    r = invoke("eval", ckpt, "--data", tree.root, "--split", "valid", "--out", tmp_path / "e", "--device", "cpu",
               "--workers", 0)
    assert r.exit_code == 2
    assert error_line(r).endswith("split 'valid' has no samples (choose another with --split)")
