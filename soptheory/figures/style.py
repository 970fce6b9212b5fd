"""Shared plotting style of Figures 2-4: fonts, colour maps, sizes and the atomic figure writer."""

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


def make_table_figure(compute, plot, name, out_dir, *, quick=False, solver="batched", n_jobs=1,
                      cache_dir=None, progress=True, backend=None):
    """Compute a phase-grid figure, save ``<name>_data.csv``, and plot it from that file.

    The plot is drawn from the saved table (not the in-memory one), so the picture is exactly
    what the data file holds. Returns the data path followed by the image paths.
    """
    from ..phase import load_table, save_table

    out_dir = Path(out_dir)
    table = compute(quick=quick, solver=solver, n_jobs=n_jobs, cache_dir=cache_dir,
                    progress=progress, backend=backend)
    data_path = save_table(table, out_dir / f"{name}_data.csv")
    paths = plot(load_table(data_path), out_dir)
    return [data_path, *paths]
