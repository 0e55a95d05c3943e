"""What every raw reader shares: the error that names a file and its problem, the sensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SENSORS = ("kv1", "kv2", "realsense", "xtion")
# the two official archives: the data (top folder SUNRGBD/) and the toolbox (SUNRGBDtoolbox/)
DATA_ZIP = "SUNRGBD.zip"
TOOLBOX_ZIP = "SUNRGBDtoolbox.zip"


class RawDataError(Exception):
    """A raw file is missing or unusable; the message is `<path>: <problem>`."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class UnreadableFile(RawDataError):
    """The file is there but cannot be read (permissions, I/O): the scene is skipped rather
    than written with a part missing."""


def read_bytes(path: Path) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise RawDataError(path, "file not found") from None
    except OSError as e:
        raise UnreadableFile(path, f"cannot read ({e.strerror or type(e).__name__})") from None

