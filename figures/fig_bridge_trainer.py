"""Figure 2's ρ grid with the deep trainer in place of gradient descent (15) (theory vs practice).

Caption: "SOP's trainer lands where Figure 2's gradient descent does, at α_eff = α·B·(1 − β), not
at its nominal α. Heat maps: the relative difference ρ = ‖a − b‖/max(‖a‖, ‖b‖) between the
trainer's (a) θ, (b) s after 20,000 epochs (80,000 steps, B = 5, β = 0.9) and the solution of (25)
at λ, on Figure 2's instance and λ grid; each band is one run at the α_eff on the y axis (nominal
α = α_eff / 0.5). Blue: the α_eff rule α_eff = −log γ/(2λ); orange dashed: the naive rule
α = −log γ/(2λ). (c) The λ minimising each row's ρ(s) (4x finer grid) for the trainer (circles)
and for the exact flow limit (16) at α_eff (crosses)."

Measured (``results/figures/fig_bridge_trainer_data.npz``): for the five rows α_eff = 517–4000
(nominal α = 1033–8000) the trainer's valley lies at 1.08–1.15 × the α_eff rule's λ and at
2.16–2.30 × the naive rule's, on the very grid point of the flow limit's valley at α_eff for
α_eff ≥ 862 (one grid step, a factor 1.06, off at 517): the 8–14 % offset is Figure 2's own
finite-γ gap, not the trainer's. Along the α_eff curve ρ(s) falls from 0.12 (α_eff = 517) to
0.019 (4000), along the naive curve from 0.66 to 0.075; ρ(θ) is 0.095–0.13 against 0.49–0.56.
Below the valley the rows α_eff ≤ 111 recover s* (relative error ≤ 5e-4) and α_eff = 186 nearly
(1.4e-2, ρ(s) 0.014 on the α_eff curve against 0.94 on the naive one, which stands for the flow
at α = 371, whose error is 4.7). The trainer against the flow limit at α_eff: ρ(s) = 2.8e-2 → 2.5e-3
over α_eff = 517–4000, 7.7e-2 at 310 (where the flow's s moves by 25 % for a 5 % change of α),
≤ 6.3e-3 below; ρ(θ) ≤ 1.8e-2. Convergence at the end (recorded): max|r| ≤ 1.3e-4 except at the
edge of exact recovery (α_eff = 186: 8.5e-4, slow as s_i approach the box's boundary),
max|∇h| ≤ 4e-5. The rows stop at α_eff = 40: the flow recovers s* (error < 2e-3) for every α_eff ≲ 160
and (25) for every λ ≥ 0.013, so below that ρ(s) is flat in λ and no rule can be told apart. Cost: 3.6 min of one
CPU core for the ten rows.

Set-up: Figure 2's instance (``make_problem(20, 40, 3, 3, random_state=0)``, γ = e⁻⁸, its 40 λ of
program (25) in [1e-4, 1], solved by :func:`soptheory.solve_convex_batched`). θ and s come from
:func:`sopdeep.squared_sop.train_squared_sop`, the trainer's own optimiser (torch SGD with momentum
β for θ, SOP's per-sample u, v steps, :func:`sopdeep.training.learning_rate`) on the squared loss (14)
of the linear model ``nn.Linear(p, 1, bias=False)`` (float64, zero start) over the rows of J, with
mini-batches of B = 5 and β = 0.9. Each row of the grid is one run at
``α_eff = α·B·(1 − β)`` (``docs/bridge.md``), the trainer's nominal ``α_u = α_v = α``. τ follows
the trainer's ``triangle`` schedule, rising from ``START_STEP / α`` to ``PEAK_STEP / α`` over the
first ``WARMUP`` of the run and then constant: the per-sample u, v step ατ must be small for the
trainer to track the flow (its drift is O(ατ r), and r ≈ −y at the start), and with
``uv_lr_schedule = "network"`` a schedule is only a time change of the flow (``docs/bridge.md``).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from sopcommon import atomic_savez
from sopcommon.files import DataFileError, read_npz

from .settings import FIG2_GAMMA, FIG2_LAM_RANGE, FIG2_N_LAM, FIG2_PROBLEM, effective_alpha
from .style import CURVE_COLOR, HEATMAP_CMAP, apply_style, save_figure

__all__ = ["NAME", "DATA_FILE", "DEEP", "PROBLEM", "GAMMA", "LAM_RANGE", "SETUP", "trainer_config",
           "predicted_lambda", "valley_lambda", "compute", "read", "plot"]

NAME = "fig_bridge_trainer"
DEEP = True  # trains (a linear model, minutes): `python -m figures` redraws it unless --deep compute
DATA_FILE = NAME + "_data.npz"

# Figure 2's instance and λ grid (heat maps), shared with fig_implicit_bias through figures.settings
PROBLEM, GAMMA, LAM_RANGE, N_LAM = FIG2_PROBLEM, FIG2_GAMMA, FIG2_LAM_RANGE, FIG2_N_LAM
N_LAM_FINE = 4 * (N_LAM - 1) + 1  # 157: a 4x finer λ grid holding Figure 2's, to locate each row's valley
BATCH_SIZE = 5      # divides N = 20: every sample gets the same ratio α·B (docs/bridge.md)
MOMENTUM = 0.9
# ατ (the per-sample u, v step) at the start and at the peak of τ's triangle schedule; the peak
# keeps 4ατ·max|s| < 2 (the u² step's stability) for the largest |s| ≈ 12 of the grid (α_eff = 4000)
START_STEP, PEAK_STEP, WARMUP = 1e-4, 0.02, 0.3
TRAINER_SEED = 0    # the mini-batch order
# Figure 2's instance recovers s* exactly for α_eff below ≈ 220: ρ(s) is flat over λ ≳ 0.02 there,
# so the rows span [40, 4000] (the brief's [4, 100] would be all plateau)
SETUP = {
    "full": dict(alpha_eff=np.geomspace(40.0, 4000.0, 10), epochs=20000),
    "quick": dict(alpha_eff=np.array([500.0]), epochs=1500),
}
# a row has a valley when ρ(s) rises to this multiple of its minimum on both sides of it (the
# exact-recovery rows are flat to the right up to λ = 1: no minimiser to speak of)
VALLEY_CONTRAST = 10.0


def trainer_config(alpha_eff, *, epochs, batch_size=BATCH_SIZE, momentum=MOMENTUM):
    """The SOP ``TrainConfig`` whose trainer runs the flow (16) at ``alpha_eff``.

    Nominal ``α_u = α_v = α = α_eff / (B (1 − β))``; τ from ``learning_rate``'s ``triangle``:
    ``START_STEP / α`` → ``PEAK_STEP / α`` over ``WARMUP`` of the steps, then constant; no
    weight decay, no projection of u, v (the theory's (15) has neither).

    Examples
    --------
    >>> cfg = trainer_config(500.0, epochs=10)
    >>> round(cfg.options.alpha_u, 9), round(cfg.options.alpha_u * cfg.lr, 12)  # α = 500 / (5 · 0.1); peak ατ = PEAK_STEP
    (1000.0, 0.02)
    """
    from sopdeep.config import TrainConfig

    if not alpha_eff > 0:
        raise ValueError(f"alpha_eff must be > 0, got {alpha_eff}")
    alpha = float(alpha_eff) / (batch_size * (1.0 - momentum))
    return TrainConfig(method="sop", alpha_u=alpha, alpha_v=alpha, project_uv=False, batch_size=batch_size,
                       momentum=momentum, weight_decay=0.0, epochs=epochs, schedule="triangle",
                       lr=PEAK_STEP / alpha, lr_min=PEAK_STEP / alpha, lr_start=START_STEP / alpha,
                       warmup_fraction=WARMUP)


def predicted_lambda(alpha_eff, gamma, factor=1.0):
    """λ = −log γ · factor / (2 α_eff): the α_eff rule (factor 1) or the naive rule (factor B(1 − β)).

    The naive rule reads the trainer's nominal α as the flow's: λ = −log γ/(2α), α = α_eff/(B(1 − β)).

    >>> float(predicted_lambda(4.0, np.exp(-8.0)))
    1.0
    """
    return -np.log(gamma) * factor / (2.0 * np.asarray(alpha_eff, float))


def valley_lambda(lams, rho, contrast=VALLEY_CONTRAST):
    """λ minimising ρ along each row, NaN where ρ does not rise to ``contrast`` × its minimum on both sides.

    Parameters
    ----------
    lams : ndarray of shape (n_lam,)
    rho : ndarray of shape (n_rows, n_lam)

    Returns
    -------
    ndarray of shape (n_rows,)

    >>> valley_lambda(np.array([1.0, 2.0, 3.0]), np.array([[1.0, 0.01, 1.0], [1.0, 0.01, 0.01]])).tolist()
    [2.0, nan]
    """
    rho = np.atleast_2d(rho)
    if rho.shape[1] != len(lams):
        raise ValueError(f"rho must have len(lams) = {len(lams)} columns, got shape {rho.shape}")
    out = np.full(rho.shape[0], np.nan)
    for i, row in enumerate(rho):
        j = int(np.argmin(row))
        if row[:j + 1].max() >= contrast * row[j] and row[j:].max() >= contrast * row[j]:
            out[i] = lams[j]
    return out


def _log_edges(centres):
    """Cell edges halfway (in log) between increasing positive ``centres``; a lone centre gets ±20 %."""
    lc = np.log(np.asarray(centres, float))
    half = np.diff(lc) / 2 if lc.size > 1 else np.array([0.2])
    return np.exp(np.concatenate([[lc[0] - half[0]], lc[:-1] + half, [lc[-1] + half[-1]]]))


def _train_row(prob, alpha_eff, *, epochs, gamma):
    """θ, s and the end-of-run residual / gradient of one trainer run at ``alpha_eff``."""
    import torch

    from sopdeep.squared_sop import train_squared_sop

    config = trainer_config(alpha_eff, epochs=epochs)
    J, y = torch.tensor(prob.J), torch.tensor(prob.y)
    net = torch.nn.Linear(J.shape[1], 1, bias=False).double()  # the linear "network": f(x_i) = J_i θ
    torch.nn.init.zeros_(net.weight)                              # θ₀ = 0, as (15)
    res = train_squared_sop(net, J, y, config, gamma=gamma, epochs=epochs, seed=TRAINER_SEED)
    r = res.residual
    # ∇h of the summed loss h = ½‖r‖²: Jᵀr for θ, ±2u⊙r, 2v⊙r for u, v
    grad = max(np.abs(prob.J.T @ r).max(), np.abs(2 * res.u * r).max(), np.abs(2 * res.v * r).max())
    return dict(theta=net.weight.detach().numpy()[0].copy(), s=res.s, config=config, steps=res.steps,
                max_residual=float(np.abs(r).max()), max_grad=float(grad))


def compute(data_path, *, quick=False, progress=True):
    """Run the trainer on each α_eff row and write the ρ grids against (25) to ``data_path`` (npz).

    Parameters
    ----------
    data_path : path
        The ``.npz`` to write (atomically): ``theta`` (n_rows, p), ``s`` (n_rows, N) of the trainer;
        ``alpha_eff``, ``alpha`` (nominal), ``lr``,
        ``lr_start``, ``steps``, ``max_residual``, ``max_grad``, ``rho_s_to_flow``,
        ``rho_theta_to_flow`` (n_rows,); ``lam`` (40,), ``lam_fine`` (157,);
        ``rho_theta``, ``rho_s`` (n_rows, 40); ``rho_s_fine``, ``rho_s_flow_fine`` (n_rows, 157);
        ``convex_certified`` (157,); scalars ``gamma``, ``batch_size``, ``momentum``, ``epochs``,
        ``warmup_fraction``, ``trainer_seed``, ``schedule``; ``shape`` (N, p, r, k, seed).
    quick : bool, default=False
        One row (α_eff = 500), 1,500 epochs (seconds) instead of ten rows of 20,000 (minutes).
    progress : bool, default=True
        One line per row on stderr.
    """
    import torch
    from threadpoolctl import threadpool_limits

    from soptheory import flow_limit, make_problem, relative_difference, solve_convex_batched

    cfg = SETUP["quick" if quick else "full"]
    alpha_eff, epochs = cfg["alpha_eff"], cfg["epochs"]
    prob = make_problem(PROBLEM["N"], PROBLEM["p"], PROBLEM["r"], PROBLEM["k"], random_state=PROBLEM["seed"])
    lam_fine = np.geomspace(*LAM_RANGE, N_LAM_FINE)
    # the fine grid holds Figure 2's 40 λ (every 4th point): one batched solve serves both
    coarse = np.arange(0, N_LAM_FINE, 4)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 40-wide model: threads only add contention
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            convex = solve_convex_batched(prob.J, prob.y, lam_fine)
            flow = flow_limit(prob.J, prob.y, alpha_eff, GAMMA)
            rows = []
            for a in alpha_eff:
                t0 = time.perf_counter()
                row = _train_row(prob, a, epochs=epochs, gamma=GAMMA)
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
                if progress:
                    i = len(rows) - 1
                    print(f"{NAME}: α_eff = {a:7.1f} (α = {row['config'].options.alpha_u:.4g}, peak τ = {row['config'].lr:.2e}, "
                          f"{epochs} epochs): max|r| = {row['max_residual']:.1e}, ρ(s, flow at α_eff) = "
                          f"{relative_difference(row['s'], flow.s[i]):.1e}, {row['seconds']:.0f} s",
                          file=sys.stderr, flush=True)
    finally:
        torch.set_num_threads(threads)
    theta, s = np.stack([r["theta"] for r in rows]), np.stack([r["s"] for r in rows])
    rho_theta_fine = relative_difference(theta[:, None, :], convex.theta[None])
    rho_s_fine = relative_difference(s[:, None, :], convex.s[None])
    # consistency: the α_eff the configuration encodes (figures.settings) is the row's
    factors = np.array([effective_alpha(r["config"]) for r in rows])
    if not np.allclose(factors, alpha_eff, rtol=1e-12):
        raise RuntimeError(f"trainer_config encodes α_eff = {factors}, not {alpha_eff}")
    atomic_savez(data_path, {
        "alpha_eff": alpha_eff, "alpha": np.array([r["config"].options.alpha_u for r in rows]), "theta": theta, "s": s,
        "lam": lam_fine[coarse], "lam_fine": lam_fine, "gamma": np.array(GAMMA),
        "rho_theta": rho_theta_fine[:, coarse], "rho_s": rho_s_fine[:, coarse], "rho_s_fine": rho_s_fine,
        "rho_s_flow_fine": relative_difference(np.asarray(flow.s)[:, None, :], convex.s[None]),
        "rho_s_to_flow": relative_difference(s, np.asarray(flow.s)),
        "rho_theta_to_flow": relative_difference(theta, np.asarray(flow.theta)),
        "convex_certified": convex.certified, "flow_converged": np.asarray(flow.converged),
        "lr": np.array([r["config"].lr for r in rows]), "lr_start": np.array([r["config"].lr_start for r in rows]),
        "steps": np.array([r["steps"] for r in rows]),  # (no timings: a rerun must give the same bytes)
        "max_residual": np.array([r["max_residual"] for r in rows]),
        "max_grad": np.array([r["max_grad"] for r in rows]),
        "batch_size": np.array(BATCH_SIZE), "momentum": np.array(MOMENTUM), "epochs": np.array(epochs),
        "warmup_fraction": np.array(WARMUP), "trainer_seed": np.array(TRAINER_SEED), "schedule": np.array("triangle"),
        "shape": np.array([PROBLEM[k] for k in ("N", "p", "r", "k", "seed")]),
    })


_KEYS = ("alpha_eff", "alpha", "lam", "lam_fine", "gamma", "rho_theta", "rho_s", "rho_s_fine", "rho_s_flow_fine",
         "rho_s_to_flow", "max_residual", "batch_size", "momentum", "epochs", "lr")


def read(data_path):
    """The data file's arrays, checked for the shapes :func:`plot` needs (:class:`DataFileError` if not)."""
    d = read_npz(data_path, keys=_KEYS, what=f"{NAME} data file")
    n, m, f = d["alpha_eff"].size, d["lam"].size, d["lam_fine"].size
    want = {"rho_theta": (n, m), "rho_s": (n, m), "rho_s_fine": (n, f), "rho_s_flow_fine": (n, f),
            "alpha": (n,), "rho_s_to_flow": (n,), "max_residual": (n,), "lr": (n,)}
    bad = [k for k, shape in want.items() if d[k].shape != shape]
    if 0 in (n, m, f) or bad:
        raise DataFileError(data_path, f"damaged {NAME} data file: {', '.join(bad) or 'empty grid'} "
                                       f"not of the shapes of alpha_eff ({n}) x lam ({m}) / lam_fine ({f})")
    return d


def plot(data_path, out_dir):
    """(a) ρ(θ), (b) ρ(s) over (λ, α_eff) with both rules' curves; (c) each row's valley against α_eff.

    Writes ``<out_dir>/fig_bridge_trainer.png`` and ``.pdf`` from the data file only; returns their paths.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    d = read(data_path)
    a_eff, lams, gamma = d["alpha_eff"], d["lam"], float(d["gamma"])
    factor = float(d["batch_size"]) * (1.0 - float(d["momentum"]))  # B(1 − β): nominal α = α_eff / factor
    apply_style()
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.4), constrained_layout=True,
                             gridspec_kw={"width_ratios": [1, 1, 0.85]})
    lam_line = np.geomspace(lams[0], lams[-1], 200)
    rules = ((1.0, CURVE_COLOR, "-", r"$\alpha_{\rm eff}$ rule: $\alpha_{\rm eff} = -\log\gamma/(2\lambda)$"),
             (factor, "#D55E00", "--", rf"naive: $\alpha = -\log\gamma/(2\lambda)$, i.e. "
                                       rf"$\alpha_{{\rm eff}} = {factor:g}\cdot(-\log\gamma/2\lambda)$"))
    vmin = max(1e-4, float(min(d["rho_theta"].min(), d["rho_s"].min())))
    valley = valley_lambda(d["lam_fine"], d["rho_s_fine"])
    valley_flow = valley_lambda(d["lam_fine"], d["rho_s_flow_fine"])
    edges, lam_edges = _log_edges(a_eff), _log_edges(lams)  # each cell centred on its run / its λ
    for ax, key, title in zip(axes[:2], ("rho_theta", "rho_s"), (r"(a) $\rho(\theta)$", r"(b) $\rho(s)$")):
        mesh = ax.pcolormesh(lam_edges, edges, np.maximum(d[key], vmin), shading="flat", cmap=HEATMAP_CMAP,
                             norm=LogNorm(vmin=vmin, vmax=1.0))
        for f, color, ls, label in rules:
            ax.plot(lam_line, -np.log(gamma) * f / (2 * lam_line), color=color, ls=ls, lw=1.8, label=label)
        if key == "rho_s":
            ax.plot(valley, a_eff, "o", mfc="white", mec="k", ms=4, label=r"row's minimiser of $\rho(s)$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lam_edges[0], lam_edges[-1])
        ax.set_ylim(edges[0], edges[-1])
        ax.set_xlabel(r"$\lambda$ in (25)")
        ax.set_ylabel(r"$\alpha_{\rm eff} = \alpha B(1-\beta)$ of the trainer")
        ax.set_title(f"{title}: trainer vs convex (25)")
        fig.colorbar(mesh, ax=ax, label=r"$\rho$", pad=0.01)
    axes[1].legend(loc="lower left", fontsize=6, framealpha=0.85)
    ax = axes[2]
    a_line = np.geomspace(edges[0], edges[-1], 100)
    for f, color, ls, label in rules:
        ax.plot(predicted_lambda(a_line, gamma, f), a_line, color=color, ls=ls, lw=1.8,
                label=label.split(":")[0] + " prediction")
    ax.plot(valley, a_eff, "o", mfc="white", mec="k", ms=8, label="trainer")
    ax.plot(valley_flow, a_eff, "x", color="k", ms=4, label=r"flow (16) at $\alpha_{\rm eff}$ (Figure 2's limit)")
    flat = a_eff[np.isnan(valley)]
    if flat.size:  # the rows with no minimiser: say why they carry no marker
        ax.text(0.97, 0.97, rf"rows $\alpha_{{\rm eff}} \leq {flat.max():.0f}$:" "\n" r"no minimum (flat $\rho(s)$:" "\n"
                r"s* recovered over a $\lambda$ range)", transform=ax.transAxes, fontsize=6.5,
                ha="right", va="top")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(edges[0], edges[-1])
    ax.set_xlabel(r"$\lambda$ minimising $\rho(s)$ on a 4x finer grid")
    ax.set_ylabel(r"$\alpha_{\rm eff}$")
    sec = ax.secondary_yaxis("right", functions=(lambda a: a / factor, lambda a: a * factor))
    sec.set_ylabel(rf"trainer's nominal $\alpha = \alpha_{{\rm eff}} / {factor:g}$")
    ax.set_title(r"(c) where each row's $\rho(s)$ is smallest", fontsize=9)
    ax.legend(loc="lower left", fontsize=6, framealpha=0.85)
    ax.grid(alpha=0.3, which="both")
    ok = np.isfinite(valley)
    ratios = ""
    if ok.any():  # the measured offsets, as factors in λ, from the data
        r_eff = valley[ok] / predicted_lambda(a_eff[ok], gamma)
        r_naive = valley[ok] / predicted_lambda(a_eff[ok], gamma, factor)
        ratios = (f"; valley λ / α_eff rule's = {r_eff.min():.2f}–{r_eff.max():.2f}, "
                  f"/ naive rule's = {r_naive.min():.2f}–{r_naive.max():.2f}")
    fig.suptitle(f"SOP's trainer (SGD, B = {int(d['batch_size'])}, β = {float(d['momentum']):g}, "
                 f"{int(d['epochs'])} epochs per row) on Figure 2's problem, γ = e$^{{{np.log(gamma):.0f}}}$, "
                 f"in place of gradient descent (15){ratios}", fontsize=8.5)
    return save_figure(fig, out_dir, NAME)
