"""Process pools that stay safe once OpenCV or h5py have started threads.

Forking a process whose libraries run thread pools can deadlock the child: we saw a
forked convert worker hang forever in `cv2.setNumThreads` after the parent had used
OpenCV. Every pool therefore starts its workers from a clean forkserver (spawn where there
is none), which is also Python's default from 3.14.
"""

from __future__ import annotations

import multiprocessing as mp


def pool_context():
    """The multiprocessing context every per-sample pool in this package uses."""
    return mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
