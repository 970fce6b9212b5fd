"""SOP's optimiser on the squared loss (14) of a scalar model: the trainer's steps on the theory's problem.

The paper's theory (Sec. 3) is about ``h = ½ Σ_i r_i²``, ``r_i = f(x_i; θ) + u_i² − v_i² − y_i``,
with f linear in θ. :func:`train_squared_sop` minimises the batch mean of ``½ r_i²`` with
``sopdeep``'s own optimisation, the one ``train()`` runs: θ (the parameters of ``model``) by torch
SGD with momentum built as ``train/setup.py`` builds it, its rate τ from
:func:`sopdeep.training.learning_rate`, and u, v by the SOP method object's own per-sample step
(``SOP.after_backward``: α·τ on each sample's gradient). Only the loss differs from ``train()``'s
(the squared loss of (14) instead of SOP's cross-entropy + MSE), and the loop over mini-batches is
written here, since ``train()`` feeds images to a classifier. ``docs/bridge.md`` derives that this
runs the flow (16) at ``α_eff = α·B·(1 − β)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sopdeep.config import TrainConfig
from sopdeep.methods import Batch, StepOutput, get_method
from sopdeep.training import learning_rate

__all__ = ["SquaredSOPResult", "train_squared_sop"]


@dataclass(frozen=True)
class SquaredSOPResult:
    """Outcome of :func:`train_squared_sop`.

    Attributes
    ----------
    u, v : ndarray (N,)
        The per-sample over-parameterisation after training.
    s : ndarray (N,)
        ``u² − v²``, the estimate of the sparse corruption s*.
    residual : ndarray (N,)
        ``f(x_i; θ) + s_i − y_i`` after training.
    steps : int
        Optimiser steps taken.
    """

    u: np.ndarray
    v: np.ndarray
    s: np.ndarray
    residual: np.ndarray
    steps: int


def _sgd_for(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    # as train/setup.py builds θ's optimiser for one group (torch's default dampening 0)
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD([{"params": params, "weight_decay": config.weight_decay}], lr=config.lr,
                           momentum=config.momentum, nesterov=config.nesterov)


def train_squared_sop(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, config: TrainConfig, *,
                      gamma: float, epochs: int, seed: int = 0) -> SquaredSOPResult:
    """Train ``model`` and per-sample ``u, v`` on ``½ r_i²``, ``r_i = model(x_i) + u_i² − v_i² − y_i``.

    u and v start at the constant ``gamma`` (the theory's ``u₀ = v₀ = γ·1``); mini-batches of
    ``config.batch_size`` are drawn without replacement each epoch from ``seed``.

    Parameters
    ----------
    model : nn.Module
        Maps (B, ...) inputs to B scalars (any output shape with B elements); trained in place.
    inputs : Tensor (N, ...)
    targets : Tensor (N,)
        Same dtype as the model's output.
    config : TrainConfig
        ``method="sop"``; its ``alpha_u``, ``alpha_v``, ``batch_size``, ``lr``, ``schedule``,
        ``momentum``, ``nesterov``, ``weight_decay``, ``project_uv`` are used.
    gamma : float
        Initial u and v, > 0.
    epochs : int
    seed : int, default 0

    Returns
    -------
    SquaredSOPResult

    Raises
    ------
    FloatingPointError
        When u, v or the residual stop being finite (the steps diverged: lower ``lr`` or α).

    Examples
    --------
    >>> J = torch.eye(4, dtype=torch.float64); y = torch.tensor([1.0, 0.0, 0.0, 2.0], dtype=torch.float64)
    >>> net = nn.Linear(4, 1, bias=False).double()
    >>> cfg = TrainConfig(method="sop", alpha_u=1.0, alpha_v=1.0, batch_size=2, lr=0.1, schedule="constant",
    ...                   weight_decay=0.0, momentum=0.0, project_uv=False)
    >>> result = train_squared_sop(net, J, y, cfg, gamma=1e-3, epochs=1000)
    >>> bool(abs(result.residual).max() < 1e-6)  # interpolates
    True
    """
    if config.method != "sop":
        raise ValueError(f"config.method must be 'sop', got {config.method!r}")
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    n = inputs.shape[0]
    if targets.shape != (n,):
        raise ValueError(f"targets must have shape ({n},), got {tuple(targets.shape)}")
    method = get_method(config)
    state = {name: torch.full((n, 1), float(gamma), dtype=targets.dtype) for name in ("u", "v")}
    opt = _sgd_for(model, config)
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-n // config.batch_size)
    no_labels = torch.zeros(n, dtype=torch.long)
    step = 0
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(config.batch_size):
            tau = learning_rate(config, step, steps_per_epoch)
            for group in opt.param_groups:
                group["lr"] = tau
            u_rows = state["u"].index_select(0, idx).requires_grad_(True)
            v_rows = state["v"].index_select(0, idx).requires_grad_(True)
            r = model(inputs[idx]).reshape(-1) + u_rows[:, 0] ** 2 - v_rows[:, 0] ** 2 - targets[idx]
            loss = 0.5 * r.square().mean()  # (14) per sample, a batch mean as SOP.batch_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            # the method reads only indices (and the u, v rows' gradients) of the batch
            batch = Batch(indices=idx, images=inputs[idx], labels=no_labels[idx], raw=inputs[idx],
                          normalize=lambda x: x)
            method.after_backward(batch, StepOutput(loss=loss, logits=r, ctx={"u_rows": u_rows, "v_rows": v_rows}),
                                  state, tau)
            step += 1
    with torch.no_grad():
        u, v = state["u"][:, 0], state["v"][:, 0]
        s = u.square() - v.square()
        residual = model(inputs).reshape(-1) + s - targets
    if not bool(torch.isfinite(residual).all()):
        raise FloatingPointError(f"train_squared_sop diverged after {step} steps (lr={config.lr}, "
                                 f"alpha_u={config.options.alpha_u}, alpha_v={config.options.alpha_v}): lower lr or alpha")
    return SquaredSOPResult(u=u.numpy(), v=v.numpy(), s=s.numpy(), residual=residual.numpy(), steps=step)
