"""Step hooks: the pieces of a training recipe that act at fixed points of every step.

The trainer's loop (:func:`sopdeep.training.train_one_epoch`) does what every run does: order,
weak view, forward, backward, θ step, u/v step, bookkeeping. A recipe adds to it through
:class:`StepHook` objects, built once per run by :func:`sopdeep.training.setup.build_hooks`
from the config and the network (a network can bring its own hooks: ``model.training_hooks(config)``,
as :class:`sopdeep.fast_net.FastNet` does for its frozen stem bias). The loop calls, in this order,

* :meth:`StepHook.epoch_draws` once per epoch, on the weak view's draws of all N samples;
* :meth:`StepHook.before_optimizer_step` after the backward pass, before θ steps;
* :meth:`StepHook.after_optimizer_step` after θ (and u, v) stepped.

A hook that carries state across a resume (the lookahead's slow copy) returns it from
:meth:`StepHook.state_dict`; the checkpoint stores it under the hook's ``name``.

>>> [type(h).__name__ for h in (Lookahead(torch.nn.Linear(1, 1), every=5), FrozenParameters([], from_epoch=3))]
['Lookahead', 'FrozenParameters']
"""

from __future__ import annotations

from typing import Callable

import torch

from sopdeep.lookahead import init_lookahead, lookahead_decay, lookahead_step_

__all__ = ["StepHook", "Lookahead", "FrozenParameters", "AlternatingFlip"]


class StepHook:
    """Base class: every callback does nothing. Subclasses set ``name`` (unique in a run)."""

    name = ""

    def epoch_draws(self, epoch: int, draws: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
        """The weak view's draws of epoch ``epoch`` (0-based; ``offsets``, ``coins``; None when
        the run has no weak view), possibly changed."""
        return draws

    def before_optimizer_step(self, epoch: int) -> None:
        """Gradients of θ are computed; θ has not stepped yet."""

    def after_optimizer_step(self, steps_done: int, total_steps: int) -> None:
        """θ stepped; ``steps_done`` steps of the run's ``total_steps`` are done."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""


class Lookahead(StepHook):
    """airbench's lookahead (:mod:`sopdeep.lookahead`): every ``every`` steps the slow copy moves
    toward the network and the network restarts from it; the run ends on the slow copy."""

    name = "lookahead"

    def __init__(self, model: torch.nn.Module, every: int) -> None:
        self.model, self.every = model, every
        self.slow = init_lookahead(model)

    def after_optimizer_step(self, steps_done: int, total_steps: int) -> None:
        if steps_done % self.every == 0:
            lookahead_step_(self.slow, self.model, lookahead_decay(steps_done, total_steps, self.every))
        if steps_done == total_steps:  # the last step: the network becomes the slow copy
            lookahead_step_(self.slow, self.model, 1.0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {key: value.detach().cpu() for key, value in self.slow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.slow):
            raise ValueError("the checkpoint holds no lookahead copy of this network: it was written by a run "
                             "with another lookahead setting")
        for key, value in self.slow.items():
            value.copy_(state[key].to(value.device))


class FrozenParameters(StepHook):
    """``params`` train for ``from_epoch`` epochs, then stop: their gradient is dropped before each
    θ step, so SGD skips them (no decay, no momentum)."""

    name = "frozen_parameters"

    def __init__(self, params: list[torch.nn.Parameter], *, from_epoch: int) -> None:
        self.params, self.from_epoch = list(params), from_epoch

    def before_optimizer_step(self, epoch: int) -> None:
        if epoch >= self.from_epoch:
            for p in self.params:
                p.grad = None


class AlternatingFlip(StepHook):
    """airbench's alternating flip: epoch 1's coins, every image mirrored again on each even epoch.

    ``first_coins`` gives epoch 1's coins (N,) bool on the run's device: they are a draw of the
    run's first epoch, which only the trainer knows how to repeat (:func:`sopdeep.training.draws.weak_view_draws`).
    """

    name = "alternating_flip"

    def __init__(self, first_coins: Callable[[], torch.Tensor]) -> None:
        self._first_coins = first_coins
        self._coins: torch.Tensor | None = None

    def epoch_draws(self, epoch, draws):
        if draws is None:
            return None
        if self._coins is None:
            self._coins = self._first_coins()
        return {**draws, "coins": self._coins ^ bool(epoch % 2)}
