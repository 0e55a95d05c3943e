"""The `segtrain` CLI as the acceptance and bad-input tests drive it: invoke, the one error
line of a failed command, and a folder's bytes (to prove nothing was written)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from segtrain.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def error_line(result) -> str:
    """The single 'Error: ...' line of a failed command, with no traceback anywhere."""
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
