"""End-to-end conversion on raw trees built from the real SUN RGB-D files (the real kv2
image and depth, the real img_0063 annotation JSON) plus hand-made seg.mat files whose
masks are known exactly."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from conftest import realdata
from workerdeath import FaultyScene

import sunrgbd_tools.convert.pipeline as convert_mod
from cleantree.manifest import MANIFEST_COLUMNS
from sunrgbd_tools.cli.main import main
from sunrgbd_tools.convert.pipeline import ConvertConfig, ConvertError, convert
from sunrgbd_tools.convert.resize import resize_nearest
from sunrgbd_tools.convert.verify import verify_tree
from sunrgbd_tools.labels.table import ClassTable, NameMapper
from sunrgbd_tools.raw.splits import read_split

KV2 = ("GuardianWang-sunrgbd-toy", "images", "2014-12-18_11-31-54_260595134347")
KV1 = ("GuardianWang-sunrgbd-toy", "images", "img_0063")
ANNOTATION = ("LucBourrat1-sunrgbd_dataset", "prepare", "annotation2Dfinal.json")
PREFIX = "/n/fs/sun3d/data/SUNRGBD/"


def _cell(items):
    c = np.empty((1, len(items)), dtype=object)
    for i, s in enumerate(items):
        c[0, i] = s
    return c


def _seg(h, w, seed):
    """A seglabel with 4 names (1-based) in horizontal bands, plus an unlabelled strip."""
    rng = np.random.default_rng(seed)
    seg = np.zeros((h, w), dtype=np.uint16)
    cuts = np.sort(rng.choice(np.arange(10, h - 10), 3, replace=False))
    for v, (a, b) in enumerate(zip([0, *cuts], [*cuts, h], strict=True), start=1):
        seg[a:b, 5:] = v
    return seg


SEG_NAMES = ["wall", "floor", "chair2", "zorbulator"]  # exact, exact, (mapping-dependent), unknown


def build_raw(root: Path, n_kv2: int = 4) -> dict:
    """A raw tree: n kv2 scenes from the real kv2 frame with seg.mat, one kv1 scene with the
    real polygons, the toolbox split file. Returns the seglabels written, by key."""
    kv2 = realdata(*KV2)
    truth = {}
    train, test, val = [], [], []
    for i in range(n_kv2):
        key = f"kv2/kinect2data/{i:06d}_2014-05-16_20-14-38_260595134347_rgbf000121-resize"
        dst = root / "SUNRGBD" / key
        shutil.copytree(kv2, dst)
        seg = _seg(530, 730, i)
        scipy.io.savemat(dst / "seg.mat", {"seglabel": seg, "names": _cell(SEG_NAMES)})
        truth[key] = seg
        (test if i % 2 else (val if i % 4 == 2 else train)).append(PREFIX + key + ("/" if i % 3 else ""))
    key = "kv1/b3dodata/img_0063"
    dst = root / "SUNRGBD" / key
    shutil.copytree(realdata(*KV1), dst)
    (dst / "annotation2Dfinal").mkdir()
    shutil.copy(realdata(*ANNOTATION), dst / "annotation2Dfinal" / "index.json")
    train.append(PREFIX + key)
    split = {
        "alltrain": _cell(train + val),
        "alltest": _cell(test),
        "trainvalsplit": {"train": _cell(train).T, "val": _cell(val).T},
    }
    (root / "SUNRGBDtoolbox/traintestSUNRGBD").mkdir(parents=True)
    scipy.io.savemat(root / "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat", split)
    return truth


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    return root, build_raw(root)


def _cfg(raw_root, out, **kw):
    return ConvertConfig(src=str(raw_root), out=str(out), **kw)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".sunrgbd" not in p.parts
    }


def _manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_seg_mat_masks_are_exact(raw, tmp_path):
    root, truth = raw
    out = tmp_path / "clean"
    s = convert(_cfg(root, out, size=(240, 320)), workers=1)
    assert s.samples == 4 and s.splits == {"train": 1, "val": 1, "test": 2}
    table, mapper = ClassTable.load(), NameMapper.load()
    lut = np.array([0] + [mapper.lookup(n).class_id for n in SEG_NAMES], dtype=np.uint8)
    rows = {r["scene"]: r for r in _manifest(out)}
    for key, seg in truth.items():
        r = rows[key]
        assert r["label_source"] == "seg" and (r["height"], r["width"]) == ("240", "320")
        expected = lut[resize_nearest(seg, (240, 320))]
        got = cv2.imread(str(out / r["label_ids"]), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint8 and np.array_equal(got, expected)
        train = cv2.imread(str(out / r["label_train_ids"]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(train, table.id_to_train_id[expected])
        assert (train[expected == 0] == 255).all()
        color = cv2.imread(str(out / r["color"]))[:, :, ::-1]
        assert np.array_equal(color, table.id_to_color[expected])
        from PIL import Image  # a palette PNG whose indices are the class ids

        with Image.open(out / r["color"]) as im:
            assert im.mode == "P" and np.array_equal(np.asarray(im), expected)
        assert json.loads(r["unmapped_names"])["zorbulator"] > 0
        depth = cv2.imread(str(out / r["depth"]), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16 and depth.shape == (240, 320) and depth.max() <= 8000
    # the kv1 scene is not part of kv2
    assert not any(k.startswith("kv1/") for k in rows)
    assert verify_tree(out).ok
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["splits"] == {"train": 1, "val": 1, "test": 2}
    assert meta["image_size"] == [240, 320] and meta["num_classes"] == table.lookup.num_classes
    assert meta["mapping_sha256"] == mapper.sha256
    assert meta["created_with"]["command"].startswith("sunrgbd convert --subset kv2")
    assert [c["name"] for c in meta["classes"]][:3] == ["unlabeled", "wall", "floor"]


def test_polygons_match_the_real_annotation(raw, tmp_path):
    root, _ = raw
    out = tmp_path / "clean"
    s = convert(_cfg(root, out, subset="kv1", labels="auto"), workers=1)
    assert s.samples == 1 and s.label_sources == {"polygons": 1}
    (r,) = _manifest(out)
    assert (r["src_height"], r["src_width"], r["height"], r["width"]) == ("427", "561", "427", "561")
    lab = cv2.imread(str(out / r["label_ids"]), cv2.IMREAD_UNCHANGED)
    table = ClassTable.load()
    # the real scene: wall, floor, chair and books are large visible regions
    for name in ["wall", "floor", "chair", "books"]:
        assert (lab == table.id_of(name)).sum() > 2000, name
    assert r["scene_type"] == "office" and len(r["extrinsics"].split()) == 12


def test_byte_identical_for_any_worker_count_and_run(raw, tmp_path):
    root, _ = raw
    a = convert(_cfg(root, tmp_path / "a", size=(120, 160)), workers=1)
    b = convert(_cfg(root, tmp_path / "b", size=(120, 160)), workers=2)
    assert a.samples == b.samples == 4
    ta, tb = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    # the out path is part of the recorded command; everything else is identical
    ta["dataset.json"] = ta["dataset.json"].replace(b"/a", b"/X")
    tb["dataset.json"] = tb["dataset.json"].replace(b"/b", b"/X")
    assert ta == tb


def test_workers_beyond_the_work_start_no_idle_processes(tmp_path, monkeypatch):
    """`--workers 1000` over a few scenes once started 1000 processes (each importing numpy and
    OpenCV) and ran for minutes; convert and verify start at most one process per task."""
    import sunrgbd_tools.parallel as parallel_mod

    root = tmp_path / "raw"
    build_raw(root, n_kv2=9)  # 9 samples: verify pools from 8
    asked = []
    real_imap = parallel_mod.imap_surviving

    def counting_imap(fn, tasks, workers, **kw):  # every pool survives dead workers (parallel.py)
        asked.append(workers)
        return real_imap(fn, tasks, min(workers, 2), **kw)

    monkeypatch.setattr(convert_mod, "imap_surviving", counting_imap)
    monkeypatch.setattr(parallel_mod, "imap_surviving", counting_imap)  # map_chunks: verify
    s = convert(_cfg(root, tmp_path / "out", size=(30, 40)), workers=1000)
    assert s.samples == 9 and asked == [9]  # the default subset kv2: 9 scenes
    report = verify_tree(tmp_path / "out", workers=1000)
    assert not report.problems and report.samples == 9
    assert asked == [9, 3]  # verify's tasks are chunks of 4 rows


def _faulty_from_third(monkeypatch, error: BaseException):
    """From the third scene on, the worker converting a scene gets `error` (a full disk, a
    Ctrl-C): convert runs scenes in worker processes, which a monkeypatch here never reaches.
    Returns the real discover, to put back."""
    real = convert_mod.discover

    def discover(src, subset):
        found = real(src, subset)
        found.scenes[2:] = [FaultyScene(s.key, s.path, error) for s in found.scenes[2:]]
        return found

    monkeypatch.setattr(convert_mod, "discover", discover)
    return real


def test_full_disk_stops_the_run_and_the_rerun_finishes(raw, tmp_path, monkeypatch):
    """A full --out is not a bad scene: it once skipped every later scene with the same problem
    and exited 0 with a partial dataset. Now: one line, exit 1, no manifest; the re-run resumes."""
    import errno

    root, _ = raw
    out = tmp_path / "out"
    real = _faulty_from_third(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    args = ["convert", "--src", str(root), "--out", str(out), "--size", "60x80", "--workers", "1"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert res.output.strip().splitlines()[-1] == (
        f"Error: {out}: No space left on device; stopped with 2 sample(s) finished: make room and "
        "run the same command again to finish")
    assert not (out / "manifest.csv").exists() and not (out / "dataset.json").exists()
    monkeypatch.setattr(convert_mod, "discover", real)
    s = convert(_cfg(root, out, size=(60, 80)), workers=1)
    assert s.resumed == 2 and s.samples == 4 and not any("space" in p for p in s.problems)


def test_resume_with_the_same_folders_typed_differently(raw, tmp_path, monkeypatch):
    """Resuming with `--src /abs/raw` after `--src raw` (or from another folder) was refused as
    "other options"; what --src/--out point at is compared, and another raw tree is still refused."""
    root, _ = raw
    monkeypatch.chdir(root.parent)
    real = _faulty_from_third(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        convert(ConvertConfig(src=root.name, out="typed-part", size=(30, 40)), workers=1)
    monkeypatch.setattr(convert_mod, "discover", real)
    other = tmp_path / "copy"
    shutil.copytree(root, other)
    with pytest.raises(ConvertError, match="other options"):
        convert(_cfg(other, root.parent / "typed-part", size=(30, 40)), workers=1)
    monkeypatch.chdir(tmp_path)
    s = convert(_cfg(root, root.parent / "typed-part", size=(30, 40)), workers=1)
    assert s.resumed == 2 and s.samples == 4
    # a folder claimed before convert.json recorded src_resolved still resumes as typed then
    state = root.parent / "typed-part" / ".sunrgbd" / "convert.json"
    old = json.loads(state.read_text())
    del old["src_resolved"]
    old["src"], old["out"] = str(root), str(root.parent / "typed-part")
    state.write_text(json.dumps(old, indent=2, ensure_ascii=False) + "\n")
    assert convert(_cfg(root, root.parent / "typed-part", size=(30, 40)), workers=1).resumed == 4
    with pytest.raises(ConvertError, match="other options"):
        convert(ConvertConfig(src=os.path.relpath(root), out=str(root.parent / "typed-part"), size=(30, 40)))


def test_resume_after_interruption_equals_uninterrupted_run(raw, tmp_path, monkeypatch):
    root, _ = raw
    full = tmp_path / "full"
    convert(_cfg(root, full, size=(120, 160)), workers=1)

    out = tmp_path / "part"
    real = _faulty_from_third(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        convert(_cfg(root, out, size=(120, 160)), workers=1)
    assert not (out / "manifest.csv").exists()
    # a kill can leave a temporary file behind; the re-run must clean it up
    (out / "leftImg8bit" / ".stale_leftImg8bit.png.abc.tmp").write_bytes(b"x")
    monkeypatch.setattr(convert_mod, "discover", real)
    s = convert(_cfg(root, out, size=(120, 160)), workers=2)
    assert s.resumed == 2 and s.samples == 4
    ta, tb = _tree_bytes(full), _tree_bytes(out)
    ta["dataset.json"] = ta["dataset.json"].replace(b"/full", b"/X")
    tb["dataset.json"] = tb["dataset.json"].replace(b"/part", b"/X")
    assert ta == tb


def test_resume_reconverts_records_from_another_column_set(raw, tmp_path):
    """A record written before a manifest column was added (or after one was removed) is not
    finished: resuming it wrote an empty cell (tool_version is not bumped for a column) and
    exited 0, so the tree differed from an uninterrupted run. Now it is converted again."""
    root, _ = raw
    full = tmp_path / "full"
    convert(_cfg(root, full, size=(30, 40)), workers=1)
    out = tmp_path / "part"
    convert(_cfg(root, out, size=(30, 40)), workers=1)
    records = sorted((out / convert_mod.STATE_DIR / "records").glob("*.json"))
    assert len(records) == 4
    for p, edit in zip(records[:2], ("drop", "add"), strict=True):
        rec = json.loads(p.read_text(encoding="utf-8"))
        if edit == "drop":
            del rec["row"]["scene_type"]
        else:
            rec["row"]["retired_column"] = "x"
        p.write_text(json.dumps(rec), encoding="utf-8")
    s = convert(_cfg(root, out, size=(30, 40)), workers=1)
    assert s.resumed == 2 and s.samples == 4
    assert (out / "manifest.csv").read_bytes() == (full / "manifest.csv").read_bytes()
    for p in records[:2]:  # rewritten with today's columns, so the next run resumes them
        assert set(json.loads(p.read_text(encoding="utf-8"))["row"]) == set(MANIFEST_COLUMNS)
    assert convert(_cfg(root, out, size=(30, 40)), workers=1).resumed == 4


def test_out_folder_is_protected(raw, tmp_path):
    root, _ = raw
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(ConvertError, match="not empty"):
        convert(_cfg(root, out), workers=1)
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    done = tmp_path / "done"
    convert(_cfg(root, done, size=(60, 80)), workers=1)
    with pytest.raises(ConvertError, match="other options"):
        convert(_cfg(root, done, size=(120, 160)), workers=1)


def _break(root: Path, tmp_path: Path) -> Path:
    """Copy the raw tree and damage it in the ways the real data is damaged."""
    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    scenes = sorted((bad / "SUNRGBD/kv2/kinect2data").iterdir())
    (scenes[0] / "image" / "0000144.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    seg = np.ones((100, 100), dtype=np.uint16)
    scipy.io.savemat(scenes[1] / "seg.mat", {"seglabel": seg, "names": _cell(["wall"])})
    shutil.copytree(realdata(*ANNOTATION).parent, scenes[1] / "annotation2Dfinal")
    (scenes[1] / "annotation2Dfinal" / "annotation2Dfinal.json").rename(
        scenes[1] / "annotation2Dfinal" / "index.json")
    shutil.rmtree(scenes[2] / "depth")
    extra = bad / "SUNRGBD/kv2/kinect2data/999999_not_in_split"
    shutil.copytree(scenes[3], extra)
    return bad


def test_bad_scenes_are_reported_and_skipped(raw, tmp_path):
    root, _ = raw
    bad = _break(root, tmp_path)
    out = tmp_path / "clean"
    s = convert(_cfg(bad, out, size=(120, 160)), workers=2)
    text = "\n".join(s.problems)
    assert "image does not decode" in text and "0000144.jpg" in text
    assert "seglabel is 100x100 but the image is 530x730 (falling back to polygons)" in text
    assert "no depth image" in text
    assert "999999_not_in_split: scene is in no split" in text
    assert s.samples == 3 and s.skipped == 2
    rows = {r["id"].split("__")[1][:6]: r for r in _manifest(out)}
    assert rows["000001"]["label_source"] == "polygons"
    assert "no depth image" in rows["000002"]["problems"]
    assert (out / "problems.txt").read_text().count("\n") == len(s.problems)
    assert verify_tree(out).ok


def test_cli_exit_codes_and_strict(raw, tmp_path):
    root, _ = raw
    bad = _break(root, tmp_path)
    runner = CliRunner()
    r = runner.invoke(main, ["convert", "--src", str(bad), "--out", str(tmp_path / "o1"), "--size", "60x80",
                             "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "wrote 3 samples" in r.output
    r = runner.invoke(main, ["convert", "--src", str(bad), "--out", str(tmp_path / "o2"), "--size", "60x80",
                             "--workers", "1", "--strict"])
    assert r.exit_code == 1
    r = runner.invoke(main, ["convert", "--src", str(bad), "--out", str(tmp_path / "o3"), "--bogus"])
    assert r.exit_code == 2
    r = runner.invoke(main, ["convert", "--src", str(tmp_path / "missing"), "--out", str(tmp_path / "o4")])
    assert r.exit_code == 2 and "not a folder" in r.output
    r = runner.invoke(main, ["convert", "--src", str(bad), "--out", str(tmp_path / "o5"), "--size", "big"])
    assert r.exit_code == 2
    assert not (tmp_path / "o3").exists() and not (tmp_path / "o4").exists()


def test_verify_catches_damage(raw, tmp_path):
    root, _ = raw
    out = tmp_path / "clean"
    convert(_cfg(root, out, size=(60, 80)), workers=1)
    rows = _manifest(out)
    lab = out / rows[0]["label_ids"]
    arr = cv2.imread(str(lab), cv2.IMREAD_UNCHANGED)
    arr[0, 0] = 200
    cv2.imwrite(str(lab), arr)
    (out / rows[1]["depth"]).unlink()
    cv2.imwrite(str(out / rows[2]["color"]), np.zeros((60, 80, 3), dtype=np.uint8))
    r = CliRunner().invoke(main, ["verify", str(out)])
    assert r.exit_code == 1
    assert "values not in the class table: [200]" in r.output
    assert "colours do not match" in r.output
    assert "sha256 differs" in r.output and "_depth.png: missing" in r.output


def test_jpg_at_native_size_copies_source_bytes(raw, tmp_path):
    root, _ = raw
    out = tmp_path / "clean"
    convert(_cfg(root, out, image_format="jpg", depth=False), workers=1)
    r = _manifest(out)[0]
    src = realdata(*KV2) / "image" / "0000144.jpg"
    assert (out / r["image"]).read_bytes() == src.read_bytes()
    assert r["depth"] == "" and json.loads((out / "dataset.json").read_text())["depth"] is None
    assert verify_tree(out).ok


def test_official_allsplit_file_assigns_real_scenes(tmp_path):
    """The original allsplit.mat (official /n/fs/sun3d/data/ prefix, trailing slashes on
    most paths) used as is: the real kv1 and kv2 scenes land in their official splits."""
    root = tmp_path / "raw"
    for key, src in [("kv1/b3dodata/img_0063", KV1), ("kv2/align_kv2/2014-12-18_11-31-54_260595134347", KV2)]:
        dst = root / "SUNRGBD" / key
        shutil.copytree(realdata(*src), dst)
        (dst / "annotation2Dfinal").mkdir(exist_ok=True)
        shutil.copy(realdata(*ANNOTATION), dst / "annotation2Dfinal" / "index.json")
    (root / "SUNRGBDtoolbox/traintestSUNRGBD").mkdir(parents=True)
    shutil.copy(realdata("jorisgu-jg_toolbox_sunrgbd", "allsplit.mat"),
                root / "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat")
    s = convert(_cfg(root, tmp_path / "clean", subset="kv1,kv2", labels="polygons"), workers=1)
    rows = {r["scene"]: r["split"] for r in _manifest(tmp_path / "clean")}
    assert rows == {"kv1/b3dodata/img_0063": "train", "kv2/align_kv2/2014-12-18_11-31-54_260595134347": "test"}
    # every other kv1/kv2 scene the official split lists is reported missing and counted:
    # a missing folder in one line, and a folder that exists but lacks scenes in one line too
    # (count, three names): this tree used to print 856 lines. The file listing them all is
    # named on the console only: problems.txt travels in a packed tree, .sunrgbd/ does not
    listed = [k for k in read_split(root / "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat").assignment
              if k.startswith(("kv1/", "kv2/"))]
    assert s.samples == 2 and s.skipped == len(listed) - 2
    kinect2 = sum(k.startswith("kv2/kinect2data/") for k in listed)
    assert kinect2 == 3485
    assert f"{root / 'SUNRGBD/kv2/kinect2data'}: not found; {kinect2} scene(s) listed under it" in " ".join(s.problems)
    assert len(s.problems) == 4  # kv1/NYUdata, kv1/b3dodata, kv2/align_kv2, kv2/kinect2data
    b3do = sorted(k for k in listed if k.startswith("kv1/b3dodata/") and k != "kv1/b3dodata/img_0063")
    listing = tmp_path / "clean" / ".sunrgbd" / "missing_scenes.txt"
    examples = ", ".join(k.rsplit("/", 1)[1] for k in b3do[:3])
    assert (f"{root / 'SUNRGBD/kv1/b3dodata'}: {len(b3do)} scenes listed under it in "
            f"SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat not found (e.g. {examples} and "
            f"{len(b3do) - 3} more) (scenes skipped)") in s.problems
    assert listing.read_text().splitlines() == sorted(k for k in listed if k not in rows)
    assert s.missing_listing == listing and ".sunrgbd" not in (tmp_path / "clean" / "problems.txt").read_text()
    # the same command after the scenes were put in place: nothing missing, no stale list
    for key in b3do[:1]:
        shutil.copytree(root / "SUNRGBD/kv1/b3dodata/img_0063", root / "SUNRGBD" / key)
    res = CliRunner().invoke(main, ["convert", "--src", str(root), "--out", str(tmp_path / "clean"),
                                    "--subset", "kv1,kv2", "--labels", "polygons", "--workers", "1", "--strict"])
    assert res.exit_code == 1 and res.stderr.count("problem: ") == 4, res.output
    assert f"every scene key listed but not found: {listing}\n" in res.stderr
    assert b3do[0] not in listing.read_text() and len(b3do) - 1 == len(
        [k for k in listing.read_text().splitlines() if k.startswith("kv1/b3dodata/")])


def test_cli_no_progress_keeps_stderr_to_problems(raw, tmp_path):
    """convert was the one long command without --no-progress: its bar filled logs (`2> log`)."""
    root, _ = raw
    args = ["convert", "--src", str(root), "--size", "30x40", "--workers", "1"]
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")])
    assert r.exit_code == 0 and "scene/s" in r.stderr
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [line for line in r.stderr.splitlines() if line.startswith("problem: ")]
    assert _tree_bytes(tmp_path / "b").keys() == _tree_bytes(tmp_path / "a").keys()


def test_verify_shows_progress(raw, tmp_path):
    """verify had no progress at all (minutes on kv2 at native size), nor had fetch's verify."""
    root, _ = raw
    out = tmp_path / "out"
    convert(_cfg(root, out, size=(30, 40)), workers=1)
    seen = []

    def progress(it, total):
        seen.append(total)
        return it

    assert not verify_tree(out, workers=2, progress=progress).problems and seen == [4]
    r = CliRunner().invoke(main, ["verify", str(out), "--workers", "1"])
    assert r.exit_code == 0 and "sample/s" in r.stderr
    r = CliRunner().invoke(main, ["verify", str(out), "--workers", "1", "--no-progress"])
    assert r.exit_code == 0 and r.stderr == "" and r.stdout == f"{out}: 4 samples OK\n"


def test_label_modes_have_one_light_owner():
    """`--labels` choices, the pipeline's check and dataset.json's descriptions are one table,
    in a module that loads no cv2 (the CLI lists the modes without the pipeline)."""
    from sunrgbd_tools.cli.convert import convert as convert_cmd
    from sunrgbd_tools.convert import label_modes

    assert convert_mod.LABEL_MODES is label_modes.LABEL_MODES
    labels = next(p for p in convert_cmd.params if p.name == "labels")
    assert tuple(labels.type.choices) == label_modes.LABEL_SOURCES == tuple(label_modes.LABEL_MODES)
    code = "import sys, sunrgbd_tools.convert.label_modes; print('cv2' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False", r.stderr[-2000:]
