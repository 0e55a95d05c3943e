"""How long `sunrgbd --help` (and each command's `--help`) takes, in fresh interpreters, against
the floor of starting Python with click imported, and optionally against another checkout.

    python benchmarks/bench_cli_help.py [--repeats 20] [--baseline DIR]

`--baseline DIR` times a checkout of an earlier commit the same way, in the same run
(e.g. `git archive <commit> | tar -x -C DIR`): its package is put first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from benchutil import best

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [[], ["convert"], ["sample"], ["stats"], ["download"], ["pack"], ["fetch"], ["mapping"]]
HEAVY = ("numpy", "scipy", "cv2", "h5py", "urllib3")


def run(args: list[str], src: Path) -> list[str]:
    """`sunrgbd ARGS --help` from checkout `src`; returns the HEAVY modules it imported."""
    code = (f"import sys\nfrom sunrgbd_tools.cli.main import main\ntry:\n    main({args + ['--help']!r})\n"
            f"except SystemExit:\n    pass\nprint(*[m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": str(src)}
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=src, capture_output=True, text=True, check=True)
    return r.stderr.split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--baseline", type=Path, default=None)
    a = ap.parse_args()
    floor = best(lambda: subprocess.run([sys.executable, "-c", "import click"], check=True), a.repeats)
    print(f"floor (python -c 'import click'): {floor * 1000:.0f} ms")
    trees = [("now", ROOT)] + ([("baseline", a.baseline.resolve())] if a.baseline else [])
    print("| command | " + " | ".join(f"{n} ms (× floor), loads" for n, _ in trees) + " |")
    print("|---|" + "---|" * len(trees))
    for args in COMMANDS:
        cells = []
        for _name, src in trees:
            t = best(lambda src=src, args=args: run(args, src), a.repeats)
            cells.append(f"{t * 1000:.0f} ({t / floor:.2f}×), {' '.join(run(args, src)) or '-'}")
        print(f"| `sunrgbd {' '.join(args + ['--help'])}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
