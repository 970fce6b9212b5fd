"""Generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018), method ``"gce"``.

.. math::

    L_q(f(x), y) = \\frac{1 - f_y(x)^q}{q}, \\qquad q \\in (0, 1],

with :math:`f_y` the softmax probability of the given label: q → 0 gives cross-entropy, q = 1 the
mean absolute error (robust to noise but slow to fit). The paper's default q = 0.7 (the
untruncated :math:`L_q` of their Section 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sopdeep.methods.base import Method, StepOutput
from sopdeep.options import check_options, option

__all__ = ["GCE", "GCEOptions", "gce_loss"]


@dataclass(frozen=True)
class GCEOptions:
    """Settings of GCE."""

    gce_q: float = option(0.7, "exponent q of L_q = (1 - p_y^q) / q (Zhang & Sabuncu 2018)", low=0.0, high=1.0,
                          low_open=True)

    def __post_init__(self) -> None:
        check_options(self)


def gce_loss(logits: torch.Tensor, labels: torch.Tensor, q: float) -> torch.Tensor:
    """Per-sample L_q = (1 - p_y^q) / q, shape (B,), computed in float32 from log-probabilities.

    >>> gce_loss(torch.zeros(1, 4), torch.tensor([2]), 1.0)  # p_y = 1/4: MAE 1 - 1/4
    tensor([0.7500])
    """
    log_p = torch.log_softmax(logits.float(), dim=1).gather(1, labels[:, None])[:, 0]
    return (1.0 - torch.exp(q * log_p)) / q


class GCE(Method):
    """Generalized cross-entropy L_q on the given labels; see the module docstring."""

    name = "gce"
    summary = "generalized cross-entropy L_q (Zhang & Sabuncu 2018)"
    Options = GCEOptions

    def batch_loss(self, model, batch, state):
        logits = model(batch.images)
        loss = gce_loss(logits, batch.labels, self.options.gce_q).mean()
        return StepOutput(loss=loss, logits=logits, terms={"gce": loss.detach()})
