"""SOP+ (appendix A.3): SOP plus consistency and class-balance regularisation, method ``"sop+"``.

Per mini-batch, with :math:`z^w` the logits of the weak view (``batch.images``: the trainer's
crop + flip) and :math:`z^s` those of a strong view (an independent crop + flip of
``batch.raw``, then AutoAugment's CIFAR-10 policy or RandAugment, then Cutout:
:func:`sopdeep.augment.strong_augment`), the loss for θ is

.. math::

    \\frac{1}{B}\\sum_{i \\in B} \\ell_{CE}(\\varphi(f(x_i^w) + s_i), y_i)
    + \\lambda_C \\frac{1}{B}\\sum_{i \\in B} D_{KL}(\\mathrm{sg}[p_i^w] \\,\\|\\, p_i^s)
    + \\lambda_B\\, \\mathrm{KL}\\big(p \\,\\|\\, \\tfrac{1}{B}\\textstyle\\sum_i p_i^w\\big),

(:mod:`sopdeep.regularizers`), and u, v are stepped exactly as in SOP (the regularisers do not
involve u, v). Both views go through the network in one forward pass of 2B images, so
BatchNorm sees both in its batch statistics (as UDA and the authors' code do).

Configuration (``TrainConfig``): ``lambda_c`` (0.9), ``lambda_b`` (0.1), ``strong_policy``
(``"autoaugment"`` | ``"randaugment"``), ``strong_backend`` (``"kornia"`` | ``"torchvision"``),
``cutout`` (16 pixels for 32x32 images; crop padding and Cutout scale with the image size).
Randomness of the strong view comes from the method's own CPU ``torch.Generator`` seeded from
``config.seed`` (and the process rank under DDP). Its state lives in the method state under
:data:`RNG_KEY`, so the trainer's checkpoints carry it and a resumed run continues the same
stream (bit-identical on the CPU). Under DDP each rank has its own stream; only rank 0's is
checkpointed, so after a DDP resume every rank continues rank 0's stream (still valid
augmentation, not bit-identical to the uninterrupted run).

Differences from the authors' code (noted, not copied): their class-balance term uses the
SOP-corrected prediction and the form :math:`-\\sum_k p_k \\log \\bar f_k`; A.3 writes the network
prediction :math:`f(x;\\theta)`, which is what we use (the two forms of the term have the same
gradient).
"""

from __future__ import annotations

import os

import torch

from sopdeep.augment import random_crop_flip, strong_augment
from sopdeep.methods import SOP, StepOutput, register_method
from sopdeep.regularizers import class_balance_loss, consistency_loss

__all__ = ["SOPPlus", "RNG_KEY"]

#: Key of the strong-view generator's state in the method state (saved with u, v in checkpoints).
RNG_KEY = "rng_strong"

_STREAM = 0x5EED_50B  # offsets the strong-view generator's seed from the trainer's streams


@register_method
class SOPPlus(SOP):
    """SOP with the SOP+ regularisers; see the module docstring."""

    name = "sop+"

    def __init__(self, config) -> None:
        super().__init__(config)
        rank = int(os.environ.get("RANK", "0"))
        self.generator = torch.Generator().manual_seed(int(config.seed) * 1_000_003 + _STREAM + 7919 * rank)

    # -- RNG state: kept in the per-sample state dict so checkpoints carry it -----------------------
    def init_state(self, num_samples, num_classes, generator, device):
        state = super().init_state(num_samples, num_classes, generator, device)
        state[RNG_KEY] = self.generator.get_state()  # uint8, on the CPU (torch.Generator's home)
        return state

    # -- the strong view ------------------------------------------------------------------------------
    def strong_view(self, batch) -> torch.Tensor:
        """Normalised strong view of ``batch.raw`` (same shape, dtype and layout as ``batch.images``)."""
        with torch.autocast(batch.raw.device.type, enabled=False):  # augment in float32, outside AMP
            return self._strong_view(batch)

    def _strong_view(self, batch) -> torch.Tensor:
        c = self.config
        raw = batch.raw
        side = min(raw.shape[-2:])
        base = random_crop_flip(raw, generator=self.generator, pad=max(1, round(4 * side / 32)))
        x = strong_augment(
            base.float().div_(255.0),
            generator=self.generator,
            policy=c.strong_policy,
            cutout=round(c.cutout * side / 32),  # config.cutout is for 32x32 images
            backend=c.strong_backend,
        )
        # back to uint8 so the trainer's own normalisation (and dtype / channels_last) applies
        strong = batch.normalize(x.mul_(255.0).round_().to(torch.uint8))
        return strong.to(dtype=batch.images.dtype)

    def batch_loss(self, model, batch, state):
        c = self.config
        if c.lambda_c > 0:
            if RNG_KEY in state:  # resume: continue the saved stream
                self.generator.set_state(state[RNG_KEY].cpu())
            strong = self.strong_view(batch)
            if RNG_KEY in state:
                state[RNG_KEY].copy_(self.generator.get_state())
            both = torch.cat([batch.images, strong])
            if batch.images.is_contiguous(memory_format=torch.channels_last):
                both = both.contiguous(memory_format=torch.channels_last)
            logits_all = model(both)
            logits, logits_s = logits_all[: batch.images.shape[0]], logits_all[batch.images.shape[0]:]
        else:
            logits, logits_s = model(batch.images), None
        terms, u_rows, v_rows = self._terms(logits, batch, state)
        loss = terms.ce.mean() + terms.mse.mean()
        logged = {"ce": terms.ce.detach().mean(), "mse": terms.mse.detach().mean()}
        if c.lambda_c > 0:
            lc = consistency_loss(logits, logits_s)
            loss = loss + c.lambda_c * lc
            logged["consistency"] = lc.detach()
        if c.lambda_b > 0:
            lb = class_balance_loss(logits)
            loss = loss + c.lambda_b * lb
            logged["balance"] = lb.detach()
        return StepOutput(loss=loss, logits=logits, terms=logged, ctx={"u_rows": u_rows, "v_rows": v_rows})
