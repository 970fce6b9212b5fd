"""SOP+ (appendix A.3): SOP plus consistency and class-balance regularisation, method ``"sop+"``.

With :math:`z^w` the logits of the weak view (``batch.images``, the trainer's crop + flip) and
:math:`z^s` those of a strong view (an independent crop + flip of ``batch.raw``, then AutoAugment
or RandAugment and Cutout, :func:`sopdeep.augment.strong_augment`), the loss for θ is

.. math::

    \\frac{1}{B}\\sum_{i} \\ell_{CE}(\\varphi(f(x_i^w) + s_i), y_i) + \\mathrm{MSE}
    + \\lambda_C L_C(z^w, z^s) + \\lambda_B L_B(z^w)

(:func:`sopdeep.regularizers.sop_plus_penalty`); u, v are stepped as in SOP (the regularisers
do not involve them). Both views go through the network in one forward pass of 2B images, so
BatchNorm sees both. Settings: ``lambda_c`` (0.9), ``lambda_b`` (0.1), ``strong_policy``,
``strong_backend``, ``cutout`` (16 pixels at 32x32; crop padding and Cutout scale with the size).

Notes
-----
The strong view's randomness comes from the method's own CPU ``torch.Generator``, seeded from
``config.seed`` and the DDP rank; its state is checkpointed through :meth:`SOPPlus.state_dict`,
so a resumed run continues the same stream (bit-identical on the CPU). Under DDP only rank 0's
stream is checkpointed: after a DDP resume every rank continues rank 0's stream (valid
augmentation, not bit-identical to the uninterrupted run).

The authors' class-balance term uses the SOP-corrected prediction
:math:`\\varphi(\\mathrm{softmax}(z) + s)` (its batch mean :math:`\\bar f`); A.3 writes the network
prediction :math:`f(x;\\theta)`. ``recipe="paper"`` follows A.3, ``recipe="authors"`` their code
(:attr:`sopdeep.sop_loss.SOPTerms.corrected`; its gradient reaches θ and u).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from sopdeep.augment import (StrongViewDraws, random_crop_flip, strong_augment, strong_view_batched,
                             strong_view_per_sample)
from sopdeep.datasets import fixed_normalization
from sopdeep.methods.base import StepOutput
from sopdeep.methods.sop import SOP, SOPOptions
from sopdeep.options import option
from sopdeep.regularizers import sop_plus_penalty

__all__ = ["SOPPlus", "SOPPlusOptions", "strong_view_settings"]

_STREAM = 0x5EED_50B  # offsets the strong-view generator's seed from the trainer's streams
_CIFAR10_STATS = fixed_normalization("cifar10")  # (mean, std) in [0, 1], the authors' constants


def strong_view_settings(config) -> tuple[str, str]:
    """(policy, normalisation) of SOP+'s strong view, as resolved in ``config.options``
    (:meth:`SOPPlusOptions.resolve`): ``strong_policy`` and ``strong_stats``, or where None the
    recipe's (authors: their AutoAugment magnitudes, and the CIFAR-10 constants on CIFAR-100 as
    their loader does; paper: torchvision's AutoAugment, the weak view's statistics).

    >>> from sopdeep.config import TrainConfig
    >>> strong_view_settings(TrainConfig(method="sop+", recipe="authors", lr_u=1.0, lr_v=10.0, dataset="cifar100"))
    ('autoaugment_authors', 'cifar10')
    """
    return config.options.strong_policy, config.options.strong_stats


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last if the (B, C, H, W) batch ``x`` is laid out so (the trainer's choice), else contiguous."""
    return torch.channels_last if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last) \
        else torch.contiguous_format


@dataclass(frozen=True)
class SOPPlusOptions(SOPOptions):
    """SOP's settings plus the regularisers' (appendix A.3; Table A.1: lambda_c 0.9, lambda_b 0.1)."""

    lambda_c: float = option(0.9, "weight of the consistency term KL(p(weak) || p(strong))", low=0.0)
    lambda_b: float = option(0.1, "weight of the class-balance term KL(prior || mean prediction)", low=0.0)
    strong_policy: str | None = option(None, "strong view's policy: autoaugment (torchvision's CIFAR-10 policy), "
                                             "randaugment, or autoaugment_authors (the same 25 sub-policies with "
                                             "the authors' magnitudes) (None: the recipe's: autoaugment_authors "
                                             "under authors, autoaugment under paper)",
                                       choices=("autoaugment", "randaugment", "autoaugment_authors"))
    strong_stats: str | None = option(None, "normalisation of the strong view: weak (the weak view's) or cifar10 "
                                            "(the CIFAR-10 constants, as the authors' CIFAR-100 loader does) (None: "
                                            "cifar10 under recipe authors on cifar100 / cifar100-png, else weak)",
                                      choices=("weak", "cifar10"))
    strong_backend: str = option("batched", "strong view as batched tensor ops on the device, each sample its own "
                                            "draws (batched), per sample on the host (torchvision, or PIL for "
                                            "autoaugment_authors: the reference), or kornia (one sub-policy per "
                                            "group)", choices=("batched", "torchvision", "kornia"))
    cutout: int = option(16, "Cutout side in pixels at 32x32 (scaled with the image size)", low=0)

    DERIVED = {**SOPOptions.DERIVED, "strong_policy": ("recipe",), "strong_stats": ("recipe", "dataset")}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.strong_policy is None:  # resolved here: it follows the recipe alone
            object.__setattr__(self, "strong_policy",
                               "autoaugment_authors" if self.recipe == "authors" else "autoaugment")
        if self.strong_policy == "autoaugment_authors" and self.strong_backend == "kornia":
            raise ValueError("strong_policy='autoaugment_authors' has no kornia form; use "
                             "strong_backend='batched' or 'torchvision'")

    def resolve(self, config) -> "SOPPlusOptions":
        """A copy with ``strong_stats`` resolved for ``config.dataset`` (called by TrainConfig):
        the CIFAR-10 constants under the authors' recipe on CIFAR-100 (their loader), else the
        weak view's statistics."""
        if self.strong_stats is not None:
            return self
        from sopdeep.datasets import dataset_spec

        cifar100 = dataset_spec(config.dataset).asymmetric == "cifar100"
        return replace(self, strong_stats="cifar10" if self.recipe == "authors" and cifar100 else "weak")


class SOPPlus(SOP):
    """SOP with the SOP+ regularisers; see the module docstring."""

    name = "sop+"
    summary = "SOP plus consistency and class-balance regularisers (appendix A.3)"
    Options = SOPPlusOptions

    def __init__(self, config, *, rank: int = 0) -> None:
        super().__init__(config, rank=rank)
        self.generator = torch.Generator().manual_seed(int(config.seed) * 1_000_003 + _STREAM + 7919 * rank)
        self.policy, self.stats = strong_view_settings(config)
        self._fill = None  # the Cutout fill per channel, read from the first batch (one host copy per run)
        self._stats = None  # the CIFAR-10 constants on the device, for strong_stats="cifar10"
        # batched and kornia: every draw of a pass made at once, after the epoch (the steps only gather rows)
        self._draws = None if self.options.strong_backend == "torchvision" else StrongViewDraws(
            self.generator, policy=self.policy if self.options.strong_backend == "batched" else "autoaugment")

    def state_dict(self):
        if self._draws is not None:
            return self._draws.state_dict()
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state):
        if self._draws is not None:
            self._draws.load_state_dict(state)
        else:
            self.generator.set_state(state["generator"].cpu())

    def end_of_epoch(self, predictions, state, lr):
        super().end_of_epoch(predictions, state, lr)
        if self._draws is not None:
            self._draws.next_pass()  # the next pass's strong-view draws, outside its steps

    def strong_view(self, batch) -> torch.Tensor:
        """Normalised strong view of ``batch.raw`` (same shape, dtype and layout as ``batch.images``).

        batched (the default): :func:`~sopdeep.augment.strong_view_batched`, the same view as the
        reference below with every sample's draws made once per pass
        (:class:`~sopdeep.augment.StrongViewDraws`) and the ops run as tensor ops over the whole
        batch (no host read, no per-image kernel). torchvision (``strong_backend="torchvision"``):
        the reference, :func:`~sopdeep.augment.strong_view_per_sample` (policy per sample, then crop
        + flip, then Cutout filled with the normalisation mean ``batch.mean``; the authors' PIL ops
        under ``autoaugment_authors``). kornia: crop + flip from the pass's draws, then
        :func:`~sopdeep.augment.strong_augment` (one sub-policy per group of the batch, Cutout
        filled with 0).
        """
        c = self.options
        side = min(batch.raw.shape[-2:])
        pad, cutout = max(1, round(4 * side / 32)), round(c.cutout * side / 32)
        with torch.autocast(batch.raw.device.type, enabled=False):  # augment in float32, outside AMP
            if c.strong_backend == "batched":
                self._draws.settings.update(pad=pad, cutout=cutout)  # scaled with the image size, fixed per run
                params = self._draws.rows(batch.indices, self._num_samples(batch), tuple(batch.raw.shape[-2:]))
                x = strong_view_batched(batch.raw, params, pad=pad, cutout=cutout, fill=self._fill_tensor(batch))
            elif c.strong_backend == "torchvision":
                x = strong_view_per_sample(batch.raw, generator=self.generator, policy=self.policy, pad=pad,
                                           cutout=cutout, fill=self._cutout_fill(batch))
            else:  # kornia: the crop and flip from the pass's draws, the policy kornia's own
                self._draws.settings.update(pad=pad, cutout=cutout)
                tail = self._draws.rows(batch.indices, self._num_samples(batch), tuple(batch.raw.shape[-2:]))[:, -5:]
                base = random_crop_flip(batch.raw, pad=pad, draws={"offsets": tail[:, :2].T.long(),
                                                                   "coins": tail[:, 2] > 0.5})
                x = strong_augment(base.float().div_(255.0), generator=self.generator, policy=self.policy,
                                   cutout=cutout, backend="kornia")
                x = x.mul_(255.0).round_().to(torch.uint8)
            if self.stats == "cifar10":  # the authors' CIFAR-100 loader: CIFAR-10 constants on the strong view
                mean, std = self._cifar10_stats(x.device)
                strong = ((x.float() - mean) / std).contiguous(memory_format=_memory_format(batch.images))
            else:  # uint8, so the trainer's own normalisation (and dtype / channels_last) applies
                strong = batch.normalize(x)
        return strong.to(dtype=batch.images.dtype)

    def _cifar10_stats(self, device):
        """The CIFAR-10 (mean, std) in pixels as (1, 3, 1, 1) tensors on ``device``, built once per
        run (not a host-to-device copy per step)."""
        if self._stats is None or self._stats[0].device != device:
            self._stats = tuple(torch.tensor(s, device=device).mul(255.0).view(1, -1, 1, 1) for s in _CIFAR10_STATS)
        return self._stats

    def init_state(self, num_samples, num_classes, generator, device):
        self._n = num_samples  # the pass's draws cover every sample
        return super().init_state(num_samples, num_classes, generator, device)

    def _num_samples(self, batch):
        return getattr(self, "_n", None) or int(batch.indices.max()) + 1  # without init_state: tests only

    def _fill_tensor(self, batch):
        """The Cutout fill of :meth:`_cutout_fill` as a uint8 tensor (C,) on the device, built once
        per run from device tensors (no host read)."""
        if getattr(self, "_fill_t", None) is None or self._fill_t.device != batch.raw.device:
            if self.stats == "cifar10":
                mean = self._cifar10_stats(batch.raw.device)[0].flatten()
            elif batch.mean is None:
                mean = torch.zeros(batch.raw.shape[1], device=batch.raw.device)
            else:
                mean = batch.mean.detach().flatten()
            self._fill_t = mean.clamp(0, 255).round().to(torch.uint8)
        return self._fill_t

    def _cutout_fill(self, batch):
        """The Cutout fill: the strong view's normalisation mean in pixels (the authors fill 0 after
        normalising), read once per run so that no step waits on a device-to-host copy."""
        if self._fill is None:
            if self.stats == "cifar10":
                self._fill = [255.0 * m for m in _CIFAR10_STATS[0]]
            else:
                self._fill = 0 if batch.mean is None else batch.mean.detach().flatten().cpu().clamp(0, 255).tolist()
        return self._fill

    def batch_loss(self, model, batch, state):
        c = self.options
        b = batch.images.shape[0]
        if c.lambda_c > 0:
            # in the trainer's layout whatever the strong view's (cat of mixed layouts gives NCHW)
            both = torch.cat([batch.images, self.strong_view(batch)]).contiguous(
                memory_format=_memory_format(batch.images))
            logits_all = model(both)
            logits, logits_s = logits_all[:b], logits_all[b:]
        else:
            logits, logits_s = model(batch.images), None
        terms, u_rows, v_rows = self.batch_terms(logits, batch, state)
        # the authors' recipe balances the corrected prediction φ(softmax(z) + s), A.3 the network's
        balance_probs = terms.corrected if c.recipe == "authors" else None
        penalty, logged = sop_plus_penalty(logits, logits_s, lambda_c=c.lambda_c, lambda_b=c.lambda_b,
                                           balance_probs=balance_probs)
        loss = terms.ce.mean() + terms.mse.mean() + penalty
        logged = {"ce": terms.ce.detach().mean(), "mse": terms.mse.detach().mean(), **logged}
        return StepOutput(loss=loss, logits=logits, terms=logged, ctx={"u_rows": u_rows, "v_rows": v_rows})
