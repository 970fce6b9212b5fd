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
    and Algorithm 1 writes the plain step): :func:`sgd_step` with ``project=True``.

The authors' recipe (switches, the paper's behaviour by default)
----------------------------------------------------------------
The released code (``shengliu66/SOP`` at 4d991ce, ``model/loss.py``, ``train.py``) differs from
Algorithm 1 in four ways, each a keyword here (:data:`RECIPES` lists both settings):

``u_learns_mse`` (:func:`sop_loss_terms`)
    u is not detached in the MSE term, so u learns from CE *and* MSE: the per-sample u gradient
    gains ``4 u (ŷ_c + u² - 1)`` at the label (``/B`` in the batch-mean loss). History of their
    file: u learned from CE only until 2022-08-14, from MSE only from 2022-08-19 (fb92d9d), from
    both since 2022-09-08 (9a3fd24, HEAD).
``clamp_corrections`` (:func:`sop_loss_terms`)
    no projection of u, v; instead ``u² y`` and ``v² (1 - y)`` are clamped to [0, 1] inside both
    losses (zero gradient above 1).
``clamp_phi`` (:func:`sop_loss_terms`)
    φ clamped again to [ε, 1] after the normalisation (zero gradient where an entry falls below ε).
``project`` and the step size (:func:`sgd_step`, :func:`uv_step_size`)
    their u, v optimiser is ``torch.optim.SGD(lr=lr_u / lr_v, momentum=0, weight_decay=0)`` on the
    batch-mean loss with no scheduler: a per-sample step of ``lr_u / B`` that never follows the
    network's schedule, and no projection. Ours: ``α_u τ_t`` per sample, projected.

Closed-form gradients (clamp of φ inactive, ``W = 1ᵀ(f + s)``, ``c`` the label; note that the
paper's (A.2) and (A.4) drop the minus sign that comes from ``∂s/∂v = -2 v ⊙ (1 - y)``):

.. math::

    \\frac{\\partial \\ell_{CE}}{\\partial v} = -\\frac{2 v \\odot (1-y)}{W},\\qquad
    \\frac{\\partial \\ell_{CE}}{\\partial u} = 2 u \\odot y \\left(\\frac{1}{W}
        - \\frac{1}{f_c + u_c^2}\\right),\\qquad
    \\frac{\\partial \\ell_{MSE}}{\\partial v} = -4 (\\hat y + s - y) \\odot v \\odot (1-y).

``tests/deep/sop_reference.py`` evaluates them; ``tests/deep/test_sop_loss.py`` compares them with
autograd in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DEFAULT_EPS = 1e-4
SHAPES = ("scalar", "vector")

#: The switches of each recipe: "paper" is Algorithm 1 as written, "authors" the released code.
#: ``u_learns_mse``, ``clamp_corrections``, ``clamp_phi`` go to :func:`sop_loss_terms`; ``project``
#: to :func:`sgd_step`; ``uv_lr_schedule`` to :func:`uv_step_size`.
RECIPES = {
    "paper": {"u_learns_mse": False, "clamp_corrections": False, "clamp_phi": False, "project": True,
              "uv_lr_schedule": "network"},
    "authors": {"u_learns_mse": True, "clamp_corrections": True, "clamp_phi": True, "project": False,
                "uv_lr_schedule": "constant"},
}


def recipe_switches(recipe="paper", **overrides):
    """The switch values of ``recipe`` (:data:`RECIPES`), with single switches overridden.

    Examples
    --------
    >>> recipe_switches("authors", project=True)["project"]
    True
    """
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
    out = dict(RECIPES[recipe])
    unknown = sorted(set(overrides) - set(out))
    if unknown:
        raise ValueError(f"unknown switch(es) {unknown}; allowed: {sorted(out)}")
    for key, val in overrides.items():
        if val is not None:
            out[key] = val
    return out

__all__ = [
    "DEFAULT_EPS",
    "SHAPES",
    "SOPTerms",
    "init_sample_variables",
    "correction",
    "phi",
    "RECIPES",
    "recipe_switches",
    "sop_loss_terms",
    "sgd_step",
    "keep_where_skipped",
    "uv_step_size",
    "UV_LR_SCHEDULES",
]


@dataclass
class SOPTerms:
    """Per-sample SOP loss terms, each a tensor of shape (batch,).

    Attributes
    ----------
    ce : Tensor
        :math:`\\ell_{CE}(\\varphi(\\mathrm{softmax}(z) + s), y)`; gradient to θ and u only.
    mse : Tensor
        :math:`\\|\\mathrm{onehot}(\\arg\\max z) + s - y\\|_2^2`; gradient to v only
        (and to u with ``u_learns_mse``).
    corrected : Tensor of shape (batch, K) or None
        The corrected prediction :math:`\\varphi(\\mathrm{softmax}(z) + s)` the CE term reads
        (with its gradient to θ and u), e.g. for the authors' class-balance term.
    """

    ce: torch.Tensor
    mse: torch.Tensor
    corrected: torch.Tensor | None = None


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
    # the floor keeps log φ finite where s pushes an entry to or below 0 (v² removing the mass of a
    # wrong class); its gradient is 0 there, so a floored entry stops pulling on v
    m = w.clamp_min(eps)
    return m / m.sum(dim=1, keepdim=True)


def sop_loss_terms(logits: torch.Tensor, labels: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                   eps: float = DEFAULT_EPS, *, u_learns_mse: bool = False, clamp_corrections: bool = False,
                   clamp_phi: bool = False) -> SOPTerms:
    """Per-sample CE (eq. 7) and MSE (eq. 8) terms of the SOP objective.

    .. math::

        \\ell^{CE}_i = -\\log \\varphi\\big(\\mathrm{softmax}(z_i) + s_i^{(v\\,\\mathrm{detached})}\\big)_{y_i},
        \\qquad
        \\ell^{MSE}_i = \\big\\|\\mathrm{onehot}(\\arg\\max_k z_{ik}) + s_i^{(u\\,\\mathrm{detached})}
            - y_i\\big\\|_2^2 .

    Computed in float32 (or float64 if the inputs are) whatever the autocast dtype of ``logits``.
    The three keywords switch on the authors' variants (module docstring); all False is the paper.

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
    u_learns_mse : bool, default False
        Keep u's gradient in the MSE term: its per-sample u gradient gains
        :math:`4 u_c (\\hat y_c + u_c^2 - 1)` (authors' HEAD).
    clamp_corrections : bool, default False
        Use :math:`\\min(u^2 y, 1)` and :math:`\\min(v^2 (1-y), 1)` in both terms (zero gradient
        above 1), the authors' substitute for projecting u, v.
    clamp_phi : bool, default False
        Clamp :math:`\\varphi(\\cdot)` again to :math:`[\\epsilon, 1]` after the normalisation.

    Returns
    -------
    SOPTerms
    """
    dtype = torch.promote_types(u.dtype, torch.float32)  # fp32 at least, also under bf16/fp16 autocast
    z = logits.to(dtype)
    y = F.one_hot(labels, z.shape[1]).to(dtype)
    prob = torch.softmax(z, dim=1)
    # s = u² ⊙ y − v² ⊙ (1 − y): u adds mass at the given label, v removes it elsewhere
    u_part = u * u * y
    v_part = v * v * (1.0 - y)
    if clamp_corrections:  # the authors' code: clamp instead of projecting u, v (zero gradient above 1)
        u_part, v_part = u_part.clamp(0.0, 1.0), v_part.clamp(0.0, 1.0)
    # v detached in the CE term: v learns from the MSE term only (eq. 7 vs 8); θ and u from CE
    corrected = phi(prob + u_part - v_part.detach(), eps)
    if clamp_phi:  # the authors' second clamp after the normalisation: entries below eps stop learning
        corrected = corrected.clamp(eps, 1.0)
    ce = -torch.log(corrected.gather(1, labels[:, None]))[:, 0]
    # the MSE term sees the prediction as a detached one-hot: it trains u, v, never θ
    hard = F.one_hot(z.detach().argmax(dim=1), z.shape[1]).to(dtype)
    mse = (hard + (u_part if u_learns_mse else u_part.detach()) - v_part - y).square().sum(dim=1)
    return SOPTerms(ce=ce, mse=mse, corrected=corrected)


def keep_where_skipped(new: torch.Tensor, old: torch.Tensor, found_inf: torch.Tensor | None) -> torch.Tensor:
    """``new`` where θ stepped, ``old`` where GradScaler skipped the step (``found_inf > 0``, a
    device flag; :func:`sopdeep.training.precision.scaler_signals`): the u, v rows follow θ's
    decision without reading it on the host (no sync). ``found_inf=None``: ``new``.

    >>> keep_where_skipped(torch.ones(2), torch.zeros(2), torch.tensor([1.0]))
    tensor([0., 0.])
    """
    if found_inf is None:
        return new
    return torch.where(found_inf.reshape(()).to(new.device) > 0, old, new)


@torch.no_grad()
def sgd_step(rows: torch.Tensor, grad: torch.Tensor, lr: float, *, project: bool = True) -> torch.Tensor:
    """One plain gradient step on rows of u or v, projected to [-1, 1] or not.

    .. math:: r \\leftarrow P(r - \\mathrm{lr} \\cdot g), \\qquad
        P = \\text{entrywise clamp to } [-1, 1] \\text{ (project) or the identity}

    No momentum, no weight decay. ``project=True`` is Algorithm 1 (lines 12-13); ``project=False``
    is the authors' ``torch.optim.SGD(momentum=0, weight_decay=0)`` step, which with the
    per-sample gradient ``g = B * grad(batch-mean loss)`` and ``lr = lr_u / B``
    (:func:`uv_step_size`) is exactly their update.

    Returns
    -------
    Tensor, a new tensor of the same shape as ``rows``.

    Examples
    --------
    >>> import torch
    >>> sgd_step(torch.tensor([0.5]), torch.tensor([-1.0]), 1.0, project=False)
    tensor([1.5000])
    """
    out = rows - lr * grad
    return out.clamp_(-1.0, 1.0) if project else out


UV_LR_SCHEDULES = ("network", "constant")


def uv_step_size(schedule: str, *, batch_size: int, alpha: float | None = None, network_lr: float | None = None,
                 constant_lr: float | None = None) -> float:
    """Per-sample step size for u or v (multiplies the per-sample gradient in :func:`sgd_step`).

    * ``"network"`` (Algorithm 1): ``alpha * network_lr``, i.e. α τ_t, following the network's
      learning-rate schedule.
    * ``"constant"`` (the authors' code): ``constant_lr / batch_size``: their SGD with a fixed
      ``lr_u`` / ``lr_v`` on the batch-mean loss; independent of the epoch and of τ_t.

    Parameters
    ----------
    schedule : {"network", "constant"}
    batch_size : int
        Size B of the batch the gradient was taken on (the actual one, last batch included).
    alpha, network_lr : float
        Required for "network".
    constant_lr : float
        Required for "constant" (Table A.1's "lr for {u_i, v_i}" as the authors' ``lr_u``/``lr_v``).

    Examples
    --------
    >>> uv_step_size("constant", batch_size=128, constant_lr=10.0)
    0.078125
    """
    if schedule not in UV_LR_SCHEDULES:
        raise ValueError(f"schedule must be one of {UV_LR_SCHEDULES}, got {schedule!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if schedule == "network":
        if alpha is None or network_lr is None:
            raise ValueError("schedule='network' needs alpha and network_lr")
        return float(alpha) * float(network_lr)
    if constant_lr is None:
        raise ValueError("schedule='constant' needs constant_lr")
    return float(constant_lr) / batch_size
