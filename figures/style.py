"""The one style of every figure: fonts, colour maps, sizes, and :func:`save_figure` (png + pdf)."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from sopcommon import atomic_path  # noqa: E402

__all__ = ["apply_style", "save_figure", "stamped", "STAMP_KEY", "HEATMAP_CMAP", "LINE_COLORS", "CURVE_COLOR"]

#: the PNG text key, and the PDF ``Keywords`` prefix, of a picture's stamp (:func:`stamped`)
STAMP_KEY = "sop-figure"
_STAMP: ContextVar[str | None] = ContextVar("figure_stamp", default=None)

HEATMAP_CMAP = "viridis"
CURVE_COLOR = "#1f5fff"          # the paper draws the curve alpha = -log(gamma) / (2 lambda) in blue
LINE_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]

_RC = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.grid": False,
    "pdf.fonttype": 42,
    "svg.hashsalt": "sop",
}


def apply_style():
    """Set the shared rcParams (call before creating a figure)."""
    plt.rcParams.update(_RC)


@contextmanager
def stamped(stamp):
    """Inside the block :func:`save_figure` writes ``stamp`` into every picture: a PNG text chunk
    :data:`STAMP_KEY`, the PDF's ``Keywords`` ``"sop-figure <stamp>"`` (read back by
    :func:`figures.output.picture_stamp`)."""
    token = _STAMP.set(stamp)
    try:
        yield
    finally:
        _STAMP.reset(token)


def save_figure(fig, out_dir, name):
    """Write ``<out_dir>/<name>.png`` and ``.pdf`` atomically (temp file + os.replace); close fig.

    No creation date, producer or software version is written (the same figure drawn twice by
    the same matplotlib gives the same bytes); the stamp of :func:`stamped`, if any, is.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    stamp = _STAMP.get()
    for ext in ("png", "pdf"):
        target = out_dir / f"{name}.{ext}"
        # no date, no matplotlib version: a redraw by the same matplotlib gives the same bytes
        meta = {"CreationDate": None, "Creator": None, "Producer": None} if ext == "pdf" else {"Software": None}
        if stamp is not None:
            meta.update({"Keywords": f"{STAMP_KEY} {stamp}"} if ext == "pdf" else {STAMP_KEY: stamp})
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, metadata=meta)
        paths.append(target)
    plt.close(fig)
    return paths

