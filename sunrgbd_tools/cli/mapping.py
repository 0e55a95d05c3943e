"""`sunrgbd mapping …`: inspect, check and extend the name → class mapping (thin shell)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from cleantree.files import atomic_write_text
from sunrgbd_tools.cli.common import OutPath
from sunrgbd_tools.parallel import progress_bar

_MAPPING_OPT = click.option(
    "--mapping", "mapping_path", type=click.Path(exists=True, path_type=Path), default=None,
    help="A user's mapping: a CSV of raw_name,class rows laid over the shipped table, "
         "or a mapping folder holding names.csv (default: the shipped tables).")


def _mapper(path):
    from sunrgbd_tools.labels.table import NameMapper

    try:
        return NameMapper.load(path)
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _write_or_print(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
    else:
        atomic_write_text(out, text)
        click.echo(f"wrote {out}", err=True)


@click.group()
def mapping() -> None:
    """Inspect, check and extend the mapping of raw SUN RGB-D names to classes."""


@mapping.command()
@_MAPPING_OPT
@click.option("--json", "as_json", is_flag=True, help="Print the class table as JSON.")
def show(mapping_path, as_json):
    """Print the class table (id, train_id, name, colour) and the tables' checksums."""
    m = _mapper(mapping_path)
    if as_json:
        click.echo(json.dumps({"classes": m.table.to_json(), "mapping_sha256": m.sha256,
                               "mapping_files": m.files}, indent=2))
        return
    click.echo(f"{'id':>3} {'train_id':>8}  {'colour':7}  name")
    for c in m.table.classes:
        col = "#{:02x}{:02x}{:02x}".format(*c.color)
        click.echo(f"{c.id:>3} {c.train_id:>8}  {col}  {c.name}" + ("  (ignored)" if c.ignore_in_eval else ""))
    click.echo(f"\nmapping sha256 {m.sha256}")
    for name, digest in m.files.items():
        click.echo(f"  {name:14} {digest}")


@mapping.command()
@click.argument("names", nargs=-1, required=True)
@_MAPPING_OPT
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {name, class, class_id, rule, via, key}.")
def lookup(names, mapping_path, as_json):
    """Show the class of each raw NAME and the rule that produced it."""
    m = _mapper(mapping_path)
    hits = [m.lookup(n) for n in names]
    if as_json:
        click.echo(json.dumps([{"name": h.name, "class": h.class_name, "class_id": h.class_id,
                                "rule": h.rule, "via": h.via, "key": h.key} for h in hits],
                              indent=2, ensure_ascii=False))
        return
    train_id = {c.id: c.train_id for c in m.table.classes}
    for h in hits:
        via = f"  ({h.via})" if h.via else ""
        click.echo(f"{h.name!r} → {h.class_name} [id {h.class_id}, train_id {train_id.get(h.class_id)}]  "
                   f"rule={h.rule}{via}")


@mapping.command()
@click.option("--tables", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Mapping folder to build (default: the shipped mappings/).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when names.csv is not what the tables give.")
def build(tables, check):
    """Regenerate names.csv from raw_names.csv and the rule tables (byte for byte)."""
    from sunrgbd_tools.labels.build import build_names_csv, names_path

    try:
        text = build_names_csv(tables)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    path = names_path(tables)
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if check:
        if current != text:
            click.echo(f"{path}: out of date; run `sunrgbd mapping build`", err=True)
            sys.exit(1)
        click.echo(f"{path}: up to date")
        return
    if current == text:
        click.echo(f"{path}: up to date")
        return
    atomic_write_text(path, text)
    click.echo(f"wrote {path} ({text.count(chr(10)) - 1} names)")


@mapping.command("import-seglistall")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=OutPath(dir_okay=False, path_type=Path), default=None,
              help="Where to write (default: raw_names.csv of the shipped mappings/).")
def import_seglistall(path, out):
    """One-off: read the raw names from crmauceri's seglistall.csv or the toolbox's seglistall.mat.

    Writes raw_names.csv (raw_name, seglistall_index, images), the list `build` works from.
    """
    from sunrgbd_tools.labels.build import RAW_NAMES_FILE, raw_names_csv
    from sunrgbd_tools.labels.build import import_seglistall as do_import
    from sunrgbd_tools.labels.table import mappings_dir

    try:
        names = do_import(path)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    target = out or mappings_dir() / RAW_NAMES_FILE
    atomic_write_text(target, raw_names_csv(names))
    click.echo(f"wrote {target} ({len(names)} names)")


@mapping.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_MAPPING_OPT
@click.option("--csv", "csv_out", type=OutPath(dir_okay=False, path_type=Path), default=None,
              help="Also write the full list as CSV (raw_name, pixels, images, key).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Rows to print (0 = all).")
@click.option("--strict", is_flag=True, help="Exit 1 when scenes could not be read.")
def check(src, mapping_path, csv_out, as_json, limit, strict):
    """List the names in SRC that fall to Other, by pixels.

    SRC is a raw tree (SUNRGBD/…: names and pixel counts from each scene's seg.mat, else
    its annotation2Dfinal/index.json polygons, at native size) or a clean tree written by
    `convert` (the manifest's unmapped_names, pixels at the written size).
    """
    from sunrgbd_tools.labels.check import check_csv, check_tree

    m = _mapper(mapping_path)
    try:
        res = check_tree(src, m, progress=progress_bar("check", disable=not sys.stderr.isatty()))
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    for p in res.problems:
        click.echo(f"problem: {p}", err=True)
    if csv_out is not None:
        atomic_write_text(csv_out, check_csv(res, m))
    if as_json:
        click.echo(json.dumps(res.to_json(), indent=2, ensure_ascii=False))
    else:
        total_px = sum(n.pixels for n in res.names)
        click.echo(f"{res.kind} tree, {res.scenes} scenes: {len(res.names)} names fell to Other "
                   f"({total_px} pixels); {len(res.problems)} problems")
        rows = res.names if limit == 0 else res.names[:limit]
        if rows:
            click.echo(f"{'pixels':>10} {'images':>6}  name")
        for n in rows:
            click.echo(f"{n.pixels:>10} {n.images:>6}  {n.name}")
        if len(rows) < len(res.names):
            click.echo(f"… {len(res.names) - len(rows)} more (use --limit 0 or --csv)")
    if strict and res.problems:
        sys.exit(1)


@mapping.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
@_MAPPING_OPT
@click.option("-o", "--out", type=OutPath(dir_okay=False, path_type=Path), default=None,
              help="CSV to write (default: print to stdout).")
@click.option("--prefill", is_flag=True, help="Put the best candidate in the `class` column too.")
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.7, show_default=True,
              help="Leave out names whose best candidate scores lower.")
def suggest(src, mapping_path, out, prefill, min_score):
    """Rank candidate classes for the names that fall to Other; write a CSV to edit.

    Without SRC, works on the shipped raw names (raw_names.csv). Fill the `class` column
    of the rows you accept (leave the rest empty) and use the file with
    `sunrgbd convert --mapping FILE` or `sunrgbd mapping lookup --mapping FILE`.
    """
    from sunrgbd_tools.labels.build import read_raw_names
    from sunrgbd_tools.labels.check import (
        check_tree,
        replaceable_suggestions,
        suggest_csv,
        unmapped_raw_names,
    )

    m = _mapper(mapping_path)
    try:
        if src is None:
            names = unmapped_raw_names(m, read_raw_names())
        else:
            res = check_tree(src, m, progress=progress_bar("suggest", disable=not sys.stderr.isatty()))
            for p in res.problems:
                click.echo(f"problem: {p}", err=True)
            names = res.names
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    text = suggest_csv(names, m, prefill=prefill, min_score=min_score)
    if out is not None and not replaceable_suggestions(out, text):
        raise click.UsageError(f"{out}: exists and holds class choices (or is not a suggestion list); "
                               "remove it or choose another -o (nothing was changed)")
    _write_or_print(text, out)


@mapping.command()
@_MAPPING_OPT
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of Markdown.")
@click.option("--real-names", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON list (or object keyed by name) of names as written in real index.json files.")
@click.option("--frequencies", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV of real names with the number of scenes using each (class,scene_frequency).")
@click.option("--scannet", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="ScanNet's scannetv2-labels.combined.tsv, to cross-check against its NYU40 classes.")
def report(mapping_path, as_json, real_names, frequencies, scannet):
    """Coverage of seglistall's and the real names, ours vs exact names; ScanNet cross-check.

    Without options, measures the shipped seglistall names (raw_names.csv). docs/mapping.md
    shows the output for the real SUN RGB-D names and ScanNet's table.
    """
    from sunrgbd_tools.labels.build import read_raw_names
    from sunrgbd_tools.labels.report import (
        WeightedName,
        coverage,
        coverage_report,
        crosscheck,
        read_frequencies,
        read_real_names,
        read_scannet,
        report_markdown,
    )

    m = _mapper(mapping_path)
    try:
        rep = {"seglistall": coverage_report(m, read_raw_names())}
        if frequencies is not None:
            rep["real_frequencies"] = coverage(m, read_frequencies(frequencies))
        if real_names is not None:
            rep["real_names"] = coverage(m, [WeightedName(n, 1) for n in read_real_names(real_names)])
        if scannet is not None:
            rep["scannet"] = crosscheck(read_scannet(scannet, m))
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if as_json:
        click.echo(json.dumps(rep, indent=2))
    else:
        click.echo(report_markdown(rep, [c.name for c in m.table.classes if c.id != 0]), nl=False)


@mapping.command()
@click.option("--src", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Raw tree: SUNRGBD/ plus SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat and SUNRGBDMeta.mat.")
@click.option("--subset", default="kv2", show_default=True,
              help="kv1, kv2, realsense, xtion, all, or a sub-subset such as kv2/align_kv2.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("audit"),
              show_default=True, help="Folder for the outputs (new, empty, or the same audit re-run).")
@_MAPPING_OPT
@click.option("--min-share", type=click.FloatRange(0, 1, min_open=True), default=0.8, show_default=True,
              help="Learned mapping: the official majority class must hold this share of a name's pixels ...")
@click.option("--min-pixels", type=click.IntRange(min=0), default=1000, show_default=True,
              help="... of at least this many pixels.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: number of cores). Output does not depend on it.")
@click.option("--limit", type=click.IntRange(min=0), default=10, show_default=True,
              help="Names listed in the console summary (0 = all).")
@click.option("--strict", is_flag=True, help="Exit 1 when any problem was reported.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def audit(src, subset, out, mapping_path, min_share, min_pixels, workers, limit, strict, progress):
    """Compare our mapping with SUN RGB-D's own seg37 labels and learn a mapping from them.

    For every scene of SUBSET, the raw names and their pixels (seg.mat, else the
    annotation2Dfinal polygons) are laid over the official seglabel of SUNRGBD2Dseg.mat.
    Writes OUT/names.csv (per raw name, sorted by pixels in disagreement), confusion.csv
    and confusion.png (our classes × official), per_class.csv (agreement per class),
    learned_mapping.csv (usable with `sunrgbd convert --mapping`), problems.txt and
    config.json. See docs/mapping.md.
    """
    from sunrgbd_tools.labels.audit import AuditConfig, AuditError, run_audit, summary_lines

    if not src.is_dir():
        raise click.BadParameter(f"{src}: not a folder", param_hint="--src")
    cfg = AuditConfig(src=os.fspath(src), out=os.fspath(out), subset=subset,
                      mapping=os.fspath(mapping_path) if mapping_path else None,
                      min_share=min_share, min_pixels=min_pixels)
    try:
        res = run_audit(cfg, workers=workers, progress=progress and sys.stderr.isatty())
    except (AuditError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    for p in res.problems:
        click.echo(f"problem: {p}", err=True)
    for line in summary_lines(res, limit):
        click.echo(line)
    click.echo(f"wrote {', '.join(p.name for p in res.written)} to {out}"
               + (f"; {len(res.problems)} problem(s) reported" if res.problems else ""))
    if strict and res.problems:
        sys.exit(1)
