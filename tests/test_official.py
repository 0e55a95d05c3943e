"""Benchmark parity (issue 16): `--labels official` is SUN RGB-D's own seg37 `seglabel` pixel
for pixel, the split is allsplit.mat's for every scene the way zip-based tools assign it
(exact string match of SUNRGBDMeta.rgbpath against allsplit, slashes and all), and the
synthetic toolbox is laid out as the real one (trailing slashes, `//` paths, the two zips)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io as sio
from click.testing import CliRunner
from conftest import realdata
from httpfixtures import tree_bytes

from sunrgbd_tools.cli.main import main
from sunrgbd_tools.convert.pipeline import ConvertConfig, ConvertError, convert
from sunrgbd_tools.labels.table import ClassTable
from sunrgbd_tools.raw.splits import normalise_scene_path, read_split
from sunrgbd_tools.remote.safezip import extract_zip
from sunrgbd_tools.synthetic.generator import make_sample
from sunrgbd_tools.synthetic.truth import official_seglabel

SIZE = (120, 160)
N = 26  # scenes 0..25: quirks, kinect2data train/val/test, align_kv2 and kv1, slashed scene 6


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("official") / "raw"
    return root, make_sample(root, scenes=N, seed=5, quirks=True, size=SIZE)


@pytest.fixture(scope="module")
def official(sample, tmp_path_factory):
    root, _ = sample
    out = tmp_path_factory.mktemp("official-out") / "clean"
    summary = convert(ConvertConfig(src=str(root), out=str(out), labels="official"), workers=2)
    return out, summary


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        return {r["scene"]: r for r in csv.DictReader(f)}


def _cells(a) -> list[str]:
    return [str(x) for x in np.atleast_1d(a)]


def _peer_split(root: Path) -> dict[str, str]:
    """Scene key → train/test/none as zip-based tools (nicr-scene-analysis-datasets) assign it:
    SUNRGBDMeta(i).rgbpath minus `/image/<file>`, matched by exact string against allsplit."""
    tb = root / "SUNRGBDtoolbox"
    split = sio.loadmat(tb / "traintestSUNRGBD" / "allsplit.mat", squeeze_me=True, struct_as_record=False)
    meta = sio.loadmat(tb / "Metadata" / "SUNRGBDMeta.mat", squeeze_me=True,
                       struct_as_record=False)["SUNRGBDMeta"]
    train, test = set(_cells(split["alltrain"])), set(_cells(split["alltest"]))
    out = {}
    for m in np.atleast_1d(meta):
        folder = "/".join(m.rgbpath.split("/")[:-2])
        out[m.sequenceName[len("SUNRGBD/"):]] = "train" if folder in train else "test" if folder in test else "none"
    return out


@pytest.mark.slow
def test_official_labels_are_the_generators_seglabel_pixel_for_pixel(sample, official):
    root, info = sample
    out, summary = official
    rows = _rows(out)
    table = ClassTable.load()
    no_seg37 = {table.id_of("other"), table.id_of("computer")}
    # every kv2 scene converts except the undecodable JPEG, the one outside allsplit and
    # the one with no labelled pixel (skipped unless --keep-unlabelled)
    assert set(rows) == {s.key for s in info.scenes
                         if s.sensor == "kv2" and s.split != "none"
                         and not {"corrupt_jpeg", "unlabelled"} & set(s.quirks)}
    assert summary.label_sources == {"official": len(rows)} and summary.unmapped == {}
    labelled = 0
    for key, r in rows.items():
        assert r["label_source"] == "official" and r["unmapped_names"] == ""
        want = official_seglabel(info, key)
        got = cv2.imread(str(out / r["label_ids"]), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint8 and np.array_equal(got, want), key
        assert not no_seg37 & set(np.unique(got).tolist())  # Other and Computer stay empty
        train = cv2.imread(str(out / r["label_train_ids"]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(train, table.id_to_train_id[got])
        labelled += int((want > 0).sum())
    assert labelled > 0
    doc = json.loads((out / "dataset.json").read_text())
    assert doc["schema_version"] == 2 and doc["label_mode"] == "official" == doc["label_source"]
    assert "seglabel as stored" in doc["label_mode_description"]


@pytest.mark.slow
def test_official_all_is_a_different_labelling(sample, official, tmp_path):
    """The mode that keeps the old behaviour (seglabelall through our mapping) is a different
    labelling: it has Other/Computer pixels and disagrees with seglabel somewhere."""
    root, info = sample
    out, _ = official
    s = convert(ConvertConfig(src=str(root), out=str(tmp_path / "all"), labels="official-all"), workers=1)
    assert set(s.label_sources) == {"official-all"}
    rows, rows_all = _rows(out), _rows(tmp_path / "all")
    assert set(rows) == set(rows_all)
    table = ClassTable.load()
    differ, extra = 0, set()
    for key in rows:
        a = cv2.imread(str(out / rows[key]["label_ids"]), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(tmp_path / "all" / rows_all[key]["label_ids"]), cv2.IMREAD_UNCHANGED)
        differ += int((a != b).sum())
        extra |= set(np.unique(b).tolist())
    assert differ > 0 and {table.id_of("other"), table.id_of("computer")} <= extra
    assert json.loads((tmp_path / "all" / "dataset.json").read_text())["label_mode"] == "official-all"


@pytest.mark.slow
def test_split_is_allsplit_for_every_scene_as_zip_based_tools_assign_it(sample, official):
    root, info = sample
    out, _ = official
    tb = root / "SUNRGBDtoolbox"
    split = sio.loadmat(tb / "traintestSUNRGBD" / "allsplit.mat", squeeze_me=True)
    entries = _cells(split["alltrain"]) + _cells(split["alltest"])
    meta = sio.loadmat(tb / "Metadata" / "SUNRGBDMeta.mat", squeeze_me=True,
                       struct_as_record=False)["SUNRGBDMeta"]
    # the sample holds both forms of entry and the `//` paths that go with the slashed ones
    assert any(e.endswith("/") for e in entries) and any(not e.endswith("/") for e in entries)
    slashed = {normalise_scene_path(e) for e in entries if e.endswith("/")}
    assert any(k.startswith("kv2/kinect2data/") for k in slashed)
    for m in meta:
        key = m.sequenceName[len("SUNRGBD/"):]
        assert ("//image/" in m.rgbpath) == (key in slashed), m.rgbpath
        assert ("//depth_bfx/" in m.depthpath) == (key in slashed), m.depthpath
    peer = _peer_split(root)
    assert set(peer) == {s.key for s in info.scenes}
    rows = _rows(out)
    ours = read_split(tb / "traintestSUNRGBD" / "allsplit.mat")
    for s in info.scenes:
        # the generator's truth, the tools' exact string match and our reader agree
        truth = {"train": "train", "val": "train", "test": "test", "none": "none"}[s.split]
        assert peer[s.key] == truth, s.key
        assert ours.of(s.key) == (None if s.split == "none" else s.split), s.key
        if s.key in rows:
            assert {"val": "train"}.get(rows[s.key]["split"], rows[s.key]["split"]) == truth, s.key


def test_split_reader_matches_slashed_and_unslashed_entries(tmp_path):
    keys = ["kv2/kinect2data/000001_a-resize", "kv2/kinect2data/000002_b-resize", "kv2/align_kv2/2014-12-18_c",
            "kv1/b3dodata/img_0001"]
    alltrain = ["/n/fs/sun3d/data/SUNRGBD/" + keys[0], "/data1/SUNRGBD/" + keys[2] + "/"]
    alltest = ["/n/fs/sun3d/data/SUNRGBD/" + keys[1] + "/", "/n/fs/sun3d/data/SUNRGBD//" + keys[3] + "//"]
    cell = lambda xs: np.array([[np.array(x) for x in xs]], dtype=object).reshape(1, -1)  # noqa: E731
    path = tmp_path / "allsplit.mat"
    sio.savemat(path, {"alltrain": cell(alltrain), "alltest": cell(alltest)})
    s = read_split(path, val_fraction=0.0)
    assert s.assignment == {keys[0]: "train", keys[2]: "train", keys[1]: "test", keys[3]: "test"}
    # rgbpath folders with `//` normalise to the same keys
    assert normalise_scene_path("/n/fs/sun3d/data/SUNRGBD/" + keys[1] + "//image/0000001.jpg") \
        == keys[1] + "/image/0000001.jpg"


def _slash_pattern(entries: list[str]) -> dict[str, tuple[int, int]]:
    """(slashed, total) per kind of entry: kinect2data vs everything else."""
    out: dict[str, list[int]] = {}
    for e in entries:
        kind = "kinect2data" if "/kinect2data/" in e else "other"
        c = out.setdefault(kind, [0, 0])
        c[0] += e.endswith("/")
        c[1] += 1
    return {k: (a, b) for k, (a, b) in out.items()}


def test_trailing_slashes_follow_the_real_allsplit(sample):
    real = sio.loadmat(realdata("jorisgu-jg_toolbox_sunrgbd", "allsplit.mat"), squeeze_me=True)
    root, _ = sample
    ours = sio.loadmat(root / "SUNRGBDtoolbox" / "traintestSUNRGBD" / "allsplit.mat", squeeze_me=True)
    for m in (real, ours):
        train, test = _slash_pattern(_cells(m["alltrain"])), _slash_pattern(_cells(m["alltest"]))
        assert train["kinect2data"][0] == 0  # no kinect2data train entry ends in '/'
        assert 0 < test["kinect2data"][0] < test["kinect2data"][1] / 2  # a few test ones do
        other = _slash_pattern(_cells(m["alltrain"]) + _cells(m["alltest"]))["other"]
        assert other[0] == other[1] > 0  # every entry outside kinect2data does
    assert _slash_pattern(_cells(real["alltrain"]))["kinect2data"] == (0, 1774)
    assert _slash_pattern(_cells(real["alltest"]))["kinect2data"] == (3, 1711)


def test_official_all_needs_seglistall_and_official_checks_seg37_order(tmp_path):
    root = tmp_path / "raw"
    make_sample(root, scenes=3, seed=0, quirks=False, size=(64, 80))
    md = root / "SUNRGBDtoolbox" / "Metadata"
    (md / "seglistall.mat").unlink()
    with pytest.raises(ConvertError, match="seglistall.mat: file not found"):
        convert(ConvertConfig(src=str(root), out=str(tmp_path / "a"), labels="official-all"), workers=1)
    convert(ConvertConfig(src=str(root), out=str(tmp_path / "b"), labels="official"), workers=1)  # not needed
    names = [str(x) for x in sio.loadmat(md / "seg37list.mat", squeeze_me=True)["seg37list"]]
    names[4], names[5] = names[5], names[4]
    sio.savemat(md / "seg37list.mat", {"seg37list": np.array([names], dtype=object)})
    r = CliRunner().invoke(main, ["convert", "--src", str(root), "--out", str(tmp_path / "c"),
                                  "--labels", "official"])
    assert r.exit_code == 2 and "seg37list(5) is 'sofa' but class id 5" in r.output
    assert not (tmp_path / "c").exists()


def test_sample_zips_extract_to_the_sample_tree(tmp_path):
    runner = CliRunner()
    out = tmp_path / "raw"
    args = ["sample", "--out", str(out), "--scenes", "4", "--size", "64x80", "--workers", "1", "--zips"]
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    assert f"wrote {out / 'SUNRGBD.zip'}" in r.output and f"wrote {out / 'SUNRGBDtoolbox.zip'}" in r.output
    first = {n: (out / n).read_bytes() for n in ("SUNRGBD.zip", "SUNRGBDtoolbox.zip")}
    for name, top in (("SUNRGBD.zip", "SUNRGBD"), ("SUNRGBDtoolbox.zip", "SUNRGBDtoolbox")):
        dest = tmp_path / ("x-" + top)
        dest.mkdir()
        names = extract_zip(out / name, dest)
        assert {str(p).split("/")[0] for p in names} == {top}  # one top folder, as the official zips
        assert tree_bytes(dest) == tree_bytes(out, top)
    assert runner.invoke(main, args).exit_code == 0  # same arguments: resumed, same bytes
    assert {n: (out / n).read_bytes() for n in first} == first

    user = tmp_path / "user"
    user.mkdir()
    (user / "SUNRGBD.zip").write_bytes(b"my download")
    r = runner.invoke(main, ["sample", "--out", str(user), "--scenes", "2", "--size", "64x80", "--zips"])
    assert r.exit_code == 2 and "refusing" in r.output
    assert [p.name for p in user.iterdir()] == ["SUNRGBD.zip"] and (user / "SUNRGBD.zip").read_bytes() == b"my download"


@pytest.mark.slow
def test_segtrain_eval_reports_the_label_mode(official, tmp_path):
    pytest.importorskip("torch")
    from segtrain.cli import main as segtrain
    from segtrain.data import load_dataset_info

    out, _ = official
    runner = CliRunner()
    tiny = ["--model-opt", "base_width=4", "--model-opt", "depth=2"]
    r = runner.invoke(segtrain, ["run", "unet_small", "--data", str(out), "--out", str(tmp_path / "run"),
                                 "--epochs", "1", "--batch-size", "2", "--size", "32x48", "--workers", "0",
                                 "--device", "cpu", "--augment", "none", *tiny])
    assert r.exit_code == 0, r.output
    r = runner.invoke(segtrain, ["eval", str(tmp_path / "run" / "best.pt"), "--data", str(out), "--split", "test",
                                 "--out", str(tmp_path / "rep"), "--workers", "0", "--device", "cpu", "--panels", "0"])
    assert r.exit_code == 0, r.output
    assert "(labels: official)" in r.stdout
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["label_mode"] == "official"
    # a tree from before label modes is still read, and says what it knows
    doc = json.loads((out / "dataset.json").read_text())
    old = tmp_path / "old"
    old.mkdir()
    del doc["label_mode"]
    doc["schema_version"] = 1
    (old / "dataset.json").write_text(json.dumps(doc))
    assert load_dataset_info(old).label_mode == "label_source official (no label_mode recorded)"


def test_seg37_group_is_what_official_mode_relies_on(tmp_path):
    """The seg37 classes come from classes.csv's `group` column, never from an id range in code:
    the shipped table's group is ids 1..37 in seglist order, and a table whose group says
    otherwise is refused by the same check that holds the toolbox to the class table."""
    from sunrgbd_tools.labels.table import mappings_dir
    from sunrgbd_tools.raw.base import RawDataError
    from sunrgbd_tools.raw.official import check_seg37_order

    table = ClassTable.load()
    assert table.seg37_ids == tuple(range(1, 38))
    assert [table.by_id[i].group for i in (0, 38, 39)] == ["void", "other", "computer"]
    root = tmp_path / "raw"
    make_sample(root, scenes=2, seed=0, quirks=False)
    check_seg37_order(root, table)  # the generator's toolbox agrees with the shipped table
    text = (mappings_dir() / "classes.csv").read_text(encoding="utf-8")
    bad = ClassTable.from_csv_text(text.replace(",36,bag,#8000c0,0,seg37,", ",36,bag,#8000c0,0,other,"))
    assert bad.seg37_ids == tuple(range(1, 37))
    with pytest.raises(RawDataError, match="seg37 group"):
        check_seg37_order(root, bad)
    for broken, problem in ((text.replace(",group,", ",kind,"), "needs columns"),
                            (text.replace(",0,seg37,seg37 class 5", ",0,seg38,seg37 class 5"),
                             "line 7: group 'seg38' is not one of void, seg37, other, computer")):
        with pytest.raises(ValueError, match=problem):
            ClassTable.from_csv_text(broken)
