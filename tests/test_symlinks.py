"""Symbolic links that lead outside the tree the user named are never followed (issue 15):
a scene holding one is reported and skipped by `convert` and `mapping check`, a linked scene
folder is reported, and `pack`, `stats` and `verify` refuse to read a clean-tree file from
outside. Links that stay inside a scene are followed. Policy: docs/converter.md."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from treebuilder import write_clean_tree

from sunrgbd_tools.cli.main import main
from sunrgbd_tools.synthetic.generator import make_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    make_sample(root, scenes=6, seed=0, quirks=False, size=(53, 73))
    return root


def _scenes(raw: Path) -> list[Path]:
    return sorted(p.parent for p in (raw / "SUNRGBD" / "kv2").rglob("image") if p.is_dir())


def _linked_tree(sample: Path, tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """raw/ with: scene 0's seg.mat linked to a file outside; scene 1's intrinsics linked to a
    file inside the scene (fine); scene 2 moved outside and linked in as a folder."""
    raw = tmp_path / "raw"
    shutil.copytree(sample, raw)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    s0, s1, s2 = _scenes(raw)[:3]
    secret = outside / "secret.mat"
    shutil.copy(s0 / "seg.mat", secret)
    (s0 / "seg.mat").unlink()
    (s0 / "seg.mat").symlink_to(secret)
    shutil.copy(s1 / "intrinsics.txt", s1 / "intrinsics.orig")
    (s1 / "intrinsics.txt").unlink()
    (s1 / "intrinsics.txt").symlink_to("intrinsics.orig")
    moved = outside / s2.name
    shutil.move(s2, moved)
    s2.symlink_to(moved, target_is_directory=True)
    return raw, s0, s1, s2


def test_convert_refuses_links_out_of_a_scene(sample: Path, tmp_path: Path):
    raw, s0, s1, s2 = _linked_tree(sample, tmp_path)
    out = tmp_path / "clean"
    res = CliRunner().invoke(main, ["convert", "--src", str(raw), "--out", str(out), "--workers", "1",
                                    "--strict"])
    assert res.exit_code == 1, res.output
    lines = res.stderr.splitlines()
    assert any(ln.startswith(f"problem: {s0 / 'seg.mat'}: symbolic link to ")
               and ln.endswith("outside the scene folder (not followed) (scene skipped)") for ln in lines), lines
    assert any(ln.startswith(f"problem: {s2}: symbolic link to ") and "(not followed)" in ln for ln in lines), lines
    assert "Traceback" not in res.output
    manifest = (out / "manifest.csv").read_text()
    assert s0.name not in manifest and s2.name not in manifest
    assert s1.name in manifest  # its link stays inside the scene: followed
    assert "skipped 2," in res.stdout


def test_mapping_check_refuses_them_too(sample: Path, tmp_path: Path):
    raw, s0, _s1, s2 = _linked_tree(sample, tmp_path)
    res = CliRunner().invoke(main, ["mapping", "check", str(raw), "--strict"])
    assert res.exit_code == 1, res.output
    assert f"problem: {s0 / 'seg.mat'}: symbolic link to " in res.stderr
    assert f"problem: {s2}: symbolic link to " in res.stderr


def test_clean_tree_file_linked_from_outside(tmp_path: Path):
    """pack would publish the linked file, stats and verify would read it: all refuse."""
    tree = write_clean_tree(tmp_path / "clean", counts={"train": 2, "val": 1}).root
    label = next((tree / "gtFine" / "train").rglob("*_labelIds.png"))
    outside = tmp_path / "private.png"
    shutil.move(label, outside)
    label.symlink_to(outside)
    res = CliRunner().invoke(main, ["pack", str(tree), "--out", str(tmp_path / "k.zip"), "--no-progress"])
    assert res.exit_code == 2 and f"{label}: symbolic link to {outside}, outside the tree" in res.output
    assert not (tmp_path / "k.zip").exists()
    res = CliRunner().invoke(main, ["stats", str(tree), "--workers", "1", "--no-progress"])
    assert res.exit_code == 2 and "is outside the tree" in res.output and "Traceback" not in res.output
    assert not (tree / "stats.json").exists()
    res = CliRunner().invoke(main, ["verify", str(tree), "--workers", "1"])
    assert res.exit_code == 1 and f"{label.relative_to(tree).as_posix()!r} leads outside the tree" in res.output
    assert os.path.islink(label) and outside.is_file()
