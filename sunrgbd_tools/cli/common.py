"""Helpers the `sunrgbd` click shells share: output paths checked before any work starts, and
the one owner of "the command line we record" (DATASHEET.md, dataset.json provenance).

Recorded commands leave out cosmetic options (progress bars, worker counts, --strict, …):
they never change an output byte, so recording them would make the same data give
different archives depending on how the user watched it being made.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

# click parameter names that change how a command runs or talks, never what it writes.
COSMETIC = frozenset({"workers", "jobs", "progress", "no_progress", "quiet", "strict"})
_ARGV_KEY = "sunrgbd.argv"


def remember_argv(ctx: click.Context, args: list[str]) -> None:
    """Called by the root group before parsing: keep the raw tokens (click keeps none)."""
    ctx.meta[_ARGV_KEY] = list(args)


def _drop_cosmetic(command: click.Command, tokens: list[str], drop: frozenset[str],
                   shown: dict[str, str] | None = None) -> list[str]:
    """`tokens` without the options of `drop`, and with the value typed for each parameter
    named in `shown` (an argument or an option taking a value) written as `shown` gives it."""
    shown = shown or {}
    flags: set[str] = set()  # options of `drop` that take no value
    valued: set[str] = set()
    takes_value: dict[str, str] = {}  # every option string that takes a value -> its parameter
    for p in command.params:
        if isinstance(p, click.Option):
            names = [*p.opts, *p.secondary_opts]
            if p.name in drop:
                (flags if p.is_flag or p.count else valued).update(names)
            if not (p.is_flag or p.count):
                takes_value.update(dict.fromkeys(p.opts, p.name))
    arguments = [p.name for p in command.params if isinstance(p, click.Argument)]
    out: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t == "--":  # the rest are arguments (a tree named `-x`), shown as the others are
            out += ["--", *(shown.get(arguments.pop(0), a) if arguments else a for a in tokens[i + 1:])]
            break
        name = t.split("=", 1)[0] if t.startswith("--") else t
        if name in flags:
            i += 1
            continue
        if name in valued:
            i += 1 if "=" in t else 2
            continue
        if not t.startswith("--") and any(len(v) == 2 and t.startswith(v) and len(t) > 2 for v in valued):
            i += 1  # -j4
            continue
        if name in takes_value:  # kept: its value goes with it
            param = takes_value[name]
            if "=" in t:
                out.append(f"{name}={shown.get(param, t.split('=', 1)[1])}")
                i += 1
            else:
                out += [t, *([shown.get(param, tokens[i + 1])] if i + 1 < len(tokens) else [])]
                i += 2
            continue
        if not t.startswith("-") and arguments:
            out.append(shown.get(arguments.pop(0), t))
        else:
            out.append(t)
        i += 1
    return out


def recorded_command(ctx: click.Context, drop: frozenset[str] = COSMETIC,
                     shown: dict[str, str] | None = None) -> str:
    """`sunrgbd <sub> …` as the user typed it, minus cosmetic options; "" outside the CLI.
    `shown` ({parameter name: text}) replaces what was typed for those parameters: pack records
    the tree and --out by their names, so the line does not depend on where the user stood."""
    root = ctx.find_root()
    argv = root.meta.get(_ARGV_KEY)
    if argv is None:
        return ""
    names = []
    c = ctx
    while c.parent is not None:
        names.append(c.info_name)
        c = c.parent
    names.reverse()
    # the tokens after the sub-command names (the root group takes no options but --help/--version)
    rest = argv[len(names):] if argv[:len(names)] == names else argv
    return shlex.join(["sunrgbd", *names, *_drop_cosmetic(ctx.command, rest, drop, shown)])


class OutPath(click.Path):
    """click.Path for something we will create: besides click's checks, the nearest existing
    ancestor must be a folder, so `--out some_file/x` is a usage error (exit 2), not a traceback."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        p = Path(os.fsdecode(rv))
        for parent in p.absolute().parents:
            try:
                found = parent.exists() or parent.is_symlink()
            except OSError:  # an unreadable ancestor: let the command report what fails
                break
            if found:
                if not parent.is_dir():
                    shown = os.path.relpath(parent) if not p.is_absolute() else str(parent)
                    self.fail(f"{os.fsdecode(value)}: {shown} is a file, not a folder", param, ctx)
                break
        return rv


def http_options(f):
    """--timeout and --retries, shared by every command that talks HTTP."""
    f = click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
                     help="Seconds without data before a request is retried.")(f)
    f = click.option("--retries", type=click.IntRange(min=0), default=8, show_default=True,
                     help="Retries per request (backoff doubles, from 1 s up to 60 s).")(f)
    return f
