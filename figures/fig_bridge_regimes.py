"""Where does the linear theory stop predicting deep SOP? Its assumptions dropped one at a time.

Caption: one two-class Fashion-MNIST subset (the first N = 256 training samples of Figure 1's SOP
run whose given label is class 0 or 1: 40 % symmetric noise over ten classes, k = 102 of them
corrupted; target y = ±1 from the given label). Regimes (a)-(d) are trained on it by ``sopdeep``'s
own optimiser on the squared loss (14) (:func:`sopdeep.squared_sop.train_squared_sop`: B = 128,
β = 0.9, trainer α = 2, so α_eff = α·B·(1 − β) = 25.6; θ's rate τ = 0.1, constant; u₀ = v₀ =
γ = 1e-8, the deep runs' init_std; 1,200 epochs), so that λ_pred = −log γ/(2 α_eff) = 0.36.
Inputs: 14 x 14 average-pooled pixels, centred; each model's input scale makes its Jacobian
Gram K₀ = J₀J₀ᵀ at initialisation have mean diagonal 1, so one λ means the same for all.
(a) f = Xθ on the pixels (J = X); (b) frozen random ReLU features of width 2048, last layer
trained (J = the features); (c) a one-hidden-layer ReLU network in NTK parametrisation, both
layers trained, at widths m = 8, 32, 128; (d) the same network in standard (PyTorch default)
parametrisation at m = 128; (e) deep SOP as published: Figure 1's run (784-512-512-10 MLP,
cross-entropy, φ, the MSE term for v, α = 10, so α_eff = 128 and λ_pred = 0.072), its score
u²_{i,y_i} on the same samples, and (25) on the Jacobian Gram of its logit difference, target
y − f(θ₀). Networks (c), (d) start from an antisymmetric copy of their hidden units, so f(θ₀) = 0
(the theory's θ₀ = 0). Program (25) is solved in kernel form on K₀ (filled markers) and on K at
the end of training (open) over λ_pred·10^[−2, 2]. (1) ‖s − s_ref‖/‖s_ref‖ of the trained
s = u² − v² against (25) at λ_pred (circles), against (25) at the λ where that is smallest
(triangles) and against the same trainer run on the model linearised at θ₀ (crosses: the
non-linearity alone, without step drift or finite γ); dotted: the exact flow limit at (α_eff, γ)
against (25) in (a), the finite-γ part of the gap. (2) Spearman ρ of |s| against |s₍₂₅₎(λ_pred)|
and AUROC of |s| against the true noise mask. (3) The best λ over λ_pred ((e): the λ of best ρ,
since u² is in probability units). (4) ‖K_end − K₀‖_F/‖K₀‖_F.

Measured (one seed; ``results/figures/fig_bridge_regimes_data.npz``): the theory holds where its
assumptions do and breaks with feature learning. (a) ‖s − s₍₂₅₎(λ_pred)‖/‖s₍₂₅₎‖ = 0.048, best λ =
λ_pred, ρ = 0.993 (of which 0.025 is the finite-γ gap of the exact flow limit, 0.034 the trainer
against that limit); (b) 0.042, best λ = 1.26 λ_pred (one grid step), ρ = 0.990. (c) NTK, m = 8,
32, 128: 0.22, 0.086, 0.055 against (25) at λ_pred on K₀ and 0.22, 0.089, 0.032 against the
linearised twin, as K moves by 0.40, 0.12, 0.037; best λ within 1.6x of λ_pred, ρ = 0.89, 0.97,
0.98. (d) standard parametrisation, m = 128: K moves by 12x, 0.50 at λ_pred on K₀ (0.47 against
the twin), best λ = 6.3 λ_pred on K₀ and 0.13 λ_pred on K_end, ρ = 0.79 (K₀) and 0.49 (K_end).
(e) deep SOP: K moves by 67x; ρ(u², |s₍₂₅₎(λ_pred)|) = 0.32 on K₀ (best 0.62, at the grid's edge
λ_pred/100), and (25) on K_end at λ_pred puts nothing in s. AUROC of the trained |s| is
0.79-0.83 in (a)-(d) (the linear program's own 0.77-0.79 on K₀) against 0.96 for deep SOP's u²:
the published loss detects far better than any regime in which the theory predicts it.
Full compute: about 35 min of one core on a heavily shared machine (regimes cached under
``<runs_dir>/regimes``; an interrupted compute resumes); quick: seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from figures._bridge import linearised_recovery, subset_gram, two_class_subset
from figures._runs import ensure_runs
from figures.settings import CLASSES, DEFAULT_DATA_DIR, DEFAULT_RUNS_DIR, changed_fields, deep_init_std, fmnist_config
from figures.style import apply_style, save_figure
from sopcommon.files import DataFileError, read_json, read_npz

__all__ = ["NAME", "DEEP", "DATA_FILE", "REGIMES", "pixel_inputs", "random_features", "two_layer_relu",
           "squared_config", "linearised_twin", "compare_to_program", "compute", "read", "plot"]

NAME = "fig_bridge_regimes"
DEEP = True  # trains networks: `python -m figures` redraws it unless --deep compute
DATA_FILE = NAME + "_data.npz"

N_SAMPLES = 256      # 2 batches of B = 128: every sample has the same ratio α·B (docs/bridge.md)
BATCH, MOMENTUM = 128, 0.9   # the deep runs' B and β (Figure 1)
ALPHA_EFF = 25.6     # α_eff = α·B·(1 − β): the trainer's α = 2 at B = 128, β = 0.9
UV_STEP = 0.2        # α·τ: the multiplicative u, v step 1 − 2ατ r_i stays well inside (0, 2) for |r_i| ≲ 2
EPOCHS = 1200        # 2,400 steps at B = 128: flow time 2400·ατ/α_eff ≈ 19 (the residual is recorded)
POOL = 2             # 28 x 28 -> 14 x 14 pixels: 196 inputs keep the networks CPU-sized
RATIOS = np.logspace(-2, 2, 41)  # λ / λ_pred of the grid of (25): two decades each side, 10 per decade
# (regime letter, model, width): the steps away from the theory, in order
REGIMES = (("a", "linear", 0), ("b", "random features", 2048), ("c", "ntk", 8), ("c", "ntk", 32),
           ("c", "ntk", 128), ("d", "sp", 128), ("e", "deep sop", 0))
# quick (tests): synthetic data, one batch of 40; (a), (b) trained to convergence (1,500 steps, flow
# time ≈ 12), the networks only as a smoke test (200 steps) at small widths
QUICK = dict(n=40, epochs=1500, net_epochs=200,
             regimes=(("a", "linear", 0), ("b", "random features", 64), ("c", "ntk", 16), ("c", "ntk", 64),
                      ("d", "sp", 32), ("e", "deep sop", 0)))


def pixel_inputs(images, pool=POOL):
    """Average-pooled, flattened, centred pixels scaled to a mean squared norm of 1.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W)
    pool : int, default 2
        Side of the average-pooling window.

    Returns
    -------
    Tensor of shape (N, C·(H // pool)·(W // pool)), float64, with ``mean_i ‖x_i‖² = 1``.

    Examples
    --------
    >>> import torch
    >>> x = pixel_inputs(torch.arange(32.0).reshape(2, 1, 4, 4))
    >>> tuple(x.shape), round(float(x.square().sum(1).mean()), 6)
    ((2, 4), 1.0)
    """
    import torch

    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    x = torch.nn.functional.avg_pool2d(images.double(), pool).flatten(1)
    x = x - x.mean(0)  # the mean image would be one huge eigenvalue of K, far from the others
    return x / x.square().sum(1).mean().sqrt()


def random_features(x, width, *, seed=0):
    """Frozen random ReLU features :math:`\\phi(x) = \\sqrt{2/W}\\,\\max(0, G^\\top x)`, G ~ N(0, 1).

    Parameters
    ----------
    x : Tensor of shape (N, d)
    width : int
        W, the number of features.
    seed : int, default 0

    Returns
    -------
    Tensor of shape (N, W), same dtype as ``x`` (``E ‖φ(x)‖² = ‖x‖²``).

    Examples
    --------
    >>> import torch
    >>> random_features(torch.eye(3, dtype=torch.float64), 5).shape
    torch.Size([3, 5])
    """
    import torch

    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    g = torch.tensor(np.random.default_rng(seed).standard_normal((x.shape[1], width)), dtype=x.dtype)
    return torch.relu(x @ g) * np.sqrt(2.0 / width)


def two_layer_relu(d, width, parametrisation, *, seed=0):
    """One-hidden-layer ReLU network :math:`f(x) = c\\, a^\\top \\max(0, W x)` started at f(θ₀) = 0.

    Its 2m hidden units are m drawn ones and an antisymmetric copy (same rows of W, output weights
    negated), so f(x; θ₀) = 0 for every x: the theory's θ₀ = 0 start without a zero Jacobian.
    No biases; every parameter sits in an ``nn.Linear``, so ``sopdeep.jacobian`` forms K exactly,
    layer by layer.

    Parameters
    ----------
    d : int
        Input dimension.
    width : int
        m; the network has 2m hidden units.
    parametrisation : {"ntk", "sp"}
        "ntk": W, a ~ N(0, 1) and :math:`c = 1/\\sqrt{2m}`; "sp": PyTorch's default ``nn.Linear``
        init and c = 1.
    seed : int, default 0

    Returns
    -------
    torch.nn.Module mapping (B, d) to (B, 1), float32.

    Examples
    --------
    >>> import torch
    >>> net = two_layer_relu(3, 4, "ntk", seed=0)
    >>> float(net(torch.ones(2, 3)).detach().abs().max())  # the antisymmetric copy cancels at θ₀
    0.0
    """
    import torch
    from torch import nn

    if parametrisation not in ("ntk", "sp"):
        raise ValueError(f"parametrisation must be 'ntk' or 'sp', got {parametrisation!r}")
    if width < 1 or d < 1:
        raise ValueError(f"d and width must be >= 1, got d={d}, width={width}")

    class TwoLayerReLU(nn.Module):
        def __init__(self):
            super().__init__()
            gen = torch.Generator().manual_seed(seed)
            self.hidden = nn.Linear(d, 2 * width, bias=False)
            self.out = nn.Linear(2 * width, 1, bias=False)
            with torch.no_grad():
                if parametrisation == "ntk":
                    w, a = torch.randn(width, d, generator=gen), torch.randn(1, width, generator=gen)
                else:  # nn.Linear's default: U(±1/√fan_in) (kaiming_uniform with a = √5), from gen
                    w = (torch.rand(width, d, generator=gen) * 2 - 1) / np.sqrt(d)
                    a = (torch.rand(1, width, generator=gen) * 2 - 1) / np.sqrt(2 * width)
                self.hidden.weight.copy_(torch.cat([w, w]))
                self.out.weight.copy_(torch.cat([a, -a], dim=1))
            self.scale = 1.0 / np.sqrt(2 * width) if parametrisation == "ntk" else 1.0

        def forward(self, x):
            return self.out(torch.relu(self.hidden(x)) * self.scale)

    return TwoLayerReLU()


def squared_config(batch_size=BATCH, *, alpha_eff=None, uv_step=None):
    """The trainer's settings of regimes (a)-(d): SOP at ``α = α_eff / (B(1 − β))`` with θ's rate
    ``τ = uv_step / α`` (constant), β = 0.9, no weight decay, no projection of u, v (the theory's
    u, v are unconstrained).

    Examples
    --------
    >>> c = squared_config()
    >>> round(c.options.alpha_u, 12), round(c.lr, 12)  # α_eff = 25.6 at B = 128, β = 0.9
    (2.0, 0.1)
    """
    from sopdeep.config import TrainConfig

    # the module's constants read at call time (None), so the cache key and the trainer always agree
    alpha_eff = ALPHA_EFF if alpha_eff is None else alpha_eff
    uv_step = UV_STEP if uv_step is None else uv_step
    alpha = alpha_eff / (batch_size * (1.0 - MOMENTUM))
    return TrainConfig(method="sop", alpha_u=alpha, alpha_v=alpha, project_uv=False, batch_size=batch_size,
                       momentum=MOMENTUM, lr=uv_step / alpha, schedule="constant", weight_decay=0.0)


def _gram(model, x):
    import torch

    from sopdeep.jacobian import jacobian_gram

    return jacobian_gram(model, x, torch.ones(x.shape[0], 1, dtype=x.dtype))


def _rel(a, b):
    norm = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / norm) if norm > 0 else np.inf  # s₍₂₅₎ = 0 at large λ


def _spearman(a, b):
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:  # a constant vector has no ranks to correlate
        return np.nan
    return float(spearmanr(a, b).statistic)


def compare_to_program(s, K, target, lam_pred, mask, *, signed=True):
    """The trained ``s`` against program (25) on the Gram ``K`` over ``λ_pred · RATIOS``.

    Parameters
    ----------
    s : ndarray of shape (N,)
        The trained model's estimate (``u² − v²``; deep SOP: its score u²).
    K : ndarray of shape (N, N)
        Jacobian Gram of the model.
    target : ndarray of shape (N,)
        y − f(θ₀), the right-hand side of (25).
    lam_pred : float
        λ = −log γ / (2 α_eff).
    mask : bool ndarray of shape (N,)
        True noise.
    signed : bool, default True
        ``s`` is in the units of (25) (relative differences are computed); False: only ranks of |s|.

    Returns
    -------
    dict
        ``rel`` (L,) relative difference ‖s − s₍₂₅₎(λ)‖/‖s₍₂₅₎(λ)‖ (NaN when not ``signed``),
        ``rho`` (L,) Spearman ρ of |s| against |s₍₂₅₎(λ)|, ``auroc`` (L,) of |s₍₂₅₎(λ)|,
        ``s_pred`` (N,) s₍₂₅₎ at λ_pred, ``certified`` (bool, all λ).

    Examples
    --------
    >>> K, y = np.eye(3), np.array([1.0, 0.0, -2.0])
    >>> out = compare_to_program(np.zeros(3), K, y, 1.0, np.array([1, 0, 1], bool))
    >>> out["rel"].shape, bool(out["certified"])
    ((41,), True)
    """
    from sopdeep.detection import auroc

    # λ_pred itself first (it is also the grid's middle point, RATIOS[20] = 1)
    lin = linearised_recovery(K, target, lam_pred * RATIOS)
    abs_s = np.abs(s)
    rel = np.array([_rel(s, sl) if signed else np.nan for sl in lin["s"]])
    rho = np.array([_spearman(abs_s, np.abs(sl)) for sl in lin["s"]])
    auc = np.array([auroc(np.abs(sl), mask) for sl in lin["s"]])
    mid = int(np.argmin(np.abs(np.log(RATIOS))))
    return {"rel": rel, "rho": rho, "auroc": auc, "s_pred": lin["s"][mid], "certified": bool(np.all(lin["certified"]))}


def linearised_twin(K, y, config, *, gamma, epochs, seed=0):
    """s of the same trainer run on the model linearised at θ₀: f = F θ with F Fᵀ = K₀, θ₀ = 0.

    The function-space steps of momentum SGD on a linear model, ``f ← f − τ K[:, b] (β-averaged
    r_b) / B``, depend on J only through K = JJᵀ, so any factor F of K₀ gives the trajectory of the
    network's linearisation ``f(θ₀) + J₀(θ − θ₀)`` (f(θ₀) = 0 here); same ``seed``, same batches.
    The network's s against this one is the non-linearity alone (no step drift, no finite γ).

    Parameters
    ----------
    K : ndarray of shape (N, N)
    y : ndarray of shape (N,)
    config : TrainConfig
        The network's trainer settings (:func:`squared_config`).
    gamma : float
    epochs : int
    seed : int, default 0

    Returns
    -------
    ndarray of shape (N,)

    Examples
    --------
    >>> s = linearised_twin(np.eye(4), np.array([1.0, 0, 0, 2]), squared_config(4), gamma=1e-3, epochs=10)
    >>> s.shape
    (4,)
    """
    import torch

    from figures._bridge import FACTOR_RTOL
    from sopdeep.jacobian import gram_factor_from_gram
    from sopdeep.squared_sop import train_squared_sop

    F = torch.as_tensor(gram_factor_from_gram(K, rtol=FACTOR_RTOL), dtype=torch.float64)
    model = torch.nn.Linear(F.shape[1], 1, bias=False).double()
    torch.nn.init.zeros_(model.weight)
    return train_squared_sop(model, F, torch.as_tensor(y, dtype=torch.float64), config, gamma=gamma, epochs=epochs,
                             seed=seed).s


def _regime_model(model_kind, width, x, seed):
    """(model, inputs) of regimes (a)-(d); inputs scaled so that K₀ has mean diagonal 1."""
    import torch

    if model_kind == "linear":
        inputs = x
    elif model_kind == "random features":
        inputs = random_features(x, width, seed=seed)
    else:
        inputs = x
    if model_kind in ("linear", "random features"):
        model = torch.nn.Linear(inputs.shape[1], 1, bias=False).double()
        torch.nn.init.zeros_(model.weight)  # θ₀ = 0: the theory's start
    else:
        model = two_layer_relu(x.shape[1], width, model_kind, seed=seed).double()
    # f and its Jacobian are 1-homogeneous in the input (ReLU, no biases): K scales as c²
    c = 1.0 / np.sqrt(np.mean(np.diag(_gram(model, inputs))))
    return model, inputs * c


def _train_regime(model_kind, width, x, y, mask, lam_pred, gamma, *, epochs, seed):
    import torch

    from sopdeep.squared_sop import train_squared_sop

    model, inputs = _regime_model(model_kind, width, x, seed)
    K0 = _gram(model, inputs)
    config = squared_config(min(BATCH, len(y)))
    t0 = time.perf_counter()
    res = train_squared_sop(model, inputs, torch.as_tensor(y, dtype=torch.float64), config, gamma=gamma,
                            epochs=epochs, seed=seed)
    seconds = time.perf_counter() - t0
    K1 = _gram(model, inputs)
    # a linear model is its own linearisation: the twin would repeat the run (same batches, same K)
    twin = None if model_kind in ("linear", "random features") else linearised_twin(
        K0, y, config, gamma=gamma, epochs=epochs, seed=seed)
    init = compare_to_program(res.s, K0, y, lam_pred, mask)
    # a model linear in θ keeps its K: the end comparison is the init one (no second solve)
    end = init if twin is None else compare_to_program(res.s, K1, y, lam_pred, mask)
    flow = linearised_recovery(K0, y, [lam_pred], alpha=ALPHA_EFF, gamma=gamma)
    extra = {"alpha": config.options.alpha_u, "lr": config.lr, "batch_size": config.batch_size,
             "residual_max": float(np.abs(res.residual).max()), "steps": res.steps, "train_seconds": seconds,
             "kernel_change": _rel(K1, K0), "rel_twin": np.nan if twin is None else _rel(res.s, twin),
             "rel_flow_limit_init": _rel(res.s, flow["s_flow"]),
             "rel_flow_vs_program_init": _rel(flow["s_flow"], flow["s"][0]),
             "flow_converged": bool(np.all(flow["flow_converged"]))}
    return res.s, init, end, extra


def _summary(letter, label, width, s, init, end, lam_pred, mask, signed):
    from sopdeep.detection import auroc

    mid = int(np.argmin(np.abs(np.log(RATIOS))))
    row = {"regime": letter, "model": label, "width": width, "lambda_pred": lam_pred, "N": int(mask.size),
           "k": int(mask.sum()), "auroc_trained": auroc(np.abs(s), mask)}
    for tag, c in (("init", init), ("end", end)):
        # (a)-(d): the λ where s is closest to (25); (e) (only ranks comparable): the λ of best ρ
        best = int(np.nanargmin(c["rel"])) if signed else int(np.nanargmax(np.nan_to_num(c["rho"], nan=-2.0)))
        row.update({f"rel_pred_{tag}": float(c["rel"][mid]), f"rel_best_{tag}": float(c["rel"][best]),
                    f"lambda_best_{tag}": float(lam_pred * RATIOS[best]), f"rho_pred_{tag}": float(c["rho"][mid]),
                    f"rho_best_{tag}": float(c["rho"][best]), f"auroc_program_pred_{tag}": float(c["auroc"][mid]),
                    f"certified_{tag}": c["certified"]})
    return row


def compute(data_path, *, quick=False, progress=True, data_dir=DEFAULT_DATA_DIR, runs_dir=DEFAULT_RUNS_DIR,
            n_samples=N_SAMPLES, epochs=EPOCHS, n_jobs=1):
    """Train regimes (a)-(d) on the subset, read deep SOP's run for (e), compare each with (25).

    ``quick``: Figure 1's quick run (synthetic data), N = 40, :data:`QUICK`'s regimes and epochs.
    """
    import torch

    if n_samples > BATCH and n_samples % BATCH:
        raise ValueError(f"n_samples must be <= {BATCH} or a multiple of it (equal batches), got {n_samples}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the regimes are small: one thread, reproducible sums (restored after)
    try:
        _compute(data_path, quick=quick, progress=progress, data_dir=data_dir, runs_dir=runs_dir,
                 n_samples=n_samples, epochs=epochs, n_jobs=n_jobs)
    finally:
        torch.set_num_threads(threads)


def _compute(data_path, *, quick, progress, data_dir, runs_dir, n_samples, epochs, n_jobs):
    import torch
    from tqdm.auto import tqdm

    from sopcommon import atomic_savez

    regimes = QUICK["regimes"] if quick else REGIMES
    if quick:
        n_samples, epochs = QUICK["n"], QUICK["epochs"]
    config = fmnist_config(runs_dir, data_dir, method="sop", seed=0, quick=quick)
    (run,) = ensure_runs([config], n_jobs=n_jobs, progress=progress)
    if run is None:
        raise RuntimeError(f"the deep SOP run {config.out} stopped on a non-finite loss: nothing to compare")
    sub = two_class_subset(config, n_samples, CLASSES)
    mask, y = sub["is_noisy"].astype(bool), sub["y"]
    x = pixel_inputs(sub["x"])
    gamma = deep_init_std()  # γ = 1e-8, as the deep runs' init_std: λ_pred means the same in (e)
    lam_pred = -np.log(gamma) / (2 * ALPHA_EFF)
    rows, store = [], {"mask": mask, "ratios": RATIOS}
    cache = Path(runs_dir) / ("quick_regimes" if quick else "regimes")  # one file per finished regime
    cache.mkdir(parents=True, exist_ok=True)
    for i, (letter, kind, width) in enumerate(tqdm(regimes, desc=NAME, disable=not progress)):
        ep = QUICK["net_epochs"] if quick and kind in ("ntk", "sp") else epochs
        key = _cell_key(kind, width, n_samples, ep, gamma, config)
        cell = cache / f"{i}_{letter}_{kind.replace(' ', '-')}_w{width}_n{n_samples}_e{ep}_{key}.npz"
        if cell.exists():  # an interrupted compute resumes here (delete the folder to recompute)
            row, arrays = _read_cell(cell)
            rows.append(row)
            store.update({f"{i}|{k}": v for k, v in arrays.items()})
            continue
        if kind == "deep sop":
            g0 = subset_gram(config, n_samples, CLASSES, trained=False)
            g1 = subset_gram(config, n_samples, CLASSES, trained=True)
            target = g0["y"] - g0["f"]  # linearised at θ₀: y − f(θ₀) = J₀(θ − θ₀) + s
            s = run["samples"]["noise_score"][sub["idx"]]  # u² at the given label
            alpha_eff = config.options.alpha_u * config.batch_size * (1 - config.momentum)
            lam_e = -np.log(config.options.init_std) / (2 * alpha_eff)
            init = compare_to_program(s, g0["K"], target, lam_e, mask, signed=False)
            end = compare_to_program(s, g1["K"], target, lam_e, mask, signed=False)
            row = _summary(letter, kind, width, s, init, end, lam_e, mask, signed=False)
            row.update({"alpha_eff": alpha_eff, "kernel_change": _rel(g1["K"], g0["K"]),
                        "config": changed_fields(config)})
        else:
            s, init, end, extra = _train_regime(kind, width, x, y, mask, lam_pred, gamma, epochs=ep, seed=i)
            row = _summary(letter, kind, width, s, init, end, lam_pred, mask, signed=True)
            row.update({"alpha_eff": ALPHA_EFF, "gamma": gamma, "epochs": ep, **extra})
        arrays = {"s": np.asarray(s, float), "s_pred_init": init["s_pred"],
                  **{f"{m}_{tag}": c[m] for tag, c in (("init", init), ("end", end)) for m in ("rel", "rho", "auroc")}}
        atomic_savez(cell, {"row_json": np.array(json.dumps(row)), **arrays})
        rows.append(row)
        store.update({f"{i}|{k}": v for k, v in arrays.items()})
    atomic_savez(Path(data_path), {"rows_json": np.array(json.dumps(rows)), "keys": np.array(list(store)),
                                   **{f"a{j}": v for j, v in enumerate(store.values())}})


def _cell_key(kind, width, n_samples, epochs, gamma, deep_config):
    """12 hex digits of a hash of everything a regime's cell depends on (its trainer's settings, γ,
    α_eff, the pooling, the deep run's configuration), so that a cached cell of other settings is
    never reused."""
    import hashlib

    if kind == "deep sop":
        settings = {k: v for k, v in deep_config.to_dict().items() if k not in ("out", "progress")}
    else:
        settings = {"trainer": squared_config(min(BATCH, n_samples)).to_dict(), "gamma": gamma,
                    "alpha_eff": ALPHA_EFF, "pool": POOL, "width": width, "epochs": epochs}
    text = json.dumps({"kind": kind, "n": n_samples, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _read_cell(path):
    z = read_npz(path, keys=("row_json",), what=f"{NAME} regime cache file")
    return read_json(path, what=f"{NAME} regime cache file", text=str(z["row_json"])), \
        {k: v for k, v in z.items() if k != "row_json"}


def read(data_path):
    """(rows list, {key: array}) of the data file."""
    z = read_npz(data_path, keys=("rows_json", "keys"), what=f"{NAME} data file")
    missing = [f"a{i}" for i in range(z["keys"].size) if f"a{i}" not in z]
    if z["keys"].ndim != 1 or missing:
        raise DataFileError(data_path, f"damaged {NAME} data file: missing {', '.join(missing) or 'keys'}")
    rows = read_json(data_path, what=f"{NAME} data file (rows_json)", text=str(z["rows_json"]))
    if not isinstance(rows, list) or not rows:
        raise DataFileError(data_path, f"empty {NAME} data file: rows_json holds no rows; recompute it")
    return rows, {str(k): z[f"a{i}"] for i, k in enumerate(z["keys"])}


def _label(row):
    names = {"linear": "linear\npixels", "random features": f"random\nfeatures\nW={row['width']}",
             "ntk": f"NTK\nm={row['width']}", "sp": f"standard\nm={row['width']}",
             "deep sop": "deep SOP\nCE + φ\n+ MSE"}
    return f"({row['regime']}) {names[row['model']]}"


def plot(data_path, out_dir):
    """(1) relative difference to (25), (2) rank agreement and AUROC, (3) best λ / λ_pred, (4) how
    far the kernel moves, one point per regime."""
    import matplotlib.pyplot as plt

    rows, _ = read(data_path)
    apply_style()
    xs = np.arange(len(rows))
    get = lambda key: np.array([r.get(key, np.nan) for r in rows], float)  # noqa: E731
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.2))
    (ax1, ax2), (ax3, ax4) = axes
    for tag, mfc, dx in (("init", None, -0.1), ("end", "none", 0.1)):
        when = "K₀ (init)" if tag == "init" else "K at the end"
        ax1.semilogy(xs + dx, get(f"rel_pred_{tag}"), "o", color="tab:blue", mfc=mfc, label=f"(25) at λ_pred, {when}")
        ax1.semilogy(xs + dx, get(f"rel_best_{tag}"), "^", color="tab:orange", mfc=mfc,
                     label=f"(25) at its best λ, {when}")
        ax2.plot(xs + dx, get(f"rho_pred_{tag}"), "o", color="tab:blue", mfc=mfc,
                 label=f"Spearman ρ(|s|, |s₍₂₅₎(λ_pred)|), {when}")
        ax3.semilogy(xs + dx, get(f"lambda_best_{tag}") / get("lambda_pred"), "s", color="tab:green", mfc=mfc,
                     label=when)
    ax1.semilogy(xs, get("rel_twin"), "x", color="tab:purple", ms=7, mew=1.5,
                 label="the same trainer on the linearisation at θ₀")
    gap = [r["rel_flow_vs_program_init"] for r in rows if r["regime"] == "a"]
    if gap:
        ax1.axhline(gap[0], color="k", ls=":", lw=0.8, label="exact flow limit vs (25) in (a): finite γ")
    deep = [i for i, r in enumerate(rows) if r["model"] == "deep sop"]
    for i in deep:
        ax1.text(i, 0.5, "n/a:\nits u² is in\nprobability\nunits", ha="center", va="center", fontsize=7,
                 transform=ax1.get_xaxis_transform())
    ax1.set_ylim(1e-3, 5.0)
    ax1.set_ylabel("‖s − s_ref‖ / ‖s_ref‖")
    ax1.set_title("(1) trained s = u² − v² against the linear theory", fontsize=9)
    ax2.plot(xs, get("auroc_trained"), "D", color="k", label="AUROC of the trained |s| (deep SOP: u²)")
    ax2.plot(xs, get("auroc_program_pred_init"), "D", color="tab:gray", mfc="none",
             label="AUROC of |s₍₂₅₎(λ_pred)|, K₀")
    ax2.axhline(0.5, color="gray", lw=0.5)
    ax2.set_ylim(min(0.3, np.nanmin(get("rho_pred_end")) - 0.05), 1.02)
    ax2.set_title("(2) rank agreement with (25), and noise detection", fontsize=9)
    ax3.axhline(1.0, color="k", lw=0.8, ls="--", label="λ_pred = −log γ / (2 α_eff)")
    for i in deep:
        edge = " (grid edge: ≤)" if np.isclose(rows[i]["lambda_best_init"] / rows[i]["lambda_pred"], RATIOS[0]) else ""
        ax3.annotate("λ of best ρ" + edge, (i, rows[i]["lambda_best_init"] / rows[i]["lambda_pred"]), fontsize=7,
                     textcoords="offset points", xytext=(-70, 8))
        if np.isnan(rows[i]["rho_pred_end"]):  # (25) on K_end puts nothing in s at λ_pred: no ranks
            ax2.annotate("K at the end:\ns₍₂₅₎(λ_pred) = 0", (i, 0.5), fontsize=6.5, ha="center",
                         textcoords="offset points", xytext=(0, 10))
    ax3.set_ylim(RATIOS[0] / 1.5, RATIOS[-1] * 1.5)
    ax3.set_ylabel("best λ / λ_pred")
    ax3.set_title("(3) the λ where (25) agrees best (grid: λ_pred·10^[−2, 2])", fontsize=9)
    ax4.semilogy(xs, np.maximum(get("kernel_change"), 1e-4), "o", color="tab:red")
    ax4.set_ylim(5e-5, None)
    ax4.text(0.02, 0.14, "(a), (b): J does not depend on θ (drawn at 1e-4)", fontsize=7, transform=ax4.transAxes)
    ax4.set_ylabel("‖K_end − K₀‖_F / ‖K₀‖_F")
    ax4.set_title("(4) how far the Jacobian Gram moves during training", fontsize=9)
    labels = [_label(r) for r in rows]
    for ax in axes.flat:
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.grid(alpha=0.3)
        if ax is not ax4:
            ax.legend(fontsize=6.5, loc="lower left" if ax is ax2 else "best")
        for i in deep:
            ax.axvspan(i - 0.5, i + 0.5, color="tab:red", alpha=0.06)
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME)
