"""The learning rate of θ per global step: multistep, cosine (per step or per epoch), triangle, constant."""

from __future__ import annotations

import math

from sopdeep.config import TrainConfig

__all__ = ["learning_rate"]


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """θ learning rate τ_t at global step ``step`` (0-based).

    multistep: ``lr * lr_decay ** (number of milestones <= epoch)``, ``epoch = step //
    steps_per_epoch`` (``MultiStepLR`` stepped per epoch); cosine: ``lr/2 * (1 + cos(π t / T))``,
    ``T`` the total number of steps; cosine_epoch: ``lr_min + (lr - lr_min)/2 * (1 + cos(π e / E))``,
    ``e`` the epoch, ``E`` = epochs; triangle: linear from ``lr_start`` at step 0 to ``lr`` at step
    ``warmup_fraction * T``, then linear to ``lr_min`` at step ``T`` (airbench's shape); constant:
    ``lr``.

    >>> learning_rate(TrainConfig(lr=0.1, milestones=[1]), step=5, steps_per_epoch=4)
    0.010000000000000002
    """
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "multistep":
        epoch = step // steps_per_epoch
        return config.lr * config.lr_decay ** sum(m <= epoch for m in config.milestones)
    if config.schedule == "cosine_epoch":
        epoch = step // steps_per_epoch
        return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1.0 + math.cos(math.pi * epoch / config.epochs))
    total = config.epochs * steps_per_epoch
    if config.schedule == "triangle":
        peak = config.warmup_fraction * total
        if step < peak:
            return config.lr_start + (config.lr - config.lr_start) * step / peak
        return config.lr + (config.lr_min - config.lr) * (step - peak) / max(total - peak, 1.0)
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total))
