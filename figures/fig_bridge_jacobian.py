"""Is a real network's Jacobian low-rank and incoherent? (theory vs practice, Proposition 3.5)

Caption: (a) Singular values of the Jacobian J (one scalar output, the logit difference of two
classes, with respect to all parameters) of the networks of Figure 1 on N training samples whose
given label is one of the two classes, at initialisation and after CE / SOP training (eval mode),
normalised by the largest; dotted lines: the rank tolerances. (b) The same networks placed at
(r/N, k/N) on the empirical phase diagram of Figure 4 (fraction of Gaussian instances, N = 100,
p = 150, with exact recovery of s by program (25)); r = numerical rank at tolerance 1e-2 (marker
size: the other tolerances drawn smaller), k = corrupted labels among the N. The curve is the
sufficient condition (27), k²r < N/(4μ), at the best case μ = 1, N = 100. The table in the data
file lists r and μ(J) at each tolerance and whether (27) holds.

J Jᵀ is computed with ``sopdeep.jacobian.jacobian_gram`` (torch.func per-sample gradients, J
never held) and cached in each run folder; μ(J) is ``soptheory.coherence`` of a factor F with
FFᵀ = JJᵀ (same column space and singular values as J).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from figures._bridge import subset_gram
from figures._runs import ensure_runs
from figures.settings import DEFAULT_DATA_DIR, DEFAULT_RUNS_DIR, changed_fields, cifar_config, fmnist_config
from sopcommon.files import DataFileError, read_json, read_npz
from figures.style import apply_style, save_figure

NAME = "fig_bridge_jacobian"
DEEP = True  # trains networks: `python -m figures` redraws it unless --deep compute
DATA_FILE = NAME + "_data.npz"
RTOLS = (1e-1, 1e-2, 1e-3)
CLASSES = {"fashion-mnist": (0, 1), "cifar10n-worst": (0, 1)}
# the committed Figure 4 data (used when the --out folder holds no fig4_data.csv)
DEFAULT_FIG4 = Path(__file__).resolve().parents[1] / "results/figures/fig4_data.csv"


def networks(runs_dir, data_dir, *, quick=False, settings=("fashion-mnist", "cifar10n-worst")):
    """(setting, label, config, trained) of every network analysed."""
    out = []
    for setting in settings:
        make = fmnist_config if setting == "fashion-mnist" else cifar_config
        ce = make(runs_dir, data_dir, method="ce", seed=0, quick=quick)
        sop = make(runs_dir, data_dir, method="sop", seed=0, quick=quick)
        out += [(setting, "init", ce, False), (setting, "CE trained", ce, True), (setting, "SOP trained", sop, True)]
    return out


def compute(data_path, *, quick=False, data_dir=DEFAULT_DATA_DIR, runs_dir=DEFAULT_RUNS_DIR,
            n_samples=1000, fig4_data=None, out_folder=None, progress=True, n_jobs=1,
            settings=("fashion-mnist", "cifar10n-worst"), train_settings=("fashion-mnist", "cifar10n-worst")):
    """Gram matrices, spectra, ranks, coherences and the Figure 4 grid, into one npz.

    ``fig4_data``: the Figure 4 table; default ``<out_folder>/fig4_data.csv`` when that file
    exists (``out_folder`` is the figures CLI's --out), else :data:`DEFAULT_FIG4`. Runs of settings not in
    ``train_settings`` are not trained: an unfinished run is analysed at its last checkpoint
    (labelled with its epoch), a run never started only at initialisation.
    """
    import pandas as pd

    from sopcommon import atomic_savez
    from soptheory import recovery_condition_holds
    from sopdeep.jacobian import gram_factor_from_gram, jacobian_singular_values, rank_and_coherence

    if fig4_data is None:
        here = Path(out_folder) / "fig4_data.csv" if out_folder is not None else None
        fig4_data = here if here is not None and here.is_file() else DEFAULT_FIG4
    if quick:
        n_samples = 40
    nets = networks(runs_dir, data_dir, quick=quick, settings=settings)
    configs = list({c.out: (s, c) for s, _, c, _ in nets}.values())
    ensure_runs([c for s, c in configs if s in train_settings], n_jobs=n_jobs, progress=progress)
    rows, spectra = [], {}
    for setting, label, config, trained in nets:
        if trained and setting not in train_settings:
            ckpt = Path(config.out) / "checkpoint.pt"
            if not ckpt.exists():
                continue
            if not (Path(config.out) / "summary.json").exists():
                from sopdeep.runs import load_checkpoint

                label += f" (epoch {int(load_checkpoint(ckpt)['epoch'])}/{config.epochs}, unfinished)"
        classes = CLASSES[setting] if not quick else (0, 1)
        g = subset_gram(config, n_samples, classes, trained=trained, progress=progress)
        K, N, k = g["K"], g["K"].shape[0], int(g["is_noisy"].sum())
        sv = jacobian_singular_values(K)
        F = gram_factor_from_gram(K)
        key = f"{setting}|{label}"
        spectra[key] = sv
        for rc in rank_and_coherence(K, RTOLS):
            rows.append({"setting": setting, "network": label, "N": N, "k": k, "rtol": rc["rtol"], "rank": rc["rank"],
                         "mu": rc["mu"], "r_over_N": rc["rank"] / N, "k_over_N": k / N,
                         "condition27": recovery_condition_holds(F, k, rtol=rc["rtol"]),
                         "k2r": k * k * rc["rank"], "N_over_4mu": N / (4 * rc["mu"]),
                         "classes": "-".join(map(str, classes)), "config": changed_fields(config)})
    fig4 = pd.read_csv(fig4_data)
    grid = fig4.groupby(["N", "r", "k"], as_index=False)["success_s"].mean()
    table = pd.DataFrame(rows)
    # the empirical Figure 4 success rate at the grid cell nearest to each network's (r/N, k/N)
    g_r, g_k = grid.r / grid.N, grid.k / grid.N
    table["fig4_success_nearest"] = [
        float(grid.success_s.iloc[int(np.argmin((g_r - a) ** 2 + (g_k - b) ** 2))])
        for a, b in zip(table.r_over_N, table.k_over_N)]
    atomic_savez(Path(data_path), {
        "table_json": np.array(table.to_json(orient="records")),
        "spectra_keys": np.array(list(spectra)), **{f"sv_{i}": v for i, v in enumerate(spectra.values())},
        "grid_r_over_N": g_r.to_numpy(), "grid_k_over_N": g_k.to_numpy(), "grid_success": grid.success_s.to_numpy(),
        "grid_N": grid.N.to_numpy(), "rtols": np.array(RTOLS), "meta": np.array(json.dumps({
            "output": "logit difference of the two classes", "mode": "eval", "n_samples": n_samples,
            "fig4_data": str(fig4_data)}))})


def read(data_path):
    """The data file as (table DataFrame, {key: singular values}, grid dict)."""
    import pandas as pd

    grid_keys = ("grid_r_over_N", "grid_k_over_N", "grid_success", "grid_N", "rtols")
    z = read_npz(data_path, keys=("table_json", "spectra_keys") + grid_keys, what=f"{NAME} data file")
    keys = z["spectra_keys"]
    missing = [f"sv_{i}" for i in range(keys.size) if f"sv_{i}" not in z]
    if keys.ndim != 1 or keys.size == 0 or missing:
        raise DataFileError(data_path, f"damaged {NAME} data file: no spectra, or missing {', '.join(missing)}")
    rows = read_json(data_path, what=f"{NAME} data file (table_json)", text=str(z["table_json"]))
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise DataFileError(data_path, f"damaged {NAME} data file: table_json is not a non-empty list of rows")
    table = pd.DataFrame.from_records(rows)
    spectra = {str(k): z[f"sv_{i}"] for i, k in enumerate(keys)}
    return table, spectra, {k: z[k] for k in grid_keys}


def _color(colors, label):
    return next((c for key, c in colors.items() if label.startswith(key)), "k")


def plot(data_path, out_dir):
    """(a) normalised spectra, (b) the networks on the Figure 4 phase diagram."""
    import matplotlib.pyplot as plt

    table, spectra, grid = read(data_path)
    apply_style()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.3))
    colors = {"init": "tab:gray", "CE trained": "tab:red", "SOP trained": "tab:blue"}
    styles = {"fashion-mnist": "-", "cifar10n-worst": "--"}
    for key, sv in spectra.items():
        setting, label = key.split("|")
        ax1.semilogy(np.arange(1, sv.size + 1) / sv.size, np.maximum(sv / sv[0], 1e-12), styles.get(setting, ":"),
                     color=_color(colors, label), label=f"{setting}, {label}")
    for t in grid["rtols"]:
        ax1.axhline(t, color="k", lw=0.6, ls=":")
    ax1.set_xlabel("i / N")
    ax1.set_ylabel("σ_i(J) / σ_1(J)")
    low = min(float(np.min(sv[sv > 0] / sv[0])) for sv in spectra.values())
    ax1.set_ylim(max(1e-12, low / 3), 1.5)
    ax1.set_title("(a) Jacobian spectrum (logit difference, N samples)", fontsize=9)
    ax1.legend(fontsize=6)
    ax1.grid(alpha=0.3)

    rs, ks = np.unique(grid["grid_r_over_N"]), np.unique(grid["grid_k_over_N"])
    img = np.full((ks.size, rs.size), np.nan)
    for a, b, v in zip(grid["grid_r_over_N"], grid["grid_k_over_N"], grid["grid_success"]):
        img[np.searchsorted(ks, b), np.searchsorted(rs, a)] = v
    dr, dk = rs[1] - rs[0] if rs.size > 1 else 0.05, ks[1] - ks[0] if ks.size > 1 else 0.05
    im = ax2.imshow(img, origin="lower", cmap="gray", vmin=0, vmax=1, aspect="auto",
                    extent=(rs[0] - dr / 2, rs[-1] + dr / 2, ks[0] - dk / 2, ks[-1] + dk / 2))
    fig.colorbar(im, ax=ax2, label="Figure 4: success rate of s (N=100, p=150)")
    n4 = float(grid["grid_N"][0])
    rr = np.linspace(1 / n4, 1, 200)
    ax2.plot(rr, np.sqrt(n4 / (4 * rr * n4)) / n4, color="tab:green", lw=1.2, label="(27) with μ=1, N=100")
    markers = {"fashion-mnist": "o", "cifar10n-worst": "s"}
    for _, row in table.iterrows():
        big = np.isclose(row.rtol, 1e-2)
        ax2.scatter(row.r_over_N, row.k_over_N, s=60 if big else 15, marker=markers.get(row.setting, "^"),
                    color=_color(colors, row.network), edgecolor="yellow" if big else "none", zorder=3,
                    label=f"{row.setting}, {row.network}" if big else None)
    ax2.set_xlim(0, 1.02)
    ax2.set_ylim(0, 1.02)
    ax2.set_xlabel("r / N")
    ax2.set_ylabel("k / N")
    ax2.set_title("(b) networks on the phase diagram (r at rtol 1e-2; small: 1e-1, 1e-3)", fontsize=9)
    ax2.legend(fontsize=6, loc="upper right", framealpha=0.85)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME)
