"""SOPLoss: the SOP loss as a ``torch.nn.Module`` for any training loop that knows sample indices.

It holds u and v (one row per training sample) and computes, for a batch,
``loss = mean_i CE(φ(softmax(z_i) + s_i), y_i) + mean_i ‖onehot(argmax z_i) + s_i − y_i‖²`` with
``s_i = u_i² ⊙ y_i − v_i² ⊙ (1 − y_i)`` (:func:`sopdeep.sop_loss.sop_loss_terms`). Step θ on that
loss with any optimiser, then call :meth:`SOPLoss.step` with θ's current learning rate: u, v take
their own per-sample step (Algorithm 1, lines 11-12), by the very code of ``train()``
(:class:`sopdeep.methods.SOP`):

* ``recipe="paper"``: u_i ← u_i − α_u·τ_t·∂ℓ_i/∂u_i (the loss is a batch mean, so the per-sample
  gradient is B times the batch-mean one), then projected to [-1, 1];
* ``recipe="authors"``: constant rates ``lr_u / B``, ``lr_v / B`` on the per-sample gradient, never
  scheduled (their released code).

u and v's rate τ_t whatever θ's optimiser (:meth:`SOPLoss.uv_rate`)
    Algorithm 1 steps u, v at α·τ_t with τ_t θ's SGD learning rate. Under Adam-family optimisers
    θ's learning rate lives on another scale (1e-3 against SGD's 0.02-0.1): used as τ_t it leaves
    u, v almost frozen, and SOP silently becomes cross-entropy (measured: Fashion-MNIST, 50 %
    symmetric noise, AdamW at 1e-3, README). So ``step(optimizer=opt)`` reads θ's optimiser:
    with ``torch.optim.SGD`` τ_t is its learning rate (Algorithm 1); with any other optimiser τ_t
    is ``uv_lr`` (default :data:`REFERENCE_LR` = 0.02, the SGD rate Table A.1's α was set for)
    times θ's schedule relative to its initial rate, so u, v keep the paper's scale and follow
    θ's schedule. ``step(lr=...)`` passes τ_t directly. A rate too small for u to leave its start
    within :data:`FROZEN_EPOCHS` epochs raises a ``UserWarning`` after the first epoch's steps.

Example (a plain loop; ``loader`` yields ``(images, labels, indices)``)::

    criterion = SOPLoss(len(train_set), num_classes=10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)  # or SGD: the same two calls
    for images, labels, indices in loader:
        loss = criterion(model(images), labels, indices)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        criterion.step(optimizer=optimizer)
    suspect = criterion.noise_scores(train_labels).argsort(descending=True)
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from sopdeep.methods.base import Batch, StepOutput
from sopdeep.methods.sop import SOP

__all__ = ["SOPLoss", "REFERENCE_LR", "FROZEN_EPOCHS"]

#: θ's SGD learning rate that Table A.1's α = 10 was set for: u, v's rate when θ's optimiser is not SGD
REFERENCE_LR = 0.02

#: u, v that could not leave their start (init_std) within this many epochs of visits are "frozen":
#: SOP then trains as cross-entropy, and :meth:`SOPLoss.step` warns
FROZEN_EPOCHS = 100


class SOPLoss(torch.nn.Module):
    """The SOP loss holding per-sample u, v; see the module docstring.

    Parameters
    ----------
    num_samples, num_classes : int
        N (rows of u, v; ``indices`` index them) and K.
    seed : int, default 0
        u, v start from ``N(0, init_std²)`` drawn from ``torch.Generator().manual_seed(seed)``
        (u first, then v: the draws of ``train()`` with the same seed).
    uv_lr : float, optional
        u, v's own reference rate (module docstring): with ``step(optimizer=opt)``, τ_t =
        ``uv_lr`` times θ's learning rate relative to its initial one, whatever the optimiser;
        None: θ's learning rate under SGD, :data:`REFERENCE_LR` under any other optimiser.
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

    def __init__(self, num_samples: int, num_classes: int, *, seed: int = 0, uv_lr: float | None = None,
                 **options: Any) -> None:
        super().__init__()
        if uv_lr is not None and (isinstance(uv_lr, bool) or not isinstance(uv_lr, (int, float))
                                  or not math.isfinite(uv_lr) or uv_lr <= 0):
            raise ValueError(f"uv_lr must be a finite number > 0 or None, got {uv_lr!r}")
        self.uv_lr = None if uv_lr is None else float(uv_lr)
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
        self._initial_lr: float | None = None  # θ's first learning rate, when its optimiser records none
        self._visits = 0  # samples stepped so far, and the largest per-visit step α·τ among them
        self._largest_step = 0.0
        self._warned = False

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

    def uv_rate(self, optimizer: torch.optim.Optimizer) -> float:
        """τ_t of u, v given θ's ``optimizer`` (module docstring): its learning rate under SGD
        without ``uv_lr``; else ``uv_lr`` (or :data:`REFERENCE_LR`) times its learning rate relative
        to the initial one (a scheduler's ``initial_lr``, else the rate at the first call).

        >>> crit = SOPLoss(4, 2)
        >>> opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3)
        >>> crit.uv_rate(opt), crit.uv_rate(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05))
        (0.02, 0.05)
        """
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        lr = float(optimizer.param_groups[0]["lr"])
        if isinstance(optimizer, torch.optim.SGD) and self.uv_lr is None:
            return lr  # Algorithm 1: θ's own SGD rate
        if self._initial_lr is None:
            self._initial_lr = float(optimizer.param_groups[0].get("initial_lr", lr))
        # the reference rate, scaled by θ's schedule (warm-up, decay) relative to where it started
        return (self.uv_lr or REFERENCE_LR) * lr / self._initial_lr if self._initial_lr > 0 else 0.0

    @torch.no_grad()
    def step(self, lr: float | None = None, *, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Step the batch's rows of u, v after ``loss.backward()``.

        Pass θ's ``optimizer`` (u, v's rate from :meth:`uv_rate`, right for any optimiser) or
        ``lr``, the rate τ_t itself (Algorithm 1: θ's SGD learning rate now). The authors'
        constant rates (``recipe="authors"``) ignore both.
        """
        if (lr is None) == (optimizer is None):
            raise ValueError("pass exactly one of lr (u, v's rate: theta's SGD learning rate now) or optimizer= "
                             "(theta's optimiser)")
        if self._pending is None:
            raise RuntimeError("SOPLoss.step() needs a forward pass and loss.backward() first")
        batch, out = self._pending
        if out.ctx["u_rows"].grad is None:
            raise RuntimeError("SOPLoss.step(): no gradient on u, v; call loss.backward() first")
        rate = float(lr) if optimizer is None else self.uv_rate(optimizer)
        self.method.after_backward(batch, out, self._state(), rate)
        self._pending = None
        self._check_not_frozen(rate, batch.indices.numel())

    def _check_not_frozen(self, rate: float, batch_size: int) -> None:
        """Warn once, after one epoch of visits, when u could not leave its start in FROZEN_EPOCHS epochs.

        Under the CE term u grows at most geometrically, by a factor 1 + 2·α_u·τ per visit (its
        per-sample gradient is 2u(1/W - 1/(f_c + u²)), at most 2u in size): reaching 1 from
        init_std takes at least ln(1/init_std) / ln(1 + 2 α_u τ) visits.
        """
        options = self.method.options
        if self._warned or options.uv_lr_schedule != "network" or options.init_std <= 0:
            return
        self._largest_step = max(self._largest_step, options.alpha_u * rate)
        self._visits += batch_size
        if self._visits < self.u.shape[0]:
            return  # judge on a whole epoch's largest rate (a warm-up starts low)
        self._warned = True
        epochs = math.log(1.0 / options.init_std) / max(math.log1p(2.0 * self._largest_step), 1e-300)
        if epochs > FROZEN_EPOCHS:
            warnings.warn(f"SOPLoss: u, v step at most alpha_u * rate = {self._largest_step:.3g} per visit, so u needs "
                          f"at least {epochs:.0f} epochs to leave its start: SOP trains as plain cross-entropy. Pass "
                          "step(optimizer=opt) (u, v's own rate under Adam-family optimisers) or raise uv_lr / alpha_u.",
                          UserWarning, stacklevel=2)

    def noise_scores(self, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample noise score u²_{i, y_i} (N,), higher = more likely mislabelled."""
        return self.method.noise_scores(self._state(), labels.to(self.u.device))

    def label_quality(self, labels: torch.Tensor) -> torch.Tensor:
        """1 − noise score, in [0, 1], higher = label more likely correct (cleanlab's direction)."""
        return 1.0 - self.noise_scores(labels).clamp(0.0, 1.0)

    def correction(self, labels: torch.Tensor) -> torch.Tensor:
        """The learnt correction s_i (N, K)."""
        return self.method.correction(self._state(), labels.to(self.u.device), self.num_classes)
