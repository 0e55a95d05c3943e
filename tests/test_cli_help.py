"""`sunrgbd --help` and each command's `--help` load only what their text needs: listing the
commands imported every command module, and with them numpy, scipy, OpenCV, h5py, urllib3 and
the synthetic generator (two thirds of the 0.5 s it took; docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from sunrgbd_tools.cli.main import COMMANDS, command_docstring, main

HEAVY = ("numpy", "scipy", "cv2", "h5py", "PIL", "urllib3", "tqdm", "datasets", "pyarrow")


def loaded_by(*args: str) -> tuple[str, list[str]]:
    """`sunrgbd ARGS` in a fresh interpreter: its output and the HEAVY modules it imported."""
    code = f"""
import contextlib, io, json, sys
from sunrgbd_tools.cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main({list(args)!r}, prog_name="sunrgbd")
    except SystemExit:
        pass
print(json.dumps([out.getvalue(), sorted(m for m in {HEAVY!r} if m in sys.modules)]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return tuple(json.loads(r.stdout.strip().splitlines()[-1]))


def test_sunrgbd_help_imports_no_library():
    text, heavy = loaded_by("--help")
    assert heavy == []
    for name in COMMANDS:
        assert f"\n  {name} " in text


@pytest.mark.parametrize("command", [["convert"], ["verify"], ["sample"], ["download"], ["pack"],
                                     ["fetch"], ["mapping"], ["mapping", "audit"], ["stats"]])
def test_a_commands_help_imports_no_library(command):
    """`stats --help` loaded numpy and OpenCV: its choices came from the weighting registry in
    sunrgbd_tools.stats, and its default through cleantree.dataset → cleantree.classes → numpy."""
    text, heavy = loaded_by(*command, "--help")
    assert heavy == [] and text.startswith(f"Usage: sunrgbd {' '.join(command)} ")


def test_stats_help_lists_the_weighting_registry():
    """The light name list `stats --method` offers is the registry's, in its order."""
    from cleantree.dataset import WEIGHT_METHODS
    from sunrgbd_tools.cli.stats import stats
    from sunrgbd_tools.stats import WEIGHTING

    assert WEIGHT_METHODS == tuple(WEIGHTING)
    method = next(p for p in stats.params if p.name == "method")
    assert tuple(method.type.choices) == tuple(WEIGHTING)
    text, _ = loaded_by("stats", "--help")
    assert f"[{'|'.join(WEIGHTING)}]" in " ".join(text.split())


def test_the_command_list_is_what_the_commands_say():
    """The list is built from the docstrings in the source; it must read as click would write it
    from the imported commands, at any width."""
    for name, spec in COMMANDS.items():
        cmd = main.get_command(click.Context(main), name)
        doc = command_docstring(spec)
        assert doc is not None, spec
        for limit in (30, 45, 74, 200):
            assert click.Command(name, help=doc).get_short_help_str(limit) == cmd.get_short_help_str(limit)
    assert command_docstring("sunrgbd_tools.cli.convert:nothing") is None


@pytest.mark.parametrize("source", [None, b"def cmd(:\n", b'def cmd():\n    "caf\xe9"\n', b"def cmd():\n    pass\x00\n"])
def test_a_module_without_readable_source_has_no_docstring_here(tmp_path, monkeypatch, source):
    """A module whose source is not a readable .py (a built-in or compiled one, a file that does
    not parse or decode) is None, so the list imports that command: it raised FileNotFoundError
    (`built-in`), UnicodeDecodeError or SyntaxError and `sunrgbd --help` was a traceback."""
    if source is None:
        assert command_docstring("math:sqrt") is None and command_docstring("_ssl:x") is None
        return
    name = f"helpmod_{abs(hash(source))}"
    (tmp_path / f"{name}.py").write_bytes(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert command_docstring(f"{name}:cmd") is None
    _clear_cache()


def _clear_cache() -> None:
    from sunrgbd_tools.cli import main as main_module

    cached = getattr(main_module, "_module_docstrings", None)
    if cached is not None:
        cached.cache_clear()


def test_each_command_module_is_parsed_once(monkeypatch):
    """convert.py and share.py hold two commands each: they were parsed twice per `--help`."""
    from sunrgbd_tools.cli import main as main_module

    parsed = []
    real = main_module.ast.parse
    monkeypatch.setattr(main_module.ast, "parse", lambda text, *a, **k: parsed.append(text) or real(text, *a, **k))
    _clear_cache()
    try:
        from click.testing import CliRunner

        assert CliRunner().invoke(main, ["--help"]).exit_code == 0
        assert len(parsed) == len({spec.split(":")[0] for spec in COMMANDS.values()}) == 6
    finally:
        _clear_cache()


def test_pack_formats_come_from_one_table(monkeypatch, tmp_path):
    """`pack --format`'s choices, its per-format help and the dispatch are PACK_FORMATS' rows:
    a new format is one row (docs/architecture.md)."""
    from click.testing import CliRunner

    from sunrgbd_tools.cli import share
    from sunrgbd_tools.cli.main import main

    fmt = next(p for p in share.pack.params if p.name == "fmt")
    assert tuple(fmt.type.choices) == tuple(share.PACK_FORMATS) and fmt.default == "zip"
    text = " ".join(CliRunner().invoke(main, ["pack", "--help"]).output.split())
    for name, f in share.PACK_FORMATS.items():
        for said in (f.what, f.out, f.problems):
            assert f"{name}: {said}" in text, (name, said)
    calls = []
    monkeypatch.setitem(share.PACK_FORMATS, "hf", share.PackFormat("w", "o", "p", lambda *a: calls.append(a)))
    res = CliRunner().invoke(main, ["pack", str(tmp_path), "--out", str(tmp_path / "x"), "--format", "hf",
                                    "--strict", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert calls == [(tmp_path, tmp_path / "x", calls[0][2], False, True)]
    assert calls[0][2].startswith("sunrgbd pack ")
