"""Does the linear theory predict which labels deep SOP flags? (theory vs practice, Section 3)

Caption: A trained network's initialisation θ₀ linearised on N training samples whose given label
is one of two classes: y − f(θ₀) = J(θ − θ₀) + s, with y = ±1 the given (noisy) label and f the
logit difference of the two classes (one output keeps JJᵀ N x N and matches the scalar model of
Section 3). Rows (``SETTINGS``): Figure 1's Fashion-MNIST MLP and CIFAR-10N CNN (seed 0), and the
fast recipe's full CIFAR-10 runs (50,000 images, 25 epochs, ``experiments/cifar10_full_scale.py``:
sym 40 % and CIFAR-10N worst, seed 0), whose θ₀ is rebuilt from the run's seed with the whitening
stem set as the trainer sets it and BatchNorm's running statistics taken from one training batch
(1,024 images); J is taken with respect to the trained parameters (2.0M) and, where computed, also
at the end of SOP training θ_T. (a) AUROC against the true noise mask of |s| recovered by program
(25) over a λ grid (solved in kernel form on a factor F with FFᵀ = JJᵀ, which gives the same s),
of the gradient-flow limit at the deep run's effective ratio α_eff = α·B·(1 − β) and
γ = init_std = 1e-8 (``soptheory.flow_limit``; ``docs/bridge.md``), and of the deep runs' own
noise scores on the same samples (SOP: u²_{i,y_i}; CE: 1 − p(given label)). The dotted vertical
line is the theory's λ = −log γ/(2 α_eff). (b) Linearised |s| at θ₀ (program (25) at the λ of
best AUROC) against the deep SOP score per sample; colour = corrupted; ρ = Spearman rank
correlation. The committed data file holds the rows that this shared 2-core machine could compute
(see its rows' N; the full-scale Gram matrix took 7.8 min at N = 256 beside a training job).
Measured numbers: README (Bridge figures) and ``docs/bridge.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from figures._bridge import linearised_recovery, network_gram, subset_gram
from figures._runs import ensure_runs
from figures.settings import (CLASSES, DEFAULT_DATA_DIR, DEFAULT_RUNS_DIR, LAMBDAS, changed_fields, cifar_config,
                              effective_alpha, fast_cifar_config, fmnist_config)
from sopcommon.files import DataFileError, read_json, read_npz
from figures.style import apply_style, save_figure

NAME = "fig_bridge_linearized"
DEEP = True  # trains networks: `python -m figures` redraws it unless --deep compute
DATA_FILE = NAME + "_data.npz"
#: the fast recipe's full CIFAR-10 settings: figure row -> setting of ``fast_cifar_config``
FULL_SCALE = {"cifar10-sym40-full": "sym40", "cifar10n-worst-full": "worst"}
SETTINGS = ("fashion-mnist", "cifar10n-worst", *FULL_SCALE)
#: samples of the full-scale rows' Gram matrix: J Jᵀ (float64) of the 2M-parameter fast network
#: took 72 s on one free core at N = 512 and grows as N² (about 4.6 min at N = 1000); the committed
#: data uses N = 256 (7.8 min beside a training job on a shared 2-core machine)
FULL_SCALE_N = 256


def theory_lambda(alpha, gamma):
    """λ = −log γ / (2α) (eq. 22 of the long version); pass α = α_eff for a deep run.

    >>> round(float(theory_lambda(128.0, 1e-8)), 4)
    0.072
    """
    return -np.log(gamma) / (2.0 * alpha)


def _spearman(a, b):
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def _configs(setting, runs_dir, full_scale_runs_dir, data_dir, quick):
    """(CE config, SOP config) of a row."""
    if setting in FULL_SCALE:
        return tuple(fast_cifar_config(full_scale_runs_dir, data_dir, setting=FULL_SCALE[setting], method=m, seed=0)
                     for m in ("ce", "sop"))
    make = fmnist_config if setting == "fashion-mnist" else cifar_config
    return tuple(make(runs_dir, data_dir, method=m, seed=0, quick=quick) for m in ("ce", "sop"))


def _linearised(g, lambdas, alpha_eff, gamma):
    """AUROC over λ, the flow limit's AUROC and the solutions of one Gram record ``g``."""
    from sopdeep.detection import auroc

    mask = g["is_noisy"].astype(bool)
    lin = linearised_recovery(g["K"], g["y"] - g["f"], lambdas, alpha=alpha_eff, gamma=gamma)
    abs_s = np.abs(lin["s"])
    return lin, abs_s, np.array([auroc(a, mask) for a in abs_s]), auroc(np.abs(lin["s_flow"]), mask)


def compute(data_path, *, quick=False, data_dir=DEFAULT_DATA_DIR, runs_dir=DEFAULT_RUNS_DIR, n_samples=1000,
            progress=True, n_jobs=1, settings=SETTINGS, train_settings=SETTINGS, full_scale_runs_dir=None,
            full_scale_n=FULL_SCALE_N, full_scale_trained=()):
    """Linearised recovery over λ and the deep scores on the same samples, per setting.

    A setting not in ``train_settings`` whose runs have not finished is left out (the deep
    scores come from a finished run's samples.npz). The full-scale rows' run folders are
    ``<full_scale_runs_dir>/full_scale_e25/<setting>-s0-<method>`` (:func:`figures.settings.fast_cifar_config`;
    default ``runs_dir``, the convention of ``fig_memorisation``); their Gram matrix has
    ``full_scale_n`` samples, at θ₀ and, for the rows in ``full_scale_trained``, at the end of SOP
    training. α_eff = α·B·(1 − β) of each SOP run gives the flow limit and the theory's λ.
    """
    from sopcommon import atomic_savez
    from sopdeep.detection import auroc

    if quick:
        n_samples, settings = 40, ("fashion-mnist",)
    full_scale_runs_dir = runs_dir if full_scale_runs_dir is None else full_scale_runs_dir
    store, rows = {}, []
    for setting in settings:
        ce, sop = _configs(setting, runs_dir, full_scale_runs_dir, data_dir, quick)
        run_ce, run_sop = ensure_runs([ce, sop], n_jobs=n_jobs, progress=progress, train=setting in train_settings)
        if run_ce is None or run_sop is None or run_ce.get("partial") or run_sop.get("partial"):
            continue
        full = setting in FULL_SCALE
        if full:  # the fast network: whitening stem and BatchNorm (figures._bridge.network_gram)
            g = network_gram(sop, full_scale_n, CLASSES, trained=False, progress=progress)
        else:
            g = subset_gram(ce, n_samples, CLASSES, trained=False, progress=progress)  # θ₀: same for CE and SOP
        mask, idx = g["is_noisy"].astype(bool), g["idx"]
        alpha, gamma = sop.options.alpha_u, sop.options.init_std
        alpha_eff = effective_alpha(sop)  # the ratio the trainer runs (docs/bridge.md), not the nominal α
        lin, abs_s, auc_lam, auc_flow = _linearised(g, LAMBDAS, alpha_eff, gamma)
        deep_sop = run_sop["samples"]["noise_score"][idx]
        deep_ce = run_ce["samples"]["noise_score"][idx]
        best = int(np.argmax(auc_lam))
        lam_th = theory_lambda(alpha_eff, gamma)
        th = int(np.argmin(np.abs(np.log(LAMBDAS) - np.log(lam_th))))
        row = {
            "setting": setting, "N": int(mask.size), "k": int(mask.sum()), "alpha": alpha, "alpha_eff": alpha_eff,
            "batch_size": sop.batch_size, "momentum": sop.momentum, "gamma": gamma, "linearised_at": "init",
            "gram_dtype": "float64", "gram_seconds": float(g.get("seconds", np.nan)),
            "lambda_theory": lam_th, "lambda_grid_nearest_theory": float(LAMBDAS[th]),
            "auroc_lin_at_theory_lambda": float(auc_lam[th]), "auroc_lin_best": float(auc_lam[best]),
            "lambda_best": float(LAMBDAS[best]), "alpha_eff_of_best_lambda": float(theory_lambda(LAMBDAS[best], gamma)),
            "auroc_flow_limit": auc_flow,
            "flow_converged": bool(np.all(lin["flow_converged"])), "certified_all": bool(np.all(lin["certified"])),
            "support_at_theory_lambda": int(np.sum(abs_s[th] > 0)),
            "auroc_deep_sop": auroc(deep_sop, mask), "auroc_deep_ce": auroc(deep_ce, mask),
            "spearman_flow_vs_deep_sop": _spearman(np.abs(lin["s_flow"]), deep_sop),
            "spearman_best_lambda_vs_deep_sop": _spearman(abs_s[best], deep_sop),
            "spearman_deep_ce_vs_deep_sop": _spearman(deep_ce, deep_sop),
            "config_sop": changed_fields(sop), "config_ce": changed_fields(ce)}
        store.update({f"{setting}|auroc_lambda": auc_lam, f"{setting}|s_flow": lin["s_flow"],
                      f"{setting}|deep_sop": deep_sop, f"{setting}|deep_ce": deep_ce, f"{setting}|mask": mask,
                      f"{setting}|s_best": lin["s"][best]})
        if full and setting in full_scale_trained:  # the same samples, linearised at SOP's final θ_T
            gt = network_gram(sop, full_scale_n, CLASSES, trained=True, progress=progress)
            lin_t, abs_t, auc_t, flow_t = _linearised(gt, LAMBDAS, alpha_eff, gamma)
            best_t = int(np.argmax(auc_t))
            row.update({"trained_epochs": int(run_sop["summary"]["epochs"]),
                        "gram_seconds_trained": float(gt.get("seconds", np.nan)),
                        "auroc_lin_best_trained": float(auc_t[best_t]), "lambda_best_trained": float(LAMBDAS[best_t]),
                        "auroc_lin_at_theory_lambda_trained": float(auc_t[th]), "auroc_flow_limit_trained": flow_t,
                        "spearman_best_lambda_trained_vs_deep_sop": _spearman(abs_t[best_t], deep_sop)})
            store[f"{setting}|auroc_lambda_trained"] = auc_t
        rows.append(row)
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
        eff = f"α_eff={row['alpha_eff']:.3g}"
        ax1.semilogx(lambdas, arrays[f"{st}|auroc_lambda"], "o-", color="k", ms=3, label="linearised at θ₀, program (25)")
        if f"{st}|auroc_lambda_trained" in arrays:
            ax1.semilogx(lambdas, arrays[f"{st}|auroc_lambda_trained"], "s-", color="tab:gray", ms=2.5, lw=0.9,
                         label="linearised at SOP's final θ_T, program (25)")
        ax1.axhline(row["auroc_flow_limit"], color="tab:green", ls="-.", label=f"linearised at θ₀, flow limit at {eff}")
        ax1.axhline(row["auroc_deep_sop"], color="tab:blue", label="deep SOP (u²)")
        ax1.axhline(row["auroc_deep_ce"], color="tab:red", label="deep CE (1 − p)")
        ax1.axhline(0.5, color="gray", lw=0.6)
        ax1.axvline(row["lambda_theory"], color="k", ls=":", lw=0.8,
                    label=f"λ = −log γ/(2 α_eff) = {row['lambda_theory']:.2g}")
        ax1.set_xlabel(f"λ   (deep run: α = {row['alpha']:.3g}, B = {row['batch_size']}, β = {row['momentum']:g}, "
                       f"{eff})", fontsize=8)
        ax1.set_ylabel("AUROC vs true noise mask")
        ax1.set_ylim(0.3, 1.0)
        ax1.set_title(f"(a) {st}: N={row['N']}, k={row['k']} (classes {CLASSES[0]} vs {CLASSES[1]})", fontsize=9)
        ax1.legend(fontsize=6)
        ax1.grid(alpha=0.3)
        mask = arrays[f"{st}|mask"].astype(bool)
        xs, ys = np.abs(arrays[f"{st}|s_best"]), arrays[f"{st}|deep_sop"]
        ax2.scatter(xs[~mask], ys[~mask], s=6, color="tab:gray", label="clean", alpha=0.6)
        ax2.scatter(xs[mask], ys[mask], s=6, color="tab:orange", label="corrupted", alpha=0.6)
        ax2.set_xlabel(f"linearised |s| at θ₀, program (25) at the best λ = {row['lambda_best']:.2g}")
        ax2.set_ylabel("deep SOP score u²")
        ax2.set_title(f"(b) Spearman ρ = {row['spearman_best_lambda_vs_deep_sop']:.2f} "
                      f"(flow limit at {eff}: {row['spearman_flow_vs_deep_sop']:.2f})", fontsize=9)
        ax2.legend(fontsize=7)
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME)
