"""`sunrgbd sample`: thin click shell over sunrgbd_tools.synthetic.generator.make_sample."""

from __future__ import annotations

import re
import time
from pathlib import Path

import click

from sunrgbd_tools.cli.common import OutPath
from sunrgbd_tools.parallel import default_workers
from sunrgbd_tools.synthetic.sample_json import KV2_SIZE, SampleConflict

# The generator (numpy, scipy, OpenCV, h5py) is imported inside the command: `--help` costs click.


def _parse_size(ctx, param, value: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value or "")
    if not m:
        raise click.BadParameter(f"{value!r} is not HxW, e.g. 530x730")
    h, w = int(m.group(1)), int(m.group(2))
    if min(h, w) < 32 or max(h, w) > 4096:
        raise click.BadParameter(f"{value!r}: each side must be within 32..4096 pixels")
    return h, w


@click.command("sample")
@click.option("--out", "out", required=True, type=OutPath(file_okay=False, path_type=Path),
              help="Folder to write SUNRGBD/, SUNRGBDtoolbox/ and SAMPLE.json into.")
@click.option("--scenes", default=40, show_default=True, type=click.IntRange(1, 100000),
              help="Number of scene folders (about 85% kinect2data, 12% align_kv2, 3% kv1).")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--quirks/--no-quirks", default=True, show_default=True,
              help="Plant the known defects of the real files (needs >= 11 scenes for all).")
@click.option("--size", default=f"{KV2_SIZE[0]}x{KV2_SIZE[1]}", show_default=True,
              callback=_parse_size, help="HxW of kv2 images (kv1 scenes keep 427x561).")
@click.option("--workers", default=None, type=click.IntRange(1, 256),
              help="Processes for the scenes [default: number of cores]; output is identical.")
@click.option("--zips", is_flag=True,
              help="Also write OUT/SUNRGBD.zip and OUT/SUNRGBDtoolbox.zip, packed like the official ones.")
def sample(out: Path, scenes: int, seed: int, quirks: bool, size: tuple[int, int],
           workers: int | None, zips: bool) -> None:
    """Write a synthetic SUN RGB-D raw tree in the exact on-disk format of the official zips."""
    from tqdm import tqdm

    from sunrgbd_tools.synthetic.generator import SampleWorkerDied, make_sample
    from sunrgbd_tools.synthetic.zips import write_raw_zips

    workers = workers or default_workers()
    t0 = time.perf_counter()
    bar = tqdm(total=scenes, unit="scene", desc="sample", disable=None)
    try:
        info = make_sample(out, scenes=scenes, seed=seed, quirks=quirks, size=size,
                           workers=workers, progress=lambda _key: bar.update(1))
    except SampleConflict as e:
        raise click.UsageError(str(e)) from None
    except SampleWorkerDied as e:
        raise click.ClickException(str(e)) from None
    finally:
        bar.close()
    archives = write_raw_zips(out) if zips else {}
    counts = {s: sum(1 for x in info.scenes if x.split == s) for s in ("train", "val", "test", "none")}
    planted = sorted({q for s in info.scenes for q in s.quirks})
    click.echo(
        f"wrote {len(info.scenes)} scenes to {out} in {time.perf_counter() - t0:.1f}s "
        f"(train {counts['train']}, val {counts['val']}, test {counts['test']}, no split {counts['none']}; "
        f"quirks: {', '.join(planted) if planted else 'none'})"
    )
    for path in archives.values():
        click.echo(f"wrote {path} ({path.stat().st_size} bytes)")
