"""Does the α–λ relation of Proposition 3.3 hold in practice? (theory vs practice)

Caption: (a) Deep SOP on Fashion-MNIST (first 2,000 training images, 40 % symmetric noise, MLP
784-512-512-10, batch B = 128, momentum β = 0.9, constant lr 0.05, 20 epochs; CPU-sized), mean ±
s.d. over five seeds (each seed draws the network and the label noise; every run is in the data
file): final test accuracy and detection AUROC (score u²_{i,y_i} against the true noise mask)
against the effective ratio α_eff = α·B·(1 − β) = 12.8 α that the trainer runs (``docs/bridge.md``;
read from the runs' settings; top axis: the trainer's nominal α), for α_u = α_v = α, for u alone
(α_v = 0: v stays at its initial 1e-8) and for v alone (α_u = 0); the dotted line (band: ± s.d.) is
CE on the same images and epochs. (b) The linear model's recovery against λ: for a synthetic problem
(``soptheory.make_problem``, N = 100, p = 150, r = 5, k = 10: relative error of s from program (25),
mean of three) and for the linearised network of ``fig_bridge_linearized`` (N = 1,000, AUROC of |s|
against the noise mask); the top axis maps λ = −log γ/(2 α_eff) with γ = init_std = 1e-8; the
vertical lines are the deep sweep's best α_eff. Shaded in (a): the α_eff range where the linearised
AUROC is within 0.01 of its best; dash-dotted: the upper end of exact synthetic recovery.

What agrees and what does not (measured): deep detection peaks at α_eff = 38.4 (α = 3; AUROC
0.962 ± 0.004) and test accuracy at α_eff = 384 (α = 30; 0.792 ± 0.004, CE 0.576 ± 0.027); the
linearised network's best λ range is α_eff ∈ [1.6e3, 2.9e4] (AUROC 0.89). Every deep working α_eff
lies inside the synthetic exact-recovery range (α_eff ≤ 2.9e3), but the linearised network's best
range starts 4× above the best-accuracy α_eff and 40× above the best-detection α_eff; at α_eff =
1,280 (α = 100, the sweep's largest) deep detection has already fallen to 0.830 ± 0.009. So α_eff
closes most of the old "100×" gap (which used the nominal α), and the linearisation at θ₀ still
asks for a larger α than the trained network works best at. Notes: with α_u = 0 the score u² stays
at its initial value for every sample, so the "v only" AUROC is about 0.5 (ties); with α_v = 1 the v
of Algorithm 1 never grows out of its 1e-8 start, so "u only, α = 1" is bit-for-bit the
α_u = α_v = 1 run.
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
SEEDS = (0, 1, 2, 3, 4)  # seed = noise_seed of each deep run: the spread over seeds is the sweep's error bar


def _last_monitor_auroc(run) -> float:
    """AUROC of the method's noise score (SOP: u² at the label) at the last epoch, against the
    true noise mask: ``monitor_auroc`` of the history (``det_auroc`` in older run folders)."""
    if run is None or not run.get("history"):
        return np.nan
    last = run["history"][-1]
    value = last.get("monitor_auroc", last.get("det_auroc"))
    return np.nan if value is None else value


def sweep_configs(runs_dir, data_dir, *, quick=False, seeds=None):
    """(mode, alpha, seed, config) of the deep α sweep; mode in {"both", "u only", "v only", "ce"}.

    One run per mode, α and seed (``seeds``: :data:`SEEDS`, quick: the first two); a seed sets the
    network's ``seed`` and the label noise's ``noise_seed`` alike (:func:`figures.settings.fmnist_config`).
    CE is trained on the same subset and epochs as SOP, so its line is a like-for-like baseline.
    """
    kw = dict(train_subset=2000, epochs=20) if not quick else {}
    alphas, alone = (ALPHAS, ALONE) if not quick else ((1.0, 10.0), (10.0,))
    seeds = (SEEDS if not quick else SEEDS[:2]) if seeds is None else tuple(seeds)
    out = []
    for seed in seeds:
        out.append(("ce", np.nan, seed, fmnist_config(runs_dir, data_dir, method="ce", seed=seed, quick=quick, **kw)))
        for a in alphas:
            out.append(("both", a, seed, fmnist_config(runs_dir, data_dir, method="sop", seed=seed, quick=quick,
                                                       alpha_u=a, alpha_v=a, **kw)))
        for a in alone:
            out.append(("u only", a, seed, fmnist_config(runs_dir, data_dir, method="sop", seed=seed, quick=quick,
                                                         alpha_u=a, alpha_v=0.0, **kw)))
            out.append(("v only", a, seed, fmnist_config(runs_dir, data_dir, method="sop", seed=seed, quick=quick,
                                                         alpha_u=0.0, alpha_v=a, **kw)))
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


def seed_stats(deep, mode, key):
    """(α's, mean, s.d., n) of ``key`` over the seeds of ``mode``'s records at each α, NaNs left out
    (a diverged run has NaN numbers); CE has one α, NaN."""
    d = [r for r in deep if r["mode"] == mode]
    alphas = sorted({r["alpha"] for r in d}, key=lambda a: (np.isnan(a), a))
    mean, sd, n = [], [], []
    for a in alphas:
        v = np.array([r[key] for r in d if r["alpha"] == a or (np.isnan(a) and np.isnan(r["alpha"]))], float)
        v = v[np.isfinite(v)]
        mean.append(v.mean() if v.size else np.nan)
        sd.append(v.std(ddof=1) if v.size > 1 else 0.0)
        n.append(v.size)
    return np.array(alphas, float), np.array(mean), np.array(sd), np.array(n)


def compute(data_path, *, quick=False, data_dir=DEFAULT_DATA_DIR, runs_dir=DEFAULT_RUNS_DIR, progress=True, n_jobs=1,
            n_samples=1000):
    """Deep α sweep over :data:`SEEDS` (cached runs), synthetic and linearised recovery curves, into one npz.

    γ (of λ = −log γ/(2 α_eff) and of the flow limit) is the deep runs' ``init_std``
    (:func:`figures.settings.deep_init_std`); every record holds its seed, α, α_eff = α·B·(1 − β),
    B and β; the summary holds the α_eff ranges of the linear model and the deep sweep's best α_eff.
    """
    from sopcommon import atomic_savez
    from sopdeep.detection import auroc

    gamma = deep_init_std()
    sweep = sweep_configs(runs_dir, data_dir, quick=quick)
    runs = ensure_runs([c for *_, c in sweep], n_jobs=n_jobs, progress=progress)
    deep = []
    for (mode, alpha, seed, config), run in zip(sweep, runs):
        s = run["summary"] if run is not None else {}
        factor = float(config.batch_size) * (1.0 - float(config.momentum))
        deep.append({"mode": mode, "alpha": alpha, "seed": seed,  # CE has no α_u, α_v: NaN, as its alpha
                     "alpha_eff": alpha * factor, "batch_size": config.batch_size, "momentum": config.momentum,
                     "alpha_u": getattr(config.options, "alpha_u", np.nan), "alpha_v": getattr(config.options, "alpha_v", np.nan),
                     "diverged": run is None, "final_test_acc": s.get("final_test_acc", np.nan),
                     "best_test_acc": s.get("best_test_acc", np.nan), "det_auroc": _last_monitor_auroc(run),
                     "train_acc_noisy": s.get("final_train_acc_noisy", np.nan), "config": changed_fields(config)})
    c = effective_factor(deep)
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

    def eff_range(lams):  # λ range -> α_eff range (λ = −log γ/(2 α_eff) reverses the order)
        return sorted(float(lam_of_alpha(v, gamma)) for v in (lams.min(), lams.max())) if lams.size else None

    best_deep = {}
    for key in ("det_auroc", "final_test_acc"):
        a, mean, sd, n = seed_stats(deep, "both", key)
        if np.all(np.isnan(mean)):  # every run diverged: no best α
            best_deep[key] = None
            continue
        i = int(np.nanargmax(mean))  # the α of the best mean over the seeds
        best_deep[key] = {"alpha": float(a[i]), "alpha_eff": float(c * a[i]), "mean": float(mean[i]), "sd": float(sd[i]),
                          "seeds": int(n[i])}
    _, ce_mean, ce_sd, _ = seed_stats(deep, "ce", "final_test_acc")
    summary = {"gamma": gamma, "effective_factor": c, "seeds": sorted({r["seed"] for r in deep}),
               "lambda_best_synthetic": float(best_syn), "alpha_eff_pred_synthetic": float(lam_of_alpha(best_syn, gamma)),
               "lambda_best_linearised": float(best_lin), "alpha_eff_pred_linearised": float(lam_of_alpha(best_lin, gamma)),
               "auroc_best_linearised": float(lin_auroc.max()),
               "lambda_exact_range_synthetic": [float(exact.min()), float(exact.max())] if exact.size else None,
               "alpha_eff_exact_range_synthetic": eff_range(exact),
               "lambda_near_best_range_linearised": [float(near.min()), float(near.max())],
               "alpha_eff_near_best_range_linearised": eff_range(near),
               "deep_best_auroc": best_deep["det_auroc"], "deep_best_test_acc": best_deep["final_test_acc"],
               "ce_final_test_acc": {"mean": float(ce_mean[0]), "sd": float(ce_sd[0])},
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
    """(a) deep test accuracy and AUROC against α_eff (mean ± s.d. over seeds; top axis: the trainer's
    α); (b) linear recovery against λ (top axis: α_eff = −log γ/(2λ))."""
    import matplotlib.pyplot as plt

    arrays, deep, summary = read(data_path)
    gamma = summary["gamma"]
    to_lam = functools.partial(lam_of_alpha, gamma=gamma)  # its own inverse: α_eff <-> λ
    c = effective_factor(deep)  # trainer α -> flow α: α_eff = c·α (docs/bridge.md)
    n_seeds = len(summary.get("seeds", [0]))
    apply_style()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.5, 4.6))
    styles = {"both": ("tab:blue", "o", "α_u = α_v"), "u only": ("tab:purple", "^", "u only (α_v = 0)"),
              "v only": ("tab:orange", "v", "v only (α_u = 0)")}
    for mode, (color, marker, name) in styles.items():
        if not any(r["mode"] == mode for r in deep):
            continue
        line = "-" if mode == "both" else ""
        a, acc, acc_sd, _ = seed_stats(deep, mode, "final_test_acc")
        ax1.errorbar(c * a, acc, yerr=acc_sd, fmt=marker + line, color=color, ms=4, capsize=2,
                     label=f"test acc, {name}")
        a, auc, auc_sd, _ = seed_stats(deep, mode, "det_auroc")
        ax1.errorbar(c * a, auc, yerr=auc_sd, fmt=marker + ("--" if line else ""), color=color, mfc="none", ms=4,
                     capsize=2, label=f"detection AUROC, {name}")
        for r in deep:
            if r["mode"] == mode and r["diverged"]:
                ax1.axvline(c * r["alpha"], color=color, lw=0.5, ls=":")
    if any(r["mode"] == "ce" for r in deep):
        _, ce, ce_sd, _ = seed_stats(deep, "ce", "final_test_acc")
        ax1.axhline(ce[0], color="tab:red", ls=":", label=f"CE test acc ({ce[0]:.3f} ± {ce_sd[0]:.3f})")
        ax1.axhspan(ce[0] - ce_sd[0], ce[0] + ce_sd[0], color="tab:red", alpha=0.08, lw=0)
    lo, hi = summary["alpha_eff_near_best_range_linearised"]
    ax1.axvspan(lo, hi, color="tab:green", alpha=0.12,
                label=f"linearised net: α_eff with AUROC ≥ best − {summary['near_auroc']:g}")
    if summary.get("alpha_eff_exact_range_synthetic"):  # exact from α_eff → 0 up to this bound
        hi = summary["alpha_eff_exact_range_synthetic"][1]
        ax1.axvline(hi, color="k", ls="-.", lw=0.9, label=f"synthetic: exact recovery for α_eff ≤ {hi:,.0f}")
    xs = c * np.array([r["alpha"] for r in deep if r["mode"] != "ce"])
    ax1.set_xscale("log")
    ax1.set_xlim(xs.min() / 2, max(xs.max(), summary["alpha_eff_near_best_range_linearised"][1]) * 2)
    ax1.set_xlabel(f"α_eff = α·B·(1 − β) = {c:g}·α  (flow (16) ratio)")
    ax1.set_ylabel("final test accuracy / detection AUROC")
    ax1.set_title(f"(a) deep SOP, Fashion-MNIST MLP: mean ± s.d. over {n_seeds} seeds", fontsize=9)
    ax1.set_ylim(0.2, 1.0)
    ax1.legend(fontsize=5.5, loc="lower left", ncol=2)
    ax1.grid(alpha=0.3)
    sec = ax1.secondary_xaxis("top", functions=(lambda a: np.asarray(a, float) / c, lambda a: np.asarray(a, float) * c))
    sec.set_xlabel("trainer's nominal α (α_u, α_v)", fontsize=8)

    lam = arrays["lambdas"]
    ax2.loglog(lam, np.maximum(arrays["err_synthetic"], 1e-16), "o-", color="k", ms=3,
               label="synthetic: rel. error of s, program (25)")
    ax2.loglog(to_lam(arrays["flow_alphas"]), np.maximum(arrays["err_synthetic_flow"], 1e-16), "s--",
               color="gray", ms=3, label=f"synthetic: flow limit, γ={_sci(gamma)}")
    ax2.set_xlabel("λ of program (25)")
    ax2.set_ylabel("relative error of s (synthetic)")
    ax3 = ax2.twinx()
    ax3.semilogx(lam, arrays["auroc_linearised"], "o-", color="tab:green", ms=3, label="linearised network: AUROC of |s|")
    # the deep sweep's best α_eff's, as λ's on this axis
    for key, ls, what in (("deep_best_auroc", "--", "AUROC"), ("deep_best_test_acc", "-", "test acc")):
        best = summary[key]
        if best is None:
            continue
        ax3.axvline(to_lam(best["alpha_eff"]), color="tab:blue", ls=ls, lw=0.9,
                    label=f"deep SOP's best {what}: α_eff = {best['alpha_eff']:.3g}")
    ax3.set_ylabel("AUROC (linearised network)", color="tab:green")
    ax3.set_ylim(0.3, 1.0)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=6, loc="lower left")
    ax2.set_title("(b) linear model against λ", fontsize=9)
    ax2.grid(alpha=0.3)
    sec2 = ax2.secondary_xaxis("top", functions=(to_lam, to_lam))
    sec2.set_xlabel(f"α_eff = −log γ/(2λ), γ = {_sci(gamma)}", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME)


def _sci(x):
    """1e-08 -> '1e-8' (a label's short form)."""
    return f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e")
