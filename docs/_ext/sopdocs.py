"""Pages generated at build time from the code, so they cannot drift from it.

* ``api/sopdeep.rst``, ``api/soptheory.rst``: one autosummary table per package, listing exactly the
  names of its ``__all__`` (the public API; nothing private).
* ``gallery/``: one page per figure of ``figures.registry.FIGURES`` and an index of thumbnails. The
  pictures are the committed ``results/figures/<NAME>.png``, which each figure's own ``plot`` drew from
  the committed data file beside it; nothing is computed at build time. With ``SOP_DOCS_REDRAW=1``
  each figure is redrawn by its ``plot`` from that data file into the build (about 1.5 min here).

Generated files are written only when their text changes (Sphinx then rebuilds only those), and are
ignored by git.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import textwrap
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
RESULTS = ROOT / "results" / "figures"

# the packages whose __all__ make the API reference, with one sentence each
PACKAGES = {
    "sopdeep": "Training deep classifiers under label noise with SOP and SOP+ (paper Sec. 2, app. A).",
    "soptheory": "The over-parameterized linear model of Section 3 and appendix B.",
}


def _write_if_changed(path: Path, text: str) -> None:
    # rewriting an unchanged file would make Sphinx reread it (and everything after) on every build
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def public_names(package: str) -> list[str]:
    """The package's ``__all__``, sorted; a name starting with ``_`` is an error, not a page."""
    names = list(importlib.import_module(package).__all__)
    private = [name for name in names if name.startswith("_")]
    if private:
        raise ValueError(f"{package}.__all__ holds private names {private}")
    return sorted(names, key=str.lower)


def api_page(package: str) -> str:
    """reST of one package's reference: its docstring's first line and an autosummary of __all__."""
    title = f"``{package}``"
    lines = [title, "=" * len(title), "", PACKAGES[package], "",
             f".. currentmodule:: {package}", "",
             ".. autosummary::", "   :toctree: generated", "   :nosignatures:", ""]
    lines += [f"   {name}" for name in public_names(package)]
    return "\n".join(lines) + "\n"


def _caption(module) -> tuple[str, str]:
    """Title (the docstring's first line, without its final period) and the rest of the docstring."""
    doc = textwrap.dedent(module.__doc__ or "").strip()
    # a figure's docstring is plain text with reST roles; |s| is a norm there, not a substitution
    doc = doc.replace("|", "\\|")
    first, _, rest = doc.partition("\n")
    return first.rstrip("."), textwrap.dedent(rest).strip()


def figure_page(name: str, module, image: str) -> str:
    """reST of one figure: title, picture, the module's docstring (its caption), how to redraw it."""
    title, caption = _caption(module)
    heading = f"{name}: {title}"
    deep = getattr(module, "DEEP", False)
    compute = (f"python -m figures {name} --deep compute --data-dir ../shared/data --out results/figures"
               if deep else f"python -m figures {name} --out results/figures")
    return "\n".join([
        f".. currentmodule:: {module.__name__}", "",
        f".. _gallery-{name}:", "", heading, "=" * len(heading), "",
        f".. image:: {image}", f"   :alt: {title}", "   :width: 100%", "",
        caption, "",
        "Redraw it from the committed data file with the figure's own ``plot`` (no computation):", "",
        ".. code-block:: python", "",
        "   from figures.registry import FIGURES",
        "",
        f'   figure = FIGURES["{name}"]',
        f"   # writes my_figures/{module.NAME}.png and .pdf",
        '   figure.plot("results/figures/" + figure.DATA_FILE, "my_figures")',
        "",
        ("Recompute its data file (this trains networks; hours on a CPU):" if deep
         else "Recompute its data file and redraw it:"), "",
        ".. code-block:: bash", "", f"   {compute}", "",
        f"Data file: ``results/figures/{module.DATA_FILE}``; module: ``figures/{module.__name__.split('.')[-1]}.py``.",
        "",
    ])


def gallery_index(entries: list[tuple[str, str, str]]) -> str:
    """reST of the gallery's front page: a grid of every figure, each linking to its page."""
    lines = ["Gallery", "=======", "",
             "Every figure registered in ``figures/registry.py``, as committed in ``results/figures/``:",
             "each was drawn by the figure's own ``plot`` function from the data file beside it. Click",
             "a picture for its caption, its data file and the commands that redraw or recompute it.",
             "``python -m figures all --out results/figures`` redraws all of them (see",
             ":doc:`/guide/figures`).", "",
             ".. toctree::", "   :hidden:", ""]
    lines += [f"   {name}" for name, _, _ in entries]
    lines += ["", ".. container:: sop-gallery", ""]
    for name, title, image in entries:
        lines += ["   .. container:: sop-card", "",
                  f"      .. image:: {image}", f"         :target: {name}.html", f"         :alt: {title}", "",
                  f"      :ref:`{name} <gallery-{name}>`: {title}", ""]
    return "\n".join(lines) + "\n"


_ABBREVIATION = re.compile(r"\b(eqs?|Eqs?|Sec|Prop|Def|Fig|app|cf|e\.g|i\.e)\. ")


def _whole_first_sentence(lines):
    """The docstring's lines with a zero-width space after each abbreviation of its first paragraph.

    Autosummary's one-line summary ends at the first period followed by a space, which cuts "Run
    eq. (15) for ..." after "eq."; the zero-width space (not whitespace, renders as nothing) keeps
    the sentence whole."""
    lines = list(lines)
    started = False
    for i, line in enumerate(lines):
        if not line.strip():
            if started:
                break
            continue        # blank lines before the first paragraph
        started = True
        lines[i] = _ABBREVIATION.sub(lambda m: m.group(0)[:-1] + "\u200b ", line)
    return lines


def _patch_autosummary_summaries() -> None:
    from sphinx.ext import autosummary

    extract = autosummary.extract_summary
    if getattr(extract, "_sop_patched", False):
        return

    def extract_summary(doc, settings):
        return extract(_whole_first_sentence(doc), settings)

    extract_summary._sop_patched = True
    autosummary.extract_summary = extract_summary


def generate(app) -> None:
    """Write the API pages and the gallery into the source folder before Sphinx reads it."""
    generated = DOCS / "api" / "generated"
    current = {f"{package}.{name}" for package in PACKAGES for name in public_names(package)}
    for package in PACKAGES:
        _write_if_changed(DOCS / "api" / f"{package}.rst", api_page(package))
    # a page autosummary wrote for a name no longer public would be an orphan (a warning): removed
    for stub in generated.glob("*.rst") if generated.is_dir() else ():
        if stub.stem not in current:
            stub.unlink()

    from figures.registry import FIGURES

    gallery = DOCS / "gallery"
    redraw = os.environ.get("SOP_DOCS_REDRAW") == "1"
    entries = []
    for name, module in FIGURES.items():
        data = RESULTS / module.DATA_FILE
        picture = RESULTS / f"{module.NAME}.png"
        if redraw:
            # the figure's own plot, from the committed data file only
            module.plot(data, gallery / "_redrawn")
            picture = gallery / "_redrawn" / f"{module.NAME}.png"
        if not data.exists() or not picture.exists():
            raise FileNotFoundError(f"figure {name}: committed {data.name} or {picture.name} missing in "
                                    f"{RESULTS}; run python -m figures {name} --out results/figures")
        # image paths relative to the page, so the committed png is copied, never duplicated in git
        image = os.path.relpath(picture, gallery)
        _write_if_changed(gallery / f"{name}.rst", figure_page(name, module, image))
        entries.append((name, _caption(module)[0], image))
    _write_if_changed(gallery / "index.rst", gallery_index(entries))


def _find_object(dotted: str):
    """The object a dotted name stands for, imported; None when no module has it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def existing_but_unpublished(app, env, node, contnode):
    """Render a reference to a real but undocumented object of ours (a private module, a helper) as
    plain code instead of a warning.

    Only names of this repository's packages that import are let through, so a reference to a
    renamed or removed function still fails the build (``-W``); the API reference stays limited to
    the public names of ``__all__``.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip("~.")
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if module:
        candidates.insert(0, f"{module}.{target}")
        if cls:
            candidates.insert(0, f"{module}.{cls}.{target}")
    for name in candidates:
        if name.split(".")[0] in OUR_PACKAGES and _find_object(name) is not None:
            return contnode
    if "." not in target:
        # an unqualified name in a docstring shown under its package (autosummary's currentmodule is
        # the package, not the module defining it): accepted when one of our modules defines it
        for modname, mod in list(sys.modules.items()):
            if modname.split(".")[0] in OUR_PACKAGES and target in vars(mod):
                return contnode
    return None


OUR_PACKAGES = {"sopdeep", "soptheory", "sopcommon", "figures"}

# pages of the user guide that other work adds; the guide's toctree names them by a glob
OPTIONAL_PAGES = ("'../gpu*'", "'../tables*'")


class _OptionalPagesFilter(logging.Filter):
    """Drop only Sphinx's "glob pattern didn't match" warning for :data:`OPTIONAL_PAGES`."""

    def filter(self, record):
        message = record.getMessage()
        return not (message.startswith("toctree glob pattern")
                    and any(page in message for page in OPTIONAL_PAGES))


def setup(app):
    # at config-inited, before Sphinx lists the source files: in a fresh clone the API pages do not
    # exist yet, and autosummary (builder-inited) only writes stubs for pages already listed
    app.connect("config-inited", lambda app, config: generate(app), priority=100)
    app.connect("missing-reference", existing_but_unpublished)
    _patch_autosummary_summaries()
    logging.getLogger("sphinx.sphinx.directives.other").addFilter(_OptionalPagesFilter())
    return {"parallel_read_safe": True, "parallel_write_safe": True}
