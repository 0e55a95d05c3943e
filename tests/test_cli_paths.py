"""The `sunrgbd` shells: output paths under a file are usage errors, recorded commands leave
out cosmetic flags, and library noise (OpenCV) never reaches the console (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from treebuilder import write_clean_tree

from sunrgbd_tools.cli.common import recorded_command
from sunrgbd_tools.cli.main import main

SUNRGBD = [sys.executable, "-c", "from sunrgbd_tools.cli.main import main; main()"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return write_clean_tree(tmp_path_factory.mktemp("cli") / "clean", counts={"train": 2, "val": 1}).root


@pytest.mark.parametrize("args", [
    ["pack", "{clean}", "--out", "{f}/x.zip"],
    ["sample", "--out", "{f}/raw", "--scenes", "2"],
    ["convert", "--src", "{clean}", "--out", "{f}/deeper/c"],
    ["mapping", "suggest", "{clean}", "-o", "{f}/s.csv"],
    ["mapping", "check", "{clean}", "--csv", "{f}/c.csv"],
    ["mapping", "import-seglistall", "{clean}/dataset.json", "--out", "{f}/n.csv"],
    ["fetch", "{clean}/nothing.zip", "--dest", "{f}/d"],
    ["download", "--dest", "{f}/d", "--base-url", "http://127.0.0.1:9/"],
])
def test_output_under_a_file_is_a_usage_error(clean: Path, tmp_path: Path, args: list[str]):
    f = tmp_path / "afile"
    f.write_text("mine\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    res = CliRunner().invoke(main, [a.format(clean=clean, f=f) for a in args])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and f"{f} is a file, not a folder" in errors[0], res.output
    assert "Traceback" not in res.output
    assert f.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == before


def test_pack_records_no_cosmetic_flags(clean: Path, tmp_path: Path):
    """The same data packed with and without --no-progress gives identical archives."""
    arc = tmp_path / "k.zip"
    blobs = []
    for extra in ([], ["--no-progress"]):
        res = CliRunner().invoke(main, ["pack", *extra, str(clean), "--out", str(arc)])
        assert res.exit_code == 0, res.output
        blobs.append(arc.read_bytes())
        sheet = zipfile.ZipFile(arc).read("DATASHEET.md").decode()
        assert f"sunrgbd pack {clean.name} --out {arc.name}" in sheet and "--no-progress" not in sheet
        arc.unlink()
    assert blobs[0] == blobs[1]


def test_pack_records_the_tree_and_out_by_name(clean: Path, tmp_path: Path, monkeypatch):
    """DATASHEET.md recorded the pack command as typed: the same tree packed from another folder
    or by an absolute path gave other archive bytes, and an absolute path put the user's home
    folder into a shared archive. The tree and --out are recorded by their names."""
    blobs, sheets = [], []
    out = tmp_path / "out"
    out.mkdir()
    for cwd, tree, arc in ((clean.parent, clean.name, "k.zip"), (out, str(clean), str(out / "k.zip")),
                           (tmp_path, os.path.relpath(clean, tmp_path) + "/", "out/./k.zip")):
        monkeypatch.chdir(cwd)
        res = CliRunner().invoke(main, ["pack", tree, "--out", arc, "--no-progress"])
        assert res.exit_code == 0, res.output
        blobs.append(Path(arc).read_bytes())
        sheets.append(zipfile.ZipFile(arc).read("DATASHEET.md").decode())
        Path(arc).unlink()
    assert blobs[0] == blobs[1] == blobs[2]
    assert f"  sunrgbd pack {clean.name} --out k.zip\n" in sheets[0] and str(tmp_path) not in sheets[0]
    # other options stay as typed, values after `=` too
    monkeypatch.chdir(clean.parent)
    res = CliRunner().invoke(main, ["pack", f"{clean}/", "--format=zip", f"--out={out / 'k.zip'}", "--strict"])
    assert res.exit_code == 0, res.output
    sheet = zipfile.ZipFile(out / "k.zip").read("DATASHEET.md").decode()
    assert f"  sunrgbd pack {clean.name} --format=zip --out=k.zip\n" in sheet
    # a tree named after `--` (it could start with '-') is recorded by its name too
    (out / "k.zip").unlink()
    res = CliRunner().invoke(main, ["pack", "--out", str(out / "k.zip"), "--no-progress", "--", str(clean)])
    assert res.exit_code == 0, res.output
    sheet = zipfile.ZipFile(out / "k.zip").read("DATASHEET.md").decode()
    assert f"  sunrgbd pack --out k.zip -- {clean.name}\n" in sheet and str(tmp_path) not in sheet


def test_recorded_command_drops_every_spelling_of_cosmetic_options():
    @click.group()
    def root():
        pass

    @root.command()
    @click.argument("src")
    @click.option("--out")
    @click.option("-j", "--jobs", type=int)
    @click.option("--workers", type=int)
    @click.option("--progress/--no-progress", default=True)
    @click.option("--strict", is_flag=True)
    @click.pass_context
    def cmd(ctx, **kw):
        click.echo(recorded_command(ctx))

    from sunrgbd_tools.cli.common import remember_argv

    class Root(click.Group):
        def parse_args(self, ctx, args):
            remember_argv(ctx, args)
            return super().parse_args(ctx, args)

    root.__class__ = Root
    args = ["cmd", "a b", "--workers", "3", "--jobs=2", "-j4", "--no-progress", "--out", "o",
            "--strict", "--progress"]
    res = CliRunner().invoke(root, args)
    assert res.output.strip() == "sunrgbd cmd 'a b' --out o"
    assert recorded_command(click.Context(cmd)) == ""  # outside the command line: nothing recorded


def test_no_opencv_noise_on_the_console(tmp_path: Path):
    """A missing label PNG gives our problem line, not OpenCV's '[ WARN:0@…] findDecoder' lines."""
    tree = write_clean_tree(tmp_path / "clean", counts={"train": 2, "val": 1}).root
    label = next((tree / "gtFine" / "train").rglob("*_labelIds.png"))
    label.unlink()
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_LOG_LEVEL"}
    proc = subprocess.run([*SUNRGBD, "stats", str(tree), "--workers", "1", "--no-progress"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert "WARN" not in proc.stderr and "findDecoder" not in proc.stderr and "imread" not in proc.stderr
    assert f"problem: {tree / label.relative_to(tree)}" in proc.stderr, proc.stderr
    proc = subprocess.run([*SUNRGBD, "verify", str(tree), "--workers", "1"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1 and "WARN" not in proc.stderr and "imread" not in proc.stderr, proc.stderr


def test_column_labels_say_which_id(clean: Path):
    """stats lists train ids, mapping show/lookup class ids: each column says which (chair: id 5, train_id 4)."""
    r = CliRunner().invoke(main, ["stats", str(clean), "--workers", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    head = r.stdout.splitlines()[0].split()
    assert head[:2] == ["train_id", "class"] and "id" not in head
    r = CliRunner().invoke(main, ["mapping", "show"])
    assert r.output.splitlines()[0].split()[:2] == ["id", "train_id"]
    chair = next(ln.split() for ln in r.output.splitlines() if ln.endswith(" chair"))
    assert chair[:2] == ["5", "4"]
    r = CliRunner().invoke(main, ["mapping", "lookup", "officechair"])
    assert "→ chair [id 5, train_id 4]" in r.output


def test_an_unforeseen_os_error_is_one_line(clean: Path, tmp_path: Path, monkeypatch):
    """The last-resort guard of the `sunrgbd` group: no traceback for a file-system failure."""
    import sunrgbd_tools.acquire.share as share_lib  # the command imports it when it runs

    def denied(cfg):
        raise PermissionError(13, "Permission denied", cfg.out)

    monkeypatch.setattr(share_lib, "pack_tree", denied)
    out = tmp_path / "k.zip"
    res = CliRunner().invoke(main, ["pack", str(clean), "--out", str(out)])
    assert res.exit_code == 1 and res.output == f"Error: {out}: Permission denied\n"


def test_a_library_warning_is_one_line(clean: Path, tmp_path: Path, monkeypatch):
    import warnings

    import sunrgbd_tools.acquire.share as share_lib  # the command imports it when it runs

    def noisy(cfg):
        warnings.warn("invalid value encountered\nin cast", RuntimeWarning, stacklevel=1)
        raise share_lib.ShareError(f"{cfg.src}: stop here")

    monkeypatch.setattr(share_lib, "pack_tree", noisy)
    showwarning = warnings.showwarning
    try:
        res = CliRunner().invoke(main, ["pack", str(clean), "--out", str(tmp_path / "k.zip")])
    finally:
        warnings.showwarning = showwarning
    assert "warning: invalid value encountered in cast (RuntimeWarning)\n" in res.output
    assert "test_cli_paths.py" not in res.output and res.exit_code == 2
