"""Implicit bias of gradient descent: paper Figure 2 (long version, Sec. 3.2).

Gradient descent (15) and the convex program (25) agree along α = −log γ / (2λ): heat maps of
the relative difference ρ over the (λ, α) grid, for θ (left) and s (right).

Caption: "The gradient descent in (15) and the convex problem in (25) produce the same solutions
with α = −log γ/(2λ). For fixed data (J, y), left figure shows the relative difference
‖θ_α − θ_λ‖₂ / max{‖θ_α‖₂, ‖θ_λ‖₂} between the solution θ_α to (15) with varying values of α (in
y-axis) and the solution θ_λ computed from (25) with varying values of λ (in x-axis). Likewise, right
figure shows the relative difference for s. Blue line shows the curve α = −log γ/(2λ) where γ is
fixed to exp(−8) in all experiments."

Set-up (Sec. 3.2): (N, p, r, k) = (20, 40, 3, 3), γ = e⁻⁸, α ∈ [4, 4000] and λ ∈ [1e-4, 1] on
log grids (40 x 40 at full scale).  θ_α comes from :func:`soptheory.gradient_descent` (the paper's
method, ``method="gd"``) or from the exact limit of the gradient flow :func:`soptheory.flow_limit`
(``method="flow"``); θ_λ from :func:`soptheory.solve_convex_batched` (certified) or CVXPY + ECOS
(:func:`soptheory.solve_convex`).
"""

from __future__ import annotations

import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from sopcommon import atomic_savez
from sopcommon.files import DataFileError, read_npz
from soptheory import (
    SolverInaccurateWarning,
    flow_limit,
    gradient_descent,
    make_problem,
    relative_difference,
    solve_convex,
    solve_convex_batched,
)

from .settings import FIG2_GAMMA, FIG2_LAM_RANGE, FIG2_N_LAM, FIG2_PROBLEM
from .style import CURVE_COLOR, HEATMAP_CMAP, apply_style, save_figure

__all__ = ["NAME", "DATA_FILE", "SETUP", "compute", "plot"]

NAME = "fig2"
DATA_FILE = NAME + "_data.npz"
SETUP = {
    "full": dict(**FIG2_PROBLEM, gamma=FIG2_GAMMA, n_alpha=40, n_lam=FIG2_N_LAM),
    "quick": dict(**FIG2_PROBLEM, gamma=FIG2_GAMMA, n_alpha=6, n_lam=6),
}
ALPHA_RANGE = (4.0, 4000.0)
LAM_RANGE = FIG2_LAM_RANGE


def compute(data_path, *, quick=False, method="gd", solver="batched"):
    """Write ρ(θ_α, θ_λ) and ρ(s_α, s_λ) on the (α, λ) grid to ``data_path`` (npz, atomically).

    Parameters
    ----------
    data_path : path
        The ``.npz`` to write: arrays ``alpha`` (n_alpha,), ``lam`` (n_lam,), ``gamma``,
        ``rho_theta`` and ``rho_s`` (n_alpha, n_lam), ``gd_converged`` (n_alpha,),
        ``convex_certified`` (n_lam,), ``method``, ``solver`` and ``shape`` (N, p, r, k, seed).
    quick : bool, default=False
        A 6 x 6 grid instead of 40 x 40.
    method : {"gd", "flow"}, default="gd"
        θ_α from gradient descent (15) or from the exact flow limit.
    solver : {"batched", "ecos"}, default="batched"
        θ_λ from the certified batched solver or from CVXPY + ECOS per λ.
    """
    if method not in ("gd", "flow"):
        raise ValueError(f"method must be 'gd' or 'flow', got {method!r}")
    if solver not in ("batched", "ecos"):
        raise ValueError(f"solver must be 'batched' or 'ecos', got {solver!r}")
    cfg = SETUP["quick" if quick else "full"]
    prob = make_problem(cfg["N"], cfg["p"], cfg["r"], cfg["k"], random_state=cfg["seed"])
    alphas = np.geomspace(*ALPHA_RANGE, cfg["n_alpha"])
    lams = np.geomspace(*LAM_RANGE, cfg["n_lam"])
    gamma = cfg["gamma"]
    # small stacked problems: BLAS threads only add contention
    with threadpool_limits(limits=1, user_api="blas"):
        limit = gradient_descent if method == "gd" else flow_limit
        out = limit(prob.J, prob.y, alphas, gamma)
        theta_a, s_a, converged = np.asarray(out.theta), np.asarray(out.s), np.asarray(out.converged)
        if solver == "batched":
            res = solve_convex_batched(prob.J, prob.y, lams)
            theta_l, s_l, certified = res.theta, res.s, res.certified
        else:
            with warnings.catch_warnings():
                # ECOS at its default tolerances (the paper's method) often reports
                # optimal_inaccurate; ρ itself shows how inaccurate
                warnings.simplefilter("ignore", SolverInaccurateWarning)
                sols = [solve_convex(prob.J, prob.y, float(lam), solver="ECOS") for lam in lams]
            theta_l = np.stack([sol.theta for sol in sols])
            s_l = np.stack([sol.s for sol in sols])
            certified = np.zeros(len(lams), dtype=bool)
        rho_theta = relative_difference(theta_a[:, None, :], theta_l[None, :, :])
        rho_s = relative_difference(s_a[:, None, :], s_l[None, :, :])
    atomic_savez(data_path, {
        "alpha": alphas, "lam": lams, "gamma": np.array(gamma), "rho_theta": rho_theta,
        "rho_s": rho_s, "gd_converged": converged, "convex_certified": certified,
        "method": np.array(method), "solver": np.array(solver),
        "shape": np.array([cfg["N"], cfg["p"], cfg["r"], cfg["k"], cfg["seed"]]),
    })


def plot(data_path, out_dir):
    """Two heat maps (θ left, s right) with the curve α = −log γ/(2λ), from the data file only.

    Writes ``<out_dir>/fig2.png`` and ``.pdf``; returns their paths.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    data = read_npz(data_path, keys=("alpha", "lam", "gamma", "rho_theta", "rho_s", "method"),
                    what=f"{NAME} data file")
    shape = (data["alpha"].size, data["lam"].size)
    if 0 in shape or any(data[k].shape != shape for k in ("rho_theta", "rho_s")):
        raise DataFileError(data_path, f"damaged {NAME} data file: rho_theta, rho_s must be of shape "
                                       f"(len(alpha), len(lam)) = {shape}, not empty")
    apply_style()
    alphas, lams, gamma = data["alpha"], data["lam"], float(data["gamma"])
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.0), constrained_layout=True)
    vmin = max(1e-4, float(min(data["rho_theta"].min(), data["rho_s"].min())))
    for ax, key, title in zip(axes, ("rho_theta", "rho_s"), (r"$\theta$", r"$s$")):
        mesh = ax.pcolormesh(lams, alphas, np.maximum(data[key], vmin), shading="nearest",
                             cmap=HEATMAP_CMAP, norm=LogNorm(vmin=vmin, vmax=1.0))
        curve = -np.log(gamma) / (2 * lams)
        ax.plot(lams, curve, color=CURVE_COLOR, lw=1.8,
                label=r"$\alpha = -\log\gamma / (2\lambda)$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(alphas[0], alphas[-1])
        ax.set_xlim(lams[0], lams[-1])
        ax.set_xlabel(r"$\lambda$ in (25)")
        ax.set_ylabel(r"$\alpha$ in (15)")
        ax.set_title(f"relative difference of {title} ({data['method']} vs convex)")
        ax.legend(loc="upper right", framealpha=0.8)
        fig.colorbar(mesh, ax=ax, label=r"$\rho$")
    return save_figure(fig, out_dir, NAME)
