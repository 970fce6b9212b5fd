"""The random draws of an epoch, in the order that makes a resumed run bit-identical.

Epoch ``e`` (0-based) of a run with seed ``s`` draws everything from one CPU generator seeded with
``s * 1_000_003 + e``, in this order: the data order (a permutation of the N samples), then the weak
view's crop offsets and flip coins of all N samples (:func:`sopdeep.augment.crop_flip_draws`). A
resumed run draws epoch ``e`` from the same seed, so nothing about earlier epochs needs saving; a
change of this order changes every run's numbers (``tests/deep/test_trainer.py`` holds it).
"""

from __future__ import annotations

import torch

from sopdeep.augment import crop_flip_draws

__all__ = ["epoch_generator", "epoch_draws"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of epoch ``epoch`` (0-based) of a run seeded with ``seed``."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def epoch_draws(seed: int, epoch: int, n: int, *, pad: int, weak_view: bool, device
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """(order, draws) of epoch ``epoch``: the permutation of the ``n`` samples and the weak view's
    offsets and coins of every sample (None without a weak view), copied to ``device`` once, so a
    step only indexes them (no host-to-device copy that would wait on the device).

    >>> order, draws = epoch_draws(0, 0, 4, pad=2, weak_view=True, device="cpu")
    >>> sorted(order.tolist()), sorted(draws)
    ([0, 1, 2, 3], ['coins', 'offsets'])
    """
    gen = epoch_generator(seed, epoch)
    order = torch.randperm(n, generator=gen).to(device)  # first: the order
    draws = crop_flip_draws(n, generator=gen, pad=pad, device=device) if weak_view else None  # then the view
    return order, draws
