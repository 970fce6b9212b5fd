"""Figure 2 of the long version: gradient descent (15) and the convex program (25) agree along
α = −log γ / (2λ).

Caption: "The gradient descent in (15) and the convex problem in (25) produce the same solutions
with α = −log γ/(2λ). For fixed data (J, y), left figure shows the relative difference
‖θ_α − θ_λ‖₂ / max{‖θ_α‖₂, ‖θ_λ‖₂} between the solution θ_α to (15) with varying values of α (in
y-axis) and the solution θ_λ computed from (25) with varying values of λ (in x-axis). Likewise, right
figure shows the relative difference for s. Blue line shows the curve α = −log γ/(2λ) where γ is
fixed to exp(−8) in all experiments."

Set-up (Sec. 3.2): (N, p, r, k) = (20, 40, 3, 3), γ = e⁻⁸, α ∈ [4, 4000] and λ ∈ [1e-4, 1] on
log grids (40 x 40 at full scale).  θ_α comes from :func:`soptheory.gradient_descent` (the paper's
method, ``method="gd"``) or from the exact limit of the gradient flow :func:`soptheory.flow_limit`
(``method="flow"``); θ_λ from :func:`soptheory.solve_convex_batched` (certified) or CVXPY + ECOS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import flow_limit, gradient_descent, make_problem, relative_difference, solve_convex_batched
from sopcommon import atomic_savez

from ..phase import single_threaded_blas
from .style import CURVE_COLOR, HEATMAP_CMAP, apply_style, save_figure

__all__ = ["SETUP", "compute", "plot", "make"]

SETUP = {
    "full": dict(N=20, p=40, r=3, k=3, gamma=np.exp(-8.0), n_alpha=40, n_lam=40, seed=0),
    "quick": dict(N=20, p=40, r=3, k=3, gamma=np.exp(-8.0), n_alpha=6, n_lam=6, seed=0),
}
ALPHA_RANGE = (4.0, 4000.0)
LAM_RANGE = (1e-4, 1.0)


def compute(*, quick=False, method="gd", solver="batched", progress=True):
    """ρ(θ_α, θ_λ) and ρ(s_α, s_λ) on the (α, λ) grid; returns a dict of arrays."""
    if method not in ("gd", "flow"):
        raise ValueError(f"method must be 'gd' or 'flow', got {method!r}")
    if solver not in ("batched", "ecos"):
        raise ValueError(f"solver must be 'batched' or 'ecos', got {solver!r}")
    cfg = SETUP["quick" if quick else "full"]
    prob = make_problem(cfg["N"], cfg["p"], cfg["r"], cfg["k"], random_state=cfg["seed"])
    alphas = np.geomspace(*ALPHA_RANGE, cfg["n_alpha"])
    lams = np.geomspace(*LAM_RANGE, cfg["n_lam"])
    gamma = cfg["gamma"]
    if method == "gd":
        out = gradient_descent(prob.J, prob.y, alphas, gamma)
        converged = np.asarray(out.converged)
    else:
        out = flow_limit(prob.J, prob.y, alphas, gamma)
        converged = np.asarray(out.converged)
    theta_a, s_a = np.asarray(out.theta), np.asarray(out.s)
    if solver == "batched":
        res = solve_convex_batched(prob.J, prob.y, lams)
        theta_l, s_l, certified = res.theta, res.s, res.certified
    else:
        from ..phase import _cvxpy_solve

        sols = [_cvxpy_solve(prob.J, prob.y, lam, "ECOS", tight=False) for lam in lams]
        theta_l = np.stack([t for t, _ in sols])
        s_l = np.stack([s for _, s in sols])
        certified = np.zeros(len(lams), dtype=bool)
    rho_theta = relative_difference(theta_a[:, None, :], theta_l[None, :, :])
    rho_s = relative_difference(s_a[:, None, :], s_l[None, :, :])
    return {
        "alpha": alphas, "lam": lams, "gamma": np.array(gamma), "rho_theta": rho_theta,
        "rho_s": rho_s, "gd_converged": converged, "convex_certified": certified,
        "method": np.array(method), "solver": np.array(solver),
        "shape": np.array([cfg["N"], cfg["p"], cfg["r"], cfg["k"], cfg["seed"]]),
    }


def plot(data, out_dir, name="fig2"):
    """Two heat maps (θ left, s right) with the curve α = −log γ/(2λ); writes png and pdf."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

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
    return save_figure(fig, out_dir, name)


def make(out_dir, *, quick=False, method="gd", solver="batched", progress=True):
    """Compute, save ``fig2_data.npz`` and plot ``fig2.png``/``fig2.pdf`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with single_threaded_blas():
        data = compute(quick=quick, method=method, solver=solver, progress=progress)
    atomic_savez(out_dir / "fig2_data.npz", data)
    paths = plot(data, out_dir)
    return [out_dir / "fig2_data.npz", *paths]
