"""`sunrgbd pack --format hf`: a converted `sunrgbd sample` tree exported as parquet shards
with a dataset card, loaded back offline with `datasets.load_dataset`: every pixel, the
bytes, the split counts, the class names, the card's YAML, determinism, resume, bad input."""

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
from click.testing import CliRunner
from httpfixtures import tree_bytes

from sunrgbd_tools.acquire import hub
from sunrgbd_tools.acquire.hub import HubConfig, HubUsageError, export_hf
from sunrgbd_tools.cli.main import main
from sunrgbd_tools.convert.pipeline import ConvertConfig, convert
from sunrgbd_tools.synthetic.generator import make_sample

datasets = pytest.importorskip("datasets", reason="the 'hub' extra is not installed")
yaml = pytest.importorskip("yaml")


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    d = tmp_path_factory.mktemp("hub")
    make_sample(d / "raw", scenes=16, seed=3, quirks=True, size=(60, 80))
    out = d / "clean"
    convert(ConvertConfig(src=str(d / "raw"), out=str(out)), workers=1)
    r = CliRunner().invoke(main, ["stats", str(out), "--workers", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def clean_jpg(clean, tmp_path_factory):
    """The same scenes with JPEG images copied from the source and no depth."""
    out = tmp_path_factory.mktemp("hubjpg") / "clean"
    convert(ConvertConfig(src=str(clean.parent / "raw"), out=str(out), image_format="jpg",
                          depth=False), workers=1)
    return out


@pytest.fixture(scope="module")
def exported(clean, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "sunrgbd-hf"
    r = CliRunner().invoke(main, ["pack", str(clean), "--format", "hf", "--out", str(out),
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    return out


def _manifest(tree: Path) -> list[dict]:
    with open(tree / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _load(folder: Path, cache: Path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(cache / "home"))
    return datasets.load_dataset(str(folder), cache_dir=str(cache / "cache"))


def test_loads_with_datasets_pixel_equal(clean, exported, tmp_path, monkeypatch):
    ds = _load(exported, tmp_path, monkeypatch)
    rows = _manifest(clean)
    meta = json.loads((clean / "dataset.json").read_text())
    want = {"train": "train", "val": "validation", "test": "test"}
    counts = {s: sum(r["split"] == t for r in rows) for t, s in want.items()}
    assert set(ds) == {s for s, n in counts.items() if n}
    assert {s: ds[s].num_rows for s in ds} == {s: n for s, n in counts.items() if n}
    names = ds["train"].features["classes"].feature.names
    assert names == [c["name"] for c in sorted(meta["classes"], key=lambda c: c["train_id"])
                     if c["train_id"] != 255]
    by_id = {r["id"]: r for r in rows}
    seen = 0
    for split in ds:
        for ex in ds[split]:
            r = by_id[ex["id"]]
            assert want[r["split"]] == split and ex["sensor"] == r["sensor"]
            assert ex["scene"] == r["scene"] and ex["scene_type"] == r["scene_type"]
            rgb = cv2.imread(str(clean / r["image"]), cv2.IMREAD_COLOR)[:, :, ::-1]
            lab = cv2.imread(str(clean / r["label_train_ids"]), cv2.IMREAD_UNCHANGED)
            dep = cv2.imread(str(clean / r["depth"]), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(np.asarray(ex["image"]), rgb)
            got = np.asarray(ex["label"])
            assert got.dtype == np.uint8 and got.ndim == 2 and np.array_equal(got, lab)
            d = np.asarray(ex["depth"])
            assert d.dtype == np.uint16 and np.array_equal(d, dep)
            assert ex["classes"] == [int(t) for t in np.unique(lab) if t != 255]
            if r["intrinsics"]:
                assert ex["intrinsics"] == [float(x) for x in r["intrinsics"].split()]
            seen += 1
    assert seen == len(rows)
    # bytes stored as-is: no re-encode
    raw = ds["test"].cast_column("label", datasets.Image(decode=False))
    for ex in raw:
        rel = by_id[ex["id"]]["label_train_ids"]
        assert ex["label"]["bytes"] == (clean / rel).read_bytes() and ex["label"]["path"] == rel


def test_jpeg_images_and_no_depth(clean_jpg, tmp_path, monkeypatch):
    out = tmp_path / "hf"
    rep = export_hf(HubConfig(src=str(clean_jpg), out=str(out), progress=False))
    assert rep.problems == []
    ds = _load(out, tmp_path, monkeypatch)
    assert "depth" not in ds["train"].features
    by_id = {r["id"]: r for r in _manifest(clean_jpg)}
    raw = ds["train"].cast_column("image", datasets.Image(decode=False))
    for ex in raw:
        rel = by_id[ex["id"]]["image"]
        assert rel.endswith(".jpg") and ex["image"]["bytes"] == (clean_jpg / rel).read_bytes()
    assert ds["train"][0]["image"].format == "JPEG"
    assert "| `depth` |" not in (out / "README.md").read_text()


def test_card_yaml_names_every_split_and_feature(clean, exported):
    text = (exported / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    head = yaml.safe_load(text.split("---\n")[1])
    shards = sorted(p.relative_to(exported).as_posix() for p in (exported / "data").iterdir())
    import pyarrow.parquet as pq

    cols = pq.read_schema(exported / shards[0]).names
    files = head["configs"][0]["data_files"]
    assert [f["split"] for f in files] == ["train", "validation", "test"]
    for f in files:
        assert any(Path(s).match(f["path"]) for s in shards)
    info = head["dataset_info"]
    assert [f["name"] for f in info["features"]] == cols
    assert {f["name"]: f.get("dtype") for f in info["features"]}["label"] == "image"
    rows = _manifest(clean)
    n = {"train": "train", "val": "validation", "test": "test"}
    assert {s["name"]: s["num_examples"] for s in info["splits"]} == {
        n[t]: sum(r["split"] == t for r in rows) for t in n}
    assert head["task_categories"] == ["image-segmentation"] and head["size_categories"] == ["n<1K"]
    meta = json.loads((clean / "dataset.json").read_text())
    for needle in (meta["mapping_sha256"], "| 2 | 1 | floor | #008000 | no |", "Silberman",
                   "SUN3D", "B3DO", "license: other", f"Label mode: `{meta['label_mode']}`",
                   "not** SUN RGB-D's official seg37", "mean: ", "weight (", meta["created_with"]["command"],
                   "sunrgbd pack ", "sunrgbd stats CLEAN --split train --method median-freq"):
        assert needle in text, needle
    assert (exported / "dataset.json").read_bytes() == (clean / "dataset.json").read_bytes()


def test_two_exports_are_byte_identical(clean, exported, tmp_path):
    again = tmp_path / "again"
    rep = export_hf(HubConfig(src=str(clean), out=str(again), progress=False, workers=1,
                              command=_recorded_command(exported)))
    assert rep.problems == []
    assert tree_bytes(again) == tree_bytes(exported)
    assert sorted(os.listdir(again)) == ["README.md", "data", "dataset.json"]


def _recorded_command(exported: Path) -> str:
    text = (exported / "README.md").read_text()
    return next(line for line in text.splitlines() if line.startswith("sunrgbd pack "))


def test_small_shards_and_resume_after_interrupt(clean, tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    full = export_hf(HubConfig(src=str(clean), out=str(ref), shard_bytes=40_000, progress=False))
    assert len(full.shards) > 3 and any("-00001-of-" in s for s in full.shards)
    out = tmp_path / "out"
    real = hub._write_shard
    calls = []

    def flaky(path, *a, **k):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(hub, "_write_shard", flaky)
    with pytest.raises(KeyboardInterrupt):
        export_hf(HubConfig(src=str(clean), out=str(out), shard_bytes=40_000, progress=False))
    assert os.listdir(out) == [hub.STAGE]  # nothing under a final name yet
    assert not [p for p in (out / hub.STAGE).rglob("*.tmp")]
    monkeypatch.setattr(hub, "_write_shard", real)
    rep = export_hf(HubConfig(src=str(clean), out=str(out), shard_bytes=40_000, progress=False))
    assert rep.resumed == 2 and rep.rows == full.rows
    assert tree_bytes(out) == tree_bytes(ref)
    ds = _load(out, tmp_path, monkeypatch)
    assert {s: ds[s].num_rows for s in ds} == {s: n for s, n in full.rows.items() if n}


def test_interrupted_export_of_a_changed_tree_restarts(clean, tmp_path, monkeypatch):
    out = tmp_path / "out"
    (out / hub.STAGE / "data").mkdir(parents=True)
    (out / hub.STAGE / "state.json").write_text('{"key": "another tree"}')
    (out / hub.STAGE / "data" / "train-00000-of-00001.parquet").write_bytes(b"stale")
    (out / hub.STAGE / "data" / "train-00000-of-00001.parquet.json").write_text('{"rows": 99, "problems": []}')
    rep = export_hf(HubConfig(src=str(clean), out=str(out), progress=False))
    assert rep.resumed == 0 and rep.rows["train"] != 99
    assert sorted(os.listdir(out)) == ["README.md", "data", "dataset.json"]


def test_bad_sample_is_reported_and_skipped(clean, tmp_path):
    t = tmp_path / "t"
    shutil.copytree(clean, t)
    rows = _manifest(t)
    victim = next(r for r in rows if r["split"] == "train")
    (t / victim["label_train_ids"]).write_bytes(b"\x89PNG broken")
    r = CliRunner().invoke(main, ["pack", str(t), "--format", "hf", "--out", str(tmp_path / "o"),
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    assert victim["label_train_ids"] in r.output and "sha256 differs" in r.output
    r = CliRunner().invoke(main, ["pack", str(t), "--format", "hf", "--out", str(tmp_path / "s"),
                                  "--no-progress", "--strict"])
    assert r.exit_code == 1 and "1 problem(s)" in r.output
    head = yaml.safe_load((tmp_path / "s" / "README.md").read_text().split("---\n")[1])
    n = {s["name"]: s["num_examples"] for s in head["dataset_info"]["splits"]}
    assert n["train"] == sum(r["split"] == "train" for r in rows) - 1


def test_usage_errors_touch_nothing(clean, tmp_path, monkeypatch):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "empty").mkdir()
    cases = [([str(clean), "--out", str(busy)], "not empty"),
             ([str(clean), "--out", str(afile)], "not a folder"),
             ([str(tmp_path / "empty"), "--out", str(tmp_path / "o1")], "no dataset.json")]
    (tmp_path / "nosamples").mkdir()
    shutil.copy(clean / "dataset.json", tmp_path / "nosamples")
    (tmp_path / "nosamples" / "manifest.csv").write_text((clean / "manifest.csv").read_text().splitlines()[0] + "\n")
    cases.append(([str(tmp_path / "nosamples"), "--out", str(tmp_path / "o1")], "no samples"))
    for args, msg in cases:
        r = CliRunner().invoke(main, ["pack", *args, "--format", "hf", "--no-progress"])
        assert r.exit_code == 2 and msg in r.output and "Traceback" not in r.output, r.output
    assert os.listdir(busy) == ["mine.txt"] and afile.read_text() == "x"
    assert not (tmp_path / "o1").exists()
    # without the optional extra: one line naming it
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(HubUsageError, match=r"'hub' extra.*sunrgbd-tools\[hub\]"):
        export_hf(HubConfig(src=str(clean), out=str(tmp_path / "o2"), progress=False))
    assert not (tmp_path / "o2").exists()


def test_converter_does_not_import_the_hub_stack():
    code = ("import sys, sunrgbd_tools.cli.main, sunrgbd_tools.cli.share, sunrgbd_tools.acquire.hub; "
            "bad = [m for m in ('datasets', 'pyarrow') if m in sys.modules]; "
            "sys.exit(str(bad) if bad else 0)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docs_write_back_gives_a_tree_segtrain_reads(clean, exported, tmp_path, monkeypatch):
    """The recipe in docs/sharing.md: rows' bytes written to their paths + dataset.json."""
    from segtrain.data import list_samples, load_dataset_info

    ds = _load(exported, tmp_path, monkeypatch)
    root = tmp_path / "data"
    for split in ds:
        raw = ds[split]
        for col in ("image", "label", "depth"):
            raw = raw.cast_column(col, datasets.Image(decode=False))
        for ex in raw:
            for col in ("image", "label", "depth"):
                p = root / ex[col]["path"]
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(ex[col]["bytes"])
    shutil.copy(exported / "dataset.json", root / "dataset.json")
    info = load_dataset_info(root)
    rows = _manifest(clean)
    for split in ("train", "val", "test"):
        got = list_samples(info, split, with_depth=True)
        assert sorted(s.id for s in got) == sorted(r["id"] for r in rows if r["split"] == split)
    for rel, data in tree_bytes(root).items():
        if rel != "dataset.json":
            assert (clean / rel).read_bytes() == data


def test_every_manifest_column_is_exported_or_excluded_by_name(clean, monkeypatch):
    """The Hub export's manifest columns are MANIFEST_COLUMNS less a named exclusion: a new
    manifest column appears in the features, the rows and the card unless excluded by name."""
    from cleantree.manifest import MANIFEST_COLUMNS

    assert set(hub.HUB_EXCLUDED_COLUMNS) <= set(MANIFEST_COLUMNS)  # no stale exclusion
    assert set(hub.hub_manifest_columns()) == set(MANIFEST_COLUMNS) - set(hub.HUB_EXCLUDED_COLUMNS)
    assert hub.hub_manifest_columns() == ["sensor", "scene", "scene_type", "label_source",
                                          "intrinsics", "extrinsics"]  # today's schema order
    monkeypatch.setattr(hub, "MANIFEST_COLUMNS", [*MANIFEST_COLUMNS, "depth_min_mm", "lens"])
    monkeypatch.setitem(hub.HUB_EXCLUDED_COLUMNS, "lens", "a test's excluded column")
    assert hub.hub_manifest_columns()[-1] == "depth_min_mm" and "lens" not in hub.hub_manifest_columns()
    feats = hub.features(["wall"], depth=False)
    assert feats["depth_min_mm"] == datasets.Value("string") and "lens" not in feats
    row = _manifest(clean)[0] | {"depth_min_mm": "412", "lens": "x"}
    problems: list[str] = []
    rec = hub._record(clean, row, True, hub.hub_manifest_columns(), problems)
    assert not problems and rec["depth_min_mm"] == "412" and "lens" not in rec
    card = hub.dataset_card({}, feats, {"train": 1}, {"data/train-00000-of-00001.parquet": 1}, ["wall"], None, datasets)
    assert "| `depth_min_mm` | string |" in card and "`lens`" not in card


def test_a_path_leading_outside_the_tree_is_never_exported(clean, tmp_path):
    """A manifest row naming an absolute path, a '..' path or a path with a NUL byte (no sha256
    to compare) is reported and skipped: the parquet never holds a file from outside the tree."""
    t = tmp_path / "t"
    shutil.copytree(clean, t)
    secret = tmp_path / "secret.png"
    shutil.copyfile(t / _manifest(t)[0]["image"], secret)
    rows = _manifest(t)
    train = [r for r in rows if r["split"] == "train"]
    for r, rel in zip(train[:3], (str(secret), "../secret.png", "image/x\0.png"), strict=True):
        r["image"], r["image_sha256"] = rel, ""
    with open(t / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    r = CliRunner().invoke(main, ["pack", str(t), "--format", "hf", "--out", str(tmp_path / "o"),
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.output.count("leads outside the tree") == 2 and "image path holds a NUL byte" in r.output
    import pyarrow.parquet as pq

    ids = {i for p in (tmp_path / "o" / "data").glob("train-*.parquet") for i in pq.read_table(p)["id"].to_pylist()}
    assert ids == {r["id"] for r in train[3:]}
