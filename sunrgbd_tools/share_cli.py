"""Click shells for `sunrgbd download`, `sunrgbd pack` and `sunrgbd fetch`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from .cliutil import OutPath, recorded_command
from .download import OFFICIAL_BASE_URL, TOOLBOX_MD5, DownloadConfig, parse_subset
from .download import download as run_download
from .httpclient import HttpConfig, HttpError
from .hub_cli import pack_hf
from .remotezip import ZipFormatError
from .share import DestinationError, FetchConfig, PackConfig, ShareError, pack_tree
from .share import fetch as fetch_archive


def _subset(ctx, param, value: str) -> str:
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
    if not value.lower().startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r}: only http:// and https:// URLs are supported")
    return value


def _http_options(f):
    f = click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
                     help="Seconds without data before a request is retried.")(f)
    f = click.option("--retries", type=click.IntRange(min=0), default=8, show_default=True,
                     help="Retries per request (backoff doubles, from 1 s up to 60 s).")(f)
    return f


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
@_http_options
def download(subset, dest, base_url, with_official_labels, jobs, keep_archives, toolbox_md5,
             max_size, strict, no_progress, timeout, retries):
    """Fetch only the SUN RGB-D members a subset needs (HTTP Range), resumable and verified."""
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
    click.echo(f"raw tree ready for: sunrgbd convert --src {shlex.quote(str(dest))}")


@click.command()
@click.argument("tree", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=OutPath(path_type=Path),
              help="zip: the archive to write (<out>.sha256 goes beside it); "
                   "hf: a new or empty folder.")
@click.option("--format", "fmt", type=click.Choice(["zip", "hf"]), default="zip", show_default=True,
              help="zip: one verified archive; hf: Hugging Face `datasets` parquet shards + "
                   "dataset card (needs the 'hub' extra).")
@click.option("--strict", is_flag=True, help="hf: exit 1 when any problem was reported.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def pack(ctx, tree, out, fmt, strict, no_progress):
    """Pack a clean tree into one deterministic ZIP with SHA256SUMS and DATASHEET.md,
    or (--format hf) into a Hugging Face dataset folder."""
    command = recorded_command(ctx)
    if fmt == "hf":
        return pack_hf(tree, out, command, not no_progress, strict)
    try:
        rep = pack_tree(PackConfig(src=str(tree), out=str(out), command=command,
                                   progress=not no_progress))
    except ShareError as e:
        raise click.UsageError(str(e)) from None
    click.echo(f"{rep.archive}: {rep.files} files, {rep.bytes} bytes, sha256 {rep.sha256}")


@click.command()
@click.argument("source")
@click.option("--dest", required=True, type=OutPath(file_okay=False, path_type=Path),
              help="New or empty folder to receive the clean tree.")
@click.option("--sha256", "sha256", default=None,
              help="Expected archive sha256 (default: the .sha256 file beside it, if any).")
@click.option("--keep-archive", is_flag=True, help="Keep a downloaded archive under --dest/.sunrgbd-fetch/.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Workers for checks.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@_http_options
def fetch(source, dest, sha256, keep_archive, workers, no_progress, timeout, retries):
    """Download (URL) or open (path) a packed dataset, check it, extract it safely, verify it."""
    if sha256 is not None and (len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256)):
        raise click.BadParameter("not a 64-digit hex sha256", param_hint="--sha256")
    cfg = FetchConfig(source=source, dest=str(dest), sha256=sha256, keep_archive=keep_archive,
                      workers=workers, progress=not no_progress,
                      http=HttpConfig(timeout=timeout, retries=retries))
    try:
        rep = fetch_archive(cfg)
    except DestinationError as e:
        raise click.UsageError(str(e)) from None
    except (ShareError, HttpError, ZipFormatError) as e:
        raise click.ClickException(str(e)) from None
    if rep.checked == "none":
        click.echo("warning: no --sha256 and no .sha256 beside the archive; only SHA256SUMS "
                   "inside it was checked", err=True)
    for p in rep.problems:
        click.echo(p, err=True)
    if rep.problems:
        click.echo(f"{dest}: {rep.samples} samples, {len(rep.problems)} problem(s)")
        sys.exit(1)
    click.echo(f"{dest}: {rep.files} files, {rep.samples} samples OK "
               f"(sha256 {rep.archive_sha256}, checked against {rep.checked})")
