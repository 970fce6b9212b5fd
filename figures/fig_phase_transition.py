"""Phase transition of exact recovery over (r, k): paper Figure 4 (long version, Sec. 3.3).

Success rates of the convex program (25) on the (rank r, sparsity k) grid.

Caption: "Phase transition for solving (25) over 20 trials, with fixed λ = 0.1 and varying k, r.
Recovery is declared success if ‖θ − θ*‖₂/‖θ*‖₂ < 0.001 (left) and ‖s − s*‖₂/‖s*‖₂ < 0.001
(right)."

Set-up (Sec. 3.3): N = 100, p = 150, λ = 0.1, r, k ∈ {5, 10, …, 100}, 20 trials per cell.  Over
the heat maps we draw what the theory guarantees: Proposition 3.5's sufficient condition
k² r < N / (4 μ(J)) holds below the dashed curve k = (N / (4 μ̄ r))^{1/2} (μ̄ the mean coherence of
the trials at that r); on this grid it holds for no instance — the gap between the guarantee and the
observed phase transition is the point of the overlay.
"""

from __future__ import annotations

import numpy as np

from sopcommon.files import DataFileError
from soptheory.phase import load_table, run_phase, save_table

from .style import HEATMAP_CMAP, apply_style, save_figure

__all__ = ["NAME", "DATA_FILE", "SETUP", "BASE_SEED", "compute", "plot", "success_grid"]

NAME = "fig4"
DATA_FILE = NAME + "_data.csv"

SETUP = {
    "full": dict(N=100, p=150, values=list(range(5, 101, 5)), lam=0.1, trials=20),
    "quick": dict(N=100, p=150, values=[5, 25, 45], lam=0.1, trials=3),
}
BASE_SEED = 4


def compute(data_path, *, quick=False, solver="batched", n_jobs=1, cache_dir=None, progress=True,
            backend=None):
    """Write the tidy table (one row per instance) to ``data_path`` (CSV, atomically).

    Columns as :func:`soptheory.phase.run_phase` returns them.  ``quick`` runs a 3 x 3 grid with
    3 trials; ``solver``, ``n_jobs``, ``cache_dir``, ``progress`` and ``backend`` go to
    ``run_phase``.
    """
    cfg = SETUP["quick" if quick else "full"]
    table = run_phase({"N": [cfg["N"]], "p": [cfg["p"]], "r": cfg["values"], "k": cfg["values"],
                       "lam": [cfg["lam"]]}, trials=cfg["trials"], solver=solver,
                      base_seed=BASE_SEED, cache_dir=cache_dir, n_jobs=n_jobs, progress=progress,
                      backend=backend)
    save_table(table, data_path)


#: the columns :func:`plot` reads, with their kinds (see :func:`sopcommon.files.check_table`)
COLUMNS = {"N": "int", "r": "int", "k": "int", "mu": "number", "prop35": "number",
           "success_theta": "number", "success_s": "number"}


def success_grid(table, column):
    """Success rate of ``column`` on the (k, r) grid: rows k, columns r."""
    rs, ks = np.unique(table["r"]), np.unique(table["k"])
    grid = np.array([[table[column][(table["r"] == r) & (table["k"] == k)].mean() for r in rs]
                     for k in ks])
    return rs, ks, grid


def plot(data_path, out_dir):
    """Success rates of θ (left) and s (right) with the Proposition 3.5 boundary.

    Reads only the data file; writes ``<out_dir>/fig4.png`` and ``.pdf`` and returns their paths.
    """
    import matplotlib.pyplot as plt

    # the columns the panels read; a table of another figure, a damaged or an empty one is refused
    table = load_table(data_path, COLUMNS, what=f"{NAME} data table")
    if "panel" in table:   # Figure 3's table has every column above, and its panels
        raise DataFileError(data_path, f"not a {NAME} data table: it has Figure 3's column panel")
    apply_style()
    N = int(table["N"][0])
    fig, axes = plt.subplots(1, 2, figsize=(7.4, 3.3), constrained_layout=True)
    rs = np.unique(table["r"])
    mu_bar = np.array([table["mu"][table["r"] == r].mean() for r in rs])
    r_fine = np.linspace(1, rs.max() + 2.5, 200)
    k_bound = np.sqrt(N / (4 * np.interp(r_fine, rs, mu_bar) * r_fine))
    n_hold = int(table["prop35"].sum())
    for ax, col, title in zip(axes, ("success_theta", "success_s"),
                              (r"$\varepsilon_\theta < 10^{-3}$", r"$\varepsilon_s < 10^{-3}$")):
        rs, ks, grid = success_grid(table, col)
        mesh = ax.pcolormesh(rs, ks, grid, shading="nearest", cmap=HEATMAP_CMAP, vmin=0, vmax=1)
        ax.plot(r_fine, k_bound, "--", color="#ff4040", lw=1.6,
                label=r"Prop. 3.5: $k^2 r = N / (4\bar\mu)$" + f"\n(holds for {n_hold} of "
                f"{len(table['r'])} instances)")
        ax.fill_between(r_fine, 0, k_bound, color="#ff4040", alpha=0.35, lw=0)
        step = (ks[1] - ks[0]) / 2 if len(ks) > 1 else 2.5
        ax.set_ylim(0, ks.max() + step)
        ax.set_xlim(0, rs.max() + step)
        ax.set_xlabel("rank r")
        ax.set_ylabel("sparsity k")
        ax.set_title(f"success rate, {title}")
        ax.legend(loc="upper right", framealpha=0.85)
        fig.colorbar(mesh, ax=ax, label="fraction of trials")
    return save_figure(fig, out_dir, NAME)
