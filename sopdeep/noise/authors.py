"""The authors' noise generators (``shengliu66/SOP`` at 4d991ce, ``data_loader/cifar10.py`` and
``cifar100.py``), which produced the paper's tables and differ from :mod:`sopdeep.noise.synthetic`.

``"sym-authors"`` draws the new label from all K classes for the first ``ceil(rate * N)`` of a
random permutation (realised about ``rate * (K - 1) / K``); ``"asym-authors"`` on CIFAR-10 flips
class by class on the already flipped labels (about 18.4% overall at "40%"), on CIFAR-100 swaps two
random classes inside each block of 5 consecutive class indices (about 16% at "40%").
"""

from __future__ import annotations

import math

import numpy as np

from sopcommon import check_random_state
from sopdeep.noise.labels import NoisyLabels, check_rate, dataset_name, resolve, seed_param
from sopdeep.noise.synthetic import CIFAR10_ASYMMETRIC_MAP, asymmetric_family, redraw

__all__ = ["symmetric_noise_authors", "asymmetric_noise_authors"]


def _authors_count(rate, n):
    """``#{i in 0..n-1 : i < rate * n}``: how many the authors' ``if i < percent * len(...)`` loops take."""
    return min(n, math.ceil(rate * n))


def symmetric_noise_authors(labels, rate, *, num_classes=None, dataset=None, random_state=None):
    """Symmetric noise as the authors' code generates it (``symmetric_noise`` of their CIFAR loaders).

    The first ``m = ceil(rate * N)`` samples of a uniform random permutation get a label drawn
    uniformly from **all** K classes (the true one included), so about ``m / K`` of them keep their
    label and the realised rate is about ``rate * (K - 1) / K`` (CIFAR-10: 45% at rate 0.5, 72% at
    0.8). It is the A.2 variant of :func:`symmetric_noise` up to the count (ceil, not round).

    Parameters
    ----------
    labels : array-like of shape (N,), int
    rate : float in [0, 1]
        The authors' ``percent``.
    num_classes, dataset
        As :func:`symmetric_noise`.
    random_state : None, int, SeedSequence or numpy Generator
        Replaces the authors' global numpy seed.

    Returns
    -------
    NoisyLabels
        ``kind="sym-authors"``; ``realised_rate`` is the fraction actually changed.

    Examples
    --------
    >>> import numpy as np
    >>> res = symmetric_noise_authors(np.arange(10_000) % 10, 0.5, random_state=0)
    >>> 0.43 < res.realised_rate < 0.47
    True
    """
    y, k = resolve(labels, num_classes, dataset)
    rate = check_rate(rate)
    noisy = redraw(y, k, _authors_count(rate, y.shape[0]), True, check_random_state(random_state))
    return NoisyLabels(noisy, y, k, "sym-authors", {"rate": rate, "seed": seed_param(random_state)})


def asymmetric_noise_authors(labels, rate=0.4, *, dataset, random_state=None):
    """Asymmetric noise as the authors' code generates it (``asymmetric_noise`` of their loaders).

    * CIFAR-10 (and its JPEG export): for c = 0, 1, ..., 9 in turn, the first ``ceil(rate * n_c)``
      of a random permutation of the samples *currently labelled* c are relabelled by
      :data:`CIFAR10_ASYMMETRIC_MAP`. Class 3 (cat) is flipped to dog before class 5 (dog) is
      processed, so 40% of the enlarged dog class (original dogs plus flipped cats) goes to cat,
      which sends some flipped cats back: at rate 0.4 on balanced data cat ends about 24% noisy,
      dog 40%, about 18.4% overall (Notes).
    * CIFAR-100: in each block ``5b .. 5b+4`` of consecutive class indices two distinct classes are
      drawn uniformly and swapped, each sample of the two independently with probability ``rate``
      (their ``multiclass_noisify`` with a 5 x 5 transition block). At 0.4: about 16% overall, 40
      classes touched. The blocks are not CIFAR-100's super-classes (fine labels are alphabetical).

    Parameters
    ----------
    labels : array-like of shape (N,), int
    rate : float in [0, 1], default 0.4
    dataset : str
        "cifar10", "cifar10-jpeg", "cifar100" or "cifar100-png" (any alias of :func:`sopdeep.datasets.load_dataset`);
        other datasets have no class map and are refused.
    random_state : None, int, SeedSequence or numpy Generator
        One seed for everything (the authors seed the CIFAR-100 flips with a fixed 0 and the class
        pairs with the global numpy seed).

    Returns
    -------
    NoisyLabels
        ``kind="asym-authors"``.

    Notes
    -----
    CIFAR-10 with ``n`` samples per class and rate ρ: ρn cats go to dog; dog then holds
    ``(1 + ρ) n`` samples of which ``ρ(1 + ρ) n`` go to cat, a fraction ``ρ / (1 + ρ)`` of them
    flipped cats; so ``ρ² n`` cats return and cat ends with ``ρ(1 - ρ) n`` noisy labels (24% at ρ =
    0.4), dog with ``ρ n``; overall ``(4ρ + ρ(1 - ρ)) / 10`` = 18.4%.
    """
    family = asymmetric_family(dataset)
    y, k = resolve(labels, None, dataset)
    rate = check_rate(rate)
    rng = check_random_state(random_state)
    noisy = y.copy()
    if family == "cifar10":
        for c in range(k):
            if c not in CIFAR10_ASYMMETRIC_MAP:
                continue
            members = np.flatnonzero(noisy == c)
            chosen = rng.choice(members, size=_authors_count(rate, members.size), replace=False)
            noisy[chosen] = CIFAR10_ASYMMETRIC_MAP[c]
    else:
        flip = rng.random(y.shape[0]) < rate  # one coin per sample: the blocks' classes are disjoint
        for start in range(0, k, 5):
            a, b = start + rng.choice(5, size=2, replace=False)
            noisy[flip & (y == a)] = b
            noisy[flip & (y == b)] = a
    return NoisyLabels(noisy, y, k, "asym-authors", {"rate": rate, "seed": seed_param(random_state),
                                                     "dataset": dataset_name(dataset)})
