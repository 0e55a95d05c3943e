"""The walls of docs/architecture.md, enforced.

`sunrgbd_tools` never imports torch or `segtrain` (converting needs no deep-learning stack);
`segtrain` never imports `sunrgbd_tools` (it knows only the clean-tree contract, so it serves
any dataset of that shape); `cleantree`, the contract both use, imports neither. Two checks: every
import statement in the source (lazy ones inside functions included), and what importing every
module really loads (a third-party import that pulls torch in would break the wall too).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WALLS = {
    "sunrgbd_tools": {"torch", "segtrain"},
    "segtrain": {"sunrgbd_tools"},
    "cleantree": {"sunrgbd_tools", "segtrain", "torch"},
}


def imported_names(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (absolute imports; relative ones stay inside)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(WALLS))
def test_no_source_file_crosses_a_wall(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    crossing = {str(p.relative_to(ROOT)): sorted(imported_names(p) & WALLS[package]) for p in files}
    assert {k: v for k, v in crossing.items() if v} == {}


def test_the_walls_see_a_crossing(tmp_path):
    """The source check is not blind: a lazy import inside a function is found."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    import torch.nn as nn\n    from segtrain.data import x\n")
    assert imported_names(f) == {"torch", "segtrain"}


@pytest.mark.parametrize("package", sorted(WALLS))
def test_importing_every_module_loads_nothing_across_a_wall(package):
    code = f"""
import importlib, json, pkgutil, sys
import {package} as pkg
mods = [m.name for m in pkgutil.walk_packages(pkg.__path__, "{package}.")]
for m in mods:
    importlib.import_module(m)
print(json.dumps({{"modules": mods, "loaded": sorted({{k.split(".")[0] for k in sys.modules}})}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["modules"]
    assert sorted(set(out["loaded"]) & WALLS[package]) == []


def test_the_wheel_lists_every_package():
    """pyproject.toml names its packages explicitly (mappings/ is mapped in from outside the
    tree), so a new sub-package left off the list would be missing from the wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {p.parent.relative_to(ROOT).as_posix().replace("/", ".")
             for top in WALLS for p in (ROOT / top).rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
    assert listed - found == {"sunrgbd_tools.mappings"}


def test_offline_commands_load_no_network_stack():
    """`sunrgbd sample` and `convert` work offline: their modules must not pull in urllib3
    (the archive names they share with `download` live in raw.base, not in acquire). The CLI
    modules import the library inside the commands, so the library modules are imported here."""
    code = """
import json, sys
import sunrgbd_tools.cli.sample, sunrgbd_tools.cli.convert
import sunrgbd_tools.synthetic.generator, sunrgbd_tools.synthetic.zips, sunrgbd_tools.convert.pipeline
print(json.dumps(sorted(k for k in sys.modules if k.split(".")[0] in ("urllib3", "sunrgbd_tools"))))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert "sunrgbd_tools.synthetic.zips" in loaded  # the check sees what `sample` imports
    assert [m for m in loaded if m.startswith(("urllib3", "sunrgbd_tools.remote", "sunrgbd_tools.acquire"))] == []
