"""What `--augment-on device` saves the DataLoader workers, and what it costs the device.

Loader side (one process, OpenCV single-threaded as in a worker): ms per sample of
  decode      SegDataset.load alone (PNG image + label): the floor
  loader      the `--augment basic` loader item (decode + albumentations flip/affine/jitter)
  device      the `--augment-on device` loader item (decode + pre-batch geometry + parameters)
so loader ÷ device is the img/s gained per worker. Device side: ms per batch of the batched
augmenter (segtrain.device_augment) against the albumentations transform of the same samples
one after another, which it replaces.

    python benchmarks/bench_device_augment.py                       # 48 samples of 480x640 in a temp dir
    python benchmarks/bench_device_augment.py --data clean/ --device cuda --batch-size 16
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path

import click
import cv2
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from benchutil import best  # noqa: E402
from treebuilder import write_clean_tree  # noqa: E402

from segtrain.data import load_dataset_info, train_dataset  # noqa: E402
from segtrain.device_augment import PARAMS_KEY, DeviceAugment, batch_params  # noqa: E402
from segtrain.transforms import build_train_transform  # noqa: E402
from segtrain.utils import parse_hw  # noqa: E402


def measure(data: Path, size, batch_size: int, repeats: int, device: torch.device, depth: bool) -> dict:
    info = load_dataset_info(data)
    if info.image_size is not None and tuple(info.image_size) == tuple(size):
        size = None  # already that size: no resize in either variant
    loader = train_dataset(info, "train", "basic", size=size, with_depth=depth)
    dev = train_dataset(info, "train", "basic", size=size, with_depth=depth, augment_on="device")
    n = len(loader)
    keys = [(i, 1000 + i) for i in range(n)]

    def decode():
        for i, _ in keys:
            loader.load(i)

    def items(ds):
        return lambda: [ds[k] for k in keys]

    res = {}
    for _ in range(2):  # alternate so that load changes hit every variant
        for name, fn in (("decode", decode), ("loader", items(loader)), ("device", items(dev))):
            res[name] = min(res.get(name, 1e9), best(fn, repeats))
    per = {k: v / n * 1e3 for k, v in res.items()}

    # the augmentation alone: albumentations per sample vs the batched augmenter
    geometry = build_train_transform("none", size)  # what both variants do before augmenting
    basic = build_train_transform("basic")
    pre = []
    for i, seed in keys[:batch_size]:
        image, mask, d = loader.load(i)
        args = {"image": image, "mask": mask, **({"depth": d} if d is not None else {})}
        pre.append((geometry(**args), seed))

    def albumentations():
        for args, seed in pre:
            basic.set_random_seed(seed)
            basic(**args)

    batch = {"image": torch.stack([torch.from_numpy(a["image"].transpose(2, 0, 1).copy()) for a, _ in pre]),
             "mask": torch.stack([torch.from_numpy(a["mask"]) for a, _ in pre]),
             PARAMS_KEY: batch_params([s for _, s in pre])}
    if depth:
        batch["depth"] = torch.stack([torch.from_numpy(a["depth"].astype("float32") / 1000) for a, _ in pre])
    batch = {k: v.to(device) for k, v in batch.items()}
    aug = DeviceAugment()

    def batched():
        aug(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    batched()  # warm-up (allocator, kernels)
    t_alb = min(best(albumentations, repeats) for _ in range(2))
    t_dev = min(best(batched, repeats) for _ in range(2))
    return {"samples": n, "size": list(batch["image"].shape[-2:]), "ms_per_sample": per,
            "batch": len(pre), "albumentations_ms_per_batch": t_alb * 1e3, "device_ms_per_batch": t_dev * 1e3}


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False), help="A clean tree [default: write "
              "-n synthetic samples to a temporary one].")
@click.option("-n", "count", default=48, show_default=True, help="Samples to write without --data.")
@click.option("--size", default="480x640", show_default=True, help="HxW (written, or --size for --data).")
@click.option("--batch-size", default=16, show_default=True)
@click.option("--repeats", default=3, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="Where the batched augmenter runs.")
@click.option("--depth", is_flag=True, help="Also carry depth (rgbd runs).")
def main(data, count, size, batch_size, repeats, device, depth) -> None:
    cv2.setNumThreads(0)  # as in a DataLoader worker (make_loader)
    h, w = parse_hw(size)
    dev = torch.device(device)
    with tempfile.TemporaryDirectory() as tmp:
        if data is None:
            data = write_clean_tree(Path(tmp) / "data", counts={"train": count}, size=(h, w)).root
        r = measure(Path(data), [h, w], batch_size, repeats, dev, depth)
    p = r["ms_per_sample"]
    print(f"$ python benchmarks/bench_device_augment.py {shlex.join(sys.argv[1:])}")
    print(f"{r['samples']} samples of {r['size'][0]}x{r['size'][1]}{' + depth' if depth else ''}, best of "
          f"{repeats} x 2 alternating runs; torch threads {torch.get_num_threads()}")
    print(f"loader, ms/sample: decode {p['decode']:.2f} (floor), --augment basic in the loader {p['loader']:.2f}, "
          f"--augment-on device {p['device']:.2f}; per worker {1e3 / p['loader']:.0f} -> {1e3 / p['device']:.0f} "
          f"img/s (x{p['loader'] / p['device']:.2f}); freed {p['loader'] - p['device']:.2f} ms/sample")
    print(f"augmentation of a batch of {r['batch']}: albumentations one by one {r['albumentations_ms_per_batch']:.1f} "
          f"ms (1 thread), batched on {device} {r['device_ms_per_batch']:.1f} ms "
          f"(ratio {r['device_ms_per_batch'] / r['albumentations_ms_per_batch']:.2f})")


if __name__ == "__main__":
    main()
