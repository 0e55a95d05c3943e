"""What robustness costs: scene discovery that reports unreadable folders, and reading a
damaged index.json by salvage, each against a floor measured in the same run.

    .venv/bin/python benchmarks/bench_raw_robust.py [--scenes 3784] [--repeat 5]

1. discovery of a kv2-shaped tree (N scene folders with image/, depth/, depth_bfx/,
   annotation2Dfinal/, extrinsics/, fullres/): `raw.discover` (os.walk, unreadable folders
   kept, scene folders not entered) vs the previous `Path.rglob("image")`, which silently
   skipped what it could not read.
2. the real img_0063 index.json (compact, as the real files are): intact through
   `read_index_json` (the floor) vs damaged with a broken escape inside polygon 2 (salvaged).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchutil import best  # noqa: E402

from sunrgbd_tools.raw.annotation import read_index_json  # noqa: E402
from sunrgbd_tools.raw.scenes import discover  # noqa: E402

ANNOTATION = ROOT.parent / "shared/realdata/LucBourrat1-sunrgbd_dataset/prepare/annotation2Dfinal.json"


def old_rglob(src: Path, prefix: str) -> list[str]:
    root = src / "SUNRGBD"
    return sorted(p.parent.relative_to(root).as_posix() for p in (root / prefix).rglob("image") if p.is_dir())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=3784)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        for i in range(args.scenes):
            sub = "align_kv2" if i % 12 == 0 else "kinect2data"
            scene = src / "SUNRGBD/kv2" / sub / f"{i:06d}_2014-05-16_20-14-38_260595134347_rgbf000121-resize"
            for d in ("image", "depth", "depth_bfx", "annotation2Dfinal", "extrinsics", "fullres"):
                (scene / d).mkdir(parents=True)
            (scene / "image" / "0000121.jpg").write_bytes(b"")
        new = best(lambda: discover(src, "kv2"), args.repeat)
        old = best(lambda: old_rglob(src, "kv2"), args.repeat)
        assert [s.key for s in discover(src, "kv2").scenes] == old_rglob(src, "kv2")
        print(f"discovery, {args.scenes} scenes: discover {new * 1000:.1f} ms, old rglob {old * 1000:.1f} ms, "
              f"ratio {new / old:.2f}")

        doc = json.loads(ANNOTATION.read_bytes())
        text = json.dumps(doc, separators=(",", ":"))
        intact = src / "intact.json"
        intact.write_text(text)
        s = text.index('"y"', text.index('{"x"', text.index('{"x"', text.index('{"x"') + 1) + 1))
        i = text.index("[", s) + 1
        damaged = src / "damaged.json"
        damaged.write_text(text[:i] + '"\\q",' + text[i:])
        assert read_index_json(damaged).salvage is not None
        n = 200
        floor = best(lambda: [read_index_json(intact) for _ in range(n)], args.repeat) / n
        salv = best(lambda: [read_index_json(damaged) for _ in range(n)], args.repeat) / n
        print(f"index.json ({len(text)} B): intact {floor * 1e3:.3f} ms, salvaged {salv * 1e3:.3f} ms, "
              f"ratio {salv / floor:.2f}")


if __name__ == "__main__":
    main()
