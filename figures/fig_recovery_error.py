"""Recovery error against λ: paper Figure 3 (long version, Sec. 3.3).

The effect of λ on exact recovery by the convex program (25).

Caption: "Effect of model parameter λ for exact recovery by (25). The y-axis is the relative error
of θ (left) and s (right) defined as ‖θ − θ*‖₂/‖θ*‖₂ and ‖s − s*‖₂/‖s*‖₂, respectively, where
(θ, s) is the solution to (25). The curves are averages over 10 independent trials."
(a) Varying k with fixed r = 20.  (b) Varying r with fixed k = 20.

Set-up (Sec. 3.3): N = 100, p = 150, λ ∈ [1e-4, 1] (log grid, 30 values at full scale), data as in
Sec. 3.2; each trial's instance is shared by all λ (common random numbers, see
:mod:`soptheory.phase`).  The errors drop to ~0 past a threshold λ₀ that moves with k and r.
"""

from __future__ import annotations

import numpy as np

from sopcommon.files import DataFileError
from soptheory.phase import load_table, run_phase, save_table

from .style import LINE_COLORS, apply_style, save_figure

__all__ = ["NAME", "DATA_FILE", "SETUP", "compute", "plot"]

NAME = "fig3"
DATA_FILE = NAME + "_data.csv"

SETUP = {
    "full": dict(N=100, p=150, fixed=20, values=[10, 20, 40, 60, 80], n_lam=30, trials=10),
    "quick": dict(N=100, p=150, fixed=20, values=[10, 40], n_lam=5, trials=2),
}
LAM_RANGE = (1e-4, 1.0)
BASE_SEED = 3


def compute(data_path, *, quick=False, solver="batched", n_jobs=1, cache_dir=None, progress=True,
            backend=None):
    """Write the tidy table of both panels (one row per instance) to ``data_path`` (CSV, atomically).

    Columns as :func:`soptheory.phase.run_phase` returns them, plus ``panel`` (``a``: k varies at
    r = 20; ``b``: r varies at k = 20).  ``quick`` runs 2 values x 5 λ x 2 trials per panel;
    ``solver``, ``n_jobs``, ``cache_dir``, ``progress`` and ``backend`` go to ``run_phase``.
    """
    cfg = SETUP["quick" if quick else "full"]
    lams = np.geomspace(*LAM_RANGE, cfg["n_lam"]).tolist()
    common = dict(trials=cfg["trials"], solver=solver, base_seed=BASE_SEED, cache_dir=cache_dir,
                  n_jobs=n_jobs, progress=progress, backend=backend)
    a = run_phase({"N": [cfg["N"]], "p": [cfg["p"]], "r": [cfg["fixed"]], "k": cfg["values"],
                   "lam": lams}, **common)
    b = run_phase({"N": [cfg["N"]], "p": [cfg["p"]], "r": cfg["values"], "k": [cfg["fixed"]],
                   "lam": lams}, **common)
    table = {name: np.concatenate([a[name], b[name]]) for name in a}
    table["panel"] = np.array(["a"] * len(a["N"]) + ["b"] * len(b["N"]))
    save_table(table, data_path)


#: the columns :func:`plot` reads, with their kinds (see :func:`sopcommon.files.check_table`)
COLUMNS = {"panel": "str", "k": "int", "r": "int", "lam": "number", "eps_theta": "number", "eps_s": "number"}


def _curves(table, panel, vary):
    sel = table["panel"] == panel
    lams = np.unique(table["lam"][sel])
    out = {}
    for v in np.unique(table[vary][sel]):
        rows = sel & (table[vary] == v)
        out[int(v)] = np.array([[table[e][rows & (table["lam"] == lam)].mean() for lam in lams]
                                for e in ("eps_theta", "eps_s")])
    return lams, out


def plot(data_path, out_dir):
    """Panels (a) and (b), ε_θ (left) and ε_s (right) vs λ, averaged over trials.

    Reads only the data file; writes ``<out_dir>/fig3.png`` and ``.pdf`` and returns their paths.
    """
    import matplotlib.pyplot as plt

    # the columns the panels read; a table of another figure, a damaged or an empty one is refused
    table = load_table(data_path, COLUMNS, what=f"{NAME} data table")
    if not set(np.unique(table["panel"])) <= {"a", "b"}:
        raise DataFileError(data_path, f"not a {NAME} data table: column panel holds other than a, b")
    apply_style()
    fig, axes = plt.subplots(2, 2, figsize=(7.2, 5.4), constrained_layout=True, sharex=True)
    for row, (panel, vary, fixed) in enumerate((("a", "k", "r = 20"), ("b", "r", "k = 20"))):
        lams, curves = _curves(table, panel, vary)
        for j, label in enumerate((r"$\varepsilon_\theta$", r"$\varepsilon_s$")):
            ax = axes[row, j]
            for c, (v, errs) in enumerate(sorted(curves.items())):
                ax.plot(lams, errs[j], marker="o", ms=2.5, lw=1.2,
                        color=LINE_COLORS[c % len(LINE_COLORS)], label=f"{vary} = {v}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylabel(f"relative error {label}")
            ax.set_title(f"({panel}) varying {vary}, fixed {fixed}: {label}")
            ax.legend(loc="lower left", ncol=1)
            if row == 1:
                ax.set_xlabel(r"$\lambda$")
    return save_figure(fig, out_dir, NAME)
