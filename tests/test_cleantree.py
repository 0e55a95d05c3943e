"""cleantree, the one owner of the clean-tree contract: the converter's output is exactly
the schema, the reader's decisions hold for every tool that reads a tree (verify, stats,
segtrain, the Hub export), and the writer gives the bytes the readers were given."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from treebuilder import write_clean_tree

from cleantree.classes import IGNORE_INDEX
from cleantree.dataset import (
    SCHEMA_VERSION,
    STATS_KEYS,
    ContractError,
    DatasetJson,
    dumps_dataset_json,
    read_dataset_json,
)
from cleantree.manifest import (
    MANIFEST_COLUMNS,
    ManifestError,
    SampleFileError,
    iter_manifest,
    manifest_text,
    read_manifest,
    sample_bytes,
    sample_path,
    tree_files_listed,
)
from cleantree.paths import FILE_KEYS, file_templates, sample_paths
from sunrgbd_tools.acquire.hub import HubUsageError, read_tree
from sunrgbd_tools.convert.pipeline import ConvertConfig, convert
from sunrgbd_tools.convert.verify import verify_tree
from sunrgbd_tools.labels.table import ClassTable
from sunrgbd_tools.stats import StatsConfig, StatsInputError, load_tree, run_stats
from sunrgbd_tools.synthetic.generator import make_sample

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("raw")
    make_sample(raw, scenes=8, seed=3, quirks=False, size=(60, 80))
    out = tmp_path_factory.mktemp("clean") / "clean"
    convert(ConvertConfig(src=str(raw), out=str(out), size=(30, 40)), workers=1)
    return out


def test_cleantree_imports_neither_package_nor_torch():
    code = ("import sys, cleantree.dataset, cleantree.classes, cleantree.paths, cleantree.manifest, "
            "cleantree.files; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('sunrgbd_tools', 'segtrain', 'torch')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_converter_writes_exactly_the_schema(converted):
    raw = json.loads((converted / "dataset.json").read_text(encoding="utf-8"))
    doc = read_dataset_json(converted / "dataset.json")
    assert doc.extra == {}  # every key the converter writes is named by the schema
    schema_order = [f.name for f in dataclasses.fields(DatasetJson)
                    if f.name not in ("extra", "path", "order")]
    assert list(raw) == [k for k in schema_order if k in raw]  # written in the schema's order
    assert raw["schema_version"] == SCHEMA_VERSION and raw["ignore_index"] == IGNORE_INDEX
    assert raw["files"] == file_templates("png", depth=True)
    # read + write gives the same bytes
    assert dumps_dataset_json(doc).encode("utf-8") == (converted / "dataset.json").read_bytes()


def test_manifest_paths_follow_the_templates(converted):
    with open(converted / "manifest.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == MANIFEST_COLUMNS
        rows = list(reader)
    assert rows
    for r in rows:
        want = sample_paths(r["split"], r["sensor"], r["id"], "png")
        assert {k: r[k] for k in FILE_KEYS} == want
        assert all((converted / p).is_file() for p in want.values())


def test_reader_lookups_equal_the_converters_table(converted):
    table = ClassTable.load()
    doc = read_dataset_json(converted / "dataset.json")
    lookup = doc.lookup
    assert np.array_equal(lookup.id_to_train_id, table.id_to_train_id)
    assert np.array_equal(lookup.id_to_color, table.id_to_color)
    assert np.array_equal(lookup.valid_ids, table.valid_ids)
    assert lookup.num_classes == doc.num_classes  # what the converter wrote is what the table says
    assert [t.train_id for t in lookup.train_classes] == list(range(lookup.num_classes))


def test_treebuilder_writes_what_the_converter_writes(converted, tmp_path):
    """The test trees come through the same writer: same keys (a subset, in the same order),
    same templates, same manifest columns."""
    tree = write_clean_tree(tmp_path / "t", counts={"train": 2, "val": 1})
    built = json.loads((tree.root / "dataset.json").read_text(encoding="utf-8"))
    conv = list(json.loads((converted / "dataset.json").read_text(encoding="utf-8")))
    assert [k for k in conv if k in built] == list(built)
    assert built["files"] == file_templates("png", depth=True)
    with open(tree.root / "manifest.csv", newline="", encoding="utf-8") as f:
        assert csv.DictReader(f).fieldnames == MANIFEST_COLUMNS


def _edit(root: Path, **changes) -> Path:
    path = root / "dataset.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    for k, v in changes.items():
        if v is ...:
            meta.pop(k)
        else:
            meta[k] = v
    path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return path


def _readers(root: Path) -> dict[str, str | None]:
    """What each tool says about the tree's dataset.json: None (accepted) or its error."""
    from segtrain.data import DataError, load_dataset_info

    said: dict[str, str | None] = {}
    try:
        load_tree(root)
        said["stats"] = None
    except StatsInputError as e:
        said["stats"] = str(e)
    try:
        load_dataset_info(root)
        said["segtrain"] = None
    except DataError as e:
        said["segtrain"] = str(e)
    probs = [p for p in verify_tree(root, workers=1, check_checksums=False).problems if "dataset.json" in p]
    said["verify"] = probs[0] if probs else None
    try:
        read_tree(root)
        said["hub"] = None
    except HubUsageError as e:
        said["hub"] = str(e)
    return said


@pytest.fixture
def tree(tmp_path) -> Path:
    return write_clean_tree(tmp_path / "t", counts={"train": 2, "val": 1}).root


def test_num_classes_is_optional_for_every_reader(tree):
    _edit(tree, num_classes=...)
    assert _readers(tree) == {"stats": None, "segtrain": None, "verify": None, "hub": None}


@pytest.mark.parametrize("change, message", [
    ({"num_classes": 12}, f"num_classes is 12 but the class table has {ClassTable.load().lookup.num_classes} train ids"),
    ({"ignore_index": 0}, "ignore_index is 0; the contract fixes it at 255"),
    ({"ignore_index": "x"}, "ignore_index: expected a whole number"),
    ({"classes": {"a": 1}}, "missing the 'classes' table"),
    ({"classes": [{"id": 0, "train_id": 255, "name": "void", "color": [0, 0, 0]}]},
     "no class has a train id other than 255"),
    ({"classes": [{"id": 1, "train_id": 0, "name": "a", "color": [1, 2, 3]},
                  {"id": 1, "train_id": 1, "name": "b", "color": [1, 2, 3]}]}, "class id 1 is repeated"),
    ({"classes": [{"id": 1, "train_id": 0, "name": "a", "color": [1, 2, 3]},
                  {"id": 2, "train_id": 2, "name": "b", "color": [1, 2, 3]}]}, "train ids must be 0..N-1"),
    ({"classes": [{"id": 1, "train_id": 0, "name": "a", "color": [1, 2]}]}, "color must be [R, G, B]"),
    ({"classes": [{"id": 300, "train_id": 0, "name": "a", "color": [1, 2, 3]}]}, "300 outside 0..255"),
])
def test_every_reader_refuses_the_same_class_tables(tree, change, message):
    path = _edit(tree, **change)
    said = _readers(tree)
    for tool, error in said.items():
        assert error is not None and message in error and "\n" not in error, (tool, error)
        assert error.startswith(f"{path}: "), (tool, error)


def test_a_file_that_is_not_an_object_is_one_line(tree):
    (tree / "dataset.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ContractError, match=r"dataset.json: is not a JSON object$"):
        read_dataset_json(tree / "dataset.json")
    (tree / "dataset.json").write_bytes(b"\xff{")
    with pytest.raises(ContractError, match="not valid JSON"):
        read_dataset_json(tree / "dataset.json")


def test_manifest_rows_stream_with_the_line_they_end_on(tmp_path):
    (tmp_path / "manifest.csv").write_text('id,split,problems\na,train,"one\ntwo"\nb,val,\n', encoding="utf-8")
    assert [(line, r["id"]) for line, r in iter_manifest(tmp_path)] == [(3, "a"), (4, "b")]
    assert read_manifest(tmp_path)[0] == {"id": "a", "split": "train", "problems": "one\ntwo"}


def test_manifest_header_is_checked_before_any_row(tmp_path):
    (tmp_path / "manifest.csv").write_bytes(b"id,split\n" + _HUGE + b",train\n")
    with pytest.raises(ManifestError) as e:
        read_manifest(tmp_path, need=("split", "label_ids", "image"))
    assert e.value.missing == ("image", "label_ids") and e.value.cause is None
    assert str(e.value) == f"{tmp_path / 'manifest.csv'}: missing column(s) image, label_ids"
    with pytest.raises(ManifestError) as e:  # no column asked for: the over-long cell is the problem
        read_manifest(tmp_path)
    assert str(e.value) == f"{tmp_path / 'manifest.csv'}: cannot be read ({_TOO_LONG})"


_HUGE = b"a" * 200_000  # a cell past csv's field limit: csv.Error
_TOO_LONG = "field larger than field limit (131072)"
_BAD_UTF8 = "'utf-8' codec can't decode byte 0xff in position 9: invalid start byte"


@pytest.mark.parametrize("content, said", [
    (b"id,split\n\xff\n", {"stats": f"cannot be read ({_BAD_UTF8})", "segtrain": "not UTF-8 text",
                             "verify": f"cannot be read ({_BAD_UTF8})", "hub": f"not a readable CSV ({_BAD_UTF8})",
                             "listed": f"cannot be read ({_BAD_UTF8})"}),
    (b"id,split,image,label_ids,label_train_ids\n" + _HUGE + b",train,x,y,z\n",
     {"stats": f"cannot be read ({_TOO_LONG})", "segtrain": f"not a readable CSV ({_TOO_LONG})",
      "verify": f"cannot be read ({_TOO_LONG})", "hub": f"not a readable CSV ({_TOO_LONG})",
      "listed": f"cannot be read ({_TOO_LONG})"}),
    (b"id,split\n" + _HUGE + b",train\n", {"stats": "needs columns id, image, label_ids, split",
                                          "segtrain": "missing column(s) image, label_train_ids",
                                          "hub": "missing column(s) image, label_train_ids"}),  # header first
    (b"id,split\na,train\n", {"stats": "needs columns id, image, label_ids, split",
                              "segtrain": "missing column(s) image, label_train_ids",
                              "hub": "missing column(s) image, label_train_ids"}),
    (None, {"stats": "not found (is this a clean tree written by `sunrgbd convert`?)", "verify": "missing",
            "listed": "cannot be read ([Errno 2] No such file or directory: '{m}')"}),
])
def test_each_reader_words_a_broken_manifest_as_it_always_did(tree, content, said):
    """One reader (cleantree.manifest) under five tools, each keeping its own one-line wording."""
    from segtrain.data import DataError, list_samples, load_dataset_info

    m = tree / "manifest.csv"
    if content is None:
        m.unlink()
    else:
        m.write_bytes(content)
    calls = {
        "stats": (lambda: load_tree(tree), StatsInputError),
        "segtrain": (lambda: list_samples(load_dataset_info(tree), "train"), DataError),
        "hub": (lambda: read_tree(tree), HubUsageError),
        "listed": (lambda: tree_files_listed(tree), ContractError),
    }
    for tool, text in said.items():
        want = f"{m}: {text.replace('{m}', str(m))}"
        if tool == "verify":
            assert verify_tree(tree, workers=1).problems[0] == want
            continue
        call, error = calls[tool]
        with pytest.raises(error) as e:
            call()
        assert str(e.value) == want, tool


def test_sample_bytes_are_the_listed_file_or_an_error_naming_it(tree):
    row = read_manifest(tree)[0]
    path = tree / row["image"]
    assert sample_bytes(tree, row, "image") == path.read_bytes()
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(SampleFileError, match=f"^{path}: sha256 differs from manifest.csv$"):
        sample_bytes(tree, row, "image")
    assert sample_bytes(tree, {**row, "image_sha256": ""}, "image").endswith(b"x")  # nothing to compare
    path.unlink()
    with pytest.raises(SampleFileError, match=f"^{path}: cannot read \\(No such file or directory\\)$"):
        sample_bytes(tree, row, "image")


@pytest.mark.parametrize("bad", ["ABS", "../secret.png", "leftImg8bit/x\0.png", "LINK"])
def test_no_reader_opens_a_listed_path_outside_the_tree(tree, bad):
    """cleantree.manifest.sample_path is the one gate: an absolute path, '..', a NUL byte or a
    symbolic link out of the tree is refused by every reader, each in its own wording."""
    from segtrain.data import DataError, list_samples, load_dataset_info

    secret = tree.parent / "secret.png"
    rows = read_manifest(tree)
    secret.write_bytes((tree / rows[0]["image"]).read_bytes())
    if bad == "LINK":
        (tree / "leftImg8bit" / "link.png").symlink_to(secret)
    rel = {"ABS": str(secret), "LINK": "leftImg8bit/link.png"}.get(bad, bad)
    victim = next(r for r in rows if r["split"] == "train")
    victim["image"], victim["image_sha256"] = rel, ""
    (tree / "manifest.csv").write_text(manifest_text(rows), encoding="utf-8")
    m = tree / "manifest.csv"
    outside = f"{m}: sample {victim['id']}: image {rel!r} leads outside the tree (absolute, '..' or a symbolic link); not read"
    want = f"{m}: sample {victim['id']}: image path holds a NUL byte" if "\0" in rel else outside
    with pytest.raises(SampleFileError) as e:
        sample_path(tree, victim, "image")
    assert str(e.value) == want
    with pytest.raises(SampleFileError) as e:
        sample_bytes(tree, victim, "image")
    assert str(e.value) == want
    assert want in verify_tree(tree, workers=1).problems
    with pytest.raises(StatsInputError, match="is outside the tree or not a usable path"):
        run_stats(tree, StatsConfig(workers=1))
    with pytest.raises(DataError, match=f"line [0-9]+: image {re.escape(repr(rel))} leads outside the tree"):
        list_samples(load_dataset_info(tree), "train")


@pytest.mark.filterwarnings("ignore::sunrgbd_tools.stats.AbsentClassWarning")
def test_stats_rewrite_keeps_order_and_unknown_keys(tree):
    """A hand-edited dataset.json: its own key order and keys the schema does not know
    survive `stats`, which appends its keys in the schema's order."""
    meta = json.loads((tree / "dataset.json").read_text(encoding="utf-8"))
    meta = {"my_note": "keep me", **dict(reversed(list(meta.items())))}
    (tree / "dataset.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    run_stats(tree, StatsConfig(workers=1))
    after = json.loads((tree / "dataset.json").read_text(encoding="utf-8"))
    assert list(after) == list(meta) + list(STATS_KEYS)
    assert after["my_note"] == "keep me"


def test_keep_added_puts_earlier_keys_after_the_new_document():
    doc = DatasetJson(name="new", classes=[], splits={"train": 1})
    doc.keep_added({"mean": [0.5] * 3, "name": "old", "zz": 1, "splits": {}})
    d = doc.to_dict()
    assert list(d) == ["schema_version", "name", "classes", "splits", "mean", "zz"]
    assert d["name"] == "new" and d["splits"] == {"train": 1} and d["mean"] == [0.5] * 3


@pytest.mark.filterwarnings("ignore::sunrgbd_tools.stats.AbsentClassWarning")
def test_optional_keys_are_checked_when_used(tree):
    """A damaged statistics key does not stop verify or stats (which rewrites it), but the
    trainer, which uses it, says which key is wrong."""
    from segtrain.data import DataError, load_dataset_info

    _edit(tree, mean="grey", std=[1, 1, 1])
    assert not [p for p in verify_tree(tree, workers=1, check_checksums=False).problems if "dataset.json" in p]
    with pytest.raises(DataError, match=r"dataset.json: mean: expected 3 numbers"):
        load_dataset_info(tree)
    run_stats(tree, StatsConfig(workers=1))
    assert len(load_dataset_info(tree).mean) == 3


def test_default_weight_method_has_one_owner(monkeypatch):
    """stats' default (library and --method), segtrain's fallback and the Hub card's fallback are
    the contract's one constant, and it names a weighting method stats computes. Each is read
    where it acts, with the constant replaced in that module, so a copy of the literal fails."""
    from types import SimpleNamespace

    import segtrain.engine
    import sunrgbd_tools.acquire.hub
    import sunrgbd_tools.stats
    from cleantree.dataset import DEFAULT_WEIGHT_METHOD
    from segtrain.config import TrainConfig
    from sunrgbd_tools.cli.stats import stats as stats_command

    assert DEFAULT_WEIGHT_METHOD in sunrgbd_tools.stats.WEIGHTING
    assert sunrgbd_tools.stats.StatsConfig().method == DEFAULT_WEIGHT_METHOD
    assert next(p for p in stats_command.params if p.name == "method").default == DEFAULT_WEIGHT_METHOD
    no_default = SimpleNamespace(default_weight_method=None)  # dataset.json names no default
    monkeypatch.setattr(segtrain.engine, "DEFAULT_WEIGHT_METHOD", "sentinel")
    assert segtrain.engine.class_weight_method(TrainConfig(loss="wce"), no_default) == "sentinel"
    datasets = pytest.importorskip("datasets", reason="the 'hub' extra is not installed")
    hub = sunrgbd_tools.acquire.hub
    monkeypatch.setattr(hub, "DEFAULT_WEIGHT_METHOD", "sentinel")
    card = hub.dataset_card({"stats_split": "train"}, hub.features(["wall"], depth=False), {"train": 1},
                            {"data/train-00000-of-00001.parquet": 1}, ["wall"], None, datasets)
    assert "sunrgbd stats CLEAN --split train --method sentinel " in card
