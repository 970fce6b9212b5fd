"""Independent references of the SOP loss's gradients and of Algorithm 1's projected step, written
from appendix A.1's formulas (signs corrected), against which the tests check the package's autograd
losses and its u, v step (test code: the package itself differentiates with autograd)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sopdeep.sop_loss import correction, sgd_step


def projected_sgd_step(rows: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
    """One projected gradient step of Algorithm 1, lines 12-13: :func:`sopdeep.sop_loss.sgd_step` with ``project=True``.

    .. math:: r \\leftarrow P_{[-1, 1]}(r - \\mathrm{lr} \\cdot g)
    """
    return sgd_step(rows, grad, lr, project=True)


def closed_form_grads(prob: torch.Tensor, labels: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                      hard: torch.Tensor) -> dict[str, torch.Tensor]:
    """Closed-form per-sample gradients (appendix A.1, signs corrected), for the tests.

    Valid when φ's clamp is inactive (every entry of ``prob + s`` above ε).

    Parameters
    ----------
    prob : Tensor of shape (B, K)
        Softmax probabilities f(x; θ).
    labels : LongTensor of shape (B,)
    u, v : Tensor of shape (B, K)
        Vector-shaped variables.
    hard : Tensor of shape (B, K)
        The one-hot projected prediction used in the MSE term.

    Returns
    -------
    dict with keys ``"ce_u"``, ``"ce_v"`` (A.2), ``"mse_v"`` (A.4), each of shape (B, K).
    """
    y = F.one_hot(labels, prob.shape[1]).to(prob.dtype)
    s = correction(u, v, y)
    w = prob + s
    total = w.sum(dim=1, keepdim=True)
    w_c = w.gather(1, labels[:, None])
    return {
        "ce_u": 2.0 * u * y * (1.0 / total - 1.0 / w_c),
        "ce_v": -2.0 * v * (1.0 - y) / total,
        "mse_v": -4.0 * (hard + s - y) * v * (1.0 - y),
    }
