"""The two regularisers that turn SOP into SOP+ (appendix A.3 of the long version).

SOP+ minimises

.. math::

    L(\\theta, \\{u_i, v_i\\}) + \\lambda_C L_C(\\theta) + \\lambda_B L_B(\\theta),

with Table A.1's :math:`\\lambda_C = 0.9`, :math:`\\lambda_B = 0.1` for the SOP+ columns.

* :func:`consistency_loss` is :math:`L_C`, the mean KL divergence between the prediction on the
  weakly augmented view and the prediction on the strongly augmented (UDA-style) view,
  :math:`D_{KL}(f(x_i) \\,\\|\\, f(\\mathrm{UDA}(x_i)))`. A.3 writes the weak-view prediction as the
  *first* argument (the target distribution). It does not say which side is detached; we follow
  UDA (Xie et al., 2020), which A.3/A.4 cite for the setting: the weak-view prediction is a fixed
  target (no gradient), the gradient flows through the strong view only. ``detach_target=False``
  gives the fully differentiable variant.
* :func:`class_balance_loss` is :math:`L_B = \\mathrm{KL}(p \\,\\|\\, \\bar f)` with :math:`\\bar f`
  the batch-mean softmax prediction and :math:`p` a class prior (uniform by default). A.3 also writes
  it as :math:`-\\sum_k p_k \\log \\bar f_k`; the two differ by the prior's entropy, a constant, so
  their gradients agree. We return the KL (it is 0 at the optimum and non-negative).

Both take raw logits and work in float32 (or float64 if given) even under autocast, because
log-probabilities of low-precision logits lose the small differences these terms measure.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["consistency_loss", "class_balance_loss", "sop_plus_penalty", "uniform_prior"]


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _check_logits(name: str, logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise ValueError(f"{name} must have shape (batch >= 1, n_classes >= 2), got {tuple(logits.shape)}")


def uniform_prior(n_classes: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """The uniform class prior :math:`p_k = 1/K`.

    Parameters
    ----------
    n_classes : int
        Number of classes :math:`K \\ge 2`.

    Returns
    -------
    Tensor of shape (n_classes,)
    """
    if int(n_classes) != n_classes or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    return torch.full((int(n_classes),), 1.0 / n_classes, device=device, dtype=dtype)


def consistency_loss(
    logits_weak: torch.Tensor, logits_strong: torch.Tensor, *, detach_target: bool = True
) -> torch.Tensor:
    """Consistency regulariser :math:`L_C` of SOP+ (appendix A.3).

    .. math::

        L_C = \\frac{1}{B} \\sum_{i=1}^{B} \\sum_{k=1}^{K}
              p^w_{ik} \\left(\\log p^w_{ik} - \\log p^s_{ik}\\right),
        \\qquad p^w_i = \\mathrm{softmax}(z^w_i),\\; p^s_i = \\mathrm{softmax}(z^s_i),

    i.e. the batch mean of :math:`D_{KL}(p^w_i \\,\\|\\, p^s_i)`, weak view first as in A.3.

    Parameters
    ----------
    logits_weak : Tensor of shape (batch, n_classes)
        Network outputs on the weakly augmented view (crop + flip): the target.
    logits_strong : Tensor of shape (batch, n_classes)
        Network outputs on the strongly augmented view (AutoAugment/RandAugment + Cutout).
    detach_target : bool, default True
        Stop the gradient through ``logits_weak`` (UDA's convention; see the module docstring).

    Returns
    -------
    Tensor of shape ()
        Non-negative; zero iff the two predictions agree on every row.
    """
    _check_logits("logits_weak", logits_weak)
    _check_logits("logits_strong", logits_strong)
    if logits_weak.shape != logits_strong.shape:
        raise ValueError(
            f"logits_strong shape {tuple(logits_strong.shape)} differs from logits_weak shape {tuple(logits_weak.shape)}"
        )
    zw = _as_float(logits_weak)
    zs = _as_float(logits_strong)
    if detach_target:
        zw = zw.detach()
    log_pw = F.log_softmax(zw, dim=1)
    log_ps = F.log_softmax(zs, dim=1)
    return (log_pw.exp() * (log_pw - log_ps)).sum(dim=1).mean()


def class_balance_loss(logits: torch.Tensor | None, prior: torch.Tensor | None = None, *,
                       probs: torch.Tensor | None = None) -> torch.Tensor:
    """Class-balance regulariser :math:`L_B` of SOP+ (appendix A.3, after Tanaka et al., 2018).

    .. math::

        L_B = \\sum_{k=1}^{K} p_k \\log \\frac{p_k}{\\bar f_k},
        \\qquad \\bar f_k = \\frac{1}{B} \\sum_{i=1}^{B} \\mathrm{softmax}(z_i)_k,

    with :math:`0 \\log 0 = 0` for classes of zero prior. :math:`\\log \\bar f_k` is computed as
    :math:`\\operatorname{logsumexp}_i \\log\\mathrm{softmax}(z_i)_k - \\log B`, stable for
    confident predictions.

    Parameters
    ----------
    logits : Tensor of shape (batch, n_classes) or None
        Network outputs (SOP+ uses the weak view, the one the SOP loss sees).
    prior : Tensor of shape (n_classes,), optional
        Class prior :math:`p` (non-negative, sums to 1). Default: uniform.
    probs : Tensor of shape (batch, n_classes), optional
        Instead of ``logits``: the predictions themselves (positive), e.g. SOP's corrected
        prediction :math:`\\varphi(\\mathrm{softmax}(z) + s)` as in the authors' code;
        :math:`\bar f_k` is then their batch mean, not renormalised.

    Returns
    -------
    Tensor of shape ()
        Non-negative; zero iff the batch-mean prediction equals the prior.
    """
    if (logits is None) == (probs is None):
        raise ValueError("class_balance_loss needs exactly one of logits and probs")
    _check_logits("probs" if logits is None else "logits", probs if logits is None else logits)
    z = _as_float(probs if logits is None else logits)
    n, k = z.shape
    if prior is None:
        p = uniform_prior(k, device=z.device, dtype=z.dtype)
    else:
        if not isinstance(prior, torch.Tensor) or prior.shape != (k,):
            raise ValueError(f"prior must be a tensor of shape ({k},), got {getattr(prior, 'shape', type(prior))}")
        p = prior.to(device=z.device, dtype=z.dtype)
        if bool((p < 0).any()) or abs(float(p.sum()) - 1.0) > 1e-5:
            raise ValueError("prior must be non-negative and sum to 1")
    if logits is None:
        # checked on the device (no host read: a failure surfaces as a device-side assert on CUDA,
        # a RuntimeError on the CPU)
        torch._assert_async((z > 0).all(), "probs must be positive")
        log_mean = z.mean(dim=0).log()
    else:
        log_mean = torch.logsumexp(F.log_softmax(z, dim=1), dim=0) - math.log(n)
    log_p = torch.where(p > 0, p.log(), torch.zeros_like(p))
    return (p * (log_p - log_mean)).sum()


def sop_plus_penalty(
    logits_weak: torch.Tensor,
    logits_strong: torch.Tensor | None,
    *,
    lambda_c: float,
    lambda_b: float,
    prior: torch.Tensor | None = None,
    balance_probs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The SOP+ addition :math:`\\lambda_C L_C + \\lambda_B L_B` to the SOP loss, and its terms.

    Parameters
    ----------
    logits_weak, logits_strong : Tensor of shape (batch, n_classes)
        Outputs on the weak and strong views; ``logits_strong`` may be None when ``lambda_c == 0``.
    lambda_c, lambda_b : float
        Non-negative weights (Table A.1: 0.9 and 0.1 for SOP+); a zero weight skips its term.
    prior : Tensor of shape (n_classes,), optional
        Class prior for :math:`L_B` (uniform by default).
    balance_probs : Tensor of shape (batch, n_classes), optional
        Compute :math:`L_B` on these predictions instead of ``softmax(logits_weak)`` (the
        authors' recipe: SOP's corrected prediction).

    Returns
    -------
    penalty : Tensor of shape ()
    terms : dict
        The unweighted, detached terms computed: ``"consistency"`` (:math:`L_C`) when
        ``lambda_c > 0``, ``"balance"`` (:math:`L_B`) when ``lambda_b > 0`` (for logging).
        ``"balance"`` is the KL :math:`\\mathrm{KL}(p \\,\\|\\, \\bar f)`; the authors' code logs the
        cross-entropy :math:`-\\sum_k p_k \\log \\bar f_k`, larger by the prior's entropy
        (:math:`\\log K` for the uniform prior), with the same gradient.

    Examples
    --------
    >>> z = torch.zeros(2, 3)
    >>> sop_plus_penalty(z, z, lambda_c=0.9, lambda_b=0.1)[0].item()
    0.0
    """
    if not (lambda_c >= 0 and math.isfinite(lambda_c)):
        raise ValueError(f"lambda_c must be finite and >= 0, got {lambda_c!r}")
    if not (lambda_b >= 0 and math.isfinite(lambda_b)):
        raise ValueError(f"lambda_b must be finite and >= 0, got {lambda_b!r}")
    total = logits_weak.new_zeros((), dtype=torch.float32 if logits_weak.dtype != torch.float64 else torch.float64)
    terms: dict[str, torch.Tensor] = {}
    if lambda_c > 0:
        if logits_strong is None:
            raise ValueError("logits_strong is required when lambda_c > 0")
        lc = consistency_loss(logits_weak, logits_strong)
        total, terms["consistency"] = total + lambda_c * lc, lc.detach()
    if lambda_b > 0:
        lb = (class_balance_loss(logits_weak, prior) if balance_probs is None
              else class_balance_loss(None, prior, probs=balance_probs))
        total, terms["balance"] = total + lambda_b * lb, lb.detach()
    return total, terms
