"""scripts/readme_tour.py: the marked README blocks are rewritten from real command output,
with temporary paths, seconds and scene names masked, and nothing outside the markers touched.
The whole tour is `make readme-check`; it trains for an epoch, so only its sunrgbd part (integer
and byte outputs, the same on every machine) and docs/mapping.md's report are checked here: a
change of the mapping, dataset.json or the manifest that moves the pack's sha256 fails here.
The segtrain block (float scores, which another CPU may round differently) is left to `make readme`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from conftest import REALDATA

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_tour", ROOT / "scripts" / "readme_tour.py")
tour = importlib.util.module_from_spec(spec)
sys.modules.setdefault("readme_tour", tour)  # dataclasses look their module up there
spec.loader.exec_module(tour)


def test_marked_block_is_regenerated_and_the_rest_kept(tmp_path: Path):
    text = ("# Title\nprose\n<!-- tour:x -->\n```console\n$ stale\nold output\n```\n<!-- /tour:x -->\nmore prose\n")
    block = tour.Block("x", [tour.Cmd("sunrgbd mapping lookup officechair zzqq"),
                             tour.Cmd("sunrgbd mapping show", head=2, tail=1)])
    new = tour.regenerate(text, [block])
    assert new.startswith("# Title\nprose\n<!-- tour:x -->\n```console\n$ sunrgbd mapping lookup officechair zzqq\n")
    assert "'officechair' → chair [id 5, train_id 4]" in new and "old output" not in new
    lines = new.split("$ sunrgbd mapping show\n", 1)[1].splitlines()
    assert lines[0].split()[:2] == ["id", "train_id"] and lines[2] == "…" and lines[3].startswith("  ")
    assert new.endswith("```\n<!-- /tour:x -->\nmore prose\n")
    assert tour.regenerate(new, [block]) == new  # deterministic


def test_masks():
    tmp = "/tmp/readme-tour-abc"
    assert tour._mask(f"wrote 4 scenes to {tmp}/raw in 4.7s (x)", tmp) == "wrote 4 scenes to raw in …s (x)"
    assert tour._mask("raw/SUNRGBD/kv2/kinect2data/000003_2014-05-02_13-49-45_094959634447_rgbf000055-resize/depth",
                      tmp) == "raw/SUNRGBD/kv2/kinect2data/000003_…-resize/depth"
    assert tour._mask("segtrain: epoch 1/40  train_loss 3.6077  val_mIoU 0.0140 (best)  lr 0.003  6.6 s", tmp) == \
        "segtrain: epoch 1/40  train_loss …  val_mIoU … (best)  lr 0.003  … s"


def _stale_copy(page: Path, tmp_path: Path, old: str, new: str) -> Path:
    copy = tmp_path / page.name
    text = page.read_text(encoding="utf-8")
    assert text.count(old) >= 1
    copy.write_text(text.replace(old, new), encoding="utf-8")
    return copy


def test_readme_sunrgbd_part_is_up_to_date(tmp_path: Path, capsys):
    """README's sunrgbd blocks, regenerated from a copy with a stale line, give README.md exactly:
    the stale line is found and the committed README holds today's outputs (else `make readme`)."""
    readme = tour.README
    sha = "sha256 " + readme.read_text(encoding="utf-8").split("kv2-demo.zip: ", 1)[1].split("sha256 ", 1)[1][:64]
    copy = _stale_copy(readme, tmp_path, sha, "sha256 " + "0" * 64)
    assert tour.check_page(tour.Page(copy, tour.TOUR), "sunrgbd", write=True) == 0  # one run (~10 s)
    assert "tour outputs rewritten" in capsys.readouterr().out
    assert copy.read_text(encoding="utf-8") == readme.read_text(encoding="utf-8"), \
        "README.md's sunrgbd tour is stale: run `make readme` (scripts/readme_tour.py)"


def test_docs_mapping_report_is_up_to_date(tmp_path: Path, capsys):
    """docs/mapping.md's `sunrgbd mapping report` block on the real files (~1 s)."""
    if not REALDATA.exists():
        pytest.skip(f"real SUN RGB-D files not available: {REALDATA}")
    page = tour.PAGES[1]
    assert page.blocks == [tour.MAPPING_REPORT]
    assert tour.check_page(page, "docs") == 0, "docs/mapping.md's report is stale: run `make readme`"
    copy = _stale_copy(page.path, tmp_path, "seglistall: 6585 names", "seglistall: 6584 names")
    assert tour.check_page(tour.Page(copy, page.blocks, page.needs), "docs") == 1
    assert "-seglistall: 6584 names" in capsys.readouterr().out


def test_parts_select_blocks_and_what_they_need():
    readme = tour.Page(tour.README, tour.TOUR)
    done, ran = tour._selected(readme, "sunrgbd")
    assert [b.name for b in done] == [b.name for b in ran] == ["sample", "convert", "mapping", "stats", "pack"]
    done, ran = tour._selected(readme, "segtrain")
    assert [b.name for b in done] == ["segtrain"] and ran == tour.TOUR  # it trains on the converted tree
    assert tour._selected(readme, "docs") == ([], [])
    assert tour._selected(tour.PAGES[1], "all") == ([tour.MAPPING_REPORT], [tour.MAPPING_REPORT])


def test_missing_real_data_skips_the_page(tmp_path: Path, capsys):
    page = tour.Page(tmp_path / "never-read.md", [tour.MAPPING_REPORT], needs=tmp_path / "no-realdata")
    assert tour.check_page(page, "all") == 0
    assert "skipped" in capsys.readouterr().out
