"""Click shells for `sunrgbd pack` and `sunrgbd fetch`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from sunrgbd_tools.cli.common import OutPath, http_options, recorded_command
from sunrgbd_tools.text import plural

# The library (urllib3, numpy, OpenCV for the hf export) is imported inside the commands:
# `--help` costs click alone.


def _pack_zip(tree: Path, out: Path, command: str, progress: bool, strict: bool) -> None:
    from sunrgbd_tools.acquire.share import PackConfig, ShareError, pack_tree

    try:
        rep = pack_tree(PackConfig(src=str(tree), out=str(out), command=command, progress=progress))
    except ShareError as e:
        raise click.UsageError(str(e)) from None
    for p in rep.problems:
        click.echo(f"problem: {p}", err=True)
    if rep.repacked:
        click.echo(f"note: {rep.repacked}", err=True)
    click.echo(f"{rep.archive}: {rep.files} files, {rep.bytes} bytes, sha256 {rep.sha256}")
    if strict and rep.problems:
        sys.exit(1)


def _pack_hf(tree: Path, out: Path, command: str, progress: bool, strict: bool) -> None:
    from sunrgbd_tools.cli.hub import pack_hf

    pack_hf(tree, out, command, progress, strict)


@dataclass(frozen=True)
class PackFormat:
    """One `pack --format`: what it writes, what --out names, what --strict counts, and its
    runner (tree, out, recorded command, progress, strict). A new format is a row here, its
    library module in acquire/ and, when its output needs it, a click side like cli/hub.py."""

    what: str
    out: str
    problems: str
    run: Callable[[Path, Path, str, bool, bool], None]


PACK_FORMATS = {  # the first is the default
    "zip": PackFormat("one verified archive", "the archive to write (<out>.sha256 goes beside it)",
                      "files outside the clean-tree contract left out", _pack_zip),
    "hf": PackFormat("Hugging Face `datasets` parquet shards + dataset card (needs the 'hub' extra)",
                     "a new or empty folder", "samples left out", _pack_hf),
}


def _per_format(field: str) -> str:
    return "; ".join(f"{name}: {getattr(f, field)}" for name, f in PACK_FORMATS.items())


@click.command()
@click.argument("tree", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=OutPath(path_type=Path), help=f"{_per_format('out')}.")
@click.option("--format", "fmt", type=click.Choice(list(PACK_FORMATS)), default=next(iter(PACK_FORMATS)),
              show_default=True, help=f"{_per_format('what')}.")
@click.option("--strict", is_flag=True,
              help=f"Exit 1 when any problem was reported ({_per_format('problems')}).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def pack(ctx, tree, out, fmt, strict, no_progress):
    """Pack a clean tree into one deterministic ZIP with SHA256SUMS and DATASHEET.md,
    or (--format hf) into a Hugging Face dataset folder."""
    # the tree and --out by their names: the same tree packed from another folder, or named by
    # an absolute path, gives the same bytes and puts no home folder into a shared archive
    command = recorded_command(ctx, shown={"tree": Path(os.path.abspath(tree)).name,
                                           "out": Path(os.path.abspath(out)).name})
    PACK_FORMATS[fmt].run(tree, out, command, not no_progress, strict)


@click.command()
@click.argument("source")
@click.option("--dest", required=True, type=OutPath(file_okay=False, path_type=Path),
              help="New or empty folder to receive the clean tree.")
@click.option("--sha256", "sha256", default=None,
              help="Expected archive sha256 (default: the .sha256 file beside it, if any).")
@click.option("--keep-archive", is_flag=True, help="Keep a downloaded archive under --dest/.sunrgbd-fetch/.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Workers for checks.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@http_options
def fetch(source, dest, sha256, keep_archive, workers, no_progress, timeout, retries):
    """Download (URL) or open (path) a packed dataset, check it, extract it safely, verify it."""
    from sunrgbd_tools.acquire.share import DestinationError, FetchConfig, ShareError, check_source
    from sunrgbd_tools.acquire.share import fetch as fetch_archive
    from sunrgbd_tools.remote.http import HttpConfig, HttpError
    from sunrgbd_tools.remote.rangezip import ZipFormatError

    try:
        check_source(source)
    except ShareError as e:
        raise click.BadParameter(str(e), param_hint="SOURCE") from None
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
        click.echo(f"{dest}: {plural(rep.samples, 'sample')}, {plural(len(rep.problems), 'problem')}")
        sys.exit(1)
    click.echo(f"{dest}: {rep.files} files, {plural(rep.samples, 'sample')} OK "
               f"(sha256 {rep.archive_sha256}, checked against {rep.checked})")
