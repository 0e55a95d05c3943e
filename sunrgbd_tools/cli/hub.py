"""Click side of `sunrgbd pack --format hf` (the command itself lives in cli/share.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sunrgbd_tools.acquire.hub import HubConfig, HubError, HubUsageError, export_hf


def pack_hf(tree: Path, out: Path, command: str, progress: bool, strict: bool = False) -> None:
    """Export, print one line per problem and a summary; usage errors exit 2, problems
    exit 1 under --strict."""
    try:
        rep = export_hf(HubConfig(src=str(tree), out=str(out), command=command, progress=progress))
    except HubUsageError as e:
        raise click.UsageError(str(e)) from None
    except (HubError, OSError) as e:
        raise click.ClickException(str(e)) from None
    for p in rep.problems:
        click.echo(f"problem: {p}", err=True)
    counts = ", ".join(f"{k} {v}" for k, v in rep.rows.items() if v or k == "train")
    click.echo(f"{rep.out}: {len(rep.shards)} parquet shard(s), {rep.bytes} bytes ({counts})"
               + (f", {rep.resumed} shard(s) resumed" if rep.resumed else "")
               + f"; load with datasets.load_dataset({str(rep.out)!r})")
    if rep.problems:
        click.echo(f"{len(rep.problems)} problem(s) reported; skipped samples are not in the export",
                   err=True)
        if strict:
            sys.exit(1)
