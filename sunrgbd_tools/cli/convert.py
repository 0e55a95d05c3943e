"""`sunrgbd convert` and `sunrgbd verify`: thin click shells over convert/pipeline.py and convert/verify.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from cleantree.paths import IMAGE_FORMATS, PROBLEMS_FILE
from sunrgbd_tools.cli.common import OutPath
from sunrgbd_tools.convert.label_modes import LABEL_SOURCES
from sunrgbd_tools.parallel import progress_bar

# The library is imported inside the commands: `--help` (and the `sunrgbd --help` list, which
# loads every command) then costs click alone, not numpy/OpenCV (docs/performance.md).


def _size(ctx, param, value):
    from sunrgbd_tools.convert.resize import parse_size

    try:
        return parse_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command()
@click.option("--subset", default="kv2", show_default=True,
              help="kv1, kv2, realsense, xtion, all, or a sub-subset such as kv2/align_kv2.")
@click.option("--src", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder holding SUNRGBD/ and SUNRGBDtoolbox/ as extracted from the official zips.")
@click.option("--out", required=True, type=OutPath(file_okay=False, path_type=Path),
              help="Output folder (new or empty, or an interrupted conversion to resume).")
@click.option("--size", callback=_size, default=None, metavar="HxW",
              help="Resize every sample to HEIGHTxWIDTH (e.g. 480x640); default: native size.")
@click.option("--labels", type=click.Choice(LABEL_SOURCES),
              default="auto", show_default=True,
              help="Label source; auto = seg.mat, else the annotation2Dfinal polygons. official = the "
                   "toolbox's seg37 seglabel as stored (benchmark labels); official-all = its seglabelall "
                   "through our mapping.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: number of cores). Output does not depend on it.")
@click.option("--image-format", type=click.Choice(IMAGE_FORMATS), default=IMAGE_FORMATS[0], show_default=True,
              help="jpg at native size copies the source JPEG bytes (no re-encode).")
@click.option("--depth/--no-depth", default=True, show_default=True, help="Write depth PNGs (uint16 mm).")
@click.option("--mapping", type=click.Path(exists=True, path_type=Path), default=None,
              help="A raw_name,class CSV laid over the shipped names.csv (e.g. from `sunrgbd mapping "
                   "suggest`), or a folder of mapping tables (see docs/mapping.md).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Share of train used for val, only when allsplit.mat has no trainvalsplit.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of that fallback val split.")
@click.option("--keep-unlabelled", is_flag=True,
              help="Write samples whose labels hold no labelled pixel (default: report and skip).")
@click.option("--strict", is_flag=True, help="Exit 1 when any problem was reported.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def convert(subset, src, out, size, labels, workers, image_format, depth, mapping, val_fraction, seed,
            keep_unlabelled, strict, progress):
    """Convert raw SUN RGB-D into a Cityscapes-style dataset (resumable; re-run to continue)."""
    from sunrgbd_tools.convert.pipeline import ConvertConfig, ConvertError
    from sunrgbd_tools.convert.pipeline import convert as run

    if not src.is_dir():
        raise click.BadParameter(f"{src}: not a folder", param_hint="--src")
    cfg = ConvertConfig(
        src=os.fspath(src), out=os.fspath(out), subset=subset, size=size, labels=labels,
        image_format=image_format, depth=depth, mapping=os.fspath(mapping) if mapping else None,
        val_fraction=val_fraction, seed=seed, keep_unlabelled=keep_unlabelled,
    )
    try:
        summary = run(cfg, workers=workers, progress=progress_bar("convert", dynamic_ncols=True) if progress else None)
    except ConvertError as e:
        raise click.UsageError(str(e)) from None
    for p in summary.problems:
        click.echo(f"problem: {p}", err=True)
    if summary.missing_listing is not None:
        click.echo(f"every scene key listed but not found: {summary.missing_listing}", err=True)
    s = summary.splits
    click.echo(
        f"wrote {summary.samples} samples to {summary.out} (train {s['train']}, val {s['val']}, "
        f"test {s['test']}; {summary.resumed} already done), skipped {summary.skipped}, "
        f"{summary.reported} problem(s) reported (listed in {summary.out / PROBLEMS_FILE})"
    )
    if summary.label_sources:
        click.echo("label sources: " + ", ".join(f"{k} {v}" for k, v in summary.label_sources.items()))
    if summary.unmapped:
        top = list(summary.unmapped.items())[:10]
        click.echo(
            f"{len(summary.unmapped)} name(s) fell to 'other' (by pixels): "
            + ", ".join(f"{n!r} {p}" for n, p in top)
            + (" …" if len(summary.unmapped) > 10 else "")
        )
    if strict and summary.reported:
        sys.exit(1)


@click.command()
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes.")
@click.option("--no-checksums", is_flag=True,
              help="Skip every sha256 comparison, a fetched tree's records too (faster).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def verify(root, workers, no_checksums, progress):
    """Check a clean tree: complete samples, sizes, label values, checksums; a fetched tree also
    against its archive's SHA256SUMS and DATASHEET.md (nothing added, removed or changed since).
    Exit 1 on problems."""
    from cleantree.dataset import DATASET_JSON
    from sunrgbd_tools.convert.verify import verify_tree

    if not (root / DATASET_JSON).is_file():
        raise click.UsageError(f"{root}: not a clean tree (no dataset.json)")
    report = verify_tree(root, workers=workers, check_checksums=not no_checksums,
                         progress=progress_bar("verify", "sample", dynamic_ncols=True) if progress else None)
    for p in report.problems:
        click.echo(p, err=True)
    if report.problems:
        click.echo(f"{root}: {report.samples} samples, {len(report.problems)} problem(s)")
        sys.exit(1)
    click.echo(f"{root}: {report.samples} samples OK")
