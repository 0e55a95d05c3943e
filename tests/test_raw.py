"""Readers of raw SUN RGB-D files, on the real files in ../shared/realdata and on
hand-made malformed variants of them."""

from __future__ import annotations

import json

import cv2
import h5py
import numpy as np
import pytest
import scipy.io
from conftest import realdata
from hypothesis import given, settings
from hypothesis import strategies as st

from sunrgbd_tools.convert.rasterize import paint_polygons
from sunrgbd_tools.convert.resize import nearest_indices, parse_size, resize_image, resize_nearest
from sunrgbd_tools.raw.annotation import read_index_json
from sunrgbd_tools.raw.base import RawDataError
from sunrgbd_tools.raw.images import decode_depth, read_camera, read_depth, read_rgb
from sunrgbd_tools.raw.matfile import read_seg_mat
from sunrgbd_tools.raw.scenes import discover_scenes, parse_subset
from sunrgbd_tools.raw.splits import normalise_scene_path, read_split

KV2_SCENE = ("GuardianWang-sunrgbd-toy", "images", "2014-12-18_11-31-54_260595134347")
ANNOTATION = ("LucBourrat1-sunrgbd_dataset", "prepare", "annotation2Dfinal.json")
ALLSPLIT = ("jiangliux-SUNRGBDtoolbox", "traintestSUNRGBD", "allsplit.mat")
# the original official file (MATLAB 5.0 MACI64, 2015) with the /n/fs/sun3d/data/ prefix
ALLSPLIT_OFFICIAL = ("jorisgu-jg_toolbox_sunrgbd", "allsplit.mat")


# ----------------------------------------------------------------- index.json
def test_real_annotation_json():
    ann = read_index_json(realdata(*ANNOTATION))
    assert ann.names == ["shelf", "wall", "floor", "chair", "books", "box"]
    assert len(ann.polygons) == 9 and ann.warnings == []
    # the first polygon has negative y (it runs past the top border)
    assert ann.polygons[0].y.min() < 0 and ann.polygons[0].object == 1


def _write(tmp_path, text: str):
    p = tmp_path / "index.json"
    p.write_bytes(text.encode("utf-8"))
    return p


def _doc(objects, polygons):
    return {"frames": [{"polygon": polygons}], "objects": objects}


SQUARE = {"x": [1, 8, 8, 1], "y": [1, 1, 8, 8]}


def test_stray_backslash_and_inner_quotes_are_repaired(tmp_path):
    text = (
        '{"frames":[{"polygon":[{"x":[1,8,8],"y":[1,1,8],"object":0},'
        '{"x":[1,8,8],"y":[1,1,8],"object":1}]}],'
        '"objects":[{"name":"wall\\"},{"name":""propulsion"tool"}]}'
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    ann = read_index_json(_write(tmp_path, text))
    assert ann.names == ["wall\\", '"propulsion"tool']
    assert len(ann.polygons) == 2
    assert any("invalid JSON repaired" in w for w in ann.warnings)


def test_null_empty_and_dangling_objects_are_skipped_with_warnings(tmp_path):
    doc = _doc(
        [None, {}, {"name": "chair"}],
        [
            {**SQUARE, "object": 0},
            {**SQUARE, "object": 1},
            {**SQUARE, "object": 7},
            {**SQUARE, "object": 2},
            {"x": [1, 2], "y": [1, 2], "object": 2},
            {"x": ["a", 2, 3], "y": [1, 2, 3], "object": 2},
        ],
    )
    ann = read_index_json(_write(tmp_path, json.dumps(doc)))
    assert [p.object for p in ann.polygons] == [2]
    text = " ".join(ann.warnings)
    assert "dangling object index" in text and "null or nameless object" in text
    assert "fewer than 3 points" in text and "non-numeric" in text
    assert all(w.startswith(str(tmp_path)) for w in ann.warnings)


def test_unparseable_json_names_the_file(tmp_path):
    p = _write(tmp_path, '{"frames": [ {"polygon": [ }')
    with pytest.raises(RawDataError, match=r"index\.json: not valid JSON"):
        read_index_json(p)
    with pytest.raises(RawDataError, match="file not found"):
        read_index_json(tmp_path / "nope.json")


# ----------------------------------------------------------------- polygons
def test_polygons_paint_in_file_order_and_clip(tmp_path):
    doc = _doc(
        [{"name": "wall"}, {"name": "chair"}],
        [
            {"x": [-50.5, 100.2, 100.2, -50.5], "y": [-30, -30, 40.7, 40.7], "object": 0},
            {"x": [2, 5, 5, 2], "y": [2, 2, 5, 5], "object": 1},
        ],
    )
    ann = read_index_json(_write(tmp_path, json.dumps(doc)))
    canvas = paint_polygons(ann, 10, 12)
    assert canvas.shape == (10, 12) and canvas.dtype == np.int32
    assert (canvas[2:6, 2:6] == 2).all()  # later polygon wins
    assert (canvas == 1).sum() == 10 * 12 - 16  # the big one covers the rest, clipped


def test_real_polygons_cover_the_image_sensibly():
    ann = read_index_json(realdata(*ANNOTATION))
    canvas = paint_polygons(ann, 427, 561)
    values, counts = np.unique(canvas, return_counts=True)
    assert set(values) == {0, 1, 2, 3, 4, 5, 6}
    # shelves (object 0 → value 1) are the largest region of this bookshelf scene
    assert values[np.argmax(counts)] == 1


# ----------------------------------------------------------------- seg.mat
def test_seg_mat_v5_round_trip(tmp_path):
    seg = np.arange(12, dtype=np.uint16).reshape(3, 4) % 3
    names = np.empty((1, 2), dtype=object)
    names[0, 0], names[0, 1] = "wall", "chair2"
    scipy.io.savemat(tmp_path / "seg.mat", {"seglabel": seg, "names": names})
    got, got_names = read_seg_mat(tmp_path / "seg.mat")
    assert np.array_equal(got, seg) and got_names == ["wall", "chair2"]


def test_seg_mat_v73_is_read_transposed(tmp_path):
    seg = np.arange(12, dtype=np.uint16).reshape(3, 4) % 3
    p = tmp_path / "seg.mat"
    with h5py.File(p, "w", userblock_size=512) as f:
        f["seglabel"] = seg.T  # MATLAB stores column-major: HDF5 sees W x H
        refs = f.create_dataset("names", (2, 1), dtype=h5py.ref_dtype)
        for i, n in enumerate(["wall", "bed"]):
            d = f.create_dataset(f"#refs#/{i}", data=np.array([[ord(c)] for c in n], dtype=np.uint16))
            refs[i, 0] = d.ref
    with open(p, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file".ljust(116, b" "))
    got, names = read_seg_mat(p)
    assert np.array_equal(got, seg) and names == ["wall", "bed"]


def test_broken_seg_mat_is_reported(tmp_path):
    p = tmp_path / "seg.mat"
    p.write_bytes(b"MATLAB 5.0 MAT-file garbage" + b"\0" * 200)
    with pytest.raises(RawDataError, match=r"seg\.mat: not a readable MATLAB file"):
        read_seg_mat(p)
    scipy.io.savemat(p, {"other": np.zeros(3)})
    with pytest.raises(RawDataError, match="no variable 'seglabel'"):
        read_seg_mat(p)


# ----------------------------------------------------------------- rgb, depth, camera
def test_real_kv2_scene_files():
    scene = realdata(*KV2_SCENE)
    rgb = read_rgb(scene / "image" / "0000144.jpg")
    assert rgb.shape == (530, 730, 3) and rgb.dtype == np.uint8
    raw = cv2.imread(str(scene / "depth" / "0000144.png"), cv2.IMREAD_UNCHANGED)
    depth = read_depth(scene / "depth" / "0000144.png")
    assert depth.shape == (530, 730) and depth.dtype == np.uint16
    # independent decoding: rotate right by 3 bits within 16 bits, clip at 8 m
    expected = np.minimum(((raw.astype(np.uint32) >> 3) | (raw.astype(np.uint32) << 13)) & 0xFFFF, 8000)
    assert np.array_equal(depth, expected)
    valid = depth[depth > 0]
    assert 300 < np.median(valid) < 8000  # an office: metres, not garbage
    cam = read_camera(scene)
    assert cam.scene_type == "office" and cam.intrinsics[0] == pytest.approx(529.5)
    assert len(cam.extrinsics) == 12 and cam.warnings == []


def test_depth_decoding_is_the_inverse_of_the_encoding():
    mm = np.array([0, 1, 500, 4000, 8000, 8191], dtype=np.uint16)
    stored = ((mm.astype(np.uint32) << 3) | (mm.astype(np.uint32) >> 13)) & 0xFFFF
    assert decode_depth(stored.astype(np.uint16)).tolist() == [0, 1, 500, 4000, 8000, 8000]


def test_undecodable_jpeg_is_reported(tmp_path):
    p = tmp_path / "x.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(RawDataError, match=r"x\.jpg: image does not decode"):
        read_rgb(p)


def test_bad_camera_files_become_warnings(tmp_path):
    (tmp_path / "intrinsics.txt").write_text("1 2 three")
    (tmp_path / "extrinsics").mkdir()
    (tmp_path / "extrinsics" / "20140101000000.txt").write_text(" ".join(["1"] * 12))
    (tmp_path / "extrinsics" / "20150101000000.txt").write_text(" ".join(["2"] * 12))
    cam = read_camera(tmp_path)
    assert cam.intrinsics is None and "intrinsics.txt" in cam.warnings[0]
    assert cam.extrinsics == [2.0] * 12  # the last file wins


# ----------------------------------------------------------------- discovery, subsets
def test_subsets_and_discovery(tmp_path):
    for key in ["kv2/kinect2data/a", "kv2/align_kv2/b", "kv1/b3dodata/c", "xtion/sun3ddata/d/e/f"]:
        (tmp_path / "SUNRGBD" / key / "image").mkdir(parents=True)
    (tmp_path / "SUNRGBD/kv2/kinect2data/a/fullres").mkdir()
    assert [s.key for s in discover_scenes(tmp_path, "kv2")] == ["kv2/align_kv2/b", "kv2/kinect2data/a"]
    assert [s.key for s in discover_scenes(tmp_path, "kv2/align_kv2")] == ["kv2/align_kv2/b"]
    scenes = discover_scenes(tmp_path, "all")
    assert len(scenes) == 4
    nested = [s for s in scenes if s.sensor == "xtion"][0]
    assert nested.sample_id == "sun3ddata__d__e__f"
    with pytest.raises(ValueError, match="unknown subset"):
        parse_subset("kv3")
    for bad in ("kv2/../kv1", "kv2/align_kv2/../kinect2data", ".."):  # as download refuses them
        with pytest.raises(ValueError, match="unknown subset"):
            parse_subset(bad)
    with pytest.raises(RawDataError, match="SUNRGBD"):
        discover_scenes(tmp_path / "nowhere", "kv2")


# ----------------------------------------------------------------- split file
@pytest.mark.parametrize("where", [ALLSPLIT, ALLSPLIT_OFFICIAL], ids=["resaved", "official"])
def test_real_allsplit(where):
    split = read_split(realdata(*where))
    assert split.counts() == {"train": 2666, "val": 2619, "test": 5050}
    assert split.val_source == {"source": "trainvalsplit"}
    assert split.of("kv2/align_kv2/2014-12-18_11-31-54_260595134347") == "test"
    assert split.of("kv1/b3dodata/img_0063") == "train"
    # keys never carry prefixes or trailing slashes
    assert not any(k.endswith("/") or k.startswith("/") for k in split.assignment)


def test_official_allsplit_equals_the_resaved_copy():
    """The raw paths differ (official prefix, trailing slashes); the keys must not."""
    official, resaved = realdata(*ALLSPLIT_OFFICIAL), realdata(*ALLSPLIT)
    raw = scipy.io.loadmat(str(official))
    paths = [str(np.asarray(c).ravel()[0]) for c in raw["alltrain"].ravel()]
    assert all(p.startswith("/n/fs/sun3d/data/SUNRGBD/") for p in paths)
    assert any(p.endswith("/") for p in paths) and not all(p.endswith("/") for p in paths)
    assert read_split(official).assignment == read_split(resaved).assignment


@pytest.mark.parametrize(
    "raw, key",
    [
        ("/n/fs/sun3d/data/SUNRGBD/kv2/kinect2data/x/", "kv2/kinect2data/x"),
        ("/data1/SUNRGBD/realsense/sa/2014_10_21-18_19_07-1311000073", "realsense/sa/2014_10_21-18_19_07-1311000073"),
        ("SUNRGBD/kv1/NYUdata/NYU0001//", "kv1/NYUdata/NYU0001"),
    ],
)
def test_split_paths_are_normalised(raw, key):
    assert normalise_scene_path(raw) == key


def test_split_without_trainvalsplit_is_seeded(tmp_path):
    train = np.empty((1, 20), dtype=object)
    for i in range(20):
        train[0, i] = f"/x/SUNRGBD/kv2/kinect2data/s{i:02d}" + ("/" if i % 2 else "")
    test = np.empty((1, 1), dtype=object)
    test[0, 0] = "/x/SUNRGBD/kv2/kinect2data/t"
    scipy.io.savemat(tmp_path / "allsplit.mat", {"alltrain": train, "alltest": test})
    a = read_split(tmp_path / "allsplit.mat", val_fraction=0.25, seed=3)
    b = read_split(tmp_path / "allsplit.mat", val_fraction=0.25, seed=3)
    assert a.assignment == b.assignment
    assert a.counts() == {"train": 15, "val": 5, "test": 1}
    assert a.val_source == {"source": "seeded", "seed": 3, "fraction": 0.25}


# ----------------------------------------------------------------- resizing
def test_parse_size():
    assert parse_size("480x640") == (480, 640)
    assert parse_size(None) is None
    with pytest.raises(ValueError):
        parse_size("640")


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 60), st.integers(1, 60), st.integers(1, 90), st.integers(1, 90),
    st.sampled_from([np.uint8, np.uint16, np.int32]),
)
def test_nearest_resize_is_centre_aligned_and_adds_no_values(h, w, dh, dw, dtype):
    rng = np.random.default_rng(h * 1000 + w)
    src = rng.integers(0, 200, size=(h, w)).astype(dtype)
    out = resize_nearest(src, (dh, dw))
    ref = src[nearest_indices(h, dh)[:, None], nearest_indices(w, dw)[None, :]]
    assert out.dtype == src.dtype and np.array_equal(out, ref)
    assert set(np.unique(out)) <= set(np.unique(src))


def test_nearest_matches_pil_nearest():
    from PIL import Image

    src = np.random.default_rng(0).integers(0, 40, size=(53, 73)).astype(np.uint8)
    for size in [(48, 64), (120, 160), (17, 5)]:
        pil = np.asarray(Image.fromarray(src).resize(size[::-1], Image.NEAREST))
        assert np.array_equal(resize_nearest(src, size), pil)


def test_image_and_mask_stay_aligned_after_resize():
    # a sharp vertical edge at x = 40 of 80 must land at x = 20 of 40 in both
    rgb = np.zeros((60, 80, 3), dtype=np.uint8)
    rgb[:, 40:] = 255
    mask = (rgb[:, :, 0] > 0).astype(np.uint8)
    small_rgb, small_mask = resize_image(rgb, (30, 40)), resize_nearest(mask, (30, 40))
    assert np.array_equal(small_rgb[:, :, 0] > 127, small_mask > 0)


def test_probe_jpeg_gives_the_size_and_rejects_garbage(tmp_path):
    real = realdata(*KV2_SCENE) / "image" / "0000144.jpg"
    from sunrgbd_tools.raw.images import probe_jpeg

    assert probe_jpeg(real) == (530, 730)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(RawDataError, match="does not decode"):
        probe_jpeg(bad)
    png = tmp_path / "x.jpg"  # a PNG named .jpg decodes, but is no JPEG to copy
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((9, 9, 3), np.uint8))
    (tmp_path / "x.png").rename(png)
    with pytest.raises(RawDataError, match="is a PNG image, not a JPEG"):
        probe_jpeg(png)
