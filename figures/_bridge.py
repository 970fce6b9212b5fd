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

__all__ = ["FACTOR_RTOL", "BN_IMAGES", "two_class_subset", "subset_gram", "initial_network", "recalibrate_batchnorm",
           "frozen_to_buffers", "network_gram", "linearised_recovery"]

# σ(J) below this fraction of σ_max is rounding of the float64 Gram, not J (gram_factor_from_gram)
FACTOR_RTOL = 1e-6
# training images whose batch statistics replace BatchNorm's initial running statistics at θ₀ (one batch of the fast recipe)
BN_IMAGES = 1024


def two_class_subset(config, n, classes, *, data=None):
    """Indices (into the run's training set), ±1 targets, noise mask and inputs of the subset
    (``data``: the run's ``sopdeep.training.training_data``, loaded when None)."""
    from figures._runs import run_data

    x, given, clean, is_noisy, num_classes = run_data(config, data)
    a, b = classes
    idx = np.flatnonzero((given == a) | (given == b))[:n]
    y = np.where(given[idx] == a, 1.0, -1.0)
    return {"idx": idx, "y": y, "is_noisy": is_noisy[idx], "x": x[idx], "num_classes": num_classes}


def _cached_gram(config, n, classes, *, trained, prefix, suffix):
    """(path, its arrays or None) of a run folder's cached Gram file
    ``<prefix><state>_n<n>_c<a>-<b><suffix>.npz``, state ``init`` or ``trained_e<checkpoint epoch>``."""
    from sopdeep.runs import load_checkpoint

    a, b = classes
    state = f"trained_e{int(load_checkpoint(Path(config.out) / 'checkpoint.pt')['epoch'])}" if trained else "init"
    path = Path(config.out) / f"{prefix}{state}_n{n}_c{a}-{b}{suffix}.npz"
    if not path.exists():
        return path, None
    with np.load(path) as z:
        return path, {key: z[key] for key in z.files}


def subset_gram(config, n, classes, *, trained, progress=False, max_block_bytes=512 * 2**20):
    """K = J J^T (float64) and f(θ) of the logit difference on the subset, for the network at
    initialisation (``trained=False``) or after training; cached as an npz in the run folder."""
    import torch

    from sopcommon import atomic_savez
    from sopdeep.jacobian import jacobian_gram
    from sopdeep.training import training_data
    from figures._runs import load_run_model

    a, b = classes
    path, cached = _cached_gram(config, n, classes, trained=trained, prefix="gram_", suffix="")
    if cached is not None:
        return cached
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

def initial_network(config, data):
    """θ₀ of a run exactly as the trainer builds it (``sopdeep.training.setup.build_run``): the seeded
    network of :func:`sopdeep.training.make_model` and, for the fast network, its patch-whitening stem
    set from the first 5,000 training images (``init_whitening``); on the CPU, in eval mode.

    ``data`` is the run's :func:`sopdeep.training.training_data`.
    """
    from sopdeep.training import make_model
    from sopdeep.training.setup import init_from_data

    model = make_model(config, data.num_classes, data.x_train.shape[1], tuple(data.x_train.shape[2:]))
    init_from_data(model, data)  # build_run's step: the fast net's stem whitens training patches
    return model.eval()


def recalibrate_batchnorm(model, x, batch_size):
    """Set every BatchNorm's running statistics to the average batch statistics of ``x``.

    At initialisation the running statistics are torch's (mean 0, variance 1), which is not the
    function the trainer's first steps see (BatchNorm normalises by the batch's statistics); the
    eval-mode network after this pass is that function, per sample. Only buffers change; θ does not.

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    >>> x = 5.0 + torch.randn(64, 2)
    >>> recalibrate_batchnorm(net, x, 32).training
    False
    >>> z = net(x)  # eval mode: normalised by the recalibrated statistics
    >>> bool(z.mean(0).abs().max() < 1e-4)
    True
    """
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    model.train()
    with torch.no_grad():
        for lo in range(0, x.shape[0], batch_size):
            model(x[lo:lo + batch_size])
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return model.eval()


def frozen_to_buffers(model):
    """Turn every parameter with ``requires_grad=False`` into a buffer of the same name, in place.

    :func:`sopdeep.jacobian.jacobian_gram` differentiates every parameter; the trainer steps only
    the trainable ones (the fast network's whitening stem and BatchNorm scales are fixed), so the
    Jacobian of the linearised problem is taken with respect to those. The state dict is unchanged.

    Examples
    --------
    >>> import torch
    >>> lin = torch.nn.Linear(2, 2)
    >>> _ = lin.weight.requires_grad_(False)
    >>> [name for name, _ in frozen_to_buffers(lin).named_parameters()]
    ['bias']
    >>> sorted(lin.state_dict())
    ['bias', 'weight']
    """
    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            if not p.requires_grad:
                del module._parameters[name]
                module.register_buffer(name, p.detach())
    return model


def network_gram(config, n, classes, *, trained, dtype=None, bn_images=BN_IMAGES, progress=False,
                 max_block_bytes=2 * 2**30):
    """:func:`subset_gram` for a network with BatchNorm and a data-dependent stem (the fast network).

    θ₀ is :func:`initial_network` (the whitening stem as the trainer sets it) with BatchNorm's
    running statistics recalibrated on the first ``bn_images`` training images
    (:func:`recalibrate_batchnorm`, in batches of the run's ``batch_size``); ``trained=True`` loads
    the checkpoint (running statistics of training). J is taken with respect to the trained
    parameters only (:func:`frozen_to_buffers`). ``dtype`` (default float64) is the precision
    of J Jᵀ. Cached in the run folder as ``gram_fast_<state>_n<n>_c<a>-<b>_<dtype>.npz``.

    Returns dict with ``K`` (n, n), ``f`` (n,) the logit difference at θ, ``idx``, ``y``, ``is_noisy``,
    ``seconds`` (time to form K, 0 when read from the cache).
    """
    import time

    import torch

    from sopcommon import atomic_savez
    from sopdeep.jacobian import jacobian_gram
    from sopdeep.runs import load_checkpoint
    from sopdeep.training import training_data

    dtype = torch.float64 if dtype is None else dtype
    a, b = classes
    path, cached = _cached_gram(config, n, classes, trained=trained, prefix="gram_fast_",
                                suffix="_" + str(dtype).split(".")[-1])
    if cached is not None:
        return cached
    data = training_data(config)
    sub = two_class_subset(config, n, classes, data=data)
    model = initial_network(config, data)
    if trained:
        model.load_state_dict(load_checkpoint(Path(config.out) / "checkpoint.pt")["model"])
        model.eval()
    else:
        recalibrate_batchnorm(model, data.normalize(data.x_train[:bn_images]).float(), config.batch_size)
    frozen_to_buffers(model)  # J of the parameters the trainer steps (not the stem, not BatchNorm's fixed scale)
    x = sub["x"].contiguous()
    w = torch.zeros(len(sub["idx"]), sub["num_classes"])
    w[:, a], w[:, b] = 1.0, -1.0
    t0 = time.perf_counter()
    K = jacobian_gram(model, x, w, dtype=dtype, progress=progress, max_block_bytes=max_block_bytes)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        f = (model.double()(x.double()) * w.double()).sum(1).numpy()
    out = {"K": K, "f": f, "idx": sub["idx"], "y": sub["y"], "is_noisy": sub["is_noisy"], "seconds": np.float64(seconds)}
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
