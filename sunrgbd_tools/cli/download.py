"""Click shell for `sunrgbd download`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from sunrgbd_tools.acquire.sources import OFFICIAL_BASE_URL, TOOLBOX_MD5
from sunrgbd_tools.cli.common import OutPath, http_options

# The downloader (urllib3, numpy) is imported inside the command and its callbacks: `--help`
# costs click alone.


def _subset(ctx, param, value: str) -> str:
    from sunrgbd_tools.acquire.download import parse_subset

    try:
        parse_subset(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return value



def _byte_size(ctx, param, value: str) -> int:
    """`300G`, `1.5T`, `800M` or a plain number of bytes (binary units)."""
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    if text and text[-1] in "KMGT":
        scale = 1 << (10 * ("KMGT".index(text[-1]) + 1))
        text = text[:-1]
    try:
        n = float(text)
    except ValueError:
        n = -1.0
    if not n >= 1 or n * scale > 1 << 60:
        raise click.BadParameter(f"{value!r} is not a size such as 300G, 1.5T or 800M")
    return int(n * scale)


def _base_url(ctx, param, value: str) -> str:
    from sunrgbd_tools.remote.http import display_url, url_problem

    if not value.lower().startswith(("http://", "https://")):
        raise click.BadParameter(f"{display_url(value)!r}: only http:// and https:// URLs are supported")
    if problem := url_problem(value):
        raise click.BadParameter(f"{display_url(value)!r}: {problem}")
    return value



@click.command()
@click.option("--subset", default="kv2", show_default=True, callback=_subset,
              help="kv1, kv2, realsense, xtion, all, a sub-folder such as kv2/align_kv2, "
                   "or a comma list.")
@click.option("--dest", required=True, type=OutPath(file_okay=False, path_type=Path),
              help="Raw tree to write (what `sunrgbd convert --src` reads).")
@click.option("--base-url", default=OFFICIAL_BASE_URL, show_default=True, callback=_base_url,
              help="Folder URL holding SUNRGBD.zip and SUNRGBDtoolbox.zip (or a mirror).")
@click.option("--with-official-labels", is_flag=True,
              help="Also fetch SUNRGBD2Dseg.mat + SUNRGBDMeta.mat (for --labels official or official-all).")
@click.option("--jobs", type=click.IntRange(min=1, max=64), default=4, show_default=True,
              help="Range requests in flight.")
@click.option("--keep-archives", is_flag=True,
              help="Keep a whole archive downloaded from a server without Range support.")
@click.option("--toolbox-md5", default=TOOLBOX_MD5, show_default=True,
              help="Expected MD5 of a wholly downloaded SUNRGBDtoolbox.zip ('none' to skip).")
@click.option("--max-size", default="256G", show_default=True, callback=_byte_size,
              help="Refuse an archive whose wanted members declare more bytes than this "
                   "(they must also fit the free space of --dest).")
@click.option("--strict", is_flag=True, help="Exit 1 when any problem was reported.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@http_options
def download(subset, dest, base_url, with_official_labels, jobs, keep_archives, toolbox_md5,
             max_size, strict, no_progress, timeout, retries):
    """Fetch only the SUN RGB-D members a subset needs (HTTP Range), resumable and verified."""
    from sunrgbd_tools.acquire.download import DownloadConfig, parse_subset
    from sunrgbd_tools.acquire.download import download as run_download
    from sunrgbd_tools.remote.http import HttpConfig, HttpError
    from sunrgbd_tools.remote.rangezip import ZipFormatError

    cfg = DownloadConfig(
        dest=str(dest), subset=subset, base_url=base_url,
        with_official_labels=with_official_labels, jobs=jobs, keep_archives=keep_archives,
        max_bytes=max_size, toolbox_md5=None if toolbox_md5.lower() == "none" else toolbox_md5.lower(),
        progress=not no_progress, http=HttpConfig(timeout=timeout, retries=retries))
    try:
        report = run_download(cfg)
    except (HttpError, ZipFormatError, OSError) as e:
        raise click.ClickException(str(e)) from None
    for a in report.archives:
        click.echo(a.line())
    for p in report.problems:
        click.echo(f"problem: {p}", err=True)
    failed = sum(a.failed for a in report.archives)
    if failed or (strict and report.problems):
        click.echo(f"{failed} member(s) failed; run the same command again to retry", err=True)
        sys.exit(1)
    # convert's own default is kv2: without --subset, the line for `--subset kv1` found no scenes
    only = "" if parse_subset(subset) == parse_subset("kv2") else f" --subset {shlex.quote(subset)}"
    click.echo(f"raw tree ready for: sunrgbd convert --src {shlex.quote(str(dest))}{only}")

