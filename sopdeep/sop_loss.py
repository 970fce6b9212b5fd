"""The SOP loss: per-sample over-parameterised label-noise variables u, v (Sec. 2.1, appendix A.1).

Liu, Zhu, Qu, You, ICML 2022, eqs. (4)-(8) and Algorithm 1 of the long version. For a sample
``(x_i, y_i)`` with one-hot label ``y_i`` the network prediction is corrected by

.. math::

    s_i = u_i \\odot u_i \\odot y_i - v_i \\odot v_i \\odot (1 - y_i),
    \\qquad u_i, v_i \\in [-1, 1]^K,

and the three groups of variables are trained with two different losses:

* θ and u minimise the cross-entropy (eq. 7)
  :math:`\\ell_{CE}(\\varphi(f(x_i;\\theta) + s_i), y_i)` with the mapping (eq. 6)
  :math:`\\varphi(w) = \\max\\{w, \\epsilon 1\\} / \\|\\max\\{w, \\epsilon 1\\}\\|_1`;
* v minimises the squared error (eq. 8)
  :math:`\\ell_{MSE}(\\hat y_i + s_i, y_i) = \\|\\hat y_i + s_i - y_i\\|_2^2`, where
  :math:`\\hat y_i` is the network prediction projected to a one-hot vector (footnote 2) and
  carries no gradient. Appendix A.1 explains why v cannot use the cross-entropy: its CE gradient
  (A.2) does not depend on the network output at all.

Conventions taken here (each is a choice the paper leaves open; the tests pin them):

``f(x; θ)`` is the softmax probability vector.
    φ of eq. (6) clamps entries below ε, which only makes sense for an output on (or near) the
    probability simplex; the denominators ``1ᵀ(f + s)`` of (A.2) and the comparison of ``f + s``
    with a one-hot ``y`` in (A.4) say the same. So φ is applied to ``softmax(logits) + s``.
ε = 1e-4 by default (:data:`DEFAULT_EPS`).
u shape.
    With a one-hot ``y_i`` only the label entry ``u_{i, y_i}`` of ``u_i ⊙ u_i ⊙ y_i`` is ever
    non-zero, so a vector ``u_i ∈ R^K`` and a scalar ``u_i ∈ R`` define the same model and the
    same training trajectory for that entry (tested). The default is the scalar
    (``"scalar"``, shape (N, 1)): K times less memory, as in the authors' code. ``"vector"``
    stores the paper's (N, K).
v shape.
    The default is the paper's vector (N, K): v must say *which* wrong class received the mass.
    ``"scalar"`` (N, 1) broadcasts one v_i over all non-label classes (a uniform shrink); it is
    offered for comparison only.
Gradient routing.
    In the CE term v is detached (v gets no CE gradient, A.1); in the MSE term the prediction
    is a detached one-hot and u is detached (eq. 8 is used "when optimizing {v_i}", Algorithm 1
    line 13), so u learns from the CE only and v from the MSE only.
Per-sample gradients.
    Algorithm 1 (lines 12-13) steps u_i and v_i with the gradient of the *per-sample* loss
    ``ℓ_i`` and learning rates ``α_u τ`` and ``α_v τ``. :func:`sop_loss_terms` returns per-sample
    terms; θ learns from their batch *mean*, and since row i of u, v enters only ``ℓ_i``, the
    batch size times the gradient of that mean w.r.t. the rows is exactly the per-sample
    gradient used for u, v (``sopdeep.methods.SOP``).
Update rule for u, v.
    Plain projected gradient descent, no momentum and no weight decay
    (appendix A.4: "SGD optimizer without weight decay for U and V"; momentum is not mentioned
    and Algorithm 1 writes the plain step): :func:`projected_sgd_step`.

Closed-form gradients (clamp of φ inactive, ``W = 1ᵀ(f + s)``, ``c`` the label; note that the
paper's (A.2) and (A.4) drop the minus sign that comes from ``∂s/∂v = -2 v ⊙ (1 - y)``):

.. math::

    \\frac{\\partial \\ell_{CE}}{\\partial v} = -\\frac{2 v \\odot (1-y)}{W},\\qquad
    \\frac{\\partial \\ell_{CE}}{\\partial u} = 2 u \\odot y \\left(\\frac{1}{W}
        - \\frac{1}{f_c + u_c^2}\\right),\\qquad
    \\frac{\\partial \\ell_{MSE}}{\\partial v} = -4 (\\hat y + s - y) \\odot v \\odot (1-y).

:func:`closed_form_grads` evaluates them; ``tests/deep/test_sop_loss.py`` compares them with
autograd in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DEFAULT_EPS = 1e-4
SHAPES = ("scalar", "vector")

__all__ = [
    "DEFAULT_EPS",
    "SHAPES",
    "SOPTerms",
    "init_sample_variables",
    "correction",
    "phi",
    "sop_loss_terms",
    "projected_sgd_step",
    "closed_form_grads",
]


@dataclass
class SOPTerms:
    """Per-sample SOP loss terms, each a tensor of shape (batch,).

    Attributes
    ----------
    ce : Tensor
        :math:`\\ell_{CE}(\\varphi(\\mathrm{softmax}(z) + s), y)`; gradient to θ and u only.
    mse : Tensor
        :math:`\\|\\mathrm{onehot}(\\arg\\max z) + s - y\\|_2^2`; gradient to v only.
    """

    ce: torch.Tensor
    mse: torch.Tensor


def init_sample_variables(num_samples: int, num_classes: int, shape: str, std: float,
                          generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """Draw the per-sample variables from :math:`\\mathcal N(0, \\mathrm{std}^2)` (Alg. 1, line 2).

    Parameters
    ----------
    num_samples, num_classes : int
        N and K.
    shape : {"scalar", "vector"}
        Shape (N, 1) or (N, K).
    std : float
        Standard deviation; the paper uses 1e-8 (Table A.1).
    generator : torch.Generator
        CPU generator; the draw is made on the CPU so it is identical on every device.

    Returns
    -------
    Tensor of shape (N, 1) or (N, K), on the CPU.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    width = 1 if shape == "scalar" else num_classes
    return torch.randn(num_samples, width, generator=generator, dtype=dtype) * std


def correction(u: torch.Tensor, v: torch.Tensor, y_onehot: torch.Tensor) -> torch.Tensor:
    """The learned label correction of eq. (5).

    .. math:: s = u \\odot u \\odot y - v \\odot v \\odot (1 - y)

    Parameters
    ----------
    u, v : Tensor of shape (B, K) or (B, 1)
        Rows of the per-sample variables; a width of 1 broadcasts over the classes.
    y_onehot : Tensor of shape (B, K)

    Returns
    -------
    Tensor of shape (B, K).
    """
    return u * u * y_onehot - v * v * (1.0 - y_onehot)


def phi(w: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """The mapping of eq. (6) onto the probability simplex.

    .. math:: \\varphi(w) = \\frac{\\max\\{w, \\epsilon 1\\}}{\\|\\max\\{w, \\epsilon 1\\}\\|_1}

    Parameters
    ----------
    w : Tensor of shape (B, K)
    eps : float
        Floor ε > 0.
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    m = w.clamp_min(eps)
    return m / m.sum(dim=1, keepdim=True)


def sop_loss_terms(logits: torch.Tensor, labels: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                   eps: float = DEFAULT_EPS) -> SOPTerms:
    """Per-sample CE (eq. 7) and MSE (eq. 8) terms of the SOP objective.

    .. math::

        \\ell^{CE}_i = -\\log \\varphi\\big(\\mathrm{softmax}(z_i) + s_i^{(v\\,\\mathrm{detached})}\\big)_{y_i},
        \\qquad
        \\ell^{MSE}_i = \\big\\|\\mathrm{onehot}(\\arg\\max_k z_{ik}) + s_i^{(u\\,\\mathrm{detached})}
            - y_i\\big\\|_2^2 .

    Computed in float32 (or float64 if the inputs are) whatever the autocast dtype of ``logits``.

    Parameters
    ----------
    logits : Tensor of shape (B, K)
        Network outputs before the softmax.
    labels : LongTensor of shape (B,)
        Given (possibly noisy) labels.
    u, v : Tensor of shape (B, 1) or (B, K)
        The rows of the per-sample variables for this batch (leaf tensors when their gradient is
        wanted).
    eps : float
        Floor of φ.

    Returns
    -------
    SOPTerms
    """
    dtype = torch.promote_types(u.dtype, torch.float32)
    z = logits.to(dtype)
    y = F.one_hot(labels, z.shape[1]).to(dtype)
    prob = torch.softmax(z, dim=1)
    u_part = u * u * y
    v_part = v * v * (1.0 - y)
    ce = -torch.log(phi(prob + u_part - v_part.detach(), eps).gather(1, labels[:, None]))[:, 0]
    hard = F.one_hot(z.detach().argmax(dim=1), z.shape[1]).to(dtype)
    mse = (hard + u_part.detach() - v_part - y).square().sum(dim=1)
    return SOPTerms(ce=ce, mse=mse)


@torch.no_grad()
def projected_sgd_step(rows: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
    """One projected gradient step of Algorithm 1, lines 12-13.

    .. math:: r \\leftarrow P_{[-1, 1]}(r - \\mathrm{lr} \\cdot g)

    where :math:`P_{[-1,1]}` clamps entrywise. No momentum, no weight decay.

    Returns
    -------
    Tensor, a new tensor of the same shape as ``rows``.
    """
    return (rows - lr * grad).clamp_(-1.0, 1.0)


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
