"""cv2.imread in a batch worker without libpng's console lines.

libpng, inside OpenCV, writes `libpng error: Read Error`, `libpng error: IDAT: CRC error` or
`libpng warning: …` straight to file descriptor 2 when a PNG is damaged; Python cannot catch
or silence it, and OpenCV's log level does not cover it. `stats` and `verify` report such a
file in one line of their own, so the library's line was noise between progress bars and
problems (and said nothing of which file). Their pool workers (child processes, one thread)
read through `imread` below: fd 2 points at a scratch file for the call and is restored after.
Never use it where other threads may write to stderr at the same time (their lines would be
swallowed): a pool of threads, the main process of a command with a progress bar.
"""

from __future__ import annotations

import os
import sys
import tempfile

import cv2

_scratch = None  # one per process, reused: emptied after every call


def imread(path: str | os.PathLike, flags: int):
    """cv2.imread(path, flags) with whatever the C libraries print to stderr meanwhile
    discarded. Returns what cv2.imread returns (None when the file does not decode)."""
    global _scratch
    if _scratch is None:
        _scratch = tempfile.TemporaryFile()
    sys.stderr.flush()  # Python's own pending text goes where it was going
    saved = os.dup(2)
    try:
        os.dup2(_scratch.fileno(), 2)
        return cv2.imread(str(path), flags)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        _scratch.seek(0)
        _scratch.truncate()
