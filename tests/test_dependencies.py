"""Every third-party module the installed packages and the figure scripts import is a declared
dependency, so the README's main-job install (``pip install .``, no extras) is enough."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL = {"sopcommon", "soptheory", "sopdeep", "figures"}
# import name -> distribution name where they differ
DIST = {"PIL": "pillow", "sklearn": "scikit-learn", "yaml": "pyyaml"}
# imported only behind an option that names its extra (python -m figures --dask; run_phase backend="dask")
OPTIONAL = {"dask", "distributed"}


def _imported_top_level_names(folder):
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_a_declared_dependency():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {dep.split(">")[0].split("=")[0].split("[")[0].strip().lower()
                for dep in meta["dependencies"]}
    imported = set()
    for package in LOCAL:
        imported |= _imported_top_level_names(ROOT / package)
    third_party = imported - LOCAL - set(sys.stdlib_module_names) - OPTIONAL - {"__future__"}
    missing = {name for name in third_party if DIST.get(name, name).lower() not in declared}
    assert not missing, f"imported but not in [project] dependencies: {sorted(missing)}"
