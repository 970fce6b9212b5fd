"""Early-learning regularisation (Liu, Niles-Weed, Razavian, Fernandez-Granda, NeurIPS 2020),
method ``"elr"``.

Each sample keeps a target :math:`t_i`, a temporal ensemble of the network's predictions, updated
at every visit (before the loss is taken),

.. math::

    t_i \\leftarrow \\beta\\, t_i + (1 - \\beta)\\, \\bar p_i, \\qquad
    L = \\frac{1}{B}\\sum_i \\Big[\\ell_{CE}(f(x_i), y_i) + \\lambda \\log\\big(1 - \\langle p_i, t_i\\rangle\\big)\\Big],

with :math:`p_i` the softmax clamped to :math:`[10^{-4}, 1 - 10^{-4}]` and :math:`\\bar p_i` its
detached, renormalised copy; :math:`t_i` starts at 0. The regulariser pulls the prediction towards
the ensemble, which early in training follows the clean labels. Defaults: β = 0.7, λ = 3 (the
paper's CIFAR-10 setting).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sopdeep.methods.base import Method, StepOutput
from sopdeep.options import check_options, option

__all__ = ["ELR", "ELROptions", "elr_regularizer", "PROB_CLAMP"]

#: Probabilities are clamped to [PROB_CLAMP, 1 - PROB_CLAMP] so that log(1 - <p, t>) stays finite.
PROB_CLAMP = 1e-4


@dataclass(frozen=True)
class ELROptions:
    """Settings of ELR."""

    elr_lambda: float = option(3.0, "weight lambda of the ELR term log(1 - <p_i, t_i>)", low=0.0)
    elr_beta: float = option(0.7, "momentum beta of the per-sample target (temporal ensemble)", low=0.0, high=1.0,
                             high_open=True)

    def __post_init__(self) -> None:
        check_options(self)


def elr_regularizer(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample log(1 - <p_i, t_i>), shape (B,); ``probs`` already clamped, ``targets`` (B, K).

    >>> elr_regularizer(torch.full((1, 2), 0.5), torch.tensor([[1.0, 0.0]]))  # log(1 - 0.5)
    tensor([-0.6931])
    """
    return torch.log(1.0 - (probs * targets).sum(dim=1))


class ELR(Method):
    """Cross-entropy plus the early-learning regulariser; see the module docstring.

    State: ``target`` (N, K), float32, zeros at start, checkpointed and synchronised under DDP.
    Noise score: 1 - t_{i, y_i}, the ensemble's mass away from the given label.
    """

    name = "elr"
    summary = "early-learning regularisation with per-sample targets (Liu et al. 2020)"
    Options = ELROptions

    def init_state(self, num_samples, num_classes, generator, device):
        return {"target": torch.zeros(num_samples, num_classes, device=device)}

    def batch_loss(self, model, batch, state):
        c = self.options
        logits = model(batch.images)
        probs = torch.softmax(logits.float(), dim=1).clamp(PROB_CLAMP, 1.0 - PROB_CLAMP)
        with torch.no_grad():
            p = probs.detach()
            t = c.elr_beta * state["target"].index_select(0, batch.indices) + (1.0 - c.elr_beta) * (
                p / p.sum(dim=1, keepdim=True))
            state["target"].index_copy_(0, batch.indices, t)
        ce = F.cross_entropy(logits.float(), batch.labels)
        reg = elr_regularizer(probs, t).mean()
        loss = ce + c.elr_lambda * reg
        return StepOutput(loss=loss, logits=logits, terms={"ce": ce.detach(), "elr": reg.detach()})

    def noise_scores(self, state, labels, probs=None):
        target = state["target"]
        return 1.0 - target.gather(1, labels[:, None].to(target.device))[:, 0]
