"""Does the α–λ relation of Proposition 3.3 hold in practice? (theory vs practice)

Caption: (a) Deep SOP on Fashion-MNIST (first 2,000 training images, 40 % symmetric noise, MLP
784-512-512-10, constant lr 0.05, 20 epochs, one seed; CPU-sized: the machine was shared): final test accuracy and detection AUROC
(score u²_{i,y_i} against the true noise mask) against α, for α_u = α_v = α, for u alone
(α_v = 0: v stays at its initial 1e-8) and for v alone (α_u = 0); the dotted line is CE.
(b) The linear model's recovery against λ: for a synthetic problem (``soptheory.make_problem``,
N = 100, p = 150, r = 5, k = 10: relative error of s from program (25)) and for the linearised
network of ``fig_bridge_linearized`` (AUROC of |s| against the noise mask). The top axis of each
panel maps α and λ by λ = −log γ/(2α) with γ = init_std = 1e-8 of the deep runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from figures import fig_memorisation as fm
from figures._runs import ensure_runs

NAME = "fig_bridge_alpha"
DATA_FILE = NAME + "_data.npz"
ALPHAS = (0.1, 1.0, 10.0, 100.0)
ALONE = (10.0,)
LAMBDAS = np.logspace(-2.5, 2, 19)


def sweep_configs(runs_dir, data_dir, *, quick=False):
    """(mode, alpha, config) of the deep α sweep; mode in {"both", "u only", "v only", "ce"}."""
    kw = dict(train_subset=2000, epochs=20) if not quick else {}
    alphas, alone = (ALPHAS, ALONE) if not quick else ((1.0, 10.0), (10.0,))
    out = [("ce", np.nan, fm.fmnist_config(runs_dir, data_dir, method="ce", quick=quick, **kw))]
    for a in alphas:
        out.append(("both", a, fm.fmnist_config(runs_dir, data_dir, method="sop", quick=quick, alpha_u=a, alpha_v=a, **kw)))
    for a in alone:
        out.append(("u only", a, fm.fmnist_config(runs_dir, data_dir, method="sop", quick=quick, alpha_u=a, alpha_v=0.0, **kw)))
        out.append(("v only", a, fm.fmnist_config(runs_dir, data_dir, method="sop", quick=quick, alpha_u=0.0, alpha_v=a, **kw)))
    return out
