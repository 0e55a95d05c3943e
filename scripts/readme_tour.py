"""Regenerate (or check) the example outputs of README.md's tour, and the command outputs
pasted into docs/ pages, by running their commands.

    python scripts/readme_tour.py           # rewrite the blocks between <!-- tour:NAME --> markers
    python scripts/readme_tour.py --check   # exit 1 (and print a diff) when a page differs
    python scripts/readme_tour.py --check --part sunrgbd   # only README's sunrgbd blocks (make test)
    python scripts/readme_tour.py --check --part docs      # only the docs/ pages (real data)

Why: hand-copied outputs drift (issue 15 found convert, pack and eval examples stale). The
commands run in a fresh temporary folder on the built-in synthetic sample, with relative
paths, so the outputs are the same on every machine; what varies (seconds, the trained
model's scores) is masked as `…`, long scene names are shortened as in the prose, and long
outputs are cut with `…` where the README shows only their head (and tail). Only the marked
blocks are touched. The tools are taken from the virtual environment this script runs in.
docs/mapping.md's report block runs in the repository root on the real files in
../shared/realdata (where tests/conftest.py looks); without them that page is skipped with a note.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REALDATA = ROOT.parent / "shared" / "realdata"


@dataclass
class Cmd:
    shown: str  # the command line as the README shows it (a trailing `# comment` is not run)
    stderr: bool = False  # show stderr (problem lines) merged with stdout
    head: int | None = None  # keep the first `head` lines, then `…`
    tail: int = 0  # … and the last `tail` lines
    keep: str | None = None  # show only the lines matching this regular expression
    first_lines: int | None = None  # stop the command once it printed this many (kept) lines
    run: bool = True  # False: shown without output (too slow or machine-specific)
    setup: list[str] = field(default_factory=list)  # shell commands run first, not shown


@dataclass
class Block:
    name: str
    cmds: list[Cmd]
    raw: bool = False  # the output itself (markdown), not a console transcript of the commands
    in_repo: bool = False  # run in the repository root (real-data paths), not the temporary folder
    part: str = "sunrgbd"  # --part that selects it: sunrgbd, segtrain or docs


@dataclass
class Page:
    path: Path
    blocks: list[Block]
    needs: Path | None = None  # skipped with a note when this is missing


CONVERT = "sunrgbd convert --subset kv2 --src raw/ --out clean/ --size 240x320"
TOUR = [
    Block("sample", [Cmd("sunrgbd sample --out raw/ --scenes 40 --seed 0")]),
    Block("convert", [Cmd(CONVERT, stderr=True), Cmd("sunrgbd verify clean/")]),
    Block("mapping", [
        Cmd('sunrgbd mapping lookup chair2 computor "night stand" officechair celing CubicleWall chairleg'),
        Cmd("sunrgbd mapping check clean/", head=4),
    ]),
    Block("stats", [Cmd("sunrgbd stats clean/ --weights", head=4, tail=5)]),
    Block("pack", [
        Cmd("sunrgbd pack clean/ --out kv2-demo.zip"),
        Cmd("sunrgbd fetch ./kv2-demo.zip --dest fetched/      # or an http(s) URL"),
    ]),
    Block("segtrain", part="segtrain", cmds=[
        Cmd("segtrain models", head=3),
        Cmd("segtrain run unet_small --data clean/ --out runs/unet_small --epochs 40 --batch-size 8 --lr 3e-3",
            stderr=True, keep=r"^segtrain: epoch ", first_lines=1),
        Cmd("segtrain eval runs/unet_small/best.pt --data clean/ --split test --out reports/", stderr=True),
        Cmd("segtrain predict runs/unet_small/best.pt photos/ --out preds/", stderr=True,
            setup=["mkdir -p photos && cp $(ls clean/leftImg8bit/test/kv2/*.png | LC_ALL=C sort | head -2) photos/"]),
        Cmd("segtrain bench --model unet_small --data clean/ --size 120x160 --device cpu", run=False),
    ]),
]
_REAL = "../shared/realdata/"
MAPPING_REPORT = Block("mapping-report", raw=True, in_repo=True, part="docs", cmds=[Cmd(
    "sunrgbd mapping report"
    f" --real-names {_REAL}Yannick947-data_generator_sunrgbd/sunrgbd_generator/class_map_detected_full.json"
    f" --frequencies {_REAL}ryanlearnscs50-sunrgbd-exploration/01_class_frequencies/class_frequencies.csv"
    f" --scannet {_REAL}ScanNet-labels/scannetv2-labels.combined.tsv")])
PAGES = [Page(README, TOUR), Page(ROOT / "docs" / "mapping.md", [MAPPING_REPORT], needs=REALDATA)]
PARTS = ("all", "sunrgbd", "segtrain", "docs")

MASKS = [
    (re.compile(r"\b(\d{6})_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_rgbf\d+-resize"), r"\1_…-resize"),
    (re.compile(r" in \d+(\.\d+)?s\b"), " in …s"),  # sample's wall time
    (re.compile(r"  \d+(\.\d+)? s$"), "  … s"),  # segtrain's epoch time
    (re.compile(r"\b(mIoU|pixel accuracy|train_loss|val_loss|val_mIoU) \d+\.\d+"), r"\1 …"),
]


def _mask(line: str, tmp: str) -> str:
    line = line.replace(tmp + os.sep, "").replace(tmp, ".")
    for rx, sub in MASKS:
        line = rx.sub(sub, line)
    return line.rstrip()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(TQDM_DISABLE="1", OMP_NUM_THREADS="1", NO_ALBUMENTATIONS_UPDATE="1", COLUMNS="200",
               PYTHONHASHSEED="0")
    env.pop("OPENCV_LOG_LEVEL", None)
    return env


def _run(cmd: Cmd, cwd: Path, env: dict[str, str]) -> list[str]:
    for sh in cmd.setup:
        subprocess.run(sh, shell=True, cwd=cwd, env=env, check=True)
    if not cmd.run:
        return []
    argv = shlex.split(cmd.shown, comments=True)
    proc = subprocess.Popen(argv, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if cmd.stderr else subprocess.DEVNULL,
                            start_new_session=True)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if "\r" in line or (cmd.keep and not re.search(cmd.keep, line)):  # progress bars, unwanted lines
            continue
        lines.append(line.rstrip("\n"))
        if cmd.first_lines is not None and len(lines) >= cmd.first_lines:
            _wait_for_checkpoint(cwd, argv)
            os.killpg(proc.pid, signal.SIGINT)  # enough shown; the run keeps its checkpoint
            break
    proc.stdout.close()
    rc = proc.wait(timeout=600)
    if rc != 0 and cmd.first_lines is None:
        raise SystemExit(f"readme_tour: `{cmd.shown}` exited {rc}:\n" + "\n".join(lines))
    return lines


def _wait_for_checkpoint(cwd: Path, argv: list[str], timeout: float = 300) -> None:
    """The epoch line is printed before best.pt is saved: wait for the file."""
    best = cwd / argv[argv.index("--out") + 1] / "best.pt"
    deadline = time.monotonic() + timeout
    while not best.is_file():
        if time.monotonic() > deadline:
            raise SystemExit(f"readme_tour: {best} was not written after the first epoch")
        time.sleep(0.2)
    time.sleep(0.5)  # let the writer finish its rename and close


def render(block: Block, cwd: Path, env: dict[str, str]) -> str:
    out = [] if block.raw else ["```console"]
    for cmd in block.cmds:
        lines = [_mask(ln, str(cwd)) for ln in _run(cmd, cwd, env)]
        if cmd.head is not None and len(lines) > cmd.head + cmd.tail:
            lines = lines[:cmd.head] + ["…"] + (lines[-cmd.tail:] if cmd.tail else [])
        out += lines if block.raw else [f"$ {cmd.shown}", *lines]
        if cmd.first_lines is not None:
            out.append("…")
    if not block.raw:
        out.append("```")
    return "\n".join(out) + "\n"


def regenerate(text: str, blocks: list[Block] = TOUR, run_all: list[Block] | None = None,
               where: str = "README.md") -> str:
    """`text` with the blocks in `blocks` rewritten. The blocks of `run_all` (default: `blocks`)
    run in order in one temporary folder, so a block can use what an earlier one made (the
    segtrain block trains on the converted tree) without being rewritten itself."""
    tmp = Path(tempfile.mkdtemp(prefix="readme-tour-")).resolve()
    try:
        env = _env()
        for block in blocks if run_all is None else run_all:
            start, end = f"<!-- tour:{block.name} -->\n", f"<!-- /tour:{block.name} -->"
            i, j = text.find(start), text.find(end)
            if i < 0 or j < i:
                raise SystemExit(f"readme_tour: {where} has no {start.strip()} … {end} markers")
            shown = render(block, ROOT if block.in_repo else tmp, env)
            if block in blocks:
                text = text[:i + len(start)] + shown + text[j:]
        return text
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _selected(page: Page, part: str) -> tuple[list[Block], list[Block]]:
    """(blocks rewritten, blocks run) of `page` for --part: a block runs when it or a later
    selected block of the page needs it (README's blocks build on each other in order)."""
    chosen = [b for b in page.blocks if part in ("all", b.part)]
    if not chosen:
        return [], []
    return chosen, page.blocks[:page.blocks.index(chosen[-1]) + 1]


def check_page(page: Page, part: str = "all", write: bool = False) -> int:
    """0 when the page's selected blocks are up to date (or were rewritten), 1 when stale."""
    blocks, run_all = _selected(page, part)
    if not blocks:
        return 0
    name = page.path.relative_to(ROOT) if page.path.is_relative_to(ROOT) else page.path
    if page.needs is not None and not page.needs.exists():
        print(f"{name}: skipped, {page.needs} not found")
        return 0
    old = page.path.read_text(encoding="utf-8")
    new = regenerate(old, blocks, run_all, str(name))
    if new == old:
        print(f"{name}: tour outputs up to date")
        return 0
    if write:
        page.path.write_text(new, encoding="utf-8")
        print(f"{name}: tour outputs rewritten")
        return 0
    sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                               str(page.path), "regenerated"))
    print(f"{name}: tour outputs are stale; run `make readme`", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a page differs; write nothing")
    ap.add_argument("--readme", type=Path, default=README, help="the README to regenerate (default: the repository's)")
    ap.add_argument("--part", choices=PARTS, default="all",
                    help="sunrgbd: README's sunrgbd blocks (integer and byte outputs, deterministic); "
                         "segtrain: its training block; docs: the docs/ pages (real data); default all")
    args = ap.parse_args(argv)
    pages = [Page(args.readme, TOUR), *PAGES[1:]]
    return max(check_page(p, args.part, write=not args.check) for p in pages)


if __name__ == "__main__":
    sys.exit(main())
