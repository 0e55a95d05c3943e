"""Pool tasks that write to stderr the ways a worker can (tests/test_worker_stderr.py): a C
library straight to file descriptor 2, Python through sys.stderr, and a warning."""

from __future__ import annotations

import os
import sys
import warnings


def noisy(task: str) -> str:
    os.write(2, f"C-LEVEL {task}\n".encode())  # as libpng/libjpeg do
    print(f"PY-LEVEL {task}", file=sys.stderr)
    warnings.warn(f"PY-WARNING {task}", UserWarning, stacklevel=1)
    return task


def crash(task: str) -> str:
    import ctypes

    ctypes.string_at(0)  # a segmentation fault, as in a C library
    return task
