"""What `pack` puts in the archive: the clean tree as the contract defines it (dataset.json,
manifest.csv, problems.txt, stats.json and the sample files manifest.csv lists), never a
file a user placed inside (notes, an hf export); and re-running a finished `--format hf`
export replaces it as a ZIP re-pack replaces its archive, where anything else is refused."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from httpfixtures import tree_bytes

from cleantree.manifest import tree_files_listed
from sunrgbd_tools.acquire.share import FetchConfig, PackConfig, fetch, pack_tree
from sunrgbd_tools.cli.main import main
from sunrgbd_tools.convert.pipeline import ConvertConfig, convert
from sunrgbd_tools.synthetic.generator import make_sample


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """A converted `sunrgbd sample` tree (problems.txt included) with `sunrgbd stats` run."""
    d = tmp_path_factory.mktemp("contract")
    make_sample(d / "raw", scenes=10, seed=5, quirks=True, size=(48, 64))
    out = d / "clean"
    convert(ConvertConfig(src=str(d / "raw"), out=str(out)), workers=1)
    r = CliRunner().invoke(main, ["stats", str(out), "--workers", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    return out


def members(archive: Path) -> dict[str, bytes]:
    """The archive's members but DATASHEET.md (it records the pack command line, which names the
    tree) and its line in SHA256SUMS, plus DATASHEET's file count."""
    with zipfile.ZipFile(archive) as zf:
        out = {n: zf.read(n) for n in zf.namelist() if n != "DATASHEET.md"}
        sheet = zf.read("DATASHEET.md").decode()
    out["SHA256SUMS"] = b"".join(x for x in out["SHA256SUMS"].splitlines(True) if b"DATASHEET" not in x)
    out["files line"] = next(x for x in sheet.splitlines() if x.startswith("- Files:")).encode()
    return out


def _pack(tree: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["pack", str(tree), "--out", str(out), "--no-progress", *extra])


def test_everything_our_commands_write_is_in_the_contract(clean, tmp_path: Path):
    files = set(tree_bytes(clean))
    assert {"dataset.json", "manifest.csv", "problems.txt", "stats.json"} <= files
    assert files <= tree_files_listed(clean), sorted(files - tree_files_listed(clean))
    r = _pack(clean, tmp_path / "a.zip", "--strict")
    assert r.exit_code == 0 and "problem:" not in r.output, r.output
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert set(zf.namelist()) == files | {"DATASHEET.md", "SHA256SUMS"}


def test_the_contract_is_the_trees_own_file_list(clean, tmp_path: Path):
    """The root files and what manifest.csv lists; a tree without a readable manifest is none."""
    assert tree_files_listed(clean) == frozenset(tree_bytes(clean))
    t = tmp_path / "t"
    shutil.copytree(clean, t)
    (t / "manifest.csv").unlink()
    r = _pack(t, tmp_path / "a.zip")
    assert r.exit_code == 2 and f"{t}: not a clean tree (no manifest.csv)" in r.output, r.output
    (t / "manifest.csv").write_bytes(b"id,image\n\xff,x\n")
    r = _pack(t, tmp_path / "a.zip")
    assert r.exit_code == 2 and f"{t / 'manifest.csv'}: cannot be read (" in r.output, r.output
    assert not (tmp_path / "a.zip").exists()


def test_files_outside_the_contract_are_left_out_and_reported(clean, tmp_path: Path):
    """pack used to archive any file found in the tree (an hf export, a user's notes)."""
    ref = pack_tree(PackConfig(src=str(clean), out=str(tmp_path / "ref.zip"), progress=False))
    t = tmp_path / "t"
    shutil.copytree(clean, t)
    (t / "notes.txt").write_text("mine")
    sample_dir = next((t / "gtFine" / "train").iterdir())
    (sample_dir / "x_gtFine_polygons.json").write_text("{}")
    # where a path template would put a sample file, but no manifest row lists it: an unknown
    # split and a jpg in a png tree, a copy beside the real ones (both were packed unreported)
    stray = t / "leftImg8bit" / "old" / "kv9" / "a_leftImg8bit.jpg"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"\xff\xd8\xff")
    real = next(p for p in sample_dir.iterdir() if p.name.endswith("_gtFine_labelTrainIds.png"))
    shutil.copy(real, sample_dir / ("zz" + real.name))
    r = CliRunner().invoke(main, ["pack", str(t), "--format", "hf", "--out", str(t / "hf"), "--no-progress"])
    if r.exit_code != 0:  # without the 'hub' extra: an export's files by hand
        (t / "hf" / "data").mkdir(parents=True)
        (t / "hf" / "README.md").write_text("card")
        (t / "hf" / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1")
    with open(os.path.join(os.fsencode(t), b"caf\xe9\nlist.txt"), "wb") as f:  # a name no ZIP carries
        f.write(b"x")
    before = tree_bytes(t)
    out = tmp_path / "out" / "x.zip"
    r = _pack(t, out)
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("problem:")]
    n = 2 + 2 + 1 + len([p for p in (t / "hf").rglob("*") if p.is_file()])
    assert lines == [f"problem: {t}: {n} files outside the clean-tree contract left out of the archive: "
                     f"caf\\xe9\\nlist.txt, {sample_dir.relative_to(t).as_posix()}/x_gtFine_polygons.json, "
                     f"{sample_dir.relative_to(t).as_posix()}/zz{real.name} and {n - 3} more"]
    rep = pack_tree(PackConfig(src=str(t), out=str(tmp_path / "out" / "y.zip"), progress=False))
    assert {"leftImg8bit/old/kv9/a_leftImg8bit.jpg", "hf/README.md"} <= set(rep.left_out)
    assert members(out) == members(ref.archive)  # the very archive of the tree alone
    assert tree_bytes(t) == before
    strict = _pack(t, tmp_path / "out" / "s.zip", "--strict")
    assert strict.exit_code == 1 and "left out of the archive" in strict.output
    assert members(tmp_path / "out" / "s.zip") == members(ref.archive)
    got = tmp_path / "got"
    fr = fetch(FetchConfig(source=str(out), dest=str(got), progress=False, workers=1))
    assert not fr.problems and fr.samples > 0
    r = CliRunner().invoke(main, ["verify", str(got)])
    assert r.exit_code == 0, r.output
    one = tmp_path / "one"
    shutil.copytree(clean, one)
    (one / "notes.txt").write_text("mine")
    r = _pack(one, tmp_path / "one.zip")
    assert f"problem: {one}: 1 file outside the clean-tree contract left out of the archive: notes.txt\n" in r.output


# ----------------------------------------------------------------------------- hf re-run
def test_a_finished_hf_export_is_replaced_and_nothing_else(clean, tmp_path: Path):
    pytest.importorskip("datasets", reason="the 'hub' extra is not installed")
    from sunrgbd_tools.acquire.hub import HubConfig, export_hf

    out = tmp_path / "hf"
    args = ["pack", str(clean), "--format", "hf", "--out", str(out), "--no-progress"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    done = tree_bytes(out)
    again = CliRunner().invoke(main, args)  # exited 2 "not empty" before
    assert again.exit_code == 0, again.output
    assert tree_bytes(out) == done and sorted(os.listdir(out)) == ["README.md", "data", "dataset.json"]
    # other shard sizes: the earlier export's shards that the new one does not write go
    rep = export_hf(HubConfig(src=str(clean), out=str(out), shard_bytes=20_000, progress=False))
    assert len(rep.shards) > 2
    assert sorted(f"data/{n}" for n in os.listdir(out / "data")) == sorted(rep.shards)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and tree_bytes(out) == done, again.output

    # anything that is not exactly a finished export of ours is still the user's
    def altered(change) -> None:
        t = tmp_path / "mod"
        shutil.rmtree(t, ignore_errors=True)
        shutil.copytree(out, t)
        change(t)
        before = tree_bytes(t)
        r = CliRunner().invoke(main, ["pack", str(clean), "--format", "hf", "--out", str(t), "--no-progress"])
        assert r.exit_code == 2 and "not empty" in r.output, r.output
        assert tree_bytes(t) == before

    altered(lambda t: (t / "notes.txt").write_text("mine"))
    altered(lambda t: (t / "data" / "mine.parquet").write_bytes(b"PAR1"))
    altered(lambda t: (t / "README.md").write_text("---\nmy own card\n---\n"))
    # an edited card keeps the YAML header and the "exported with" line: it was overwritten
    def retitled(t: Path) -> None:
        card = (t / "README.md").read_text(encoding="utf-8")
        assert "\n# " in card
        (t / "README.md").write_text(card.replace("\n# ", "\n# My ", 1), encoding="utf-8")

    altered(retitled)
    altered(lambda t: (t / "README.md").write_text(
        (t / "README.md").read_text(encoding="utf-8") + "\nMy notes.\n", encoding="utf-8"))
    altered(lambda t: (t / "dataset.json").unlink())
