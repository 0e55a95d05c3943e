"""The `sunrgbd` command: a thin click shell over the library modules.

Sub-commands are imported only when invoked (click's lazy-group pattern), so `--help`
and light commands start fast and never pay for h5py/scipy imports they do not use. The
command list of `sunrgbd --help` is read from the command modules' source, not imported.
"""

from __future__ import annotations

import ast
import errno
import functools
import importlib
import importlib.util
import os
import warnings
from pathlib import Path

import click

from sunrgbd_tools import __version__
from sunrgbd_tools.cli.common import remember_argv

# command name -> "module:attribute" (a click.Command); one module per concern.
COMMANDS: dict[str, str] = {
    "sample": "sunrgbd_tools.cli.sample:sample",
    "convert": "sunrgbd_tools.cli.convert:convert",
    "verify": "sunrgbd_tools.cli.convert:verify",
    "mapping": "sunrgbd_tools.cli.mapping:mapping",
    "stats": "sunrgbd_tools.cli.stats:stats",
    "download": "sunrgbd_tools.cli.download:download",
    "pack": "sunrgbd_tools.cli.share:pack",
    "fetch": "sunrgbd_tools.cli.share:fetch",
}


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = " ".join(str(message).split())
    click.echo(f"warning: {text} ({category.__name__})", err=True)


def command_docstring(spec: str) -> str | None:
    """The docstring of the function a lazy command wraps ("module:attribute"), read from the
    module's source without importing it; None when it cannot be found that way."""
    module, attr = spec.split(":")
    functions = _module_docstrings(module)
    return None if functions is None else functions.get(attr)


@functools.cache
def _module_docstrings(module: str) -> dict[str, str | None] | None:
    """{top-level function: its docstring} of a module's .py source, parsed once (convert and
    share hold two commands each); None when the module has no readable Python source (a
    compiled or frozen module, a file that does not parse or decode): the caller imports it."""
    found = importlib.util.find_spec(module)
    if found is None or not found.origin or not found.origin.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(found.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):  # ValueError: a NUL byte
        return None
    return {node.name: ast.get_docstring(node) for node in tree.body if isinstance(node, ast.FunctionDef)}


class LazyGroup(click.Group):
    def __init__(self, *args, lazy: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def format_commands(self, ctx, formatter):
        """click's command list, each line from a stand-in holding the command's docstring:
        importing every command to list them loaded numpy, scipy, OpenCV, h5py and the
        synthetic generator (two thirds of `sunrgbd --help`'s time, docs/performance.md)."""
        commands = []
        for name in self.list_commands(ctx):
            doc = command_docstring(self.lazy[name]) if name in self.lazy else None
            cmd = click.Command(name, help=doc) if doc is not None else self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                commands.append((name, cmd))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in commands])

    def get_command(self, ctx, name):
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def parse_args(self, ctx, args):
        remember_argv(ctx, args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        # Library noise is not ours to print: OpenCV's "[ WARN:0@…] imread_…/findDecoder" lines
        # duplicate the one-line problems we report. Set before cv2 is first imported (in the
        # sub-command modules), inherited by worker processes; a user's own setting wins.
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
        # a Python warning from a library (numpy, scipy, PIL, h5py) that slips through is one
        # `warning:` line, not Python's two-line "file:line: Category: …" + source excerpt
        warnings.showwarning = _one_line_warning
        try:
            return super().invoke(ctx)
        except OSError as e:  # last resort: a file-system failure we did not foresee is one line
            if e.errno == errno.EPIPE:  # `| head`: click's own handling exits quietly
                raise
            where = f"{e.filename}: " if e.filename else ""
            raise click.ClickException(f"{where}{e.strerror or e}") from None


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sunrgbd")
def main() -> None:
    """SUN RGB-D → Cityscapes-style datasets: sample, convert, verify, map names, stats, share."""
