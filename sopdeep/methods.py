"""Training methods behind one small interface, and their registry (``"ce"``, ``"sop"``; ``"sop+"``
registers itself in :mod:`sopdeep.sop_plus`).

Per mini-batch the trainer calls ``out = method.batch_loss(model, batch, state)`` (inside
autocast), steps θ on ``out.loss``, then ``method.after_backward(batch, out, state, lr,
grad_scale)`` (SOP: the u, v step); after each epoch ``method.end_of_epoch(predictions, state,
lr)``. ``state`` holds the per-sample tensors (rows indexed by sample: SOP's u, v), checkpointed
and synchronised across DDP ranks; anything else a method must carry across a resume goes
through :meth:`Method.state_dict` / :meth:`Method.load_state_dict`. To add a method, subclass
:class:`Method` and decorate it with :func:`register_method`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from sopdeep.sop_loss import init_sample_variables, sgd_step, sop_loss_terms, uv_step_size

__all__ = ["Batch", "StepOutput", "Method", "CE", "SOP", "register_method", "get_method",
           "available_methods"]


@dataclass
class Batch:
    """One mini-batch, by index into the training set.

    Attributes
    ----------
    indices : LongTensor of shape (B,)
        Row indices into the training set (and into u, v).
    images : Tensor of shape (B, C, H, W)
        Augmented, normalised float images (channels_last on CUDA).
    labels : LongTensor of shape (B,)
        Given (noisy) labels.
    raw : uint8 Tensor of shape (B, C, H, W)
        The same images before augmentation and normalisation.
    normalize : callable
        uint8 (B, C, H, W) -> normalised float images, as used for ``images``.
    mean : Tensor of shape (C,) or None
        The normalisation mean in pixel units (0-255), e.g. the Cutout fill of SOP+'s strong view
        (a pixel that normalises to 0); None: 0.
    """

    indices: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor
    raw: torch.Tensor
    normalize: Callable[[torch.Tensor], torch.Tensor]
    mean: torch.Tensor | None = None


@dataclass
class StepOutput:
    """What :meth:`Method.batch_loss` returns: the scalar loss for θ, the logits of
    ``batch.images``, per-term scalars for logging, and method-private tensors."""

    loss: torch.Tensor
    logits: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    ctx: dict[str, torch.Tensor] = field(default_factory=dict)


class Method:
    """Base class of every method (no per-sample state). Subclasses set ``name`` and implement
    :meth:`batch_loss`.

    Parameters
    ----------
    config : TrainConfig
    rank : int, default 0
        This process's rank under DDP (``DistEnv.rank``), for per-rank random streams.
    """

    name = ""

    def __init__(self, config, *, rank: int = 0) -> None:
        self.config = config
        self.rank = rank

    def init_state(self, num_samples: int, num_classes: int, generator: torch.Generator,
                   device: torch.device) -> dict[str, torch.Tensor]:
        """Per-sample tensors of shape (num_samples, ...), checkpointed (none for CE)."""
        return {}

    def batch_loss(self, model, batch: Batch, state: dict[str, torch.Tensor]) -> StepOutput:
        raise NotImplementedError

    def after_backward(self, batch: Batch, out: StepOutput, state, lr: float,
                       grad_scale: float = 1.0) -> None:
        """Called after the θ step with the current θ learning rate ``lr``."""

    def end_of_epoch(self, predictions, state, lr: float) -> None:
        """Called after each θ epoch; ``predictions`` lazily yields ``(indices, logits, labels)``
        over the training set (eval mode, un-augmented): iterate it only if needed."""

    def noise_scores(self, state, labels: torch.Tensor,
                     probs: torch.Tensor | None) -> torch.Tensor | None:
        """Per-sample noise score (N,), higher = more likely mislabelled: ``1 - probs[i, labels[i]]``
        (cleanlab's self-confidence, negated), or None when ``probs`` is None."""
        if probs is None:
            return None
        return 1.0 - probs.gather(1, labels[:, None])[:, 0]

    def correction(self, state, labels: torch.Tensor, num_classes: int) -> torch.Tensor | None:
        """The learned correction s_i (N, K), or None."""
        return None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Method state that is not per-sample (checkpointed; SOP+: its generator)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""


class CE(Method):
    """Plain cross-entropy on the given labels: the baseline of every table."""

    name = "ce"

    def batch_loss(self, model, batch, state):
        logits = model(batch.images)
        loss = F.cross_entropy(logits.float(), batch.labels)
        return StepOutput(loss=loss, logits=logits, terms={"ce": loss.detach()})


class SOP(Method):
    """Sparse over-parameterisation (Algorithm 1) with the loss of :mod:`sopdeep.sop_loss`.

    State: ``u`` (N, 1) or (N, K) and ``v`` (N, K) or (N, 1) (``config.u_shape``, ``v_shape``),
    drawn from N(0, init_std²). ``update="batch"``: the batch's rows are gathered, differentiated,
    stepped by :func:`~sopdeep.sop_loss.sgd_step` and written back; no other row changes.
    ``update="epoch"``: u, v are fixed during the θ pass, then one pass over all samples (eval mode,
    un-augmented; Algorithm 1, lines 9-14).

    The recipe (``config.switches()``, :data:`sopdeep.sop_loss.RECIPES`) sets the loss variants
    (``u_learns_mse``, ``clamp_corrections``, ``clamp_phi``), the projection of u, v to [-1, 1]
    and the per-sample step size (:func:`~sopdeep.sop_loss.uv_step_size`): α_u·τ_t, α_v·τ_t
    ("network", Algorithm 1) or lr_u / B, lr_v / B ("constant", the authors' code).

    Noise score: u²_{i, y_i}, the mass the correction adds at the given label, in [0, 1]
    (clamped to 1 with ``clamp_corrections``, as in the loss, since u is then not projected).

    Notes
    -----
    Many noisy samples end with u projected to ±1, so their scores tie at 1; the network's own
    ``1 - p(given label)`` (the saved ``pred_prob``) breaks the ties and can rank better
    (Fashion-MNIST: AUROC 0.976 against 0.943 for u², README).
    """

    name = "sop"

    def __init__(self, config, *, rank: int = 0) -> None:
        super().__init__(config, rank=rank)
        self.switches = config.switches()

    def _loss_terms(self, logits, labels, u_rows, v_rows):
        sw = self.switches
        return sop_loss_terms(logits, labels, u_rows, v_rows, self.config.eps, u_learns_mse=sw["u_learns_mse"],
                              clamp_corrections=sw["clamp_corrections"], clamp_phi=sw["clamp_phi"])

    def init_state(self, num_samples, num_classes, generator, device):
        c = self.config
        u = init_sample_variables(num_samples, num_classes, c.u_shape, c.init_std, generator)
        v = init_sample_variables(num_samples, num_classes, c.v_shape, c.init_std, generator)
        return {"u": u.to(device), "v": v.to(device)}

    def _terms(self, logits, batch, state):
        learn = self.config.update == "batch"  # "epoch": u, v fixed during the θ pass
        u_rows = state["u"].index_select(0, batch.indices).requires_grad_(learn)
        v_rows = state["v"].index_select(0, batch.indices).requires_grad_(learn)
        return self._loss_terms(logits, batch.labels, u_rows, v_rows), u_rows, v_rows

    def batch_loss(self, model, batch, state):
        logits = model(batch.images)
        terms, u_rows, v_rows = self._terms(logits, batch, state)
        # the MSE term depends on v (and u with u_learns_mse) only, the prediction enters it as a
        # detached one-hot, so adding it leaves the θ gradient equal to that of the CE term
        loss = terms.ce.mean() + terms.mse.mean()
        return StepOutput(loss=loss, logits=logits,
                          terms={"ce": terms.ce.detach().mean(), "mse": terms.mse.detach().mean()},
                          ctx={"u_rows": u_rows, "v_rows": v_rows})

    def after_backward(self, batch, out, state, lr, grad_scale=1.0):
        if self.config.update != "batch":
            return
        u_rows, v_rows = out.ctx["u_rows"], out.ctx["v_rows"]
        # the loss is a batch mean: B * grad is the per-sample gradient of Algorithm 1
        factor = batch.indices.numel() / grad_scale
        gu, gv = u_rows.grad * factor, v_rows.grad * factor
        if grad_scale != 1.0 and not bool(torch.isfinite(gu).all() & torch.isfinite(gv).all()):
            return  # fp16 overflow: GradScaler skips the θ step, skip u, v too
        self._step(state, batch.indices, u_rows.detach(), v_rows.detach(), gu, gv, lr)

    def _step(self, state, idx, u_rows, v_rows, gu, gv, lr):
        """Step rows ``idx`` of u, v by the per-sample gradients ``gu``, ``gv`` (θ learning rate ``lr``)."""
        c, sw, b = self.config, self.switches, idx.numel()
        for name, rows, grad, alpha, constant in (("u", u_rows, gu, c.alpha_u, c.lr_u), ("v", v_rows, gv, c.alpha_v, c.lr_v)):
            step = uv_step_size(sw["uv_lr_schedule"], batch_size=b, alpha=alpha, network_lr=lr, constant_lr=constant)
            state[name].index_copy_(0, idx, sgd_step(rows, grad, step, project=sw["project"]))

    def end_of_epoch(self, predictions, state, lr):
        if self.config.update != "epoch":
            return
        for idx, logits, labels in predictions:
            u_rows = state["u"].index_select(0, idx).requires_grad_(True)
            v_rows = state["v"].index_select(0, idx).requires_grad_(True)
            with torch.enable_grad():
                t = self._loss_terms(logits.detach(), labels, u_rows, v_rows)
                gu, gv = torch.autograd.grad(t.ce.sum() + t.mse.sum(), (u_rows, v_rows))
            self._step(state, idx, u_rows.detach(), v_rows.detach(), gu, gv, lr)

    def noise_scores(self, state, labels, probs=None):
        u = state["u"]
        u_c = u[:, 0] if u.shape[1] == 1 else u.gather(1, labels[:, None].to(u.device))[:, 0]
        score = u_c.square()
        return score.clamp_max(1.0) if self.switches["clamp_corrections"] else score

    def correction(self, state, labels, num_classes):
        u, v = state["u"], state["v"]
        y = F.one_hot(labels.to(u.device), num_classes).to(u.dtype)
        u_part, v_part = u.square() * y, v.square() * (1.0 - y)
        if self.switches["clamp_corrections"]:  # as the loss reads them
            u_part, v_part = u_part.clamp(0.0, 1.0), v_part.clamp(0.0, 1.0)
        return u_part - v_part


_REGISTRY: dict[str, type[Method]] = {"ce": CE, "sop": SOP}


def register_method(cls: type[Method]) -> type[Method]:
    """Register a :class:`Method` subclass under ``cls.name`` (usable as a decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def get_method(config, *, rank: int = 0) -> Method:
    """The registered method named ``config.method``; ``ValueError`` naming the known ones otherwise."""
    if config.method not in _REGISTRY:
        raise ValueError(f"method must be one of {available_methods()}, got {config.method!r}")
    return _REGISTRY[config.method](config, rank=rank)


def available_methods() -> tuple[str, ...]:
    """Names of the registered methods."""
    return tuple(_REGISTRY)
