"""Sphinx configuration of the sop documentation: ``sphinx-build -W -b html docs docs/_build/html``."""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))          # the repository's figures/ (not installed) and packages
sys.path.insert(0, str(DOCS / "_ext"))

project = "sop"
author = "sop developers"
copyright = "2026, sop developers"
release = version = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sopdocs",          # docs/_ext/sopdocs.py: API pages from __all__, the gallery from FIGURES
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "gallery/_redrawn", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
root_doc = "index"

# MyST: $...$ and $$...$$ math, ::: fences, anchors for the headings of the long pages
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# the reference: one page per public name, written by autosummary from the numpydoc docstrings
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"                   # numpydoc's Parameters section says the types
autodoc_preserve_defaults = True             # gamma=np.exp(-8) as written, not its float
numpydoc_show_class_members = False          # members are listed by autodoc, not again by numpydoc
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()

# a broken cross-reference is an error (the suite builds with -W); only names outside this project,
# which have no page here (no intersphinx: the build runs offline), are let through
nitpicky = True
nitpick_ignore_regex = [
    ("py:.*", r"(torch|nn|numpy|np|pandas|pd|cvxpy|cp|matplotlib|pathlib|os|argparse|collections|typing|dataclasses)(\..*)?"),
    ("py:class", r"(optional|default.*|array-like|ndarray|Tensor|int|float|str|bool|dict|list|tuple|callable|Path)"),
]

html_theme = "pydata_sphinx_theme"
html_title = "sop"
html_static_path = ["_static"]
html_css_files = ["sop.css"]
html_theme_options = {
    "navigation_depth": 2,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_show_sourcelink = False
