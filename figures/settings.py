"""Settings shared by the deep figures, so that no figure imports another.

The runs of Figure 1 on real data (:func:`fmnist_config`, :func:`cifar_config`) are also the
networks the bridge figures analyse; the λ grid (:data:`LAMBDAS`) and the two classes
(:data:`CLASSES`) of the linearised problem are shared by ``fig_bridge_linearized`` and
``fig_bridge_alpha``; γ of the deep runs is the configuration's default (:func:`deep_init_std`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_RUNS_DIR", "LAMBDAS", "CLASSES", "SOP_SETTINGS", "cache_folder", "cifar10n_npz",
           "fmnist_config", "cifar_config", "changed_fields", "deep_init_std",
           "FULL_SCALE_DIR", "FAST_SETTINGS", "fast_cifar_config", "effective_alpha",
           "FIG2_PROBLEM", "FIG2_GAMMA", "FIG2_LAM_RANGE", "FIG2_N_LAM"]

DEFAULT_DATA_DIR = "../shared/data"  # the figures CLI's --data-dir default
DEFAULT_RUNS_DIR = "runs/figures"    # and its --runs-dir default
LAMBDAS = np.logspace(-4, 4, 33)     # λ grid of program (25) on the linearised network
CLASSES = (0, 1)                     # the two classes of the linearised (one-output) problem
# SOP's own settings in Figure 1's runs; a CE run has no such options (its configuration refuses them)
SOP_SETTINGS = {"update": "batch", "alpha_u": 10.0, "alpha_v": 10.0}

#: Figure 2's instance (``fig_implicit_bias``), which ``fig_bridge_trainer`` redraws with the deep
#: trainer: the problem ``make_problem(N, p, r, k, random_state=seed)``, γ, and its λ grid
FIG2_PROBLEM = dict(N=20, p=40, r=3, k=3, seed=0)
FIG2_GAMMA = float(np.exp(-8.0))
FIG2_LAM_RANGE = (1e-4, 1.0)
FIG2_N_LAM = 40

#: the folder of the full-scale CIFAR-10 run folders under a runs directory
#: (``experiments/cifar10_full_scale.py --out``; ``fig_memorisation`` reads the same folder)
FULL_SCALE_DIR = "full_scale_e25"
#: the full-scale settings of ``experiments/cifar10_full_scale.py``: (noise kind, rate, CIFAR-10N label)
FAST_SETTINGS = {"sym40": ("sym", 0.4, None), "worst": ("cifar10n", None, "worst")}


def deep_init_std():
    """γ of the deep runs: the initial scale of u and v, ``TrainConfig``'s default ``init_std``
    (the runs of :func:`fmnist_config` and :func:`cifar_config` do not change it)."""
    from sopdeep.config import TrainConfig

    return float(TrainConfig().options.init_std)


def cache_folder(runs_dir):
    """Where the decoded CIFAR-10 JPEG export is kept: ``<runs_dir>/cache``."""
    return Path(runs_dir) / "cache"


def cifar10n_npz(data_dir, cache_dir, n_test=2000):
    """The decoded CIFAR-10 JPEG export with all training images and the first ``n_test`` test
    images, as one npz in ``cache_dir`` (decoded once): :func:`sopdeep.datasets.cifar10_jpeg_npz`."""
    from sopdeep.datasets import cifar10_jpeg_npz

    return cifar10_jpeg_npz(data_dir, cache_dir, n_test)


def fmnist_config(runs_dir, data_dir, *, method="ce", seed=0, quick=False, **overrides):
    """The Fashion-MNIST run of Figure 1 (a) (``quick``: the synthetic problem, 3 epochs)."""
    from sopdeep.config import TrainConfig

    base = dict(dataset="fashion-mnist", data_root=str(Path(data_dir) / "fashion-mnist"), train_subset=10000,
                noise="sym", noise_rate=0.4, noise_seed=seed, arch="mlp", width=512, depth=2, epochs=40,
                batch_size=128, lr=0.05, momentum=0.9, weight_decay=0.0, schedule="constant", seed=seed,
                device="cpu", progress=False, **_sop_settings(method))
    if quick:
        base.update(dataset="synthetic", data_root="", train_subset=0, width=32, epochs=3)
    base.update(overrides)
    tag = "_".join(f"{k}{v}" for k, v in sorted(overrides.items()))
    folder = Path(runs_dir) / ("quick_fmnist" if quick else "fmnist") / (f"{method}_s{seed}" + (f"_{tag}" if tag else ""))
    return TrainConfig(method=method, out=str(folder), **base)


def cifar_config(runs_dir, data_dir, *, method="ce", seed=0, quick=False, epochs=40, n_train=1000, n_test=1000,
                 batch_size=32):
    """The CIFAR-10N "worst" run of Figure 1 (b) (``quick``: the synthetic problem with the CNN);
    the decoded images are kept in :func:`cache_folder` of ``runs_dir``."""
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
                       lr=0.05, momentum=0.9, weight_decay=0.0, schedule="constant", augment="none", seed=seed,
                       noise_seed=seed, device="cpu", progress=False,
                       **{k: v for k, v in _sop_settings(method).items() if k != "update"}, **data)


def _sop_settings(method):
    return dict(SOP_SETTINGS) if method in ("sop", "sop+") else {}


def changed_fields(config):
    """The config fields that differ from TrainConfig's defaults, as compact JSON."""
    from sopdeep.config import TrainConfig

    default = TrainConfig().to_dict()
    return json.dumps({k: v for k, v in config.to_dict().items() if default.get(k) != v}, sort_keys=True)


def fast_cifar_config(runs_dir, data_dir, *, setting="sym40", method="sop", seed=0, epochs=25, device="auto"):
    """The full CIFAR-10 run of ``experiments/cifar10_full_scale.py`` (fast recipe, 50,000 images).

    The same ``TrainConfig`` as that script's ``run_configs`` with ``--out <runs_dir>/FULL_SCALE_DIR
    --cache-dir <runs_dir>/cache --epochs epochs --no-progress``: the recipe of the noisy ``fast-*``
    presets (the fast network, batch 1024, momentum 0.85, no label smoothing), plain CE or SOP at :data:`sopdeep.presets.FAST_SOP_ALPHA` (the effective-α rule
    of ``docs/bridge.md``), u, v at std 1e-8, the paper's recipe. ``setting`` is a key of
    :data:`FAST_SETTINGS`; the folder is ``<runs_dir>/FULL_SCALE_DIR/<setting>-s<seed>-<method>``.

    Examples
    --------
    >>> c = fast_cifar_config("runs", "../shared/data")
    >>> c.out, c.batch_size, c.momentum, round(c.options.alpha_u, 4)
    ('runs/full_scale_e25/sym40-s0-sop', 1024, 0.85, 0.8333)
    """
    from sopdeep.config import TrainConfig
    from sopdeep.presets import FAST_SOP_ALPHA, PRESETS

    if setting not in FAST_SETTINGS:
        raise ValueError(f"setting must be one of {', '.join(FAST_SETTINGS)}, got {setting!r}")
    data_dir = Path(data_dir).expanduser().resolve()  # as the experiment records it
    kind, rate, cifar_n = FAST_SETTINGS[setting]
    # the noisy fast presets' recipe (the fast network, batch 1024, no label smoothing), less their noise
    recipe = {k: v for k, v in PRESETS["fast-cifar10-ce-sym40"].items() if k not in ("noise", "noise_rate", "method")}
    recipe.update(dataset="cifar10-jpeg", data_root=str(data_dir / "cifar10-jpeg"),
                  cache_path=str(cache_folder(runs_dir) / "cifar10_jpeg.npz"), epochs=epochs, device=device,
                  progress=False, noise=kind, noise_seed=seed, seed=seed)
    if rate is not None:
        recipe["noise_rate"] = rate
    if cifar_n is not None:
        recipe.update(cifar_n_label=cifar_n, cifar_n_path=str(data_dir / "cifar-n" / "CIFAR-10_human.pt"))
    if method == "sop":
        recipe.update(alpha_u=FAST_SOP_ALPHA, alpha_v=FAST_SOP_ALPHA, init_std=1e-8, recipe="paper")
    return TrainConfig(**recipe, method=method, out=str(Path(runs_dir) / FULL_SCALE_DIR / f"{setting}-s{seed}-{method}"))


def effective_alpha(config):
    """α_eff = α·B·(1 − β) of a SOP run (``docs/bridge.md``: batch-mean θ loss, per-sample u, v
    steps, momentum β on θ, the paper's u, v schedule), with α = ``alpha_u``.

    Examples
    --------
    >>> round(effective_alpha(fast_cifar_config("runs", "../shared/data")), 6)
    128.0
    """
    return float(config.options.alpha_u) * float(config.batch_size) * (1.0 - float(config.momentum))
