"""Fuzz suite for the `sunrgbd` readers (issue 15): hypothesis throws generated bad inputs at
each reader and checks the promise of the docs — the reader returns, or fails with its
documented error whose message is one line naming the file; no other exception, no library
warning on the console, the input file unchanged, nothing written beside it. The counts and
the command are in docs/robustness.md. (index.json has its own fuzz test in
tests/test_json_salvage.py, next to the salvage property tests.)"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
import zipfile
from pathlib import Path
from unittest.mock import patch

import cv2
import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from treebuilder import write_clean_tree

import sunrgbd_tools.convert.verify as verify_module
from sunrgbd_tools.cli.main import main
from sunrgbd_tools.convert.verify import verify_tree
from sunrgbd_tools.raw.base import RawDataError
from sunrgbd_tools.raw.images import probe_jpeg, read_depth, read_rgb
from sunrgbd_tools.raw.matfile import read_seg_mat
from sunrgbd_tools.remote.rangezip import ZipFormatError, read_directory
from sunrgbd_tools.remote.safezip import check_members
from sunrgbd_tools.stats import StatsError, load_tree, sample_files

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("SUNRGBD_FUZZ_EXAMPLES", "1000"))  # per reader; docs/robustness.md
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


def damaged(valid: bytes) -> st.SearchStrategy[bytes]:
    """Bytes a damaged copy of `valid` could hold: truncated, bytes overwritten, inserted or
    deleted at any place, a random prefix kept, or plain random bytes."""
    n = len(valid)
    at = st.integers(0, n)
    return st.one_of(
        at.map(lambda i: valid[:i]),
        st.tuples(at, st.binary(min_size=1, max_size=16)).map(
            lambda t: valid[:t[0]] + t[1] + valid[t[0] + len(t[1]):]),
        st.tuples(at, st.binary(min_size=1, max_size=64)).map(lambda t: valid[:t[0]] + t[1] + valid[t[0]:]),
        st.tuples(at, st.integers(1, 64)).map(lambda t: valid[:t[0]] + valid[t[0] + t[1]:]),
        st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, 255)), min_size=1, max_size=8).map(
            lambda flips: bytes(_flip(valid, flips))),
        st.binary(max_size=512),
    )


def _flip(data: bytes, flips) -> bytearray:
    b = bytearray(data)
    for i, v in flips:
        if i < len(b):
            b[i] = v
    return b


class Probe:
    """One input file in its own folder: checks it is unchanged and nothing appeared beside it."""

    def __init__(self, folder: Path, name: str, data: bytes):
        self.folder = folder
        for p in folder.iterdir():
            p.unlink()
        self.path = folder / name
        self.path.write_bytes(data)
        self.data = data

    def check(self) -> None:
        assert self.path.read_bytes() == self.data, "the reader changed its input"
        assert [p.name for p in self.folder.iterdir()] == [self.path.name], "the reader wrote a file"


def one_line_naming(msg: str, path: Path) -> None:
    assert "\n" not in msg and str(path) in msg, msg


def call_reader(fn, probe: Probe, error=RawDataError):
    """fn(path) returns or raises `error` with one line naming the file; no library warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning we trigger would reach the user's console
        try:
            return fn(probe.path)
        except error as e:
            one_line_naming(str(e), probe.path)
        finally:
            probe.check()


# ------------------------------------------------------------------------------- seg.mat
def _segmat_bytes(obj: dict) -> bytes:
    buf = io.BytesIO()
    scipy.io.savemat(buf, obj, do_compression=False)
    return buf.getvalue()


_SEG = np.arange(12, dtype=np.uint8).reshape(3, 4) % 3
_NAMES = np.array([np.array(["wall"]), np.array(["floor"])], dtype=object)
VALID_SEGMAT = _segmat_bytes({"seglabel": _SEG, "names": _NAMES})
VALID_SEGMAT_Z = io.BytesIO()
scipy.io.savemat(VALID_SEGMAT_Z, {"seglabel": _SEG, "names": _NAMES}, do_compression=True)

_matlab_value = st.one_of(
    st.integers(-2**31, 2**31 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.just(np.zeros((0, 0))), st.just(np.full((2, 2), np.nan)),
    st.just(np.full((2, 3), -5.0)), st.just(np.zeros((2, 2, 2))), st.just(np.array([[70000]])),
    st.just(np.array([["a", "b"]])), st.just(np.array([[1 + 2j]])),
    st.just(np.array([np.array([1, 2]), np.array(["x"])], dtype=object)),
)


@st.composite
def wrong_types(draw) -> bytes:
    obj = {}
    if draw(st.booleans()):
        obj["seglabel"] = draw(_matlab_value)
    if draw(st.booleans()):
        obj["names"] = draw(_matlab_value)
    obj["other"] = 1
    return _segmat_bytes(obj)


def _child_read_seg_mat(path: str):
    """read_seg_mat in the child process, its outcome as plain data (call_reader's checks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning we trigger would reach the user's console
        try:
            seg, names = read_seg_mat(Path(path))
        except RawDataError as e:
            return "refused", str(e)
        except Exception as e:  # noqa: BLE001 (reported by the test)
            return "raised", f"{type(e).__name__}: {e}"
    return "read", (seg.ndim, seg.dtype.kind, isinstance(names, list))


def _limit_memory() -> None:  # an allocation of gigabytes fails (MemoryError) in the child only
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


class SegMatChild:
    """One process that reads the generated seg.mat files: scipy crashing on one (a segmentation
    fault once killed a whole pytest run, the input lost) fails the example with the input saved."""

    def __init__(self, crashes: Path):
        self.crashes, self.ex = crashes, None

    def read(self, path: Path, data: bytes, fn=None, *args):
        """`fn(str(path), *args)` in the child (default: read_seg_mat's outcome)."""
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        from sunrgbd_tools.parallel import pool_context

        if self.ex is None:
            self.ex = ProcessPoolExecutor(1, mp_context=pool_context(), initializer=_limit_memory)
        try:
            return self.ex.submit(fn or _child_read_seg_mat, str(path), *args).result()
        except BrokenProcessPool:
            self.ex.shutdown(wait=False)
            self.ex = None
            import hashlib

            self.crashes.mkdir(exist_ok=True)
            saved = self.crashes / f"{hashlib.sha1(data).hexdigest()[:12]}{path.suffix}"
            saved.write_bytes(data)
            pytest.fail(f"{getattr(fn, '__name__', 'read_seg_mat')} killed its process on {saved}")

    def close(self):
        if self.ex is not None:
            self.ex.shutdown()


@pytest.fixture(scope="module")
def segmat_child(tmp_path_factory):
    child = SegMatChild(tmp_path_factory.getbasetemp() / "segmat-crashes")
    yield child
    child.close()


def compress_elements(data: bytes) -> bytes:
    """MAT v5 bytes with each top-level element wrapped in miCOMPRESSED, as MATLAB saves them:
    damage made to the plain bytes then sits inside the inflated elements (damage to compressed
    bytes mostly just fails to inflate). Bytes past the last whole element are kept as they are."""
    import struct
    import zlib

    out, off = bytearray(data[:128]), 128
    while off + 8 <= len(data):
        n = struct.unpack_from("<I", data, off + 4)[0]
        if off + 8 + n > len(data):
            break
        z = zlib.compress(data[off:off + 8 + n])
        out += struct.pack("<II", 15, len(z)) + z
        off += 8 + n
    return bytes(out + data[off:])


@FUZZ
@given(data=st.one_of(damaged(VALID_SEGMAT), damaged(VALID_SEGMAT_Z.getvalue()),
                      damaged(VALID_SEGMAT).map(compress_elements), wrong_types()))
def test_fuzz_seg_mat(tmp_path_factory, segmat_child, data: bytes):
    folder = _folder(tmp_path_factory, "segmat")
    probe = Probe(folder, "seg.mat", data)
    try:
        kind, what = segmat_child.read(probe.path, data)
    finally:
        probe.check()
    assert kind != "raised", what
    if kind == "refused":
        one_line_naming(what, probe.path)
        assert "MemoryError" not in what, f"scipy asked for more memory than the file holds: {what}"
    else:
        ndim, dtype_kind, names_is_list = what
        assert ndim == 2 and dtype_kind in "iu" and names_is_list


# ------------------------------------------------------------------- MATLAB v7.3 (HDF5)
# seg.mat, seg37list.mat/seglistall.mat, SUNRGBDMeta.mat and SUNRGBD2Dseg.mat saved by MATLAB
# as v7.3 are HDF5 files that h5py reads; the HDF5 library is C, so a damaged one could crash or
# exhaust the process the way scipy did on v5. Files shaped as MATLAB writes them: a 512-byte
# MAT header in the user block, MATLAB_class attributes, cells and struct fields as object
# references into #refs#, arrays transposed, SUNRGBD2Dseg's images gzip-chunked.
_V73_HEADER = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Feb 26 14:12:51 2015 "
               b"HDF5 schema 1.00 .").ljust(116, b" ") + bytes(8) + b"\x00\x02IM"
_V73_KEYS = ("kv2/kinect2data/000002_2014-05-26_14-23-37_260595134347_rgbf000103-resize",
             "kv2/align_kv2/2014-12-17_16-25-52_260595134347")


def _v73_bytes(build) -> bytes:
    """A MATLAB v7.3 file `build(h5py.File)` fills, as bytes."""
    import tempfile

    import h5py

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "v73.mat"
        with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
            f.create_group("#refs#")
            build(f)
        with open(path, "r+b") as fh:
            fh.write(_V73_HEADER)
        return path.read_bytes()


def _v73_class(obj, cls: str) -> None:
    obj.attrs["MATLAB_class"] = np.bytes_(cls)


def _v73_refs(f, name: str, values, where=None) -> None:
    """A cell (N×1 in HDF5) of char arrays or numbers, stored in #refs#."""
    import h5py

    refs = np.empty((len(values), 1), dtype=h5py.ref_dtype)
    for i, v in enumerate(values):
        key = f"{name.replace('/', '_')}_{i}"
        if isinstance(v, str):
            ds = f["#refs#"].create_dataset(key, data=np.array([[ord(c)] for c in v], np.uint16))
            _v73_class(ds, "char")
        else:
            ds = f["#refs#"].create_dataset(key, data=np.ascontiguousarray(np.asarray(v).T),
                                            compression="gzip", chunks=True)
            _v73_class(ds, str(np.asarray(v).dtype))
        refs[i, 0] = ds.ref
    _v73_class((where or f).create_dataset(name.rsplit("/", 1)[-1], data=refs), "cell")


def _v73_seg(f) -> None:
    f.create_dataset("seglabel", data=_SEG.T.astype(np.float64))
    _v73_class(f["seglabel"], "double")
    _v73_refs(f, "names", ["wall", "floor"])


def _v73_meta(f) -> None:
    g = f.create_group("SUNRGBDMeta")
    _v73_class(g, "struct")
    _v73_refs(f, "sequenceName", [f"/n/fs/sun3d/data/SUNRGBD/{k}/" for k in _V73_KEYS], where=g)
    _v73_refs(f, "valid", [np.ones((1, 1)), np.ones((1, 1))], where=g)


def _v73_split(f, val: bool = True) -> None:
    """allsplit.mat as MATLAB saves it with -v7.3: cells of paths, trainvalsplit a 1x1 struct."""
    prefix = "/n/fs/sun3d/data/SUNRGBD/"
    _v73_refs(f, "alltrain", [prefix + "kv2/kinect2data/a/", prefix + "kv2/b", prefix + "kv2/kinect2data/d"])
    _v73_refs(f, "alltest", [prefix + "kv2/kinect2data/c"])
    if val:
        g = f.create_group("trainvalsplit")
        _v73_class(g, "struct")
        _v73_refs(f, "trainvalsplit/train", [prefix + "kv2/kinect2data/a/", prefix + "kv2/b"], where=g)
        _v73_refs(f, "trainvalsplit/val", [prefix + "kv2/kinect2data/d"], where=g)


def _v73_2dseg(f, dtype=np.uint8) -> None:
    g = f.create_group("SUNRGBD2Dseg")
    _v73_class(g, "struct")
    labels = [(_SEG * k).astype(dtype) for k in (1, 2)]
    _v73_refs(f, "seglabel", labels, where=g)
    _v73_refs(f, "seglabelall", [x.astype(np.uint16) for x in labels], where=g)


VALID_V73 = {
    "seg.mat": _v73_bytes(_v73_seg),
    "seg37list.mat": _v73_bytes(lambda f: _v73_refs(f, "seg37list", ["wall", "floor", "cabinet"])),
    "SUNRGBDMeta.mat": _v73_bytes(_v73_meta),
    "SUNRGBD2Dseg.mat": _v73_bytes(_v73_2dseg),
    "allsplit.mat": _v73_bytes(_v73_split),
}


def _child_read_v73(path: str):
    """The v7.3 reader for the file's name, in the child; its outcome as plain data."""
    from sunrgbd_tools.raw.official import OfficialLabels, read_name_list, read_sequence_names
    from sunrgbd_tools.raw.splits import read_split

    p = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning we trigger would reach the user's console
        try:
            if p.name == "seg.mat":
                seg, names = read_seg_mat(p)
                return "read", seg.ndim == 2 and seg.dtype.kind in "iu" and isinstance(names, list)
            if p.name == "seg37list.mat":
                return "read", all(isinstance(n, str) for n in read_name_list(p, "seg37list"))
            if p.name == "SUNRGBDMeta.mat":
                return "read", all(isinstance(n, str) for n in read_sequence_names(p))
            if p.name == "allsplit.mat":
                return "read", all(s in ("train", "val", "test") for s in read_split(p).assignment.values())
            labels = OfficialLabels(p.parents[2], "official")  # its SUNRGBDMeta.mat is intact
            try:
                return "read", all(labels.read(k)[0].ndim == 2 for k in _V73_KEYS)
            finally:
                if labels._file is not None:
                    labels._file.close()
        except RawDataError as e:
            return "refused", str(e)
        except Exception as e:  # noqa: BLE001 (reported by the test)
            return "raised", f"{type(e).__name__}: {e}"


@FUZZ
@given(case=st.sampled_from(sorted(VALID_V73)).flatmap(
    lambda name: damaged(VALID_V73[name]).map(lambda data: (name, data))))
def test_fuzz_matlab_v73(tmp_path_factory, segmat_child, case):
    """Every v7.3 (HDF5) reader on damaged files, in the child process: a crash fails the
    example with the input saved; the reader returns or refuses the file in one line naming it,
    never with a MemoryError (a declared size the file cannot hold must be refused first)."""
    name, data = case
    meta = _folder(tmp_path_factory, "v73") / "SUNRGBDtoolbox" / "Metadata"
    if not meta.is_dir():
        meta.mkdir(parents=True)
        (meta / "SUNRGBDMeta.mat").write_bytes(VALID_V73["SUNRGBDMeta.mat"])
    folder = meta if name == "SUNRGBD2Dseg.mat" else _folder(tmp_path_factory, f"v73-{name}")
    victim = folder / name
    (folder / name).write_bytes(data)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    try:
        kind, what = segmat_child.read(victim, data, _child_read_v73)
    finally:
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before, "the reader changed its folder"
    assert kind != "raised", what
    if kind == "refused":
        one_line_naming(what, victim)
        assert "MemoryError" not in what, f"h5py asked for more memory than the file holds: {what}"
    else:
        assert what is True


@pytest.mark.parametrize("image, why", [
    (np.full((3, 4), np.nan), "holds non-integer values"), (np.array([[b"ab", b"cd"]]), "must hold numbers"),
    (np.zeros((2, 2, 2)), "must be a 2-D array"), (np.full((3, 4), 1.5), "holds non-integer values"),
    (np.full((3, 4), -5.0), "holds negative values"),
    (np.full((3, 4), 3_000_000_000, dtype=np.uint32), "holds values too large to index names"),
    (np.full((3, 4), 3e9), "holds values too large to index names"),
])
def test_v73_label_images_that_are_not_integer_images_are_refused(tmp_path, image, why):
    """SUNRGBD2Dseg entries holding NaN (numpy warned while casting), strings (a ValueError
    traceback), a 3-D array, a negative label (read as -5, then an IndexError in the converter),
    a uint32 3e9 (wrapped to a negative int32) or a double 3e9 (a cast warning): one line naming
    the file, by the checks seg.mat's seglabel gets (`matfile.check_label_image`)."""
    from sunrgbd_tools.raw.official import OfficialLabels

    def build(f):
        g = f.create_group("SUNRGBD2Dseg")
        _v73_class(g, "struct")
        _v73_refs(f, "seglabel", [image, image], where=g)

    meta = tmp_path / "SUNRGBDtoolbox" / "Metadata"
    meta.mkdir(parents=True)
    (meta / "SUNRGBDMeta.mat").write_bytes(VALID_V73["SUNRGBDMeta.mat"])
    (meta / "SUNRGBD2Dseg.mat").write_bytes(_v73_bytes(build))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RawDataError, match=r"SUNRGBD2Dseg\.mat: seglabel\(1\) " + re.escape(why)):
            OfficialLabels(tmp_path, "official").read(_V73_KEYS[0])
    (meta / "SUNRGBD2Dseg.mat").write_bytes(_v73_bytes(lambda f: _v73_2dseg(f, np.float64)))
    img, _ = OfficialLabels(tmp_path, "official").read(_V73_KEYS[1])  # labels saved as double read
    assert img.dtype == np.int32 and np.array_equal(img, _SEG * 2)


def test_v73_declared_size_is_bounded_before_reading(tmp_path):
    """A 2 KB v7.3 seg.mat whose chunked seglabel declares 149 GiB (no chunk written: the HDF5
    library fills it): h5py allocated it (a MemoryError traceback, or swap and the OOM killer
    without a limit); refused from the declared size, before anything is read."""
    path = tmp_path / "seg.mat"
    path.write_bytes(_v73_bytes(lambda f: f.create_dataset(
        "seglabel", shape=(200000, 100000), dtype=np.float64, chunks=(64, 64), compression="gzip")))
    assert path.stat().st_size < 4096
    with pytest.raises(RawDataError, match=r"seg\.mat: not a readable MATLAB v7\.3 file \(ValueError: "
                                           r"/seglabel declares \(200000, 100000\) x 8 bytes, past the 1024 MiB"):
        read_seg_mat(path)


def test_v73_fuzz_inputs_are_read_intact(tmp_path):
    """The undamaged files read (so the fuzz damages files the readers accept)."""
    meta = tmp_path / "SUNRGBDtoolbox" / "Metadata"
    meta.mkdir(parents=True)
    for name, data in VALID_V73.items():
        (meta / name).write_bytes(data)
        assert _child_read_v73(str(meta / name)) == ("read", True), name


# ----------------------------------------------------------------------------- PNG / JPEG
_RNG = np.random.default_rng(0)
_RGB = _RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
VALID_JPG = cv2.imencode(".jpg", _RGB)[1].tobytes()
VALID_PNG = cv2.imencode(".png", _RGB)[1].tobytes()
VALID_DEPTH = cv2.imencode(".png", _RNG.integers(0, 65535, (24, 32), dtype=np.uint16))[1].tobytes()


@FUZZ
@given(data=st.one_of(damaged(VALID_JPG), damaged(VALID_PNG)), kind=st.sampled_from(["jpg", "png"]))
def test_fuzz_colour_images(tmp_path_factory, data: bytes, kind: str):
    folder = _folder(tmp_path_factory, "rgb")
    img = call_reader(read_rgb, Probe(folder, f"0000001.{kind}", data))
    assert img is None or (img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8)
    hw = call_reader(probe_jpeg, Probe(folder, f"0000001.{kind}", data))
    assert hw is None or (hw[0] > 0 and hw[1] > 0)


@FUZZ
@given(data=st.one_of(damaged(VALID_DEPTH), damaged(VALID_PNG)))
def test_fuzz_depth_png(tmp_path_factory, data: bytes):
    folder = _folder(tmp_path_factory, "depth")
    depth = call_reader(read_depth, Probe(folder, "0000001.png", data))
    assert depth is None or depth.ndim == 2


# ------------------------------------------------------------------ ZIP central directory
def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, name in enumerate(["SUNRGBD/kv2/a/image/1.jpg", "SUNRGBD/kv2/a/seg.mat", "readme.txt"]):
            # a fixed time stamp: the fuzzed bytes (and so the derandomised examples) must not
            # depend on the time of day the tests run
            info = zipfile.ZipInfo(name, date_time=(2017, 5, 4, 13, 37, 42))
            zf.writestr(info, bytes([i]) * (10 + 50 * i), compress_type=zipfile.ZIP_DEFLATED if i else 0)
    return buf.getvalue()


VALID_ZIP = _zip_bytes()


class BytesReader:
    def __init__(self, data: bytes, where: str):
        self.data, self.size, self.where = data, len(data), where

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or offset + n > self.size:
            raise ZipFormatError(f"{self.where}: truncated (wanted {n} bytes at {offset})")
        return self.data[offset:offset + n]


def _tail_damage() -> st.SearchStrategy[bytes]:
    """Damage aimed at the central directory and end records (the last ~220 bytes)."""
    n = len(VALID_ZIP)
    lo = n - 220
    at = st.integers(lo, n)
    return st.one_of(
        st.tuples(at, st.binary(min_size=1, max_size=8)).map(
            lambda t: VALID_ZIP[:t[0]] + t[1] + VALID_ZIP[t[0] + len(t[1]):]),
        st.tuples(at, st.integers(1, 40)).map(lambda t: VALID_ZIP[:t[0]] + VALID_ZIP[t[0] + t[1]:]),
        st.lists(st.tuples(st.integers(lo, n - 1), st.integers(0, 255)), min_size=1, max_size=6).map(
            lambda flips: bytes(_flip(VALID_ZIP, flips))),
        damaged(VALID_ZIP),
    )


@FUZZ
@given(data=_tail_damage())
def test_fuzz_zip_central_directory(data: bytes):
    where = "mirror/SUNRGBD.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            d = read_directory(BytesReader(data, where), where)
            check_members(d.members, where=where)
        except ZipFormatError as e:  # UnsafeArchive among them
            one_line_naming(str(e), Path(where))


# ------------------------------------------------------------- dataset.json / manifest.csv
@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_clean_tree(tmp_path_factory.mktemp("fuzztree") / "clean", counts={"train": 2, "val": 1}).root


_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-300, 300) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def dataset_json(draw, valid: str) -> bytes:
    """A damaged dataset.json: byte damage, or one key (or one class field) of a valid one
    given a value of the wrong type or range."""
    if draw(st.booleans()):
        return draw(damaged(valid.encode()))
    meta = json.loads(valid)
    target = meta
    if draw(st.booleans()) and meta.get("classes"):
        target = meta["classes"][draw(st.integers(0, len(meta["classes"]) - 1))]
    key = draw(st.sampled_from(sorted(target) + ["classes", "splits", "id", "train_id", "color"]))
    target[key] = draw(_json_value)
    return json.dumps(meta).encode()


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() or p.is_symlink()}


def _chunks_in_process(fn, shared, chunks, workers, progress, desc, died=None):
    """parallel.map_chunks without its child process: these examples fuzz the readers, and a
    process start per example would cost minutes (the pool's own survival is tested in
    test_batch_worker_death.py)."""
    for chunk in chunks:
        yield fn((shared, chunk))


def _check_tree_readers(root: Path, victim: Path, data: bytes) -> None:
    """Write the damaged `victim`, run the readers (library and CLI) over the tree, and check
    that nothing in the tree changed."""
    victim.write_bytes(data)
    before = _SNAPSHOTS.setdefault(root, _snapshot(root))
    before = {**before, victim.name: data}
    with patch.object(verify_module, "map_chunks", _chunks_in_process), warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = verify_tree(root, workers=1, check_checksums=False)
        for p in rep.problems:
            assert "\n" not in p and str(root) in p, p
        try:
            sample_files(load_tree(root))
        except StatsError as e:
            one_line_naming(str(e), root)
        res = CliRunner().invoke(main, ["verify", str(root), "--workers", "1", "--no-checksums"])
    assert res.exit_code in (0, 1, 2) and (res.exception is None or isinstance(res.exception, SystemExit)), \
        res.output
    assert "Traceback" not in res.output
    assert _snapshot(root) == before, f"{victim.name}: a reader changed the tree"


@FUZZ
@given(data=st.data())
def test_fuzz_dataset_json(tmp_path_factory, tree: Path, data):
    root = _copy_tree(tmp_path_factory, tree, "dsjson")
    valid = (tree / "dataset.json").read_text(encoding="utf-8")
    _check_tree_readers(root, root / "dataset.json", data.draw(dataset_json(valid)))


@st.composite
def manifest_csv(draw, valid: str) -> bytes:
    """A damaged manifest.csv: byte damage, or one cell of a valid one replaced."""
    if draw(st.booleans()):
        return draw(damaged(valid.encode()))
    rows = list(csv.reader(io.StringIO(valid)))
    r = draw(st.integers(0, len(rows) - 1))
    c = draw(st.integers(0, len(rows[r]) - 1))
    rows[r][c] = draw(st.sampled_from(["", "..", "../../x.png", "/etc/passwd", "-1", "1e999", "nan",
                                       "a\x00b", "x" * 300]) | st.text(max_size=12))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8", "surrogatepass")


@FUZZ
@given(data=st.data())
def test_fuzz_manifest_csv(tmp_path_factory, tree: Path, data):
    root = _copy_tree(tmp_path_factory, tree, "manifest")
    valid = (tree / "manifest.csv").read_text(encoding="utf-8")
    _check_tree_readers(root, root / "manifest.csv", data.draw(manifest_csv(valid)))


# ---------------------------------------------------------------------------- helpers
_FOLDERS: dict[str, Path] = {}


def _folder(factory, name: str) -> Path:
    """One folder per test, reused by its examples (hypothesis runs them in one test call)."""
    if name not in _FOLDERS:
        _FOLDERS[name] = factory.mktemp(name)
    return _FOLDERS[name]


_SNAPSHOTS: dict[Path, dict[str, bytes]] = {}


def _copy_tree(factory, tree: Path, name: str) -> Path:
    """One copy of the small clean tree per test; each example rewrites only its victim file
    and checks every other file against the snapshot taken before the first example."""
    import shutil

    root = _folder(factory, name) / "clean"
    if not root.exists():
        shutil.copytree(tree, root)
    return root
