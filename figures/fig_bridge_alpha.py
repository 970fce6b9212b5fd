"""Does the α–λ relation of Proposition 3.3 hold in practice? (theory vs practice)

Caption: (a) Deep SOP on Fashion-MNIST (first 2,000 training images, 40 % symmetric noise, MLP
784-512-512-10, constant lr 0.05, 20 epochs, one seed; CPU-sized: the machine was shared): final test accuracy and detection AUROC
(score u²_{i,y_i} against the true noise mask) against α, for α_u = α_v = α, for u alone
(α_v = 0: v stays at its initial 1e-8) and for v alone (α_u = 0); the dotted line is CE.
(b) The linear model's recovery against λ: for a synthetic problem (``soptheory.make_problem``,
N = 100, p = 150, r = 5, k = 10: relative error of s from program (25)) and for the linearised
network of ``fig_bridge_linearized`` (AUROC of |s| against the noise mask). The top axis of each
panel maps α and λ by λ = −log γ/(2 α_eff) with γ = init_std = 1e-8 of the deep runs (TrainConfig's
default, recorded in the data file) and α_eff = α·B·(1 − β) = 12.8 α, the trainer's effective ratio
for the runs' batch size B = 128 and momentum β = 0.9 (``docs/bridge.md``; read from the runs'
settings in the data file); shaded in (a):
the α range where the linearised AUROC is within 0.01 of its best, hatched: the α range of exact
synthetic recovery. Notes: with α_u = 0 the score u² stays at its initial value for every sample,
so the "v only" AUROC is 0.5 by ties; with α_v = 1 the v of Algorithm 1 never grows out of its
1e-8 start, so "u only, α = 1" is bit-for-bit the α_u = α_v = 1 run.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from figures._bridge import linearised_recovery, subset_gram
from figures._runs import ensure_runs
from figures.settings import (CLASSES, DEFAULT_DATA_DIR, DEFAULT_RUNS_DIR, LAMBDAS, changed_fields, deep_init_std,
                              fmnist_config)
from sopcommon.files import DataFileError, read_json, read_npz
from figures.style import apply_style, save_figure

NAME = "fig_bridge_alpha"
DEEP = True  # trains networks: `python -m figures` redraws it unless --deep compute
DATA_FILE = NAME + "_data.npz"
ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
ALONE = (1.0, 10.0, 100.0)


def _last_monitor_auroc(run) -> float:
    """AUROC of the method's noise score (SOP: u² at the label) at the last epoch, against the
    true noise mask: ``monitor_auroc`` of the history (``det_auroc`` in older run folders)."""
    if run is None or not run.get("history"):
        return np.nan
    last = run["history"][-1]
    value = last.get("monitor_auroc", last.get("det_auroc"))
    return np.nan if value is None else value


def sweep_configs(runs_dir, data_dir, *, quick=False):
    """(mode, alpha, config) of the deep α sweep; mode in {"both", "u only", "v only", "ce"}."""
    kw = dict(train_subset=2000, epochs=20) if not quick else {}
    alphas, alone = (ALPHAS, ALONE) if not quick else ((1.0, 10.0), (10.0,))
    out = [("ce", np.nan, fmnist_config(runs_dir, data_dir, method="ce", quick=quick))]
    for a in alphas:
        out.append(("both", a, fmnist_config(runs_dir, data_dir, method="sop", quick=quick, alpha_u=a, alpha_v=a, **kw)))
    for a in alone:
        out.append(("u only", a, fmnist_config(runs_dir, data_dir, method="sop", quick=quick, alpha_u=a, alpha_v=0.0, **kw)))
        out.append(("v only", a, fmnist_config(runs_dir, data_dir, method="sop", quick=quick, alpha_u=0.0, alpha_v=a, **kw)))
    return out


EXACT_ERR = 1e-6  # "exact" recovery of s (Figure 3/4 use thresholds of this order)
NEAR_AUROC = 0.01  # λ whose linearised AUROC is within this of the best
FLOW_ALPHAS = np.logspace(-1, 2.5, 15)


def effective_factor(deep):
    """B·(1 − β) of the SOP runs in ``deep`` (the records of the data file): α_eff = α·B·(1 − β).

    The ratio of the u, v rate to the θ rate of the trainer relative to the flow (16) on the summed
    loss (``docs/bridge.md``: batch-mean θ loss, per-sample u, v steps, momentum β on θ, the paper's
    ``uv_lr_schedule="network"``). Each record's ``config`` holds only the fields that differ from
    ``TrainConfig``'s defaults, so a missing ``batch_size`` or ``momentum`` is read as the default.

    Raises
    ------
    ValueError
        If the SOP runs disagree on B·(1 − β) (then no single α_eff axis exists) or there are none.

    Examples
    --------
    >>> effective_factor([{"mode": "both", "config": '{"batch_size": 64, "momentum": 0.5}'}])
    32.0
    """
    from sopdeep.config import TrainConfig

    default = TrainConfig()
    factors = set()
    for r in deep:
        if r["mode"] == "ce":
            continue
        cfg = json.loads(r["config"])
        b, beta = cfg.get("batch_size", default.batch_size), cfg.get("momentum", default.momentum)
        factors.add(float(b) * (1.0 - float(beta)))
    if len(factors) != 1:
        raise ValueError(f"need one B·(1 − β) across the SOP runs, got {sorted(factors)}")
    return factors.pop()


def lam_of_alpha(alpha, gamma):
    """λ = −log γ / (2α) (eq. 22); also its own inverse: α = −log γ / (2λ)."""
    with np.errstate(divide="ignore"):  # α = 0 ↔ λ = ∞ (matplotlib's secondary axis probes 0)
        return -np.log(gamma) / (2.0 * np.asarray(alpha, float))


def synthetic_curves(gamma, trials=3, N=100, p=150, r=5, k=10, seed=0):
    """Relative error of s (program (25) over LAMBDAS; flow limit over FLOW_ALPHAS at ``gamma``),
    mean over ``trials`` instances of ``soptheory.make_problem``."""
    from soptheory import flow_limit, make_problem, recovery_error, solve_convex_batched

    err_lam, err_flow = [], []
    for t in range(trials):
        prob = make_problem(N, p, r, k, random_state=seed + t)
        res = solve_convex_batched(prob.J, prob.y, LAMBDAS)
        err_lam.append(recovery_error(res.s, prob.s_star))
        fl = flow_limit(prob.J, prob.y, FLOW_ALPHAS, gamma)
        err_flow.append(recovery_error(fl.s, prob.s_star))
    return np.mean(err_lam, axis=0), np.mean(err_flow, axis=0)


def compute(data_path, *, quick=False, data_dir=DEFAULT_DATA_DIR, runs_dir=DEFAULT_RUNS_DIR, progress=True, n_jobs=1,
            n_samples=1000):
    """Deep α sweep (cached runs), synthetic and linearised recovery curves, into one npz.

    γ (of λ = −log γ/(2α) and of the flow limit) is the deep runs' ``init_std``:
    :func:`figures.settings.deep_init_std`.
    """
    from sopcommon import atomic_savez
    from sopdeep.detection import auroc

    gamma = deep_init_std()
    sweep = sweep_configs(runs_dir, data_dir, quick=quick)
    runs = ensure_runs([c for _, _, c in sweep], n_jobs=n_jobs, progress=progress)
    deep = []
    for (mode, alpha, config), run in zip(sweep, runs):
        s = run["summary"] if run is not None else {}
        deep.append({"mode": mode, "alpha": alpha,  # CE has no α_u, α_v: NaN, as its alpha
                     "alpha_u": getattr(config, "alpha_u", np.nan), "alpha_v": getattr(config, "alpha_v", np.nan),
                     "diverged": run is None, "final_test_acc": s.get("final_test_acc", np.nan),
                     "best_test_acc": s.get("best_test_acc", np.nan), "det_auroc": _last_monitor_auroc(run),
                     "train_acc_noisy": s.get("final_train_acc_noisy", np.nan), "config": changed_fields(config)})
    err_lam, err_flow = synthetic_curves(gamma, trials=1 if quick else 3)
    # the linearised problem of fig_bridge_linearized (Fig. 1's network at θ₀, two classes)
    lin_cfg = fmnist_config(runs_dir, data_dir, method="ce", seed=0, quick=quick)
    ensure_runs([lin_cfg], progress=progress)
    g = subset_gram(lin_cfg, 40 if quick else n_samples, CLASSES, trained=False, progress=progress)
    lin = linearised_recovery(g["K"], g["y"] - g["f"], LAMBDAS)
    mask = g["is_noisy"].astype(bool)
    lin_auroc = np.array([auroc(np.abs(s), mask) for s in lin["s"]])
    best_syn = LAMBDAS[int(np.argmin(err_lam))]
    best_lin = LAMBDAS[int(np.argmax(lin_auroc))]
    exact = LAMBDAS[err_lam < EXACT_ERR]
    near = LAMBDAS[lin_auroc >= lin_auroc.max() - NEAR_AUROC]
    summary = {"gamma": gamma,
               "lambda_best_synthetic": float(best_syn), "alpha_pred_synthetic": float(lam_of_alpha(best_syn, gamma)),
               "lambda_best_linearised": float(best_lin), "alpha_pred_linearised": float(lam_of_alpha(best_lin, gamma)),
               "lambda_exact_range_synthetic": [float(exact.min()), float(exact.max())] if exact.size else None,
               "alpha_exact_range_synthetic": sorted(float(lam_of_alpha(v, gamma)) for v in (exact.min(), exact.max()))
               if exact.size else None,
               "lambda_near_best_range_linearised": [float(near.min()), float(near.max())],
               "alpha_near_best_range_linearised": sorted(float(lam_of_alpha(v, gamma)) for v in (near.min(), near.max())),
               "exact_err": EXACT_ERR, "near_auroc": NEAR_AUROC,
               "synthetic": {"N": 100, "p": 150, "r": 5, "k": 10, "trials": 1 if quick else 3},
               "linearised": {"N": int(mask.size), "k": int(mask.sum()), "config": changed_fields(lin_cfg)}}
    atomic_savez(Path(data_path), {"lambdas": LAMBDAS, "flow_alphas": FLOW_ALPHAS, "err_synthetic": err_lam,
                                   "err_synthetic_flow": err_flow, "auroc_linearised": lin_auroc,
                                   "deep_json": np.array(json.dumps(deep)), "summary_json": np.array(json.dumps(summary))})


def read(data_path):
    z = read_npz(data_path, keys=("lambdas", "flow_alphas", "err_synthetic", "err_synthetic_flow",
                                  "auroc_linearised", "deep_json", "summary_json"), what=f"{NAME} data file")
    arrays = {k: v for k, v in z.items() if not k.endswith("_json")}
    if arrays["lambdas"].size == 0:
        raise DataFileError(data_path, f"empty {NAME} data file: no λ; recompute it")
    deep, summary = (read_json(data_path, what=f"{NAME} data file ({k})", text=str(z[k]))
                     for k in ("deep_json", "summary_json"))
    return arrays, deep, summary


def plot(data_path, out_dir):
    """(a) deep test accuracy and AUROC against α; (b) linear recovery against λ (top axis: α)."""
    import matplotlib.pyplot as plt

    arrays, deep, summary = read(data_path)
    gamma = summary["gamma"]
    to_lam = functools.partial(lam_of_alpha, gamma=gamma)  # its own inverse: α <-> λ
    c = effective_factor(deep)  # trainer α -> flow α: α_eff = c·α (docs/bridge.md)
    trainer_to_lam = lambda a: to_lam(c * np.asarray(a, float))  # noqa: E731
    lam_to_trainer = lambda lam: to_lam(lam) / c  # noqa: E731  (inverse of the line above)
    apply_style()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"both": ("tab:blue", "o-"), "u only": ("tab:purple", "^"), "v only": ("tab:orange", "v")}
    for mode, (color, marker) in styles.items():
        d = sorted((r for r in deep if r["mode"] == mode), key=lambda r: r["alpha"])
        if not d:
            continue
        a = [r["alpha"] for r in d]
        ax1.semilogx(a, [r["final_test_acc"] for r in d], marker, color=color, label=f"test acc, α_u=α_v" if mode == "both"
                     else f"test acc, {mode}")
        ax1.semilogx(a, [r["det_auroc"] for r in d], marker.replace("-", "") + "--", color=color, mfc="none",
                     label=f"detection AUROC, {'α_u=α_v' if mode == 'both' else mode}")
        for r in d:
            if r["diverged"]:
                ax1.axvline(r["alpha"], color=color, lw=0.5, ls=":")
    ce = [r for r in deep if r["mode"] == "ce"]
    if ce:
        ax1.axhline(ce[0]["final_test_acc"], color="tab:red", ls=":", label="CE test acc")
    # the summary's α ranges are flow α's (λ = −log γ/(2α)); on the trainer's axis they are α_eff / c
    lo, hi = np.array(summary["alpha_near_best_range_linearised"]) / c
    ax1.axvspan(lo, hi, color="tab:green", alpha=0.12,
                label=f"α where linearised AUROC ≥ best − {summary['near_auroc']:g}")
    if summary.get("alpha_exact_range_synthetic"):
        lo, hi = np.array(summary["alpha_exact_range_synthetic"]) / c
        ax1.axvspan(lo, hi, facecolor="none", edgecolor="k", hatch="//", lw=0, alpha=0.25,
                    label="α of exact recovery, synthetic")
    ax1.set_xlabel(f"α (trainer's α_u = α_v; α_eff = α·B·(1 − β) = {c:g}·α)")
    ax1.set_ylabel("final test accuracy / AUROC")
    ax1.set_title("(a) deep SOP, Fashion-MNIST MLP (one seed)", fontsize=9)
    ax1.set_ylim(0.2, 1.0)
    ax1.legend(fontsize=5.5, loc="lower left", ncol=2)
    ax1.grid(alpha=0.3)
    sec = ax1.secondary_xaxis("top", functions=(trainer_to_lam, lam_to_trainer))
    sec.set_xlabel(f"λ = −log γ/(2 α_eff), γ = {_sci(gamma)}", fontsize=8)

    lam = arrays["lambdas"]
    ax2.loglog(lam, np.maximum(arrays["err_synthetic"], 1e-16), "o-", color="k", ms=3,
               label="synthetic: rel. error of s, program (25)")
    ax2.loglog(to_lam(arrays["flow_alphas"]), np.maximum(arrays["err_synthetic_flow"], 1e-16), "s--",
               color="gray", ms=3, label=f"synthetic: flow limit at α_eff, γ={_sci(gamma)}")
    ax2.set_xlabel("λ")
    ax2.set_ylabel("relative error of s (synthetic)")
    ax3 = ax2.twinx()
    ax3.semilogx(lam, arrays["auroc_linearised"], "o-", color="tab:green", ms=3, label="linearised network: AUROC of |s|")
    ax3.set_ylabel("AUROC (linearised network)", color="tab:green")
    ax3.set_ylim(0.3, 1.0)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=6, loc="lower left")
    ax2.set_title("(b) linear model against λ", fontsize=9)
    ax2.grid(alpha=0.3)
    sec2 = ax2.secondary_xaxis("top", functions=(to_lam, to_lam))
    sec2.set_xlabel(f"α_eff = −log γ/(2λ)  (trainer's α = α_eff / {c:g})", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME)


def _sci(x):
    """1e-08 -> '1e-8' (a label's short form)."""
    return f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e")
