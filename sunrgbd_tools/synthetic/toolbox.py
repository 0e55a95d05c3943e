"""SUNRGBDtoolbox/: allsplit.mat, seg37list.mat, seglistall.mat, SUNRGBDMeta.mat (MATLAB v5)
and SUNRGBD2Dseg.mat (MATLAB v7.3 = HDF5), laid out as the official toolbox files.

Why: the converter's official labels and splits, and zip-based peers, read these files;
their quirks (trailing slashes, '//' paths, object references into #refs#) are those of
the real ones (docs/synthetic.md, "Toolbox").
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from cleantree.files import atomic_path, atomic_write_bytes
from sunrgbd_tools.synthetic.plan import ScenePlan
from sunrgbd_tools.synthetic.truth import image_labels, official_lut
from sunrgbd_tools.synthetic.vocab import SEG37, SEGLISTALL
from sunrgbd_tools.synthetic.writers import cell, mat_v5_bytes

MACHINE_PREFIX = "/n/fs/sun3d/data/"  # the official toolbox's path prefix
# Fixed MAT-file header text (like writers' v5 one: no time stamp of today), padded to 116
# bytes with spaces as MATLAB does; the HDF5 user block holds it.
_V73_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Feb 26 14:12:51 2015 "
    b"HDF5 schema 1.00 ."
)


def _split_path(plan: ScenePlan) -> str:
    return f"{MACHINE_PREFIX}SUNRGBD/{plan.key}" + ("/" if plan.slash else "")


def write_allsplit(root: Path, plans: list[ScenePlan]) -> None:
    train = [_split_path(p) for p in plans if p.split == "train"]
    val = [_split_path(p) for p in plans if p.split == "val"]
    test = [_split_path(p) for p in plans if p.split == "test"]
    alltrain = [_split_path(p) for p in plans if p.split in ("train", "val")]
    tv = np.zeros((1, 1), dtype=[("train", object), ("val", object)])
    tv[0, 0]["train"] = cell(train, (len(train), 1))
    tv[0, 0]["val"] = cell(val, (len(val), 1))
    data = mat_v5_bytes({"alltest": cell(test), "alltrain": cell(alltrain), "trainvalsplit": tv})
    atomic_write_bytes(root / "SUNRGBDtoolbox" / "traintestSUNRGBD" / "allsplit.mat", data)


def write_meta(root: Path, plans: list[ScenePlan]) -> None:
    md = root / "SUNRGBDtoolbox" / "Metadata"
    atomic_write_bytes(md / "seg37list.mat", mat_v5_bytes({"seg37list": cell(list(SEG37))}))
    atomic_write_bytes(md / "seglistall.mat", mat_v5_bytes({"seglistall": cell(list(SEGLISTALL))}))
    fields = ["sequenceName", "groundtruth3DBB", "Rtilt", "K", "depthpath", "rgbpath",
              "anno_extrinsics", "depthname", "rgbname", "sensorType", "valid"]
    meta = np.zeros((1, len(plans)), dtype=[(f, object) for f in fields])
    for i, p in enumerate(plans):
        e = meta[0, i]
        seq = f"SUNRGBD/{p.key}"
        e["sequenceName"] = seq
        e["groundtruth3DBB"] = np.zeros((0, 0))
        e["Rtilt"] = p.extrinsics[-1][1][:, :3].T.copy()
        e["K"] = p.intrinsics.copy()
        # the real paths carry '//' where the allsplit entry ends in '/' (tools that match
        # rgbpath minus /image/<file> against allsplit by exact string rely on it)
        folder = f"{MACHINE_PREFIX}{seq}/" + ("/" if p.slash else "")
        e["depthpath"] = f"{folder}depth_bfx/{p.depth_file}.png"
        e["rgbpath"] = f"{folder}image/{p.frame}.jpg"
        e["anno_extrinsics"] = p.extrinsics[-1][1][:, :3].copy()
        e["depthname"] = f"{p.depth_file}.png"
        e["rgbname"] = f"{p.frame}.jpg"
        e["sensorType"] = p.sensor
        e["valid"] = np.array([[1.0]])
    atomic_write_bytes(md / "SUNRGBDMeta.mat", mat_v5_bytes({"SUNRGBDMeta": meta}))


def _ascii_attr(obj, name: str, value: str) -> None:
    """A fixed-length, NUL-terminated ASCII attribute, the way MATLAB writes MATLAB_class."""
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(value) + 1 if value else 1)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    if name in obj.attrs:
        del obj.attrs[name]
    aid = h5py.h5a.create(obj.id, name.encode(), tid, h5py.h5s.create(h5py.h5s.SCALAR))
    aid.write(np.array(value.encode(), dtype=f"S{len(value) + 1}"))


def _ref_name(i: int) -> str:
    """MATLAB-style names for #refs# members: a, b, ..., z, ba, bb, ..."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    s = letters[i % 26]
    i //= 26
    while i:
        s = letters[i % 26] + s
        i //= 26
    return s


def write_2dseg(root: Path, plans: list[ScenePlan]) -> list[list[str]]:
    """SUNRGBD2Dseg.mat in MATLAB v7.3 layout (HDF5 with a 512-byte MAT header).
    Returns each scene's names (so they are painted once)."""
    path = root / "SUNRGBDtoolbox" / "Metadata" / "SUNRGBD2Dseg.mat"
    pos = {n: i + 1 for i, n in enumerate(SEGLISTALL)}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=512, libver="earliest") as f:
            refs = f.create_group("#refs#")
            empty = refs.create_dataset("a", data=np.array([0, 0], np.uint64))
            _ascii_attr(empty, "MATLAB_class", "canonical empty")
            empty.attrs.create("MATLAB_empty", np.uint8(1))
            g = f.create_group("SUNRGBD2Dseg")
            _ascii_attr(g, "MATLAB_class", "struct")
            fl = np.empty(2, dtype=h5py.vlen_dtype(np.dtype("S1")))
            for i, n in enumerate(("seglabel", "seglabelall")):
                fl[i] = np.array(list(n), dtype="S1")
            g.attrs.create("MATLAB_fields", fl)
            r37 = np.empty((len(plans), 1), dtype=h5py.ref_dtype)
            rall = np.empty((len(plans), 1), dtype=h5py.ref_dtype)
            n = 1
            all_names = []
            for i, p in enumerate(plans):
                lab, names = image_labels(p)
                all_names.append(names)
                lut37 = official_lut(p, names)
                lutall = np.array([0] + [pos[x] for x in names], np.uint16)
                for arr, out, cls in ((lut37[lab], r37, "uint8"), (lutall[lab], rall, "uint16")):
                    ds = refs.create_dataset(_ref_name(n), data=np.ascontiguousarray(arr.T),
                                             compression="gzip", compression_opts=3, chunks=True)
                    _ascii_attr(ds, "MATLAB_class", cls)
                    out[i, 0] = ds.ref
                    n += 1
            g.create_dataset("seglabel", data=r37)
            g.create_dataset("seglabelall", data=rall)
        with open(tmp, "r+b") as fh:
            fh.write(_V73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    return all_names
