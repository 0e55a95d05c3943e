"""What pool workers write to stderr: C libraries' own lines (libpng, libjpeg, OpenCV) are
dropped for every batch command, Python's own and a crash's faulthandler dump are kept.

Each case runs in a fresh interpreter: workers start from a forkserver, whose stderr is the
one of the process that started it, so only a new process shows what reaches a user's console."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _run(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(TESTS), **(env or {})})


def _cli(*args: str) -> subprocess.CompletedProcess:
    return _run(f"import sys; from sunrgbd_tools.cli.main import main; sys.argv = ['sunrgbd', *{list(args)!r}]; main()")


def test_pool_drops_c_level_lines_and_keeps_python_ones():
    r = _run("from sunrgbd_tools.parallel import imap_surviving\n"
             "from workernoise import noisy\n"
             "print(sorted(imap_surviving(noisy, ['a', 'b', 'c'], 2)))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['a', 'b', 'c']"
    assert "C-LEVEL" not in r.stderr
    for t in "abc":
        assert f"PY-LEVEL {t}" in r.stderr and f"PY-WARNING {t}" in r.stderr


def test_a_crash_dump_stays_visible_with_faulthandler():
    """With PYTHONFAULTHANDLER=1 the dump of a worker's segmentation fault (where it crashed) still
    reaches the console; the parent names the task with the signal."""
    r = _run("from sunrgbd_tools.parallel import imap_surviving\n"
             "from workernoise import crash\n"
             "print(list(imap_surviving(crash, ['x'], 1, died=lambda t, s: f'died {t} {s}')))",
             env={"PYTHONFAULTHANDLER": "1"})
    assert r.returncode == 0, r.stderr
    assert "died x 11" in r.stdout
    assert "Fatal Python error: Segmentation fault" in r.stderr and "workernoise.py" in r.stderr


def test_convert_stats_verify_show_no_library_lines(tmp_path: Path):
    """A JPEG with damaged data still decodes and libjpeg printed `Corrupt JPEG data: … extraneous
    bytes` from convert's workers (raw.images.read_rgb, cv2.imdecode); a damaged PNG gave
    `libpng error: …` from stats and verify. The fd 2 redirection sits in the shared pool now,
    so each command shows its own lines only."""
    from sunrgbd_tools.synthetic.generator import make_sample

    raw = tmp_path / "raw"
    make_sample(raw, scenes=10, seed=0, quirks=False, size=(60, 80))
    jpg = sorted((raw / "SUNRGBD" / "kv2").rglob("image/*.jpg"))[-1]
    data = bytearray(jpg.read_bytes())
    for k in range(600, len(data) - 10, 97):
        data[k] ^= 0x55
    jpg.write_bytes(bytes(data))
    clean = tmp_path / "clean"
    r = _cli("convert", "--src", str(raw), "--out", str(clean), "--workers", "2", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "skipped 0" in r.stdout and r.stderr == ""

    with (clean / "manifest.csv").open(newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["split"] == "train"]
    lab = clean / rows[0]["label_ids"]
    png = bytearray(lab.read_bytes())
    png[len(png) // 2] ^= 1
    lab.write_bytes(bytes(png))
    r = _cli("stats", str(clean), "--workers", "2", "--no-progress")
    assert "libpng" not in r.stderr and r.stderr.startswith(f"problem: {lab}: "), r.stderr
    r = _cli("verify", str(clean), "--workers", "2", "--no-progress")
    assert r.returncode == 1 and "libpng" not in r.stderr and r.stderr.startswith(f"{lab}: ")
