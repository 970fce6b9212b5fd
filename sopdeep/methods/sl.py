"""Symmetric cross-entropy, SL (Wang, Ma, Chen, Luo, Yi, Bailey, ICCV 2019), method ``"sl"``.

.. math::

    L_{SL} = \\alpha\\, \\ell_{CE}(p, y) + \\beta\\, \\ell_{RCE}(p, y), \\qquad
    \\ell_{RCE} = -\\sum_k p_k \\log q_k = -A \\sum_{k \\ne y} p_k = -A\\,(1 - p_y),

with p the softmax and q the one-hot label, whose log 0 is the constant A (the paper's A = -4,
``sl_log_zero``; their released code clamps q at 1e-4 instead, A = log 1e-4 ≈ -9.21). The reverse
term is the mean absolute error scaled by -A/2: bounded, hence robust, and its gradient
:math:`A\\, p_y (e_y - p)` fades on samples the network gives up on.

The published weights depend on the dataset: CIFAR-10 α = 0.1, β = 1.0; CIFAR-100 α = 6.0,
β = 0.1 (their Section 4.1). ``sl_alpha`` / ``sl_beta`` left at None take them from
``config.dataset``: CIFAR-100's for the CIFAR-100 data (the datasets whose class-map family is
"cifar100", :attr:`sopdeep.datasets.DatasetSpec.asymmetric`), CIFAR-10's for every other dataset
(Fashion-MNIST, the user's data, synthetic), see :func:`sl_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sopdeep.datasets import dataset_spec
from sopdeep.methods.base import Method, StepOutput
from sopdeep.options import check_options, option

__all__ = ["SL", "SLOptions", "sl_loss", "sl_weights", "PUBLISHED_WEIGHTS"]

#: (alpha, beta) of Wang et al. 2019, Sec. 4.1, per dataset family.
PUBLISHED_WEIGHTS = {"cifar10": (0.1, 1.0), "cifar100": (6.0, 0.1)}


@dataclass(frozen=True)
class SLOptions:
    """Settings of SL."""

    sl_alpha: float | None = option(None, "weight alpha of CE; None: the published value for the dataset "
                                          "(CIFAR-100 6.0, else CIFAR-10's 0.1)", low=0.0)
    sl_beta: float | None = option(None, "weight beta of reverse CE; None: the published value for the dataset "
                                         "(CIFAR-100 0.1, else CIFAR-10's 1.0)", low=0.0)
    sl_log_zero: float = option(-4.0, "A = log 0 of the one-hot label in reverse CE (the paper's -4)", high=0.0,
                                high_open=True)

    def __post_init__(self) -> None:
        check_options(self)
        if self.sl_alpha == 0.0 and self.sl_beta == 0.0:
            raise ValueError("sl_alpha and sl_beta must not both be 0 (the loss would be 0), got 0.0 and 0.0")


def sl_weights(dataset: str, alpha: float | None = None, beta: float | None = None) -> tuple[float, float]:
    """(alpha, beta) with None replaced by the published value for ``dataset`` (see the module docstring).

    >>> sl_weights("cifar100"), sl_weights("cifar10", beta=0.5), sl_weights("synthetic")
    ((6.0, 0.1), (0.1, 0.5), (0.1, 1.0))
    """
    family = "cifar100" if dataset_spec(dataset).asymmetric == "cifar100" else "cifar10"
    a, b = PUBLISHED_WEIGHTS[family]
    return (a if alpha is None else float(alpha)), (b if beta is None else float(beta))


def sl_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float,
            log_zero: float = -4.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample SL loss and its two terms, each of shape (B,): ``(alpha * ce + beta * rce, ce, rce)``.

    Computed in float32 (float64 kept). ``rce = -log_zero * sum_{k != y} p_k``: the sum over the
    other classes rather than ``1 - p_y``, which loses the digits of a small remainder.

    >>> loss, ce, rce = sl_loss(torch.zeros(1, 4), torch.tensor([0]), 0.1, 1.0)
    >>> round(float(rce), 4), round(float(ce), 4)  # 4 * (1 - 1/4), log 4
    (3.0, 1.3863)
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)  # float32 from bf16 / fp16; float64 kept
    log_p = torch.log_softmax(logits.to(dtype), dim=1)
    ce = -log_p.gather(1, labels[:, None])[:, 0]
    others = torch.ones_like(log_p).scatter_(1, labels[:, None], 0.0)  # 1 - one-hot
    rce = -log_zero * (log_p.exp() * others).sum(dim=1)
    return alpha * ce + beta * rce, ce, rce


class SL(Method):
    """Symmetric cross-entropy alpha CE + beta RCE; see the module docstring."""

    name = "sl"
    summary = "symmetric cross-entropy alpha CE + beta reverse CE (Wang et al. 2019)"
    Options = SLOptions

    def __init__(self, config, *, rank: int = 0) -> None:
        super().__init__(config, rank=rank)
        # the published (alpha, beta) of the run's dataset where the options leave them at None
        self.alpha, self.beta = sl_weights(config.dataset, self.options.sl_alpha, self.options.sl_beta)

    def batch_loss(self, model, batch, state):
        logits = model(batch.images)
        loss, ce, rce = sl_loss(logits, batch.labels, self.alpha, self.beta, self.options.sl_log_zero)
        return StepOutput(loss=loss.mean(), logits=logits,
                          terms={"ce": ce.mean().detach(), "rce": rce.mean().detach()})
