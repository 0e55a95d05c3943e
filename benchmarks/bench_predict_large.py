"""What `segtrain predict` costs on a large photo: peak memory and time of one image whose
class scores exceed tta.MAX_SCORES, built a few classes at a time (segment_labels) against
the one-go path (every class's scores upsampled to the photo's size at once, as before),
measured in the same run, plain and with TTA. Each setting runs in a fresh child process so
its peak resident memory (ru_maxrss) is its own; the floor is that of the same child doing
everything but the prediction (torch, the model, the photo), and the ratio is the memory above
the floor against the one-go path's. CPU; the model is unet_small with random weights.

    python benchmarks/bench_predict_large.py                      # 3000x4000, unet_small at 120x160
    python benchmarks/bench_predict_large.py --megapixels 3 --tta "--flip --scales 0.5,1,1.5"
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import click

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from segtrain import tta as T
from segtrain.config import TTAConfig
from segtrain.inference import predict_array
from segtrain.models import create_model
from segtrain.runtime import Runtime
h, w, size, scales, flip, mode = json.loads(sys.argv[1])
torch.manual_seed(0)
model = create_model("unet_small", 39).eval()
rt = Runtime.create(torch.device("cpu"), [0.5] * 3, [0.25] * 3, False, channels_last=True)
image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
t = time.perf_counter()
if mode != "floor":
    if mode == "one-go":
        T.MAX_SCORES = 1 << 62
    mask = predict_array(model, rt, image, size, None, TTAConfig(scales, flip))
print(json.dumps({"s": time.perf_counter() - t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@click.command()
@click.option("--megapixels", default=12.0, show_default=True, help="Photo size (4:3).")
@click.option("--size", default="120x160", show_default=True, help="The network's input size (predict --size).")
@click.option("--tta", "tta_flags", default="--flip --scales 0.75,1", show_default=True)
def main(megapixels, size, tta_flags):
    h = int((megapixels * 1e6 * 3 / 4) ** 0.5)
    w = h * 4 // 3
    hw = [int(v) for v in size.split("x")]
    flags = shlex.split(tta_flags)
    scales = [float(s) for s in flags[flags.index("--scales") + 1].split(",")] if "--scales" in flags else [1.0]
    print(f"photo {h}x{w}, network {size}, 39 classes; TTA = {tta_flags}")
    print(f"{'setting':<16}{'path':<16}{'peak MB':>9}{'above floor':>13}{'ratio':>7}{'s':>8}")
    floor = _child([h, w, hw, [1.0], False, "floor"])
    for name, (sc, fl) in (("plain", ([1.0], False)), ("TTA", (scales, "--flip" in flags))):
        runs = {mode: _child([h, w, hw, sc, fl, mode]) for mode in ("one-go", "few-classes")}
        base = runs["one-go"]["rss_mb"] - floor["rss_mb"]
        for mode, r in runs.items():
            above = r["rss_mb"] - floor["rss_mb"]
            print(f"{name:<16}{mode:<16}{r['rss_mb']:>9.0f}{above:>13.0f}{above / base:>7.2f}{r['s']:>8.2f}")


def _child(args) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
