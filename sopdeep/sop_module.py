"""SOPLoss: the SOP loss as a ``torch.nn.Module`` for any training loop that knows sample indices.

It holds u and v (one row per training sample) and computes, for a batch,
``loss = mean_i CE(φ(softmax(z_i) + s_i), y_i) + mean_i ‖onehot(argmax z_i) + s_i − y_i‖²`` with
``s_i = u_i² ⊙ y_i − v_i² ⊙ (1 − y_i)`` (:func:`sopdeep.sop_loss.sop_loss_terms`). Step θ on that
loss with any optimiser, then call :meth:`SOPLoss.step` with θ's current learning rate: u, v take
their own per-sample step (Algorithm 1, lines 11-12), by the very code of ``train()``
(:class:`sopdeep.methods.SOP`):

* ``recipe="paper"``: u_i ← u_i − α_u·lr·∂ℓ_i/∂u_i (the loss is a batch mean, so the per-sample
  gradient is B times the batch-mean one), then projected to [-1, 1];
* ``recipe="authors"``: constant rates ``lr_u / B``, ``lr_v / B`` on the per-sample gradient, never
  scheduled (their released code).

Example (a plain loop; ``loader`` yields ``(images, labels, indices)``)::

    criterion = SOPLoss(len(train_set), num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    for images, labels, indices in loader:
        loss = criterion(model(images), labels, indices)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        criterion.step(lr=optimizer.param_groups[0]["lr"])
    suspect = criterion.noise_scores(train_labels).argsort(descending=True)
"""

from __future__ import annotations

from typing import Any

import torch

from sopdeep.methods.base import Batch, StepOutput
from sopdeep.methods.sop import SOP

__all__ = ["SOPLoss"]


class SOPLoss(torch.nn.Module):
    """The SOP loss holding per-sample u, v; see the module docstring.

    Parameters
    ----------
    num_samples, num_classes : int
        N (rows of u, v; ``indices`` index them) and K.
    seed : int, default 0
        u, v start from ``N(0, init_std²)`` drawn from ``torch.Generator().manual_seed(seed)``
        (u first, then v: the draws of ``train()`` with the same seed).
    **options
        SOP's options (``sopdeep.methods.sop.SOPOptions``: ``alpha_u``, ``alpha_v``,
        ``init_std``, ``u_shape``, ``v_shape``, ``eps``, ``recipe``, ``lr_u``, ``lr_v``, the
        switches); ``update="epoch"`` is not offered here (call the loss once per sample pass).

    Attributes
    ----------
    u, v : Tensor buffers of shape (N, 1) or (N, K)
        Moved with ``.to(device)`` and saved in ``state_dict()``; not parameters, so an optimiser
        over ``model.parameters()`` never touches them.

    Examples
    --------
    >>> crit = SOPLoss(8, 3)
    >>> logits = torch.zeros(2, 3, requires_grad=True)
    >>> loss = crit(logits, torch.tensor([0, 2]), torch.tensor([5, 1]))
    >>> loss.backward(); crit.step(lr=0.1)
    >>> tuple(crit.u.shape), tuple(crit.v.shape)
    ((8, 1), (8, 3))
    """

    def __init__(self, num_samples: int, num_classes: int, *, seed: int = 0, **options: Any) -> None:
        super().__init__()
        from sopdeep.config import TrainConfig  # the one validation of SOP's options

        if options.get("update", "batch") != "batch":
            raise ValueError(f"update must be 'batch' for SOPLoss, got {options['update']!r}")
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.config = TrainConfig(method="sop", seed=seed, **options)
        self.method = SOP(self.config)
        state = self.method.init_state(num_samples, num_classes, torch.Generator().manual_seed(seed),
                                       torch.device("cpu"))
        self.register_buffer("u", state["u"])
        self.register_buffer("v", state["v"])
        self.num_classes = num_classes
        self._pending: tuple[Batch, Any] | None = None

    def _state(self) -> dict[str, torch.Tensor]:
        return {"u": self.u, "v": self.v}

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """The batch loss (a scalar for θ); ``logits`` (B, K), ``labels`` and ``indices`` (B,)."""
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits must have shape (B, {self.num_classes}), got {tuple(logits.shape)}")
        if labels.shape != logits.shape[:1] or indices.shape != logits.shape[:1]:
            raise ValueError(f"labels and indices must have shape ({logits.shape[0]},), "
                             f"got {tuple(labels.shape)} and {tuple(indices.shape)}")
        indices = indices.to(self.u.device)
        batch = Batch(indices=indices, images=logits, labels=labels.to(self.u.device), raw=logits,
                      normalize=lambda x: x)
        terms, u_rows, v_rows = self.method.batch_terms(logits, batch, self._state())
        loss = terms.ce.mean() + terms.mse.mean()
        self._pending = (batch, StepOutput(loss=loss, logits=logits, ctx={"u_rows": u_rows, "v_rows": v_rows}))
        return loss

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """Step the batch's rows of u, v after ``loss.backward()``; ``lr`` is θ's learning rate now
        (used by ``recipe="paper"``; the authors' constant rates ignore it)."""
        if self._pending is None:
            raise RuntimeError("SOPLoss.step() needs a forward pass and loss.backward() first")
        batch, out = self._pending
        if out.ctx["u_rows"].grad is None:
            raise RuntimeError("SOPLoss.step(): no gradient on u, v; call loss.backward() first")
        self.method.after_backward(batch, out, self._state(), lr)
        self._pending = None

    def noise_scores(self, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample noise score u²_{i, y_i} (N,), higher = more likely mislabelled."""
        return self.method.noise_scores(self._state(), labels.to(self.u.device))

    def label_quality(self, labels: torch.Tensor) -> torch.Tensor:
        """1 − noise score, in [0, 1], higher = label more likely correct (cleanlab's direction)."""
        return 1.0 - self.noise_scores(labels).clamp(0.0, 1.0)

    def correction(self, labels: torch.Tensor) -> torch.Tensor:
        """The learnt correction s_i (N, K)."""
        return self.method.correction(self._state(), labels.to(self.u.device), self.num_classes)
