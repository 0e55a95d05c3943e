"""seg.mat files that crashed scipy.io.loadmat (segmentation fault) or made it allocate gigabytes
past the MAT v5 tag walk (raw.mat5_structure_problem). Each is built here from a small valid
file with a few bytes changed, and read in a child process, so a regression fails this test
instead of killing pytest. docs/robustness.md."""

from __future__ import annotations

import io
import resource
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from conftest import REALDATA, realdata
from test_fuzz_readers import _v73_bytes, _v73_refs, _v73_split, compress_elements

from sunrgbd_tools.labels.build import read_seglistall_mat
from sunrgbd_tools.raw.base import RawDataError
from sunrgbd_tools.raw.matfile import loadmat_checked, mat5_structure_problem, read_seg_mat
from sunrgbd_tools.raw.official import read_name_list, read_sequence_names
from sunrgbd_tools.raw.splits import read_split

ROOT = Path(__file__).resolve().parents[1]


def _mat(obj: dict, compress: bool = False) -> bytearray:
    buf = io.BytesIO()
    scipy.io.savemat(buf, obj, do_compression=compress)
    return bytearray(buf.getvalue())


def _names() -> np.ndarray:
    return np.array([np.array(["wall"]), np.array(["floor"])], dtype=object)


def numbers_tagged_as_matrix() -> bytes:
    """seglabel's data element retagged miMATRIX (14); its 8 bytes read as an empty element, so
    every tag is in bounds. scipy looks up the dtype of type 14, finds none: segfault."""
    b = _mat({"seglabel": np.array([[2, 0], [0, 0], [0, 0], [0, 0]], dtype=np.uint8), "names": _names()})
    i = b.find(b"seglabel") + 8
    assert struct.unpack_from("<II", b, i) == (2, 8)
    b[i:i + 4] = struct.pack("<I", 14)
    return bytes(b)


def cell_with_huge_dims() -> bytes:
    """The names cell's dimensions 2x1 -> 2x218103809: scipy allocates 436 million objects
    (3.25 GiB, filled) before reading the first; one more flipped bit is the 28 GB seen."""
    b = _mat({"seglabel": np.ones((3, 4), dtype=np.uint8), "names": _names()})
    i = b.find(struct.pack("<IIii", 5, 8, 2, 1), 128)  # the only 2x1 dims element
    b[i + 12:i + 16] = struct.pack("<i", 0x0D000001)
    return bytes(b)


def fieldless_struct_with_huge_dims() -> bytes:
    """A struct with no fields and dimensions 46341x46341: scipy allocates 2.1 billion objects
    from a 100-byte element."""
    b = _mat({"seglabel": np.ones((3, 4), dtype=np.uint8), "names": _names(),
              "meta": {}})
    i = b.find(struct.pack("<IIii", 5, 8, 1, 1), 128)  # the only 1x1 dims element
    b[i + 8:i + 16] = struct.pack("<ii", 46341, 46341)
    return bytes(b)


def complex_flag_without_imaginary_part() -> bytes:
    """A names cell entry whose class flags say complex double: scipy reads the element after it
    (the next cell, a matrix tag) as the imaginary numbers: segfault."""
    b = _mat({"seglabel": np.ones((3, 4), dtype=np.uint8),
              "names": np.array([np.array([[1.0]]), np.array(["floor"])], dtype=object)})
    i = b.find(struct.pack("<IIII", 6, 8, 6, 0), 128)  # the first cell entry: class 6 (double)
    b[i + 8:i + 12] = struct.pack("<I", 6 | 1 << 11)
    return bytes(b)


def seglabel_flagged_complex() -> bytes:
    """What a random-seed fuzz run found (one byte of seglabel's array flags): the complex bit
    set on a uint8 seglabel with one data element; scipy reads the names variable that follows
    as its imaginary part: segfault."""
    b = _mat({"seglabel": np.ones((3, 4), dtype=np.uint8), "names": _names()})
    assert struct.unpack_from("<IIII", b, 136) == (6, 8, 9, 0)  # the first matrix's flags: uint8
    b[145] |= 0x08  # bit 11: complex
    return bytes(b)


def char_without_dimensions() -> bytes:
    """What the next random-seed fuzz run found: the byte count of the "wall" entry's dimensions
    set to 0, so the char array has none and its old dimension values read as a name element;
    scipy's chars_to_strings indexes the last dimension of a 0-d array: segfault."""
    b = _mat({"seglabel": np.ones((3, 4), dtype=np.uint8), "names": _names()})
    i = b.find(struct.pack("<IIii", 5, 8, 1, 4), 128)  # "wall": 1x4 char
    b[i + 4:i + 8] = struct.pack("<I", 0)
    return bytes(b)


def v4_layout() -> bytes:
    """A v5 file whose first byte became NUL: scipy reads it as MATLAB v4, which the v5 walk
    never looked at."""
    b = _mat({"seglabel": np.ones((3, 4), dtype=np.uint8), "names": _names()})
    b[0] = 0
    return bytes(b)


CASES = {f.__name__: f for f in (numbers_tagged_as_matrix, cell_with_huge_dims, fieldless_struct_with_huge_dims,
                                 complex_flag_without_imaginary_part, seglabel_flagged_complex,
                                 char_without_dimensions, v4_layout)}
EXPECT = {
    "numbers_tagged_as_matrix": "matrix",
    "cell_with_huge_dims": "declares 436207618 elements (2x218103809)",
    "fieldless_struct_with_huge_dims": "declares 2147488281 elements",
    "complex_flag_without_imaginary_part": "has 1 data elements, its class 6 needs 2",
    "seglabel_flagged_complex": "matrix at byte 128 has 1 data elements, its class 9 needs 2",
    "char_without_dimensions": "has 0 dimensions (MATLAB writes at least 2)",
    "v4_layout": "not a MATLAB v5 header",
}

_CHILD = """
import sys
from pathlib import Path
from sunrgbd_tools.raw.base import RawDataError
from sunrgbd_tools.raw.matfile import read_seg_mat
try:
    read_seg_mat(Path(sys.argv[1]))
except RawDataError as e:
    print("REFUSED", e)
else:
    print("READ")
"""


def _limit_memory():  # 4 GiB of address space: an allocation of gigabytes fails in the child only
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.parametrize("name", sorted(CASES))
def test_guard_refuses_before_scipy(name):
    """The walk names the structure (the old walk passed all of these to scipy)."""
    problem = mat5_structure_problem(CASES[name]())
    assert problem is not None and EXPECT[name] in problem, problem


@pytest.mark.parametrize("name", sorted(CASES))
def test_read_seg_mat_refuses_in_one_line(tmp_path, name):
    """In a child process: a crash is a failure here, not a dead pytest."""
    path = tmp_path / "seg.mat"
    path.write_bytes(CASES[name]())
    res = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, preexec_fn=_limit_memory)
    assert res.returncode == 0, f"child died (exit {res.returncode}): {res.stderr[-2000:]}"
    out = res.stdout.strip()
    assert out.startswith("REFUSED") and "\n" not in out and str(path) in out, out
    assert "not a readable MATLAB file" in out and EXPECT[name] in out, out


def test_guard_passes_what_scipy_writes(tmp_path):
    """Sound files still read: plain and compressed, cells, structs, complex, char, sparse, empty.
    (What MATLAB writes: test_guard_passes_the_real_toolbox_files.)"""
    import scipy.sparse

    obj = {"seglabel": (np.arange(530 * 730) % 40).reshape(530, 730).astype(np.uint8), "names": _names(),
           "s": {"a": np.array([[1 + 2j]]), "b": "text", "c": np.zeros((0, 3))},
           "sp": scipy.sparse.csc_matrix(np.eye(3)), "e": {}, "z": np.zeros((0, 0))}
    for compress in (False, True):
        data = bytes(_mat(obj, compress))
        assert mat5_structure_problem(data) is None
        path = tmp_path / f"seg{int(compress)}.mat"
        path.write_bytes(data)
        seg, names = read_seg_mat(path)
        assert seg.shape == (530, 730) and names == ["wall", "floor"]


def test_huge_dims_in_a_compressed_element(tmp_path):
    """The same dimensions check inside miCOMPRESSED (how MATLAB saves seg.mat)."""
    path = tmp_path / "seg.mat"
    path.write_bytes(compress_elements(cell_with_huge_dims()))
    with pytest.raises(RawDataError, match="in the compressed element at byte .*declares 436207618 elements"):
        read_seg_mat(path)


def test_sparse_names_read_as_nameless(tmp_path):
    """A sparse `names` (or sparse cell entries) is no list of names: every entry is nameless
    (unlabelled), as for numbers. cell_strings recursed until RecursionError, which escaped
    read_seg_mat as no RawDataError (and `--labels auto` did not fall back to the polygons)."""
    import scipy.sparse

    path = tmp_path / "seg.mat"
    for names, want in ((scipy.sparse.csc_matrix(np.eye(2)), [""]),
                        (np.array([scipy.sparse.csc_matrix(np.eye(2)), np.array(["floor"])], dtype=object),
                         ["", "floor"])):
        scipy.io.savemat(path, {"seglabel": np.ones((3, 4), dtype=np.uint8), "names": names})
        seg, got = read_seg_mat(path)
        assert seg.shape == (3, 4) and got == want


# ------------------------------------------------ every .mat reader, not only seg.mat's
def _same(a, b) -> bool:
    """Equal values as scipy loads them: nested cells, structs, numbers, strings."""
    if not isinstance(a, np.ndarray):
        return type(a) is type(b) and a == b
    if not isinstance(b, np.ndarray) or a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.names:
        return all(_same(a[n], b[n]) for n in a.dtype.names)
    if a.dtype == object:
        return all(_same(x, y) for x, y in zip(a.flat, b.flat, strict=True))
    return np.array_equal(a, b)


REAL_MATS = sorted(str(p.relative_to(REALDATA)) for p in REALDATA.rglob("*.mat")) or ["(none)"]


@pytest.mark.parametrize("rel", REAL_MATS)
def test_guard_passes_the_real_toolbox_files(rel):
    """What MATLAB itself wrote (allsplit.mat, dection19list.mat, …, from ../shared/realdata):
    the walk finds nothing, and loadmat_checked reads what bare scipy reads."""
    path = realdata(*Path(rel).parts)
    assert mat5_structure_problem(path.read_bytes()) is None
    got, want = loadmat_checked(path), scipy.io.loadmat(path)
    names = sorted(k for k in want if not k.startswith("__"))
    assert names and sorted(k for k in got if not k.startswith("__")) == names
    assert all(_same(got[k], want[k]) for k in names)


def _cell(*texts: str) -> np.ndarray:
    return np.array([np.array([t]) for t in texts], dtype=object)


def char_data_tagged_as_matrix(obj: dict) -> bytes:
    """`obj` as scipy writes it, with the data element of its first char array retagged miMATRIX:
    a toolbox name list (allsplit.mat's paths, seglistall.mat's names) damaged as
    numbers_tagged_as_matrix damages seg.mat. Bare scipy.io.loadmat segfaults on it."""
    b = _mat(obj)
    i = b.find(struct.pack("<IIII", 6, 8, 4, 0), 128)  # array flags of class 4 (char)
    i += 16  # past the flags, to the dimensions element
    i += 8 + (struct.unpack_from("<I", b, i + 4)[0] + 7) // 8 * 8
    tag = struct.unpack_from("<I", b, i)[0]  # the name element (empty in a cell: small)
    i += 8 if tag >> 16 else 8 + (struct.unpack_from("<I", b, i + 4)[0] + 7) // 8 * 8
    assert struct.unpack_from("<I", b, i)[0] == 16  # miUTF8: the characters
    b[i:i + 4] = struct.pack("<I", 14)
    return bytes(b)


_SPLIT = {"alltrain": _cell("/n/fs/sun3d/data/SUNRGBD/kv2/kinect2data/a/", "/n/fs/sun3d/data/SUNRGBD/kv2/b"),
          "alltest": _cell("/n/fs/sun3d/data/SUNRGBD/kv2/kinect2data/c")}
_MAIN = "from sunrgbd_tools.cli.main import main; main()"


@pytest.mark.parametrize("command", ["convert", "import-seglistall"])
def test_damaged_toolbox_mat_is_a_usage_error(tmp_path, command):
    """allsplit.mat and seglistall.mat are read in the main process: scipy's crash on them was
    the command's crash (exit -11, no message). In a child process, so a crash fails the test."""
    if command == "convert":
        split = tmp_path / "src" / "SUNRGBDtoolbox" / "traintestSUNRGBD" / "allsplit.mat"
        (tmp_path / "src" / "SUNRGBD" / "kv2").mkdir(parents=True)
        split.parent.mkdir(parents=True)
        split.write_bytes(char_data_tagged_as_matrix(_SPLIT))
        args = ["convert", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--subset", "kv2"]
        bad = split
    else:
        bad = tmp_path / "seglistall.mat"
        bad.write_bytes(char_data_tagged_as_matrix(_FILES["seglistall"]))
        args = ["mapping", "import-seglistall", str(bad), "--out", str(tmp_path / "raw_names.csv")]
    res = subprocess.run([sys.executable, "-c", _MAIN, *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, preexec_fn=_limit_memory)
    assert res.returncode == 2, f"exit {res.returncode}: {res.stderr[-2000:]}"
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {bad}: not a readable MATLAB file ("), res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()
    assert not (tmp_path / "raw_names.csv").exists()


_READERS = """
import sys
from pathlib import Path
from sunrgbd_tools.labels.build import read_seglistall_mat
from sunrgbd_tools.raw.base import RawDataError
from sunrgbd_tools.raw.official import read_name_list, read_sequence_names
from sunrgbd_tools.raw.splits import read_split
read = {"split": read_split, "names": lambda p: read_name_list(p, "seg37list"),
        "meta": read_sequence_names, "seglistall": read_seglistall_mat}[sys.argv[1]]
try:
    read(Path(sys.argv[2]))
except (RawDataError, ValueError) as e:
    print("REFUSED", e)
else:
    print("READ")
"""
_FILES = {
    "split": _SPLIT,
    "names": {"seg37list": _cell("bookshelf", "floor")},
    "meta": {"SUNRGBDMeta": np.array([("/n/fs/sun3d/data/SUNRGBD/kv2/kinect2data/a", np.array([[1.0]]))],
                                     dtype=[("sequenceName", object), ("K", object)])},
    "seglistall": {"seglistall": _cell("bookshelf", "floor")},
}


@pytest.mark.parametrize("reader", sorted(_FILES))
def test_every_mat_reader_refuses_in_one_line(tmp_path, reader):
    """read_split, read_name_list (seg37list.mat, seglistall.mat), read_sequence_names
    (SUNRGBDMeta.mat), read_seglistall_mat: the same guard as read_seg_mat, in a child process."""
    path = tmp_path / f"{reader}.mat"
    path.write_bytes(char_data_tagged_as_matrix(_FILES[reader]))
    res = subprocess.run([sys.executable, "-c", _READERS, reader, str(path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, preexec_fn=_limit_memory)
    assert res.returncode == 0, f"child died (exit {res.returncode}): {res.stderr[-2000:]}"
    out = res.stdout.strip()
    assert out.startswith(f"REFUSED {path}: not a readable MATLAB file (") and "\n" not in out, out


def test_sound_toolbox_files_still_read(tmp_path):
    """The same files undamaged read as before."""
    for reader, obj in _FILES.items():
        scipy.io.savemat(tmp_path / f"{reader}.mat", obj)
    assert read_split(tmp_path / "split.mat").counts() == {"train": 2, "val": 0, "test": 1}
    assert read_name_list(tmp_path / "names.mat", "seg37list") == ["bookshelf", "floor"]
    assert read_sequence_names(tmp_path / "meta.mat") == ["kv2/kinect2data/a"]
    assert sorted(n.name for n in read_seglistall_mat(tmp_path / "seglistall.mat")) == ["bookshelf", "floor"]


def test_v73_toolbox_file_keeps_scipys_message(tmp_path):
    """A v7.3 (HDF5) file where only v5 is read (seglistall.mat for `mapping import-seglistall`):
    scipy refuses it from the header and says to use an HDF5 reader; loadmat_checked leaves
    that message, rather than the walk's "unknown data type"."""
    path = tmp_path / "seglistall.mat"
    path.write_bytes(_v73_bytes(lambda f: _v73_refs(f, "seglistall", ["wall"])))
    with pytest.raises(ValueError, match="NotImplementedError: Please use HDF reader"):
        read_seglistall_mat(path)


@pytest.mark.parametrize("val", [True, False], ids=["trainvalsplit", "seeded-val"])
def test_v73_allsplit_reads_as_its_v5_twin(tmp_path, val):
    """allsplit.mat saved with -v7.3 (HDF5; the toolbox ships v5, as both real copies are) was
    refused with scipy's own "Please use HDF reader" though every other toolbox file is read in
    v7.3 too; it now reads through h5py (under h5_errors) to the split of the same file in v5."""
    v73 = tmp_path / "v73.mat"
    v73.write_bytes(_v73_bytes(lambda f: _v73_split(f, val)))
    prefix = "/n/fs/sun3d/data/SUNRGBD/"
    twin = {"alltrain": _cell(prefix + "kv2/kinect2data/a/", prefix + "kv2/b", prefix + "kv2/kinect2data/d"),
            "alltest": _cell(prefix + "kv2/kinect2data/c")}
    if val:
        twin["trainvalsplit"] = {"train": _cell(prefix + "kv2/kinect2data/a/", prefix + "kv2/b"),
                                 "val": _cell(prefix + "kv2/kinect2data/d")}
    scipy.io.savemat(tmp_path / "v5.mat", twin)
    got = read_split(v73)
    assert got == read_split(tmp_path / "v5.mat")
    assert got.counts() == ({"train": 2, "val": 1, "test": 1} if val else {"train": 3, "val": 0, "test": 1})
    assert got.of("kv2/kinect2data/c") == "test"


def test_damaged_v73_allsplit_is_one_line(tmp_path):
    """A v7.3 allsplit.mat whose cell holds numbers, or that lacks alltest: one line naming it."""
    path = tmp_path / "allsplit.mat"

    def numbers(f):
        f.create_dataset("alltrain", data=np.zeros((2, 1)))
        _v73_refs(f, "alltest", ["/x/SUNRGBD/kv2/c"])

    path.write_bytes(_v73_bytes(numbers))
    with pytest.raises(RawDataError) as e:
        read_split(path)
    assert str(e.value).startswith(f"{path}: not a readable MATLAB v7.3 file (") and "\n" not in str(e.value)
    path.write_bytes(_v73_bytes(lambda f: _v73_refs(f, "alltrain", ["/x/SUNRGBD/kv2/c"])))
    with pytest.raises(RawDataError, match="has no variable 'alltest'"):
        read_split(path)


def test_unreadable_toolbox_file_says_cannot_read(tmp_path):
    """loadmat_checked reads the bytes itself: a folder where allsplit.mat belongs is `cannot
    read (Is a directory)`, not scipy's IsADirectoryError with the path twice."""
    path = tmp_path / "allsplit.mat"
    path.mkdir()
    with pytest.raises(RawDataError) as e:
        read_split(path)
    assert str(e.value) == f"{path}: cannot read (Is a directory)"
