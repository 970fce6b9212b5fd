"""Shared by the bridge figures: the two-class subset of a run, its Jacobian Gram matrix (cached in
the run folder) and the linearised problem.

Subset: the first ``n`` training samples of the run whose *given* (noisy) label is one of two
classes ``(a, b)``; target ``y_i = +1`` if the given label is ``a`` else ``-1``; one scalar output,
the logit difference ``f_i = logit_a(x_i) - logit_b(x_i)``. One output keeps J J^T of size n x n
(the full multi-class kernel would be nK x nK) and matches the scalar model y = Jθ + s of
Section 3; the logit difference is the output whose sign is the two-class decision. A sample is
corrupted when its clean label differs from its given label (the clean class may be any of the
ten). :func:`linearised_recovery` solves program (25) on it in kernel form (and the flow limit).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["FACTOR_RTOL", "two_class_subset", "subset_gram", "linearised_recovery"]

# σ(J) below this fraction of σ_max is rounding of the float64 Gram, not J (gram_factor_from_gram)
FACTOR_RTOL = 1e-6


def two_class_subset(config, n, classes, *, data=None):
    """Indices (into the run's training set), ±1 targets, noise mask and inputs of the subset
    (``data``: the run's ``sopdeep.train.training_data``, loaded when None)."""
    from figures._runs import run_data

    x, given, clean, is_noisy, num_classes = run_data(config, data)
    a, b = classes
    idx = np.flatnonzero((given == a) | (given == b))[:n]
    y = np.where(given[idx] == a, 1.0, -1.0)
    return {"idx": idx, "y": y, "is_noisy": is_noisy[idx], "x": x[idx], "num_classes": num_classes}


def subset_gram(config, n, classes, *, trained, progress=False, max_block_bytes=512 * 2**20):
    """K = J J^T (float64) and f(θ) of the logit difference on the subset, for the network at
    initialisation (``trained=False``) or after training; cached as an npz in the run folder."""
    import torch

    from sopcommon import atomic_savez
    from sopdeep.jacobian import jacobian_gram
    from sopdeep.runs import load_checkpoint
    from sopdeep.train import training_data
    from figures._runs import load_run_model

    a, b = classes
    state = f"trained_e{int(load_checkpoint(Path(config.out) / 'checkpoint.pt')['epoch'])}" if trained else "init"
    path = Path(config.out) / f"gram_{state}_n{n}_c{a}-{b}.npz"
    if path.exists():
        with np.load(path) as z:
            return {key: z[key] for key in z.files}
    data = training_data(config)
    sub = two_class_subset(config, n, classes, data=data)
    model = load_run_model(config, trained=trained, data=data)
    w = torch.zeros(len(sub["idx"]), sub["num_classes"])
    w[:, a], w[:, b] = 1.0, -1.0
    K = jacobian_gram(model, sub["x"], w, progress=progress, max_block_bytes=max_block_bytes)
    with torch.no_grad():
        f = (model.double()(sub["x"].double()) * w.double()).sum(1).numpy()
    out = {"K": K, "f": f, "idx": sub["idx"], "y": sub["y"], "is_noisy": sub["is_noisy"]}
    atomic_savez(path, out)
    return out


def linearised_recovery(K, y_target, lambdas, *, alpha=None, gamma=None):
    """s of program (25) for each λ (kernel form: factor F of K), and the flow limit's s at (α, γ).

    Returns dict with ``s`` (L, N), ``certified`` (L,), and ``s_flow`` (N,) when α is given.
    """
    from soptheory import flow_limit, solve_convex_batched
    from sopdeep.jacobian import gram_factor_from_gram

    F = gram_factor_from_gram(K, rtol=FACTOR_RTOL)
    res = solve_convex_batched(F, y_target, np.asarray(lambdas, float))
    out = {"s": res.s, "certified": res.certified}
    if alpha is not None:
        fl = flow_limit(F, y_target, alpha, gamma)
        out["s_flow"], out["flow_converged"] = fl.s, np.asarray(fl.converged)
    return out
