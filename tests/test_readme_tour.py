"""scripts/readme_tour.py: the marked README blocks are rewritten from real command output,
with temporary paths, seconds and scene names masked, and nothing outside the markers touched.
(The whole tour is `make readme-check`; it trains for an epoch, so it is not run here.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
