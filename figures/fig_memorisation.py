"""Figure 1 of the paper on real data: CE memorises the noisy labels, SOP does not.

Caption: Test accuracy per epoch (solid) of cross-entropy (CE) and SOP, and their training
accuracy on the noisy labels (dashed: how much of the noise is fitted). (a) Fashion-MNIST, first
10,000 training images, 40 % symmetric label noise, MLP 784-512-512-10 (~670k parameters), SGD
(momentum 0.9, batch 128) at a constant lr 0.05, no weight decay, 40 epochs; SOP α_u = α_v = 10.
(b) CIFAR-10 (JPEG export) with the CIFAR-10N "worst" human labels (first 1,000 training images,
~40 % noise; first 1,000 test images), CNN of width 32, no augmentation, batch 32, constant lr
0.05, no weight decay, 40 epochs; SOP α_u = α_v = 10. (CPU-sized: 5,000 images took 157 s per
epoch on the shared 2-core machine, so the set was cut to 1,000 and the batch to 32 to keep the
number of SGD steps.) (c), (d) full CIFAR-10 (JPEG export, 50,000 / 10,000 images), 40 %
symmetric noise and the CIFAR-10N "worst" labels, the fast recipe (``fast`` network, batch 1024,
Nesterov SGD, triangle schedule, crops + flips, test-time flip) with plain CE, 25 epochs; SOP
α_u = α_v = 0.833 by the effective-α rule (``experiments/cifar10_full_scale.py``, which trains
them; this figure only reads them). Mean ± std over the seeds listed in the data file.

Each curve is one ordinary ``sopdeep`` run folder under ``runs_dir`` (cached: a rerun reads them).
:func:`update_full_scale` replaces only the full-scale rows of an existing data table::

    python -m figures.fig_memorisation --full-scale runs/full_scale_e25 \
        --data results/figures/fig_memorisation_data.csv && python -m figures fig_memorisation
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from figures._runs import ensure_runs
from sopcommon.cli import one_line
from sopcommon.files import DataFileError, check_table
from figures.settings import DEFAULT_DATA_DIR, DEFAULT_RUNS_DIR, changed_fields, cifar_config, fmnist_config
from figures.style import apply_style, save_figure

NAME = "fig_memorisation"
DEEP = True  # trains networks: `python -m figures` redraws it unless --deep compute
DATA_FILE = NAME + "_data.csv"
METHODS = ("ce", "sop")
COLUMNS = ("setting", "method", "seed", "epoch", "epochs_planned", "finished", "test_acc", "train_acc_noisy",
           "train_acc_clean", "det_auroc", "epoch_time", "config")
#: full-scale settings -> the experiment's setting name in its run folders ``<name>-s<seed>-<method>``
FULL_SCALE = {"cifar10-full-sym40": "sym40", "cifar10-full-worst": "worst"}
#: the directory of the full-scale run folders under ``runs_dir`` (experiments/cifar10_full_scale.py --out)
FULL_SCALE_DIR = "full_scale_e25"


def all_configs(runs_dir, data_dir, *, quick=False, seeds=(0, 1), cifar_seeds=(0, 1)):
    """(setting, config) pairs of both panels."""
    out = [("fashion-mnist", fmnist_config(runs_dir, data_dir, method=m, seed=s, quick=quick))
           for s in seeds for m in METHODS]
    out += [("cifar10n-worst", cifar_config(runs_dir, data_dir, method=m, seed=s, quick=quick))
            for s in cifar_seeds for m in METHODS]
    return out


def compute(data_path, *, quick=False, data_dir=DEFAULT_DATA_DIR, runs_dir=DEFAULT_RUNS_DIR, n_jobs=1, progress=True,
            seeds=(0, 1), cifar_seeds=(0, 1), train_settings=("fashion-mnist", "cifar10n-worst")):
    """Train (or read) the runs of both panels and write the per-epoch table ``data_path``.

    ``n_jobs``: runs trained in parallel (the CLI's ``--jobs``). ``train_settings``: the settings
    whose runs are trained to the end; the runs of the others are only read, as far as they got
    (``finished`` = False in the table).
    """
    import pandas as pd

    from sopcommon import atomic_path

    if quick:
        seeds, cifar_seeds = (0,), (0,)
    pairs = all_configs(runs_dir, data_dir, quick=quick, seeds=seeds, cifar_seeds=cifar_seeds)
    runs = [None] * len(pairs)
    for train in (True, False):
        pick = [i for i, (s, _) in enumerate(pairs) if (s in train_settings) == train]
        for i, run in zip(pick, ensure_runs([pairs[i][1] for i in pick], n_jobs=n_jobs, progress=progress, train=train)):
            runs[i] = run
    rows = []
    for (setting, config), run in zip(pairs, runs):
        if run is not None:
            rows += _rows(setting, config, run)
    rows += full_scale_rows(Path(runs_dir) / FULL_SCALE_DIR)
    with atomic_path(Path(data_path)) as tmp:
        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(tmp, index=False)


def _rows(setting, config, run):
    """The per-epoch table rows of one run (``run``: :func:`figures._runs.ensure_runs`'s dict)."""
    cfg = changed_fields(config)
    return [{"setting": setting, "method": config.method, "seed": config.seed, "epoch": h["epoch"],
             "epochs_planned": config.epochs, "finished": not run.get("partial", False),
             "test_acc": h["test_acc"], "train_acc_noisy": h["train_acc_noisy"],
             "train_acc_clean": h["train_acc_clean"], "det_auroc": h.get("monitor_auroc", h.get("det_auroc", np.nan)),
             "epoch_time": h["epoch_time"], "config": cfg} for h in run["history"]]


def full_scale_rows(folder, *, seeds=(0, 1)):
    """Rows of the full-scale run folders under ``folder`` that exist (finished or as far as they
    got; never trained here: ``experiments/cifar10_full_scale.py`` makes them)."""
    from sopdeep.runs import saved_config

    rows = []
    for setting, name in FULL_SCALE.items():
        for seed in seeds:
            for method in METHODS:
                run_dir = Path(folder) / f"{name}-s{seed}-{method}"
                if not (run_dir / "config.json").exists():
                    continue
                config = saved_config(run_dir).replace(out=str(run_dir))  # wherever the folders moved
                run = ensure_runs([config], train=False, progress=False)[0]
                if run is not None:
                    rows += _rows(setting, config, run)
    return rows


def update_full_scale(data_path, folder):
    """Replace the full-scale rows of the data table ``data_path`` with those of the run folders
    under ``folder``; the other rows are kept byte for byte. Returns the number of rows written."""
    import pandas as pd

    from sopcommon import atomic_path

    df = read_table(data_path)
    kept = df[~df.setting.isin(list(FULL_SCALE))]
    new = pd.DataFrame(full_scale_rows(folder), columns=list(COLUMNS))
    if new.empty:
        raise DataFileError(folder, "no full-scale run folder (<setting>-s<seed>-<method>) with metrics here")
    with atomic_path(Path(data_path)) as tmp:
        pd.concat([kept, new], ignore_index=True).to_csv(tmp, index=False)
    return len(new)


#: the columns :func:`plot` reads, with their kinds (see :func:`sopcommon.files.check_table`)
_PLOT_COLUMNS = {"setting": "str", "method": "str", "seed": "int", "epoch": "int", "epochs_planned": "int",
                 "finished": "number", "test_acc": "number", "train_acc_noisy": "number"}


def read_table(data_path):
    """The data table as a DataFrame; :class:`DataFileError` naming the file when it is missing,
    damaged, empty or of another figure."""
    import csv

    import pandas as pd

    try:
        with open(data_path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r]
        # pandas pads a cut last row with NaN: every row must have the header's fields
        bad = next((i for i, r in enumerate(rows) if len(r) != len(rows[0])), None)
        if bad is not None:
            raise DataFileError(data_path, f"damaged {NAME} data table: row {bad + 1} has {len(rows[bad])} fields, "
                                           f"the header {len(rows[0])}")
        df = pd.read_csv(data_path, encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataFileError(data_path, f"no such {NAME} data table") from exc
    except DataFileError:
        raise
    except (ValueError, UnicodeDecodeError, csv.Error, pd.errors.ParserError) as exc:   # EmptyDataError: a ValueError
        raise DataFileError(data_path, f"damaged {NAME} data table ({one_line(str(exc), limit=160)})") from exc
    check_table(data_path, {c: df[c].to_numpy() for c in df.columns}, _PLOT_COLUMNS, what=f"{NAME} data table")
    return df


def plot(data_path, out_dir):
    """Draw both panels from ``data_path`` into ``out_dir/NAME.png`` and ``.pdf``."""
    import matplotlib.pyplot as plt

    df = read_table(data_path)
    settings = [s for s in ("fashion-mnist", "cifar10n-worst", *FULL_SCALE) if s in set(df.setting)]
    if not settings:   # no panel to draw: refuse rather than publish an empty figure
        raise DataFileError(data_path, f"not a {NAME} data table: no row of setting fashion-mnist or "
                                       "cifar10n-worst")
    apply_style()
    titles = {"fashion-mnist": "(a) Fashion-MNIST (10k images), 40% symmetric noise, MLP 784-512-512-10",
              "cifar10n-worst": "(b) CIFAR-10N worst labels (1k images), CNN width 32",
              "cifar10-full-sym40": "(c) full CIFAR-10 (50k images), 40% symmetric noise, fast recipe",
              "cifar10-full-worst": "(d) full CIFAR-10N worst labels (50k images), fast recipe"}
    ncols = min(len(settings), 2)
    nrows = -(-len(settings) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows), squeeze=False)
    for ax in axes.flat[len(settings):]:
        ax.axis("off")
    colors = {"ce": "tab:red", "sop": "tab:blue"}
    for ax, setting in zip(axes.flat, settings):
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


def main(argv=None) -> int:
    """``python -m figures.fig_memorisation --full-scale DIR --data CSV``: :func:`update_full_scale`."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m figures.fig_memorisation",
                                description="replace the full-scale rows of the figure's data table")
    p.add_argument("--full-scale", required=True, help="folder of the full-scale run folders")
    p.add_argument("--data", required=True, help="the data table to update (fig_memorisation_data.csv)")
    args = p.parse_args(argv)
    try:
        n = update_full_scale(args.data, args.full_scale)
    except (DataFileError, OSError, ValueError) as err:
        print(f"fig_memorisation: error: {one_line(str(err))}", file=sys.stderr)
        return 1
    print(f"{n} full-scale rows written to {args.data}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
