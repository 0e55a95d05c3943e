"""`mapping check` and `mapping suggest` on small trees with planted misspellings."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from PIL import Image

from sunrgbd_tools.cli.mapping import mapping
from sunrgbd_tools.labels.check import (
    SUGGEST_COLUMNS,
    Suggester,
    check_tree,
    levenshtein,
    parse_unmapped,
    suggest_csv,
)
from sunrgbd_tools.labels.table import NameMapper

H, W = 10, 20


def _scene(root, name):
    d = root / "SUNRGBD" / "kv2" / "kinect2data" / name
    (d / "image").mkdir(parents=True)
    Image.new("RGB", (W, H)).save(d / "image" / f"{name}.jpg")
    return d


def _seg_mat(path, seg, names):
    cell = np.empty((1, len(names)), dtype=object)
    cell[0, :] = names
    scipy.io.savemat(path, {"seglabel": seg.astype(np.uint16), "names": cell})


@pytest.fixture()
def raw_tree(tmp_path):
    """Three scenes: seg.mat with planted misspellings, polygons only, and a broken seg.mat."""
    root = tmp_path / "raw"
    a = _scene(root, "scene_a")
    seg = np.zeros((H, W), np.int32)
    seg[:5, :] = 1  # wall: 100 px
    seg[5:8, :] = 2  # xhair: 60 px
    seg[8:, :15] = 3  # monittorr: 30 px
    seg[8:, 15:] = 4  # zorblax: 10 px
    _seg_mat(a / "seg.mat", seg, ["wall", "xhair", "monittorr", "zorblax"])
    b = _scene(root, "scene_b")
    (b / "annotation2Dfinal").mkdir()
    doc = {"objects": [{"name": "xhair"}, {"name": "floor"}, None],
           "frames": [{"polygon": [
               {"x": [0, 10, 10, 0], "y": [0, 0, 4, 4], "object": 0},
               {"x": [0, 19, 19, 0], "y": [5, 5, 9, 9], "object": 1},
               {"x": [0, 1, 1], "y": [0, 0, 1], "object": 7},  # dangling: dropped by the reader
           ]}]}
    (b / "annotation2Dfinal" / "index.json").write_text(json.dumps(doc), encoding="utf-8")
    c = _scene(root, "scene_c")
    (c / "seg.mat").write_bytes(b"MATLAB 5.0 broken")
    return root


def test_check_raw_tree_lists_names_that_fall_to_other(raw_tree):
    res = check_tree(raw_tree, NameMapper.load())
    assert res.kind == "raw" and res.scenes == 3
    got = [(n.name, n.pixels, n.images) for n in res.names]
    assert [g[0] for g in got] == ["xhair", "monittorr", "zorblax"]  # by pixels; wall/floor map
    assert got[0][2] == 2 and got[0][1] > 60  # seg.mat 60 px + the polygon
    assert got[1:] == [("monittorr", 30, 1), ("zorblax", 10, 1)]
    assert len(res.problems) == 1 and "scene_c" in res.problems[0]


def test_check_cli_json_csv_and_strict(raw_tree, tmp_path):
    out = tmp_path / "unmapped.csv"
    r = CliRunner().invoke(mapping, ["check", str(raw_tree), "--json", "--csv", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [u["name"] for u in doc["unmapped"]] == ["xhair", "monittorr", "zorblax"]
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[1] == {"raw_name": "monittorr", "pixels": "30", "images": "1", "key": "monittorr"}
    r = CliRunner().invoke(mapping, ["check", str(raw_tree), "--strict"])
    assert r.exit_code == 1 and "3 names fell to Other" in r.stdout
    r = CliRunner().invoke(mapping, ["check", str(tmp_path / "unmapped.csv")])
    assert r.exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(mapping, ["check", str(empty)])
    assert r.exit_code == 2 and "neither a clean tree" in r.output and "pass the folder above" not in r.output


def test_sunrgbd_folder_itself_is_named_as_such(raw_tree, tmp_path):
    """Pointing at SUNRGBD/ instead of the folder above it (a common slip) says so, in
    `mapping check`, `convert` and `mapping audit` alike (they share scene discovery)."""
    from sunrgbd_tools.cli.main import main

    inner = raw_tree / "SUNRGBD"
    hint = f"{inner} holds kv2/: it is SUNRGBD/ itself, pass the folder above it"
    r = CliRunner().invoke(mapping, ["check", str(inner)])
    assert r.exit_code == 2 and hint in r.output, r.output
    r = CliRunner().invoke(main, ["convert", "--src", str(inner), "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and hint in r.output and not (tmp_path / "c").exists(), r.output
    r = CliRunner().invoke(mapping, ["audit", "--src", str(inner), "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and hint in r.output and not (tmp_path / "a").exists(), r.output


def test_check_clean_tree_reads_the_manifest(tmp_path):
    m = tmp_path / "clean"
    m.mkdir()
    (m / "manifest.csv").write_text(
        "id,split,unmapped_names,problems\n"
        'a,train,"{""zorblax"":70,""wal;l"":5,""zor;b"":4}",\n'
        'b,test,"{""zorblax"":30,""garbage_bin"":12}",\n'
        "c,test,,\n", encoding="utf-8")
    res = check_tree(m, NameMapper.load())
    assert res.kind == "clean" and res.scenes == 3 and not res.problems
    # 'wal;l' fell to Other when this tree was converted, but today's tables map it to wall
    assert [(n.name, n.pixels, n.images) for n in res.names] == [
        ("zorblax", 100, 2), ("garbage_bin", 12, 1), ("zor;b", 4, 1)]


def test_parse_unmapped_keeps_names_with_separators():
    assert parse_unmapped('{"wal;l":30,"a=b":5}') == [("wal;l", 30), ("a=b", 5)]
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_unmapped("wal;l=30")
    assert parse_unmapped("") == []
    with pytest.raises(ValueError, match="pixel counts"):
        parse_unmapped('{"a": "many"}')


def test_suggest_ranks_the_intended_class_first():
    sug = Suggester(NameMapper.load())
    assert sug.candidates("xhair")[0].class_name == "chair"
    assert sug.candidates("monittorr")[0].class_name == "computer"
    assert sug.candidates("bookshelff")[0].class_name == "bookshelf"
    assert sug.candidates("kitchen_cabnett")[0].class_name == "cabinet"  # shared token
    assert all(c.score < 0.5 for c in sug.candidates("zorblax"))
    assert levenshtein("kitten", "sitting") == 3


def test_suggest_csv_round_trips_into_convert_mapping(raw_tree, tmp_path):
    out = tmp_path / "suggest.csv"
    r = CliRunner().invoke(mapping, ["suggest", str(raw_tree), "-o", str(out), "--prefill"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(x["raw_name"], x["class"], x["suggested_class"]) for x in rows] == [
        ("xhair", "chair", "chair"), ("monittorr", "computer", "computer")]
    m = NameMapper.load(out)
    assert (m.lookup("xhair").class_name, m.lookup("xhair").rule) == ("chair", "manual")
    assert not m.is_unmapped(m.lookup("monittorr"))
    assert m.is_unmapped(m.lookup("zorblax"))
    # without --prefill the class column is left for a person to fill in
    text = suggest_csv(check_tree(raw_tree, NameMapper.load()).names, NameMapper.load())
    assert [x["class"] for x in csv.DictReader(io.StringIO(text))] == ["", ""]


def test_suggest_over_the_shipped_raw_names():
    r = CliRunner().invoke(mapping, ["suggest", "--min-score", "0.8"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows and all(float(x["score"]) >= 0.8 for x in rows)
    m = NameMapper.load()
    assert all(m.is_unmapped(m.lookup(x["raw_name"])) for x in rows)


def test_suggest_rounds_keep_the_choices_made(raw_tree, tmp_path):
    """The documented loop: suggest -o FILE, fill in `class`, check/suggest again with --mapping
    FILE. A clean tree's names that the overlay maps are no longer listed (they were, clean trees
    ignored --mapping), and a list with choices filled in is never overwritten (exit 2)."""
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "manifest.csv").write_text(
        "id,split,unmapped_names,problems\n"
        'a,train,"{""xhair"":70,""monittorr"":5}",\n'
        'b,test,"{""xhair"":30,""zorblax"":12}",\n', encoding="utf-8")
    out = tmp_path / "suggest.csv"
    for src in (raw_tree, clean):
        out.unlink(missing_ok=True)
        r = CliRunner().invoke(mapping, ["suggest", str(src), "-o", str(out)])
        assert r.exit_code == 0, r.output
        fresh = out.read_text()
        rows = list(csv.reader(io.StringIO(fresh)))
        rows[1][SUGGEST_COLUMNS.index("pixels")] = "0"  # other bytes, every class cell still empty
        with open(out, "w", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
        assert out.read_text() != fresh
        r = CliRunner().invoke(mapping, ["suggest", str(src), "-o", str(out)])  # untouched: replaced
        assert r.exit_code == 0, r.output
        assert out.read_text() == fresh
        text = out.read_text().replace("\nxhair,,", "\nxhair,chair,")
        out.write_text(text)
        r = CliRunner().invoke(mapping, ["suggest", str(src), "--mapping", str(out), "-o", str(out)])
        assert r.exit_code == 2 and "holds class choices" in r.output
        assert out.read_text() == text
        r = CliRunner().invoke(mapping, ["check", str(src), "--mapping", str(out), "--json"])
        assert r.exit_code == 0, r.output
        assert {n["name"] for n in json.loads(r.stdout)["unmapped"]} == {"zorblax", "monittorr"}, src
        r = CliRunner().invoke(mapping, ["suggest", str(src), "--mapping", str(out)])
        assert [x["raw_name"] for x in csv.DictReader(io.StringIO(r.stdout))] == ["monittorr"]


def test_a_row_csv_refuses_is_one_line_naming_file_and_line(tmp_path):
    """A cell past csv's field limit in a clean tree's manifest (`mapping check`) or in a
    `--mapping` table was a csv.Error traceback; now a usage error naming the file (and, for a
    hand-edited table, the line; the manifest in cleantree.manifest's words, as every reader)."""
    m = tmp_path / "clean"
    m.mkdir()
    (m / "manifest.csv").write_bytes(b"id,unmapped_names\na,\n" + b"x" * 200_000 + b",\n")
    (tmp_path / "user.csv").write_bytes(b"raw_name,class\n" + b"x" * 200_000 + b",chair\n")
    r = CliRunner().invoke(mapping, ["lookup", "x", "--mapping", str(tmp_path / "user.csv")])
    want = f"Error: {tmp_path / 'user.csv'} line 2: not a readable CSV row (field larger than field limit (131072))\n"
    assert r.exit_code == 2 and want in r.output, (r.output, r.exception)
    # the manifest is read as every tool reads a clean tree (cleantree.manifest), in its words
    r = CliRunner().invoke(mapping, ["check", str(m)])
    want = f"Error: {m / 'manifest.csv'}: cannot be read (field larger than field limit (131072))\n"
    assert r.exit_code == 2 and want in r.output, (r.output, r.exception)
    (m / "manifest.csv").write_text("id,split\na,train\n", encoding="utf-8")
    r = CliRunner().invoke(mapping, ["check", str(m)])
    assert r.exit_code == 2 and f"Error: {m / 'manifest.csv'}: missing column(s) unmapped_names\n" in r.output
