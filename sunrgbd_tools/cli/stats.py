"""`sunrgbd stats`: a thin click shell over sunrgbd_tools.stats (parse, call, print)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from cleantree.dataset import DEFAULT_WEIGHT_METHOD, WEIGHT_METHODS
from cleantree.files import dumps_json
from sunrgbd_tools.parallel import default_workers

# The library is imported inside the command, so `--help` costs click alone (docs/performance.md).


def format_table(stats: dict, weights: bool) -> str:
    """The human-readable summary: one row per train id, then totals and mean/std."""
    method = stats["class_weights_default"]
    w = stats["class_weights"][method]
    px = stats["pixels"]
    head = f"{'train_id':>8}  {'class':<16} {'pixels':>14} {'%':>7} {'images':>7}"
    if weights:
        head += f" {'weight':>9}"
    lines = [head, "-" * len(head)]
    for c in stats["classes"]:
        pct = 100.0 * c["pixels"] / px["labelled"] if px["labelled"] and not c["ignore_in_eval"] else 0.0
        line = f"{c['train_id']:>8}  {c['name'][:16]:<16} {c['pixels']:>14,} {pct:>7.3f} {c['images']:>7}"
        if weights:
            line += f" {w[c['train_id']]:>9.4f}"
        lines.append(line)
    s = stats["samples"]
    ign = 100.0 * px["ignore"] / px["total"] if px["total"] else 0.0
    lines += [
        "-" * len(head),
        f"split {stats['stats_split']}: {s['used']} images used of {s['split']} ({s['skipped']} skipped); "
        f"{px['total']:,} pixels, {px['ignore']:,} ignore ({ign:.2f}%); % is of labelled pixels",
    ]
    if stats["mean"] is not None:
        lines.append("mean (RGB, 0-1): " + " ".join(f"{v:.6f}" for v in stats["mean"]))
        lines.append("std  (RGB, 0-1): " + " ".join(f"{v:.6f}" for v in stats["std"]))
    if stats["depth_mean"] is not None:
        lines.append(f"depth (m, {stats['depth_valid_pixels']:,} valid pixels): "
                     f"mean {stats['depth_mean']:.6f} std {stats['depth_std']:.6f}")
    else:
        lines.append("depth: none")
    if weights:
        lines.append(f"weights: {method} (default); stored: {', '.join(stats['class_weights'])}")
    return "\n".join(lines)


@click.command("stats")
@click.argument("clean_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--weights", "show_weights", is_flag=True,
              help="Show the class weights in the table (all methods are always stored).")
@click.option("--method", type=click.Choice(list(WEIGHT_METHODS)), default=DEFAULT_WEIGHT_METHOD, show_default=True,
              help="Weighting method marked default in stats.json / dataset.json.")
@click.option("--split", default="train", show_default=True,
              help="Split the statistics are computed on (train: never the evaluation splits).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: number of cores].")
@click.option("--json", "as_json", is_flag=True, help="Print stats.json instead of the table.")
@click.option("--force", is_flag=True, help="Recompute even when stats.json is up to date.")
@click.option("--strict", is_flag=True, help="Exit 1 when samples were reported and skipped.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def stats(clean_dir: Path, show_weights: bool, method: str, split: str, workers: int | None,
          as_json: bool, force: bool, strict: bool, progress: bool) -> None:
    """Class pixel counts, class weights and RGB/depth mean/std of CLEAN_DIR's SPLIT.

    Writes CLEAN_DIR/stats.json and adds mean, std, depth_mean, depth_std,
    class_pixel_counts, class_image_counts, class_weights, class_weights_default,
    stats_split and stats_sha256 to dataset.json. A second run on an unchanged tree
    changes nothing. Exit 0 done; 1 labelIds values outside the class table (nothing
    written) or, with --strict, samples skipped; 2 usage error.
    """
    from sunrgbd_tools.stats import (
        AbsentClassWarning,
        StatsConfig,
        StatsError,
        StatsInputError,
        run_stats,
    )

    cfg = StatsConfig(split=split, method=method, workers=workers or default_workers(), force=force)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AbsentClassWarning)  # printed below, once
            result = run_stats(clean_dir, cfg, progress=progress)
    except StatsInputError as e:
        raise click.UsageError(str(e)) from None
    except StatsError as e:  # LabelValueError among them: data errors, nothing written
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    st = result.stats
    for p in result.problems:
        click.echo(f"problem: {clean_dir / p['file']}: {p['problem']}", err=True)
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        click.echo(dumps_json(st), nl=False)
    else:
        method_given = click.get_current_context().get_parameter_source("method")
        explicit = method_given is not None and method_given.name == "COMMANDLINE"
        click.echo(format_table(st, show_weights or explicit))
    if result.reused == "stats" and not result.written:
        note = f"up to date (stats_sha256 {st['stats_sha256'][:12]}): nothing written"
    elif result.written:
        how = "weights re-derived from stored sums" if result.reused == "sums" else "computed"
        note = f"{how}; wrote {', '.join(str(p) for p in result.written)}"
    else:
        note = "computed; files already held these results"
    click.echo(note, err=True)
    if result.problems:
        click.echo(f"{len(result.problems)} problem(s) reported, {st['samples']['skipped']} sample(s) skipped",
                   err=True)
        if strict:
            sys.exit(1)
