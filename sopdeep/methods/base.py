"""The interface every training method implements: :class:`Method`, with the mini-batch it sees
(:class:`Batch`) and what its loss returns (:class:`StepOutput`).

Per mini-batch the trainer calls ``out = method.batch_loss(model, batch, state)`` (inside
autocast), steps θ on ``out.loss``, then ``method.after_backward(batch, out, state, lr,
grad_scale)`` (SOP: the u, v step); after each epoch ``method.end_of_epoch(predictions, state,
lr)``. ``state`` holds the per-sample tensors (rows indexed by sample: SOP's u, v, ELR's target),
checkpointed and synchronised across DDP ranks; anything else a method must carry across a resume
goes through :meth:`Method.state_dict` / :meth:`Method.load_state_dict`.

A method declares its settings in ``Options``, a dataclass of :func:`sopdeep.options.option`
fields; :class:`sopdeep.config.TrainConfig` accepts exactly the chosen method's options, and
``sop-train --help`` lists them. To add a method: one module with a :class:`Method` subclass (and
its ``Options``), plus one line in :data:`sopdeep.methods.METHODS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

__all__ = ["Batch", "StepOutput", "Method", "NoOptions"]


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


@dataclass(frozen=True)
class NoOptions:
    """The options of a method that has none (CE)."""


class Method:
    """Base class of every method (no per-sample state). Subclasses set ``name``, ``summary`` (one
    line for ``--help``), ``Options`` (their settings) and implement :meth:`batch_loss`.

    Parameters
    ----------
    config : TrainConfig
    rank : int, default 0
        This process's rank under DDP (``DistEnv.rank``), for per-rank random streams.
    """

    name = ""
    summary = ""
    Options: type = NoOptions

    def __init__(self, config, *, rank: int = 0) -> None:
        self.config = config
        # the method's own settings, read explicitly (``self.options.alpha_u``); the common ones
        # from ``self.config`` (``self.config.seed``)
        self.options = config.options
        self.rank = rank

    def init_state(self, num_samples: int, num_classes: int, generator: torch.Generator,
                   device: torch.device) -> dict[str, torch.Tensor]:
        """Per-sample tensors of shape (num_samples, ...), checkpointed (none for CE)."""
        return {}

    def batch_loss(self, model, batch: Batch, state: dict[str, torch.Tensor]) -> StepOutput:
        raise NotImplementedError

    def after_backward(self, batch: Batch, out: StepOutput, state, lr: float,
                       grad_scale: float | torch.Tensor = 1.0, found_inf: torch.Tensor | None = None) -> None:
        """Called after the θ step with the current θ learning rate ``lr``. Under fp16,
        ``grad_scale`` is GradScaler's scale of this step and ``found_inf`` its overflow flag (1.0:
        θ's step was skipped), both device tensors (:func:`sopdeep.training.precision.scaler_signals`):
        a per-sample step must follow θ's without reading them on the host."""

    def end_of_epoch(self, predictions, state, lr: float) -> None:
        """Called after each θ epoch; ``predictions`` lazily yields ``(indices, logits, labels)``
        over the training set (eval mode, un-augmented): iterate it only if needed."""

    def noise_scores(self, state, labels: torch.Tensor,
                     probs: torch.Tensor | None) -> torch.Tensor | None:
        """The method's own per-sample noise score (N,) in [0, 1], higher = more likely mislabelled
        (SOP: u² at the label; ELR: 1 - t at the label), or None when it has none (the default).

        The one detection protocol: a score here feeds the run's ``label_quality`` and
        ``is_label_issue`` (the rank mean with the network's 1 - p(label),
        :func:`sopdeep.label_issues.run_label_issues`); None falls back to the network's
        self-confidence, and ``summary.json`` says which (``label_quality_from``).
        ``probs`` (N, K) are the network's final probabilities on the training set (None during
        training, for the per-epoch monitor).
        """
        return None

    def correction(self, state, labels: torch.Tensor, num_classes: int) -> torch.Tensor | None:
        """The learned correction s_i (N, K), or None."""
        return None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Method state that is not per-sample (checkpointed; SOP+: its generator)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""


