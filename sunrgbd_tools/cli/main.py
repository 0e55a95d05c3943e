"""The `sunrgbd` command: a thin click shell over the library modules.

Sub-commands are imported only when invoked (click's lazy-group pattern), so `--help`
and light commands start fast and never pay for h5py/scipy imports they do not use.
"""

from __future__ import annotations

import errno
import importlib
import os
import warnings

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


class LazyGroup(click.Group):
    def __init__(self, *args, lazy: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

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
