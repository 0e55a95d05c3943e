"""End-to-end conversion of `sunrgbd sample` trees: exact masks from the generator's own
truth, every planted quirk handled as documented, the official v7.3 labels, split counts."""

from __future__ import annotations

import csv
import json
import re

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from sunrgbd_tools.cli.main import main
from sunrgbd_tools.convert.pipeline import ConvertConfig, convert
from sunrgbd_tools.convert.resize import resize_nearest
from sunrgbd_tools.convert.verify import verify_tree
from sunrgbd_tools.labels.table import NameMapper
from sunrgbd_tools.synthetic.generator import make_sample
from sunrgbd_tools.synthetic.truth import scene_truth

SIZE = (120, 160)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    info = make_sample(root, scenes=24, seed=0, quirks=True, size=SIZE)
    return root, info


@pytest.fixture(scope="module")
def converted(sample, tmp_path_factory):
    root, info = sample
    out = tmp_path_factory.mktemp("clean") / "clean"
    summary = convert(ConvertConfig(src=str(root), out=str(out)), workers=2)
    return out, summary


def _rows(out):
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        return {r["scene"]: r for r in csv.DictReader(f)}


def _lut(names):
    mapper = NameMapper.load()
    return np.array([0] + [mapper.lookup(n).class_id if n else 0 for n in names], dtype=np.uint8)


def _by_quirk(info):
    return {q: s for s in info.scenes for q in s.quirks}


def test_seg_mat_scenes_are_exact(sample, converted):
    root, info = sample
    out, _ = converted
    rows = _rows(out)
    checked = 0
    for s in info.scenes:
        r = rows.get(s.key)
        if r is None or r["label_source"] != "seg":
            continue
        seg, names = scene_truth(info, s.key)
        got = cv2.imread(str(out / r["label_ids"]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(got, _lut(names)[seg]), s.key
        checked += 1
    assert checked >= 10


def test_splits_follow_allsplit(sample, converted):
    root, info = sample
    out, summary = converted
    rows = _rows(out)
    for s in info.scenes:
        if s.key in rows:
            assert rows[s.key]["split"] == s.split
    expected = {"train": 0, "val": 0, "test": 0}
    for r in rows.values():
        expected[r["split"]] += 1
    assert summary.splits == expected
    assert json.loads((out / "dataset.json").read_text())["splits"] == expected
    assert not any(k.startswith("kv1/") for k in rows)  # the distractor is not kv2


def test_every_quirk_is_handled(sample, converted):
    root, info = sample
    out, summary = converted
    rows = _rows(out)
    q = _by_quirk(info)
    problems = "\n".join(summary.problems)
    # skipped, each with a one-line reason naming the file
    assert q["corrupt_jpeg"].key not in rows and "image does not decode" in problems
    assert q["unlabelled"].key not in rows and "no labels" in problems
    assert q["no_split"].key not in rows and f"{q['no_split'].key}: scene is in no split" in problems
    # written, with the problem attached
    assert "no depth image" in rows[q["no_depth"].key]["problems"]
    r = rows[q["segmat_size_mismatch"].key]
    assert r["label_source"] == "polygons" and "falling back to polygons" in r["problems"]
    # this scene has no seg.mat, so auto reads (and repairs) its broken index.json
    assert "invalid JSON repaired" in rows[q["json_stray_backslash"].key]["problems"]
    assert rows[q["no_segmat"].key]["label_source"] == "polygons"
    assert summary.skipped == 3
    assert verify_tree(out).ok


@pytest.fixture(scope="module")
def polygons(sample, tmp_path_factory):
    root, info = sample
    out = tmp_path_factory.mktemp("poly") / "poly"
    summary = convert(ConvertConfig(src=str(root), out=str(out), labels="polygons"), workers=2)
    return out, summary


def test_polygon_scenes_match_truth_within_boundary_tolerance(sample, polygons):
    root, info = sample
    out, summary = polygons
    rows = _rows(out)
    assert set(summary.label_sources) == {"polygons"} and len(rows) >= 15
    for key, r in rows.items():
        seg, names = scene_truth(info, key, image_grid=True)
        expected = _lut(names)[seg]
        got = cv2.imread(str(out / r["label_ids"]), cv2.IMREAD_UNCHANGED)
        assert got.shape == expected.shape
        assert (got != expected).mean() < 0.03, key


def test_broken_polygon_input_is_repaired_or_skipped(sample, polygons):
    root, info = sample
    out, _ = polygons
    rows = _rows(out)
    q = _by_quirk(info)
    for quirk in ("json_stray_backslash", "json_bad_quotes"):
        assert "invalid JSON repaired" in rows[q[quirk].key]["problems"], quirk
    # `"propulsion"tool` is nothing we know: it is reported with its pixels
    assert '"propulsion"tool' in json.loads(rows[q["json_bad_quotes"].key]["unmapped_names"])
    r = rows[q["null_objects"].key]
    assert "null or nameless object" in r["problems"] and "dangling object index" in r["problems"]


def test_official_all_labels_through_seglistall(sample, tmp_path):
    root, info = sample
    out = tmp_path / "official-all"
    s = convert(ConvertConfig(src=str(root), out=str(out), labels="official-all", size=(60, 80)), workers=1)
    rows = _rows(out)
    assert s.label_sources == {"official-all": len(rows)}
    for sc in info.scenes:
        r = rows.get(sc.key)
        if r is None or "segmat_size_mismatch" in sc.quirks:
            continue
        seg, names = scene_truth(info, sc.key, image_grid=True)
        expected = resize_nearest(_lut(names)[seg], (60, 80))
        got = cv2.imread(str(out / r["label_ids"]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(got, expected), sc.key


def damaged_official(sample, tmp_path, damage):
    """A copy of the sample tree whose SUNRGBD2Dseg.mat `damage(bytearray, h5py.File)` edits."""
    import shutil

    import h5py

    root, _info = sample
    copy = tmp_path / "raw"
    shutil.copytree(root, copy)
    path = copy / "SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat"
    with h5py.File(path, "r") as f:
        data = damage(bytearray(path.read_bytes()), f)
    path.write_bytes(bytes(data))
    return copy


def damage_label_chunks(data, f):
    """Every seglabel image's compressed chunk scrambled: the file opens, each image fails."""
    group = f["SUNRGBD2Dseg"]["seglabel"]
    for ref in group[()].ravel():
        info = f[ref].id.get_chunk_info(0)
        for i in range(info.byte_offset + 2, info.byte_offset + info.size - 4):
            data[i] ^= 0x5A
    return data


def test_a_truncated_official_label_file_is_one_line_before_any_scene(sample, tmp_path):
    """A SUNRGBD2Dseg.mat that cannot be opened printed the same line once per scene (11 for a
    truncated file) and wrote a tree of no samples; it is one line, exit 2, nothing written."""
    src = damaged_official(sample, tmp_path, lambda data, f: data[:len(data) // 2])
    res = CliRunner().invoke(main, ["convert", "--src", str(src), "--out", str(tmp_path / "clean"),
                                    "--labels", "official", "--workers", "1", "--no-progress"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if "SUNRGBD2Dseg.mat" in ln]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "not a readable MATLAB v7.3 file" in lines[0]
    assert "problem:" not in res.output and not (tmp_path / "clean").exists()


def test_damaged_official_label_images_are_one_line_with_the_scenes_they_skipped(sample, tmp_path):
    """Every label image's compressed chunk damaged (the file opens): the same line, naming the
    file, came once per scene; it is one line saying how many scenes it skipped and which."""
    src = damaged_official(sample, tmp_path, damage_label_chunks)
    s = convert(ConvertConfig(src=str(src), out=str(tmp_path / "clean"), labels="official", size=(60, 80)),
                workers=1)
    assert s.samples == 0
    shared = [p for p in s.problems if "SUNRGBD2Dseg.mat" in p]
    assert len(shared) == 1, shared
    m = re.search(r"not a readable MATLAB v7\.3 file \(OSError: .*\) \((\d+) scenes skipped: (.*) and (\d+) more\)$",
                  shared[0])
    assert m and 2 < int(m[1]) <= s.skipped and len(m[2].split(", ")) + int(m[3]) == int(m[1]), shared[0]


def test_subset_selects_sub_subsets(sample, tmp_path):
    root, info = sample
    out = tmp_path / "align"
    convert(ConvertConfig(src=str(root), out=str(out), subset="kv2/align_kv2", size=(60, 80)), workers=1)
    keys = set(_rows(out))
    expected = {s.key for s in info.scenes if s.key.startswith("kv2/align_kv2/") and s.split != "none"}
    assert keys and keys <= expected


def test_cli_sample_convert_verify(tmp_path):
    runner = CliRunner()
    raw, clean = tmp_path / "raw", tmp_path / "clean"
    r = runner.invoke(main, ["sample", "--out", str(raw), "--scenes", "12", "--size", "60x80"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["convert", "--src", str(raw), "--out", str(clean), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "problem(s) reported" in r.output
    r = runner.invoke(main, ["verify", str(clean)])
    assert r.exit_code == 0 and "samples OK" in r.output


def test_jpg_copy_mode_still_rejects_the_corrupt_jpeg(sample, tmp_path):
    root, info = sample
    out = tmp_path / "jpg"
    s = convert(ConvertConfig(src=str(root), out=str(out), image_format="jpg", depth=False), workers=1)
    q = _by_quirk(info)
    rows = _rows(out)
    assert q["corrupt_jpeg"].key not in rows and "image does not decode" in "\n".join(s.problems)
    for key, r in rows.items():
        src = root / info.scene(key).image
        assert (out / r["image"]).read_bytes() == src.read_bytes()
    assert verify_tree(out).ok
