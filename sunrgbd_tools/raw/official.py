"""The toolbox's own labels: SUNRGBD2Dseg.mat (MATLAB v7.3 = HDF5) and its name lists.

SUNRGBD2Dseg(i) has no scene name of its own; entry i belongs to
SUNRGBDMeta(i).sequenceName. Struct fields are Nx1 arrays of HDF5 object references and
each referenced image is stored transposed (MATLAB is column-major).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sunrgbd_tools.raw.base import RawDataError
from sunrgbd_tools.raw.matfile import (
    cell_strings,
    check_label_image,
    h5_array,
    h5_cell_strings,
    h5_errors,
    h5_file,
    is_mat_v73,
    loadmat_checked,
)
from sunrgbd_tools.raw.splits import normalise_scene_path

METADATA = Path("SUNRGBDtoolbox/Metadata")
SEG2D_FILE = METADATA / "SUNRGBD2Dseg.mat"
META_FILE = METADATA / "SUNRGBDMeta.mat"
SEGLISTALL_FILE = METADATA / "seglistall.mat"
SEG37_FILE = METADATA / "seg37list.mat"


def read_name_list(path: Path, variable: str) -> list[str]:
    """A 1xN cell of char saved by MATLAB (v5 or v7.3) → list of str."""
    if not path.exists():
        raise RawDataError(path, "file not found")
    if is_mat_v73(path):
        with h5_file(path) as f:
            if variable not in f:
                raise RawDataError(path, f"has no variable {variable!r}")
            return h5_cell_strings(f, f[variable])
    m = loadmat_checked(path, variable_names=[variable])
    if variable not in m:
        raise RawDataError(path, f"has no variable {variable!r}")
    return cell_strings(m[variable])


def read_sequence_names(path: Path) -> list[str]:
    """SUNRGBDMeta.mat → scene key of every entry, in file order."""
    if not path.exists():
        raise RawDataError(path, "file not found (it maps SUNRGBD2Dseg entries to scenes)")
    if is_mat_v73(path):
        with h5_file(path) as f:
            meta = f.get("SUNRGBDMeta")
            if meta is None or not hasattr(meta, "get") or meta.get("sequenceName") is None:
                raise RawDataError(path, "has no SUNRGBDMeta.sequenceName")
            return [normalise_scene_path(s) for s in h5_cell_strings(f, meta["sequenceName"])]
    m = loadmat_checked(path, variable_names=["SUNRGBDMeta"])
    meta = m.get("SUNRGBDMeta")
    if meta is None or not meta.dtype.names or "sequenceName" not in meta.dtype.names:
        raise RawDataError(path, "has no SUNRGBDMeta.sequenceName")
    return [normalise_scene_path(s) for s in cell_strings(meta["sequenceName"].ravel())]


# SUNRGBD2Dseg field read per label mode: `official` is SUN RGB-D's own seg37 labelling as
# stored (the one every published number uses); `official-all` is the full-vocabulary
# labelling, whose names go through our mapping (so Other and Computer exist).
FIELDS = {"official": "seglabel", "official-all": "seglabelall"}


def check_seg37_order(src: Path, table) -> None:
    """`--labels official` keeps seglabel's values as class ids, which is right only when
    the class table's seg37 group (classes.csv `group`) is seg37list, in order, at ids
    1, 2, …; a toolbox without seg37list.mat is taken to be the standard one."""
    path = Path(src) / SEG37_FILE
    if not path.exists():
        return
    seg37 = read_name_list(path, "seg37list")
    for i, a in enumerate(seg37, start=1):
        b = table.by_id[i].name if i in table.by_id else ""
        if a.strip() != b:
            raise RawDataError(path, f"seg37list({i}) is {a!r} but class id {i} of the class table is "
                                     f"{b!r}; --labels official keeps seglabel values as class ids")
    if table.seg37_ids != tuple(range(1, len(seg37) + 1)):
        raise RawDataError(path, f"the class table's seg37 group (classes.csv `group`) is not ids 1..{len(seg37)}; "
                                 "--labels official keeps seglabel values as class ids")


class OfficialLabels:
    """Random access to SUNRGBD2Dseg entries by scene key; opens the HDF5 file lazily so
    each worker process holds its own handle."""

    def __init__(self, src: Path, mode: str = "official", needed_for: str | None = None):
        self.src = Path(src)
        self.mode = mode
        self.field = FIELDS[mode]
        self.seg_path = self.src / SEG2D_FILE
        if not self.seg_path.exists():  # `mapping audit` has no --labels: it says what it is for
            raise RawDataError(self.seg_path, f"file not found (needed for {needed_for or '--labels ' + mode}; "
                                              "`sunrgbd download --with-official-labels` fetches it)")
        keys = read_sequence_names(self.src / META_FILE)
        self.index = {k: i for i, k in enumerate(keys)}
        self.seglistall = None
        if self.field == "seglabelall":
            names_path = self.src / SEGLISTALL_FILE
            if not names_path.exists():
                raise RawDataError(names_path, "file not found (--labels official-all maps seglabelall "
                                               "through it; --labels official needs only seglabel)")
            self.seglistall = read_name_list(names_path, "seglistall")
        self._file = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        return state

    def _open(self):
        if self._file is None:
            import h5py

            with h5_errors(self.seg_path):
                self._file = h5py.File(self.seg_path, "r")
        return self._file

    def check(self) -> None:
        """Open SUNRGBD2Dseg.mat once and find its field, before any scene is read: a file that
        cannot be opened (truncated, not HDF5) or lacks the field fails every scene alike, so it
        is one RawDataError here, not one identical line per scene (convert and the audit)."""
        import h5py

        with h5_errors(self.seg_path), h5py.File(self.seg_path, "r") as f:
            group = f.get("SUNRGBD2Dseg")
            if group is None or not hasattr(group, "get") or group.get(self.field) is None:
                raise RawDataError(self.seg_path, f"has no SUNRGBD2Dseg.{self.field}")

    def read(self, key: str) -> tuple[np.ndarray, list[str] | None]:
        """Label image of `key` (HxW int32) and the names its values index (1-based, for
        seglabelall), or None when the values are seg37 ids as stored (seglabel)."""
        i = self.index.get(key)
        if i is None:
            raise RawDataError(self.src / META_FILE, f"no entry for scene {key}")
        f = self._open()
        field = self.field
        with h5_errors(self.seg_path):
            group = f.get("SUNRGBD2Dseg")
            if group is None or not hasattr(group, "get") or group.get(field) is None:
                raise RawDataError(self.seg_path, f"has no SUNRGBD2Dseg.{field}")
            refs = group[field]
            if i >= refs.size:
                raise RawDataError(self.seg_path, f"{field} has {refs.size} entries, scene {key} is entry {i + 1}")
            # one reference read, not the whole field (10,335 of them) per scene
            img = h5_array(f[refs[np.unravel_index(i, refs.shape)]]).T
        return check_label_image(self.seg_path, img, f"{field}({i + 1})"), self.seglistall
