"""Lookahead on the network's weights: a slow copy pulled toward the network, which restarts from it.

Every ``k`` steps (airbench94: ``k = 5``, Jordan 2024, arXiv 2404.00498) the slow copy ``φ`` of
every float entry of the network's ``state_dict`` (θ and the BatchNorm running statistics) moves
toward the network's ``w`` and the network continues from it:

.. math::  φ \\leftarrow d\\,φ + (1 - d)\\,w, \\qquad w \\leftarrow φ, \\qquad
           d(t) = 0.95^{k} (t / T)^3,

``t`` the global step, ``T`` the run's total steps. Early on ``d ≈ 0`` (the slow copy follows the
network); late in the run ``d → 0.95^k`` averages the last few hundred steps. The last step ends on
the slow copy (``d = 1``: ``w ← φ``). Integer buffers (BatchNorm's batch counter) are left alone.
The per-sample u, v of SOP are not network weights and are not averaged.
"""

from __future__ import annotations

import torch

__all__ = ["lookahead_decay", "init_lookahead", "lookahead_step_"]

#: airbench's per-step decay; over ``k`` steps it compounds to ``0.95**k``.
STEP_DECAY = 0.95


def lookahead_decay(step: int, total_steps: int, every: int) -> float:
    """``d = 0.95^every (step / total_steps)^3``, the slow copy's weight at global step ``step``.

    >>> lookahead_decay(0, 100, 5), round(lookahead_decay(100, 100, 5), 4)
    (0.0, 0.7738)
    """
    if total_steps < 1 or every < 1:
        raise ValueError(f"total_steps and every must be >= 1, got {total_steps}, {every}")
    return STEP_DECAY ** every * (min(step, total_steps) / total_steps) ** 3


def init_lookahead(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The slow copy: a clone of every floating-point entry of ``model.state_dict()``.

    >>> sorted(init_lookahead(torch.nn.BatchNorm1d(2)))
    ['bias', 'running_mean', 'running_var', 'weight']
    """
    return {key: value.detach().clone() for key, value in model.state_dict().items() if value.is_floating_point()}


@torch.no_grad()
def lookahead_step_(slow: dict[str, torch.Tensor], model: torch.nn.Module, decay: float) -> None:
    """``slow ← decay·slow + (1 − decay)·w`` then ``w ← slow``, for every entry of ``slow`` (in place).

    >>> net = torch.nn.Linear(1, 1, bias=False); slow = init_lookahead(net)
    >>> _ = net.weight.data.add_(1.0); w = float(net.weight.detach())
    >>> lookahead_step_(slow, net, 0.75)
    >>> round(float(net.weight.detach()) - (0.75 * (w - 1.0) + 0.25 * w), 6)
    0.0
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    current = model.state_dict()
    for key, value in slow.items():
        value.lerp_(current[key], 1.0 - decay)
        current[key].copy_(value)
