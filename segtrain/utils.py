"""Small helpers segtrain shares: atomic writes, PNG I/O, environment info.

segtrain never imports sunrgbd_tools (it only knows the clean-tree contract), so the few
file helpers it needs live here instead of being borrowed from the converter.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import cv2
import numpy as np


class SegtrainError(Exception):
    """A problem with the user's input (paths, files, flags): reported as one line, exit 2."""


@cache
def _file_mode() -> int:
    """Mode for new files: 0o666 minus the umask (mkstemp itself creates 0600 files).
    Read once: os.umask can only be read by setting it."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _file_mode())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an RGB (H, W, 3) or single-channel array as PNG, atomically."""
    arr = array[:, :, ::-1] if array.ndim == 3 else array  # cv2 wants BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr))
    if not ok:
        raise SegtrainError(f"{path}: could not encode PNG")
    atomic_write_bytes(path, buf.tobytes())


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); a clear error when it cannot be read."""
    if not Path(path).is_file():
        raise SegtrainError(f"{path}: file not found")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SegtrainError(f"{path}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_unchanged(path: str | os.PathLike) -> np.ndarray:
    """Read a label or depth PNG without any conversion (uint8 / uint16, one channel)."""
    if not Path(path).is_file():
        raise SegtrainError(f"{path}: file not found")
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise SegtrainError(f"{path}: not a readable image")
    if arr.ndim != 2:
        raise SegtrainError(f"{path}: expected a single-channel image, got shape {arr.shape}")
    return arr


def parse_hw(text: str | None) -> tuple[int, int] | None:
    """Parse 'HxW' (e.g. 480x640) into (H, W); None/'' stays None."""
    if text is None or text == "" or text == "none":
        return None
    if isinstance(text, list | tuple):
        h, w = (int(v) for v in text)
    else:
        parts = str(text).lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise SegtrainError(f"size {text!r} is not HxW, e.g. 480x640")
        h, w = (int(p) for p in parts)
    if h <= 0 or w <= 0:
        raise SegtrainError(f"size {text!r} must be positive")
    return h, w


PARTS = ("encoder", "decoder", "head")


def parse_parts(text: str | Iterable[str]) -> tuple[str, ...]:
    """'head' | 'decoder,head' | 'all' (also 'decoder+head') -> parts in model order."""
    items = text if not isinstance(text, str) else text.replace("+", ",").replace(" ", ",").split(",")
    items = [i.strip() for i in items if i and i.strip()]
    if items == ["all"]:
        return PARTS
    bad = sorted(set(items) - set(PARTS))
    if bad or not items:
        raise ValueError(f"train parts {','.join(items) or '(none)'!r} invalid: give all or a comma list of "
                         f"{', '.join(PARTS)} (e.g. head, decoder,head)")
    return tuple(p for p in PARTS if p in items)


def parts_label(parts: Iterable[str]) -> str:
    parts = tuple(parts)
    return "all" if parts == PARTS else ",".join(parts)


def environment_info(device: str = "cpu") -> dict:
    """Versions and hardware a run used, saved next to its outputs for reproducibility."""
    import torch

    from segtrain.transforms import albumentations_version

    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "albumentations": albumentations_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "cuda_available": torch.cuda.is_available(),
        "cuda": torch.version.cuda,
        "command": " ".join(sys.argv),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cudnn"] = torch.backends.cudnn.version()
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    return info
