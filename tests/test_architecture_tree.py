"""ARCHITECTURE.md's tree names every module of the packages and the figure scripts, and nothing
that no longer exists: a file added or removed without its line fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sopcommon", "soptheory", "sopdeep", "figures")


def _tree_text() -> str:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    return text[text.index("## Tree"):]


def test_every_module_has_a_line_in_the_tree():
    tree = _tree_text()
    missing = [str(p.relative_to(ROOT)) for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
               if p.name not in ("__init__.py", "__main__.py") and not re.search(rf"\b{re.escape(p.name)}\b", tree)]
    assert not missing, f"ARCHITECTURE.md's tree misses {missing}"


def test_every_python_file_the_tree_names_exists():
    names = set(re.findall(r"\b([a-z_0-9]+\.py)\b", _tree_text()))
    existing = {p.name for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    # decode.py: the data exports' own decoder (../shared/data), which the dataset modules run
    existing |= {p.name for folder in ("tests", "docs", "benchmarks", "experiments") for p in (ROOT / folder).rglob("*.py")}
    existing |= {"decode.py"}
    stale = sorted(names - existing)
    assert not stale, f"ARCHITECTURE.md's tree names files that do not exist: {stale}"
