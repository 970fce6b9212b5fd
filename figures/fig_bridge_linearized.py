"""Does the linear theory predict which labels deep SOP flags? (theory vs practice, Section 3)

Caption: The network of Figure 1 (seed 0) linearised at its initialisation θ₀ on N training
samples whose given label is one of two classes: y − f(θ₀) = J(θ − θ₀) + s, with y = ±1 the given
(noisy) label and f the logit difference of the two classes (one output keeps JJᵀ N x N and
matches the scalar model of Section 3). (a) AUROC against the true noise mask of |s| recovered by
program (25) over a λ grid (solved in kernel form on a factor F with FFᵀ = JJᵀ, which gives the
same s), of the gradient-flow limit at the deep run's α = 10 and γ = init_std = 1e-8
(``soptheory.flow_limit``), and of the deep runs' own noise scores on the same samples (SOP:
u²_{i,y_i}; CE: 1 − p(given label)). The dotted vertical line is λ = −log γ/(2α) for the deep
run. (b) Linearised |s| (program (25) at the λ of best AUROC) against the deep SOP score per
sample; colour = corrupted; ρ = Spearman rank correlation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from figures._bridge import linearised_recovery, subset_gram
from figures._runs import ensure_runs
from figures.settings import (CLASSES, DEFAULT_DATA_DIR, DEFAULT_RUNS_DIR, LAMBDAS, changed_fields, cifar_config,
                              fmnist_config)
from sopcommon.files import DataFileError, read_json, read_npz
from figures.style import apply_style, save_figure

NAME = "fig_bridge_linearized"
DEEP = True  # trains networks: `python -m figures` redraws it unless --deep compute
DATA_FILE = NAME + "_data.npz"


def theory_lambda(alpha, gamma):
    """λ = −log γ / (2α) (eq. 22 of the long version)."""
    return -np.log(gamma) / (2.0 * alpha)


def _spearman(a, b):
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def compute(data_path, *, quick=False, data_dir=DEFAULT_DATA_DIR, runs_dir=DEFAULT_RUNS_DIR,
            n_samples=1000, progress=True, n_jobs=1, settings=("fashion-mnist", "cifar10n-worst"),
            train_settings=("fashion-mnist", "cifar10n-worst")):
    """Linearised recovery over λ and the deep scores on the same samples, per setting.

    A setting not in ``train_settings`` whose runs have not finished is left out (the deep
    scores come from a finished run's samples.npz).
    """
    from sopcommon import atomic_savez
    from sopdeep.detection import auroc

    if quick:
        n_samples, settings = 40, ("fashion-mnist",)
    store, rows = {}, []
    for setting in settings:
        make = fmnist_config if setting == "fashion-mnist" else cifar_config
        ce = make(runs_dir, data_dir, method="ce", seed=0, quick=quick)
        sop = make(runs_dir, data_dir, method="sop", seed=0, quick=quick)
        run_ce, run_sop = ensure_runs([ce, sop], n_jobs=n_jobs, progress=progress, train=setting in train_settings)
        if run_ce is None or run_sop is None or run_ce.get("partial") or run_sop.get("partial"):
            continue
        g = subset_gram(ce, n_samples, CLASSES, trained=False, progress=progress)  # θ₀: same for CE and SOP
        mask, idx = g["is_noisy"].astype(bool), g["idx"]
        alpha = sop.alpha_u
        lin = linearised_recovery(g["K"], g["y"] - g["f"], LAMBDAS, alpha=alpha, gamma=sop.init_std)
        deep_sop = run_sop["samples"]["noise_score"][idx]
        deep_ce = run_ce["samples"]["noise_score"][idx]
        abs_s = np.abs(lin["s"])
        auc_lam = np.array([auroc(a, mask) for a in abs_s])
        best = int(np.argmax(auc_lam))
        lam_th = theory_lambda(alpha, sop.init_std)
        th = int(np.argmin(np.abs(np.log(LAMBDAS) - np.log(lam_th))))
        rows.append({
            "setting": setting, "N": int(mask.size), "k": int(mask.sum()), "alpha": alpha, "gamma": sop.init_std,
            "lambda_theory": lam_th, "lambda_grid_nearest_theory": float(LAMBDAS[th]),
            "auroc_lin_at_theory_lambda": float(auc_lam[th]), "auroc_lin_best": float(auc_lam[best]),
            "lambda_best": float(LAMBDAS[best]), "auroc_flow_limit": auroc(np.abs(lin["s_flow"]), mask),
            "flow_converged": bool(np.all(lin["flow_converged"])), "certified_all": bool(np.all(lin["certified"])),
            "support_at_theory_lambda": int(np.sum(abs_s[th] > 0)),
            "auroc_deep_sop": auroc(deep_sop, mask), "auroc_deep_ce": auroc(deep_ce, mask),
            "spearman_flow_vs_deep_sop": _spearman(np.abs(lin["s_flow"]), deep_sop),
            "spearman_best_lambda_vs_deep_sop": _spearman(abs_s[best], deep_sop),
            "spearman_deep_ce_vs_deep_sop": _spearman(deep_ce, deep_sop),
            "config_sop": changed_fields(sop), "config_ce": changed_fields(ce)})
        store.update({f"{setting}|auroc_lambda": auc_lam, f"{setting}|s_flow": lin["s_flow"],
                      f"{setting}|deep_sop": deep_sop, f"{setting}|deep_ce": deep_ce, f"{setting}|mask": mask,
                      f"{setting}|s_best": lin["s"][best]})
    atomic_savez(Path(data_path), {"lambdas": LAMBDAS, "rows_json": np.array(json.dumps(rows)),
                                   "keys": np.array(list(store)), **{f"a{i}": v for i, v in enumerate(store.values())}})


def read(data_path):
    """(lambdas, rows list, {key: array})."""
    z = read_npz(data_path, keys=("lambdas", "rows_json", "keys"), what=f"{NAME} data file")
    missing = [f"a{i}" for i in range(z["keys"].size) if f"a{i}" not in z]
    if z["keys"].ndim != 1 or z["lambdas"].size == 0 or missing:
        raise DataFileError(data_path, f"damaged {NAME} data file: no λ, or missing {', '.join(missing)}")
    rows = read_json(data_path, what=f"{NAME} data file (rows_json)", text=str(z["rows_json"]))
    if not isinstance(rows, list) or not rows:
        raise DataFileError(data_path, f"empty {NAME} data file: rows_json holds no rows; recompute it")
    return z["lambdas"], rows, {str(k): z[f"a{i}"] for i, k in enumerate(z["keys"])}


def plot(data_path, out_dir):
    """(a) AUROC against λ with the deep runs' AUROCs, (b) linearised vs deep scores, per setting."""
    import matplotlib.pyplot as plt

    lambdas, rows, arrays = read(data_path)
    apply_style()
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 3.8 * len(rows)), squeeze=False)
    for (ax1, ax2), row in zip(axes, rows):
        st = row["setting"]
        ax1.semilogx(lambdas, arrays[f"{st}|auroc_lambda"], "o-", color="k", ms=3, label="linearised, program (25)")
        ax1.axhline(row["auroc_flow_limit"], color="tab:green", ls="-.", label=f"linearised, flow limit α={row['alpha']:g}")
        ax1.axhline(row["auroc_deep_sop"], color="tab:blue", label="deep SOP (u²)")
        ax1.axhline(row["auroc_deep_ce"], color="tab:red", label="deep CE (1 − p)")
        ax1.axhline(0.5, color="gray", lw=0.6)
        ax1.axvline(row["lambda_theory"], color="k", ls=":", lw=0.8, label="λ = −log γ/(2α)")
        ax1.set_xlabel("λ")
        ax1.set_ylabel("AUROC vs true noise mask")
        ax1.set_ylim(0.3, 1.0)
        ax1.set_title(f"(a) {st}: N={row['N']}, k={row['k']} (classes {CLASSES[0]} vs {CLASSES[1]})", fontsize=9)
        ax1.legend(fontsize=6)
        ax1.grid(alpha=0.3)
        mask = arrays[f"{st}|mask"].astype(bool)
        xs, ys = np.abs(arrays[f"{st}|s_best"]), arrays[f"{st}|deep_sop"]
        ax2.scatter(xs[~mask], ys[~mask], s=6, color="tab:gray", label="clean", alpha=0.6)
        ax2.scatter(xs[mask], ys[mask], s=6, color="tab:orange", label="corrupted", alpha=0.6)
        ax2.set_xlabel(f"linearised |s|, program (25) at the best λ = {row['lambda_best']:.2g}")
        ax2.set_ylabel("deep SOP score u²")
        ax2.set_title(f"(b) Spearman ρ = {row['spearman_best_lambda_vs_deep_sop']:.2f} "
                      f"(flow limit at α={row['alpha']:g}: {row['spearman_flow_vs_deep_sop']:.2f})", fontsize=9)
        ax2.legend(fontsize=7)
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME)
