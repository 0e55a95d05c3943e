"""What the issue-15 guards cost per scene, each against a floor measured in the same run.

    .venv/bin/python benchmarks/bench_raw_guards.py [--repeat 50]

1. `read_seg_mat` (walks the MAT v5 element tags before scipy, so damaged tags cannot crash
   the process) vs bare `scipy.io.loadmat` of the same file (the floor): a realistic seg.mat,
   530x730 uint8 `seglabel` of polygon-like regions and 40 names, compressed as MATLAB saves it.
2. `check_scene_links` (refuses links out of the scene) on a scene folder shaped like the real
   ones (image/, depth/, depth_bfx/, annotation2Dfinal/, extrinsics/, fullres/ with their files)
   vs decoding the scene's 530x730 JPEG (`read_rgb`), the least work a scene needs anyway.
3. `read_split` of the real allsplit.mat (../shared/realdata; 15,620 char arrays, the toolbox's
   most element-heavy file at hand), whose loadmat now goes through the same tag walk
   (`loadmat_checked`), vs bare `scipy.io.loadmat` of it. Once per `convert`, not per scene.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import scipy.io

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchutil import best  # noqa: E402

from sunrgbd_tools.raw.images import read_rgb  # noqa: E402
from sunrgbd_tools.raw.matfile import loadmat_checked, read_seg_mat  # noqa: E402
from sunrgbd_tools.raw.scenes import check_scene_links  # noqa: E402
from sunrgbd_tools.raw.splits import read_split  # noqa: E402

REAL_SPLIT = ROOT.parent / "shared" / "realdata" / "jiangliux-SUNRGBDtoolbox" / "traintestSUNRGBD" / "allsplit.mat"


def make_scene(root: Path) -> Path:
    rng = np.random.default_rng(0)
    scene = root / "kv2" / "kinect2data" / "000001_2014-05-26_14-21-26_260595134347_rgbf000001-resize"
    for sub in ("image", "depth", "depth_bfx", "annotation2Dfinal", "extrinsics", "fullres"):
        (scene / sub).mkdir(parents=True)
    img = cv2.GaussianBlur(rng.integers(0, 256, (530, 730, 3), dtype=np.uint8), (9, 9), 0)
    cv2.imwrite(str(scene / "image" / "0000001.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    depth = rng.integers(0, 65535, (530, 730), dtype=np.uint16)
    for sub in ("depth", "depth_bfx"):
        cv2.imwrite(str(scene / sub / "0000001.png"), depth)
    (scene / "fullres" / "0000001.jpg").write_bytes((scene / "image" / "0000001.jpg").read_bytes())
    (scene / "annotation2Dfinal" / "index.json").write_text('{"frames":[],"objects":[]}')
    (scene / "extrinsics" / "20140526.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n")
    (scene / "intrinsics.txt").write_text("529.5 0 365 0 529.5 265 0 0 1\n")
    (scene / "scene.txt").write_text("office\n")
    seg = np.zeros((530, 730), dtype=np.uint8)
    for k in range(1, 41):  # rectangles of 40 classes, later ones painted over earlier ones
        y, x = rng.integers(0, 480), rng.integers(0, 680)
        h, w = rng.integers(20, 200), rng.integers(20, 300)
        seg[y:y + h, x:x + w] = k
    names = np.array([np.array([f"name{k}"]) for k in range(1, 41)], dtype=object)
    scipy.io.savemat(scene / "seg.mat", {"seglabel": seg, "names": names}, do_compression=True)
    return scene


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_scene(Path(tmp))
        seg = scene / "seg.mat"
        guarded = best(lambda: read_seg_mat(seg), args.repeat)
        floor = best(lambda: scipy.io.loadmat(str(seg), variable_names=["seglabel", "names"]), args.repeat)
        links = best(lambda: check_scene_links(scene), args.repeat)
        jpeg = best(lambda: read_rgb(scene / "image" / "0000001.jpg"), args.repeat)
        print(f"seg.mat {seg.stat().st_size:,} B")
        print(f"read_seg_mat (tag walk + loadmat + checks) {guarded * 1e3:8.3f} ms")
        print(f"floor: bare scipy.io.loadmat              {floor * 1e3:8.3f} ms   ratio {guarded / floor:.2f}")
        print(f"check_scene_links                         {links * 1e3:8.3f} ms")
        print(f"floor: read_rgb of the 530x730 JPEG       {jpeg * 1e3:8.3f} ms   ratio {links / jpeg:.3f}")
    if not REAL_SPLIT.exists():
        print(f"(no {REAL_SPLIT}: read_split not measured)")
        return
    repeat = max(1, args.repeat // 5)
    split = best(lambda: read_split(REAL_SPLIT), repeat)
    checked = best(lambda: loadmat_checked(REAL_SPLIT), repeat)
    floor = best(lambda: scipy.io.loadmat(str(REAL_SPLIT)), repeat)
    print(f"read_split of the real allsplit.mat       {split * 1e3:8.3f} ms   ratio {split / floor:.2f}")
    print(f"  of which loadmat_checked (walk+loadmat) {checked * 1e3:8.3f} ms   ratio {checked / floor:.2f}")
    print(f"floor: bare scipy.io.loadmat of it        {floor * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
