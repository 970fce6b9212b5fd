"""The one style of every figure: fonts, colour maps, sizes, and :func:`save_figure` (png + pdf)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from sopcommon import atomic_path  # noqa: E402

__all__ = ["apply_style", "save_figure", "HEATMAP_CMAP", "LINE_COLORS", "CURVE_COLOR"]

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


def save_figure(fig, out_dir, name):
    """Write ``<out_dir>/<name>.png`` and ``.pdf`` atomically (temp file + os.replace); close fig."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        target = out_dir / f"{name}.{ext}"
        meta = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, metadata=meta)
        paths.append(target)
    plt.close(fig)
    return paths

