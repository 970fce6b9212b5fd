"""One ``random_state`` resolver for both packages (scikit-learn's convention)."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_random_state"]


def check_random_state(random_state):
    """Resolve ``random_state`` (None, int, SeedSequence or Generator) into a numpy Generator.

    A Generator is returned as is (not copied); ``bool`` is refused (``True`` is not a seed).
    """
    if random_state is None or (
        isinstance(random_state, (numbers.Integral, np.integer)) and not isinstance(random_state, bool)
    ):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.SeedSequence):
        return np.random.default_rng(random_state)
    raise ValueError(
        f"random_state must be None, an int, a SeedSequence or a numpy Generator, got {random_state!r}"
    )
