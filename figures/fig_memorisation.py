"""Figure 1 of the paper on real data: CE memorises the noisy labels, SOP does not.

Caption: Test accuracy per epoch (solid) of cross-entropy (CE) and SOP, and their training
accuracy on the noisy labels (dashed: how much of the noise is fitted). (a) Fashion-MNIST, first
10,000 training images, 40 % symmetric label noise, MLP 784-512-512-10 (~670k parameters), SGD
(momentum 0.9, batch 128) at a constant lr 0.05, no weight decay, 40 epochs; SOP α_u = α_v = 10.
(b) CIFAR-10 (JPEG export) with the CIFAR-10N "worst" human labels (first 1,000 training images,
~40 % noise; first 1,000 test images), CNN of width 32, no augmentation, batch 32, constant lr
0.05, no weight decay, 40 epochs; SOP α_u = α_v = 10. (CPU-sized: 5,000 images took 157 s per
epoch on the shared 2-core machine, so the set was cut to 1,000 and the batch to 32 to keep the
number of SGD steps.) Mean ± std over the seeds listed in the data file.

Each curve is one ordinary ``sopdeep`` run folder under ``runs_dir`` (cached: a rerun reads them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from figures._runs import ensure_runs
from figures.style import apply_style, save_figure

NAME = "fig_memorisation"
DEEP = True  # trains networks: `python -m figures` redraws it unless --deep compute
DATA_FILE = NAME + "_data.csv"
DEFAULT_DATA_DIR = "../shared/data"  # the figures CLI's --data-dir default
DEFAULT_RUNS_DIR = "runs/figures"
METHODS = ("ce", "sop")
COLUMNS = ("setting", "method", "seed", "epoch", "epochs_planned", "finished", "test_acc", "train_acc_noisy",
           "train_acc_clean", "det_auroc", "epoch_time", "config")


def cache_folder(runs_dir):
    """Where the decoded CIFAR-10 JPEG export is kept: ``<runs_dir>/cache``."""
    return Path(runs_dir) / "cache"


def cifar10n_npz(data_dir, cache_dir, n_test=2000):
    """The decoded CIFAR-10 JPEG export with all training images and the first ``n_test`` test
    images, as one npz in ``cache_dir`` (decoded once)."""
    from sopdeep.data import load_cifar10_jpeg, save_npz

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"cifar10_jpeg_test{n_test}.npz"
    if not path.exists():
        ds = load_cifar10_jpeg(Path(data_dir) / "cifar10-jpeg", cache_dir / "cifar10_jpeg_decoded.npz")
        save_npz(ds.subset(test_indices=list(range(min(n_test, len(ds.y_test))))), path)
    return path


def fmnist_config(runs_dir, data_dir, *, method="ce", seed=0, quick=False, **overrides):
    """The Fashion-MNIST run of panel (a) (``quick``: the synthetic problem, 3 epochs)."""
    from sopdeep.config import TrainConfig

    base = dict(dataset="fashion-mnist", data_root=str(Path(data_dir) / "fashion-mnist"), train_subset=10000,
                noise="sym", noise_rate=0.4, noise_seed=seed, arch="mlp", width=512, depth=2, epochs=40,
                batch_size=128, lr=0.05, momentum=0.9, weight_decay=0.0, schedule="constant", update="batch",
                alpha_u=10.0, alpha_v=10.0, seed=seed, device="cpu", progress=False)
    if quick:
        base.update(dataset="synthetic", data_root="", train_subset=0, width=32, epochs=3)
    base.update(overrides)
    tag = "_".join(f"{k}{v}" for k, v in sorted(overrides.items()))
    folder = Path(runs_dir) / ("quick_fmnist" if quick else "fmnist") / (f"{method}_s{seed}" + (f"_{tag}" if tag else ""))
    return TrainConfig(method=method, out=str(folder), **base)


def cifar_config(runs_dir, data_dir, *, method="ce", seed=0, quick=False, epochs=40, n_train=1000, n_test=1000,
                 batch_size=32):
    """The CIFAR-10N "worst" run of panel (b) (``quick``: the synthetic problem with the CNN); the
    decoded images are kept in :func:`cache_folder` of ``runs_dir``."""
    from sopdeep.config import TrainConfig

    if quick:
        data = dict(dataset="synthetic", data_root="", noise="sym", noise_rate=0.4, train_subset=0)
        epochs, width = 3, 8
    else:
        data = dict(dataset="npz", data_root=str(cifar10n_npz(data_dir, cache_folder(runs_dir), n_test)), noise="cifar10n",
                    cifar_n_label="worst", cifar_n_path=str(Path(data_dir) / "cifar-n" / "CIFAR-10_human.pt"),
                    train_subset=n_train)
        width = 32
    folder = Path(runs_dir) / ("quick_c10n" if quick else "c10n") / f"{method}_s{seed}"
    return TrainConfig(method=method, out=str(folder), arch="cnn", width=width, epochs=epochs, batch_size=batch_size,
                       lr=0.05, momentum=0.9, weight_decay=0.0, schedule="constant", augment="none",
                       alpha_u=10.0, alpha_v=10.0, seed=seed, noise_seed=seed, device="cpu", progress=False, **data)


def changed_fields(config):
    """The config fields that differ from TrainConfig's defaults, as compact JSON."""
    from sopdeep.config import TrainConfig

    default = TrainConfig().to_dict()
    return json.dumps({k: v for k, v in config.to_dict().items() if default.get(k) != v}, sort_keys=True)


def all_configs(runs_dir, data_dir, *, quick=False, seeds=(0, 1), cifar_seeds=(0, 1)):
    """(setting, config) pairs of both panels."""
    out = [("fashion-mnist", fmnist_config(runs_dir, data_dir, method=m, seed=s, quick=quick))
           for s in seeds for m in METHODS]
    out += [("cifar10n-worst", cifar_config(runs_dir, data_dir, method=m, seed=s, quick=quick))
            for s in cifar_seeds for m in METHODS]
    return out


def compute(data_path, *, quick=False, data_dir=DEFAULT_DATA_DIR, runs_dir=DEFAULT_RUNS_DIR, jobs=1, progress=True, seeds=(0, 1), cifar_seeds=(0, 1), train_settings=("fashion-mnist", "cifar10n-worst"),
            **_ignored):
    """Train (or read) the runs of both panels and write the per-epoch table ``data_path``.

    ``train_settings``: the settings whose runs are trained to the end; the runs of the others are
    only read, as far as they got (``finished`` = False in the table).
    """
    import pandas as pd

    from sopcommon import atomic_path

    if quick:
        seeds, cifar_seeds = (0,), (0,)
    pairs = all_configs(runs_dir, data_dir, quick=quick, seeds=seeds, cifar_seeds=cifar_seeds)
    runs = [None] * len(pairs)
    for train in (True, False):
        pick = [i for i, (s, _) in enumerate(pairs) if (s in train_settings) == train]
        for i, run in zip(pick, ensure_runs([pairs[i][1] for i in pick], jobs=jobs, progress=progress, train=train)):
            runs[i] = run
    rows = []
    for (setting, config), run in zip(pairs, runs):
        if run is None:
            continue
        cfg = changed_fields(config)
        for h in run["history"]:
            rows.append({"setting": setting, "method": config.method, "seed": config.seed, "epoch": h["epoch"],
                         "epochs_planned": config.epochs, "finished": not run.get("partial", False),
                         "test_acc": h["test_acc"], "train_acc_noisy": h["train_acc_noisy"],
                         "train_acc_clean": h["train_acc_clean"], "det_auroc": h.get("det_auroc", np.nan),
                         "epoch_time": h["epoch_time"], "config": cfg})
    with atomic_path(Path(data_path)) as tmp:
        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(tmp, index=False)


def plot(data_path, out_dir):
    """Draw both panels from ``data_path`` into ``out_dir/NAME.png`` and ``.pdf``."""
    import matplotlib.pyplot as plt
    import pandas as pd

    apply_style()
    df = pd.read_csv(data_path)
    settings = [s for s in ("fashion-mnist", "cifar10n-worst") if s in set(df.setting)]
    titles = {"fashion-mnist": "(a) Fashion-MNIST (10k images), 40% symmetric noise, MLP 784-512-512-10",
              "cifar10n-worst": "(b) CIFAR-10N worst labels (1k images), CNN width 32"}
    fig, axes = plt.subplots(1, len(settings), figsize=(5.2 * len(settings), 3.8), squeeze=False)
    colors = {"ce": "tab:red", "sop": "tab:blue"}
    for ax, setting in zip(axes[0], settings):
        d = df[df.setting == setting]
        for method in METHODS:
            dm = d[d.method == method]
            if dm.empty:
                continue
            nseed = dm.seed.nunique()
            for col, style, what in (("test_acc", "-", "test"), ("train_acc_noisy", "--", "train (noisy labels)")):
                g = dm.groupby("epoch")[col]
                mean, std = g.mean(), g.std().fillna(0.0)
                ax.plot(mean.index, mean.values, style, color=colors[method], label=f"{method.upper()} {what}")
                if nseed > 1:
                    ax.fill_between(mean.index, mean - std, mean + std, color=colors[method], alpha=0.15, lw=0)
        note = "" if d.finished.all() else (f"; UNFINISHED: {int(d.epoch.max())} of {int(d.epochs_planned.max())} "
                                             "epochs run (CPU time ran out)")
        ax.set_title(f"{titles.get(setting, setting)}\n(mean ± std over {d.seed.nunique()} seed(s){note})", fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME)
