"""The `segtrain` CLI as the acceptance and bad-input tests drive it: invoke, the one error
line of a failed command, a folder's bytes (to prove nothing was written), and the command
run in a child process without root's capability to read and write other users' files; and
the tiny tree and one-epoch checkpoint those tests share."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from treebuilder import write_clean_tree

from segtrain.cli import main

TINY = ["--model-opt", "base_width=4", "--model-opt", "depth=2"]  # unet_small in a few milliseconds
FAST = ["--workers", 0, "--device", "cpu", "--augment", "none", *TINY]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def error_line(result) -> str:
    """The single 'Error: ...' line of a failed command, with no traceback anywhere."""
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _unprivileged() -> list[str]:
    """A prefix that runs a command without the capability to read other users' files (root
    reads a chmod 000 file otherwise); empty when we are not root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    caps = "-dac_override,-dac_read_search"
    prefix = [setpriv, "--bounding-set", caps, "--inh-caps", caps]
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("setpriv cannot drop capabilities here")
    return prefix


def segtrain_unprivileged(*args) -> subprocess.CompletedProcess:
    """`python -m segtrain ARGS` in a child process, with chmod biting as for a normal user."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*_unprivileged(), sys.executable, "-m", "segtrain", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def tiny_tree(tmp_path_factory, name: str):
    """Train 4 / val 2 / test 3 images of 32x48 from two sensors."""
    return write_clean_tree(tmp_path_factory.mktemp(name) / "data", counts={"train": 4, "val": 2, "test": 3},
                            size=(32, 48), sensors=("kv2", "kv1"))


def tiny_checkpoint(tree, tmp_path_factory, name: str) -> Path:
    """last.pt of a one-epoch unet_small run on `tree`."""
    out = tmp_path_factory.mktemp(name) / "run"
    r = invoke("run", "unet_small", "--data", tree.root, "--out", out, "--epochs", 1, "--batch-size", 2, *FAST)
    assert r.exit_code == 0, r.output
    return out / "last.pt"
