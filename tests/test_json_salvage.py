"""Damaged index.json files: whatever the damage, the reader does not crash, keeps every
polygon that lies wholly before the damage, and never gives an object another's name.

The damage is applied to the real img_0063 annotation (as the uploader saved it, indented,
and re-serialised compact as the real files are): truncations, inserted and deleted
bytes, broken escapes. Where each polygon and object lies in the file is found
independently of the reader, from the serialisation of each element.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from conftest import realdata
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_convert import KV1, PREFIX, _cell

from sunrgbd_tools.convert.pipeline import ConvertConfig, convert
from sunrgbd_tools.convert.rasterize import paint_polygons
from sunrgbd_tools.labels.table import NameMapper
from sunrgbd_tools.raw.annotation import read_index_json
from sunrgbd_tools.raw.base import RawDataError

ANNOTATION = ("LucBourrat1-sunrgbd_dataset", "prepare", "annotation2Dfinal.json")


def _spans(text: str, items: list, indent: int | None, depth: int) -> list[tuple[int, int]]:
    """(start, end) of each element's text, found in order."""
    out, pos = [], 0
    for item in items:
        if indent is None:
            s = json.dumps(item, separators=(",", ":"))
        else:
            s = json.dumps(item, indent=indent).replace("\n", "\n" + " " * (indent * depth))
        i = text.index(s, pos)
        out.append((i, i + len(s)))
        pos = i + len(s)
    return out


class Original:
    """One serialisation of the real annotation with the byte span of every element."""

    def __init__(self, doc: dict, indent: int | None):
        if indent is None:
            self.text = json.dumps(doc, separators=(",", ":"))
        else:
            self.text = json.dumps(doc, indent=indent)
        self.data = self.text.encode()
        assert len(self.data) == len(self.text)  # ASCII: character = byte offsets
        self.polys = doc["frames"][0]["polygon"]
        self.names = [o["name"] for o in doc["objects"]]
        self.poly_spans = _spans(self.text, self.polys, indent, 4)
        self.obj_spans = _spans(self.text, doc["objects"], indent, 2)
        self.objects_key = self.text.index('"objects"')
        self.polygon_key = self.text.index('"polygon"')


@pytest.fixture(scope="module")
def originals() -> dict[str, Original]:
    raw = realdata(*ANNOTATION).read_bytes()
    doc = json.loads(raw)
    indented = Original(doc, 4)
    assert indented.data == raw  # the uploader's file is exactly json.dump(indent=4)
    return {"indented": indented, "compact": Original(doc, None)}


BROKEN_ESCAPES = [b"\\", b"\\x", b"\\u12", b"\\u00zz", b'\\"', b'"', b"\\\\\\"]


@st.composite
def damage(draw, size: int):
    """(kind, start, end of the damaged range in the original, bytes inserted)."""
    kind = draw(st.sampled_from(["truncate", "insert", "delete", "escape"]))
    p = draw(st.integers(0, size - 1))
    if kind == "truncate":
        return kind, p, size, b""
    if kind == "insert":
        return kind, p, p, draw(st.binary(min_size=1, max_size=8))
    if kind == "delete":
        return kind, p, min(size, p + draw(st.integers(1, 64))), b""
    return kind, p, p, draw(st.sampled_from(BROKEN_ESCAPES))


def _apply(data: bytes, d) -> bytes:
    kind, a, b, ins = d
    return data[:a] + ins + data[b:]


def _strict_ok(data: bytes) -> bool:
    try:
        json.loads(data.decode("utf-8", errors="surrogateescape"))
        return True
    except (ValueError, RecursionError):
        return False


def check_damaged(orig: Original, d, path: Path) -> None:
    kind, a, b, _ = d
    damaged = _apply(orig.data, d)
    path.write_bytes(damaged)
    def touched(span):
        return not (span[1] <= a or span[0] >= b)

    # polygons wholly before the damage, unless the damage hit their object's entry (a
    # valid-looking `"na me"` key leaves the object nameless, and such polygons are dropped)
    before = [i for i, (_s, e) in enumerate(orig.poly_spans)
              if e <= a and not touched(orig.obj_spans[orig.polys[i]["object"]])]
    try:
        ann = read_index_json(path)
    except RawDataError as e:
        assert not before, f"{kind} at {a}: lost polygons {before}: {e}"
        assert str(e).startswith(str(path)) and "\n" not in str(e)
        return
    assert all(w.startswith(str(path)) and "\n" not in w for w in ann.warnings)
    if _strict_ok(damaged):
        # still valid JSON: the damage cannot be seen (a digit inside a number, a whole
        # entry deleted); it is read like any file, and the checks below do not apply
        return
    assert ann.warnings, "a damaged file was read without a report"
    got = [(p.object, p.x.tolist(), p.y.tolist()) for p in ann.polygons]
    # every polygon wholly before the damage is there, in order, with its object index
    it = iter(got)
    for i in before:
        want = (orig.polys[i]["object"], [float(v) for v in orig.polys[i]["x"]],
                [float(v) for v in orig.polys[i]["y"]])
        assert any(g == want for g in it), f"{kind} at {a}..{b}: polygon {i} lost"
    # no object is ever given a name that is not its own
    for k, name in enumerate(ann.names):
        if k < len(orig.obj_spans) and name is not None:
            if not touched(orig.obj_spans[k]):
                assert name == orig.names[k], f"{kind} at {a}..{b}: object {k} named {name!r}"
    # damage inside the polygon list costs no object
    if orig.polygon_key < a and b < orig.objects_key:
        assert ann.names == orig.names, f"{kind} at {a}..{b}: objects lost"


@pytest.mark.parametrize("form", ["indented", "compact"])
def test_damaged_real_json_keeps_what_lies_before_the_damage(originals, form, tmp_path_factory):
    orig = originals[form]
    path = tmp_path_factory.mktemp(form) / "index.json"

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(damage(len(orig.data)))
    def run(d):
        check_damaged(orig, d, path)

    run()


@pytest.mark.parametrize("form", ["indented", "compact"])
def test_damage_inside_the_object_list_region(originals, form, tmp_path_factory):
    """The same property with every damage aimed at the object names, where a wrong
    count would renumber objects."""
    orig = originals[form]
    path = tmp_path_factory.mktemp(form) / "index.json"
    lo, hi = orig.obj_spans[0][0], orig.obj_spans[-1][1]

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(["insert", "delete", "escape"]), st.integers(lo, hi),
           st.integers(1, 24), st.binary(min_size=1, max_size=4), st.sampled_from(BROKEN_ESCAPES))
    def run(kind, p, n, junk, esc):
        d = {"insert": (kind, p, p, junk), "delete": (kind, p, min(len(orig.data), p + n), b""),
             "escape": (kind, p, p, esc)}[kind]
        check_damaged(orig, d, path)

    run()


def test_salvage_report_counts_and_offset(originals, tmp_path):
    orig = originals["compact"]
    k = 4  # cut polygon 4 in the middle: 4 kept, the 5th started, the objects are gone
    s, e = orig.poly_spans[k]
    cut = (s + e) // 2
    p = tmp_path / "index.json"
    p.write_bytes(orig.data[:cut])
    ann = read_index_json(p)
    assert ann.salvage is not None and ann.salvage.offset == cut
    assert ann.salvage.polygons == (4, 5) and ann.salvage.objects == (0, 0)
    assert [q.object for q in ann.polygons] == [q["object"] for q in orig.polys[:4]]
    assert all(n is None for n in ann.names)  # painted unlabelled: their objects were lost
    assert any(f"damaged JSON from byte {cut}" in w and "salvaged 0 of 0 objects and 4 of 5 polygons" in w
               for w in ann.warnings)
    assert any("painted unlabelled" in w for w in ann.warnings)


def test_broken_escape_inside_a_polygon_loses_only_that_polygon(originals, tmp_path):
    orig = originals["indented"]
    s, e = orig.poly_spans[2]
    i = orig.text.index("[", orig.text.index('"y"', s))  # inside polygon 2's y list
    p = tmp_path / "index.json"
    p.write_bytes(orig.data[:i + 1] + b'"\\q",' + orig.data[i + 1:])
    ann = read_index_json(p)
    assert ann.names == orig.names
    assert len(ann.polygons) == len(orig.polys) - 1
    assert ann.salvage.polygons == (len(orig.polys) - 1, len(orig.polys))
    assert ann.salvage.offset == i + 2  # the backslash of `\q`, in bytes
    assert ann.salvage.objects == (len(orig.names), len(orig.names))


def test_a_damaged_object_is_lost_alone_when_its_entry_is_plain(originals, tmp_path):
    orig = originals["compact"]
    s, e = orig.obj_spans[3]  # {"name":"chair"} → {"name":"ch\qair"}
    text = orig.text[:s] + '{"name":"ch\\qa\x01ir"}' + orig.text[e:]
    p = tmp_path / "index.json"
    p.write_text(text)
    ann = read_index_json(p)
    assert ann.names[:3] == orig.names[:3] and ann.names[4:] == orig.names[4:]
    assert ann.names[3] is None
    chairs = [q for q in orig.polys if q["object"] == 3]
    assert sum(q.object == 3 for q in ann.polygons) == len(chairs)  # painted unlabelled


def test_undecodable_bytes_give_byte_offsets_and_clean_names(tmp_path):
    text = '{"objects":[{"name":"caf\xe9"}],"frames":[{"polygon":[{"x":[1,5,5],"y":[1,1,5],"object":0},{"x":[1,2'
    p = tmp_path / "index.json"
    p.write_bytes(text.encode("latin-1"))  # é as one undecodable byte
    ann = read_index_json(p)
    assert ann.names == ["caf\ufffd"] and len(ann.polygons) == 1
    assert ann.salvage.offset == len(text.encode("latin-1"))


def test_nothing_to_salvage_is_one_line(tmp_path):
    p = tmp_path / "index.json"
    p.write_bytes(b'{"date": "Sun,15Feb2015", "na')
    with pytest.raises(RawDataError, match=r"index\.json: not valid JSON .* nothing could be salvaged"):
        read_index_json(p)


@pytest.mark.parametrize("text, reason", [
    ('{"objects":[{"name":"a"}],"frames":[{"polygon":[{"x":[1,2,3],"y":[1,2],"object":0}]}]}',
     "x and y of different lengths"),
    ('{"objects":[{"name":"a"}],"frames":[{"polygon":[{"x":[1,2,1e999],"y":[1,2,3],"object":0}]}]}',
     "non-finite coordinates"),
    ('{"objects":[{"name":"a"}],"frames":[{"polygon":[{"x":[1,2,1' + "0" * 400 + '],"y":[1,2,3],"object":0}]}]}',
     "non-numeric coordinates"),
    ('{"objects":{"name":"a"},"frames":{"polygon":3}}', None),
    ('{"objects":7,"frames":[{"polygon":{"x":1}}]}', None),
])
def test_odd_but_valid_shapes_are_reported_not_crashing(tmp_path, text, reason):
    p = tmp_path / "index.json"
    p.write_text(text)
    ann = read_index_json(p)
    assert ann.polygons == []
    if reason:
        assert any(reason in w for w in ann.warnings)


def test_deep_nesting_and_huge_integers_do_not_crash(tmp_path):
    p = tmp_path / "index.json"
    deep = "[" * 100_000 + "]" * 100_000
    p.write_text('{"objects":[{"name":"a"}],"frames":[{"polygon":[{"x":[1,5,5],"y":[1,1,5],"object":0},'
                 + deep + ',{"x":[1,2,3],"y":[1,1,5],"object":' + "9" * 5000 + "}]}]}")
    ann = read_index_json(p)
    assert [q.object for q in ann.polygons] == [0] and ann.names == ["a"]
    assert ann.salvage is not None


def test_polygon_painting_of_a_salvaged_file_is_the_prefix(originals, tmp_path):
    """End to end at the reader level: painting what was salvaged from a cut file equals
    painting the same polygons from the intact file, with lost objects unlabelled."""
    orig = originals["compact"]
    full = tmp_path / "full.json"
    full.write_bytes(orig.data)
    cut = tmp_path / "cut.json"
    cut.write_bytes(orig.data[:orig.poly_spans[6][1] + 1])
    a, b = read_index_json(full), read_index_json(cut)
    b_canvas = paint_polygons(b, 427, 561)
    a.polygons = a.polygons[:7]
    assert np.array_equal(paint_polygons(a, 427, 561), b_canvas)


def test_convert_counts_a_salvaged_scene_in_the_manifest(originals, tmp_path):
    """End to end: the real img_0063 scene with a broken escape inside one polygon converts
    with the other polygons painted; the manifest row and dataset.json count the salvage."""
    root = tmp_path / "raw"
    key = "kv1/b3dodata/img_0063"
    dst = root / "SUNRGBD" / key
    shutil.copytree(realdata(*KV1), dst)
    (dst / "annotation2Dfinal").mkdir()
    orig = originals["compact"]
    s, _e = orig.poly_spans[2]
    i = orig.text.index("[", orig.text.index('"y"', s)) + 1
    index = dst / "annotation2Dfinal" / "index.json"
    index.write_bytes(orig.data[:i] + b'"\\q",' + orig.data[i:])
    (root / "SUNRGBDtoolbox/traintestSUNRGBD").mkdir(parents=True)
    scipy.io.savemat(root / "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat",
                     {"alltrain": _cell([PREFIX + key]), "alltest": _cell([PREFIX + "kv2/x/y"])})
    out = tmp_path / "clean"
    summary = convert(ConvertConfig(src=str(root), out=str(out), subset="kv1"), workers=1)
    assert summary.samples == 1 and summary.skipped == 0
    assert any("damaged JSON from byte" in p and "8 of 9 polygons" in p for p in summary.problems)
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert json.loads(row["salvaged"]) == {"offset": i + 1, "places": 1, "objects": [6, 6], "polygons": [8, 9]}
    assert json.loads((out / "dataset.json").read_text())["problems"]["salvaged_samples"] == 1
    ann = read_index_json(index)
    mapper = NameMapper.load()
    lut = np.array([0] + [mapper.lookup(n).class_id for n in ann.names], dtype=np.uint8)
    label = cv2.imread(str(out / row["label_ids"]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(label, lut[paint_polygons(ann, *label.shape)])


# ------------------------------------------------------------ generated bad index.json (fuzz)
_VALID_DOC = {"name": "img", "frames": [{"polygon": [
    {"x": [1, 20.5, 20, 1], "y": [1, 1, 15.25, 15], "object": 0},
    {"x": [-5, 40, 40], "y": [3, 3, 90], "object": 1},
    {"x": [2, 3, 4], "y": [2, 8, 2], "object": 2}]}],
    "objects": [{"name": "wall"}, {"name": "chair2"}, None]}
_VALID_JSON = json.dumps(_VALID_DOC, separators=(",", ":"))
_ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["x", "y", "object", "name",
                                                                                 "polygon", "frames", "objects"]),
                                                                 inner, max_size=4),
    max_leaves=10)


@st.composite
def _wrong_shapes(draw) -> bytes:
    """A valid index.json with one value anywhere in it replaced by a value of any type."""
    doc = json.loads(_VALID_JSON)
    paths = []

    def walk(node, path):
        paths.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            walk(v, (*path, k))

    walk(doc, ())
    path = draw(st.sampled_from(paths[1:]))
    target = doc
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = draw(_ANY)
    return json.dumps(doc).encode()


@pytest.mark.slow
def test_fuzz_index_json(tmp_path_factory):
    """≥ 1,000 generated bad index.json (counted in docs/robustness.md): the reader returns
    an annotation that paints, or raises one line naming the file; no library warning."""
    from test_fuzz_readers import FUZZ, Probe, call_reader, damaged

    folder = tmp_path_factory.mktemp("indexjson")

    @FUZZ
    @given(data=st.one_of(damaged(_VALID_JSON.encode()), _wrong_shapes()))
    def run(data):
        ann = call_reader(read_index_json, Probe(folder, "index.json", data))
        if ann is not None:
            assert len(ann.names) >= 0 and all(isinstance(w, str) and "\n" not in w for w in ann.warnings)
            idx = paint_polygons(ann, 24, 32)
            assert idx.shape == (24, 32) and int(idx.max()) <= len(ann.names)

    run()
