"""The expected noise transition matrix of each synthetic noise kind: ``T[i, j] = P(noisy = j |
clean = i)``, derived from the generators' definitions (Forward correction's "known" matrix). Each
function here is the ``transition`` of its kind's entry in :data:`sopdeep.noise.NOISE_KINDS`;
:func:`sopdeep.noise.transition_matrix` dispatches by name.

The generators fix *counts* (``round(rate * N)`` chosen samples, ``round(rate * n_c)`` per source
class, the authors' ``ceil``), so a realised matrix differs from this one by the count's rounding
(at most 1/N, 1/n_c) and by the sampling of which samples are chosen; the tests compare both on a
large draw within the binomial standard error.
"""

from __future__ import annotations

import numbers

import numpy as np

from sopdeep.noise.labels import check_rate
from sopdeep.noise.synthetic import CIFAR10_ASYMMETRIC_MAP, asymmetric_family, cifar100_asymmetric_map

__all__ = ["no_noise_transition", "symmetric_transition", "symmetric_all_transition", "asymmetric_transition",
           "asymmetric_authors_transition"]


def _checked(rate, num_classes):
    """(K, rate) validated: K an integer >= 2, rate in [0, 1]."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return int(num_classes), check_rate(rate)


def no_noise_transition(rate, num_classes, dataset=None):
    """"none": the identity (K, K).

    >>> no_noise_transition(0.4, 2)
    array([[1., 0.],
           [0., 1.]])
    """
    k, _ = _checked(rate, num_classes)
    return np.eye(k)


def symmetric_transition(rate, num_classes, dataset=None):
    """"sym": the chosen fraction r moves uniformly to the K - 1 other classes,
    :math:`T = (1 - r) I + \\tfrac{r}{K - 1} (J - I)`.

    >>> symmetric_transition(0.4, 3).round(2)
    array([[0.6, 0.2, 0.2],
           [0.2, 0.6, 0.2],
           [0.2, 0.2, 0.6]])
    """
    k, r = _checked(rate, num_classes)
    eye = np.eye(k)
    return (1.0 - r) * eye + r / (k - 1) * (1.0 - eye)


def symmetric_all_transition(rate, num_classes, dataset=None):
    """"sym-all" and "sym-authors": the chosen fraction r is redrawn from all K classes, so r / K of
    it lands home, :math:`T = (1 - r) I + \\tfrac{r}{K} J` (the authors' count is ``ceil``, not
    ``round``: at most 1/N apart).

    >>> symmetric_all_transition(0.4, 2).round(2)
    array([[0.8, 0.2],
           [0.2, 0.8]])
    """
    k, r = _checked(rate, num_classes)
    return (1.0 - r) * np.eye(k) + r / k


def _class_map(num_classes, dataset):
    """The dataset's asymmetric class map {source: target} and its family; K must be the map's."""
    family = asymmetric_family(dataset)  # ValueError for a dataset without a class map
    size = 10 if family == "cifar10" else 100
    if num_classes != size:
        raise ValueError(f"num_classes must be {size} for dataset {dataset!r}, got {num_classes}")
    mapping = CIFAR10_ASYMMETRIC_MAP if family == "cifar10" else dict(enumerate(cifar100_asymmetric_map()))
    return mapping, family


def asymmetric_transition(rate, num_classes, dataset):
    """"asym": ``T[s, s] = 1 - r``, ``T[s, m(s)] = r`` for every source class s of the dataset's
    class map m (CIFAR-10: truck->automobile, bird->airplane, deer->horse, cat<->dog; CIFAR-100: the
    next class of the super-class); other rows are the identity's.

    >>> asymmetric_transition(0.4, 10, "cifar10")[3].round(2)  # cat: 40 % to dog
    array([0. , 0. , 0. , 0.6, 0. , 0.4, 0. , 0. , 0. , 0. ])
    """
    k, r = _checked(rate, num_classes)
    mapping, _ = _class_map(k, dataset)
    t = np.eye(k)
    for s, target in mapping.items():
        t[s, s], t[s, target] = 1.0 - r, r
    return t


def asymmetric_authors_transition(rate, num_classes, dataset):
    """"asym-authors" on CIFAR-10: as "asym", but cat -> dog runs before dog -> cat on the already
    flipped labels, which sends a fraction r of the flipped cats back: ``T[cat, dog] = r (1 - r)``,
    ``T[cat, cat] = 1 - r (1 - r)`` (the Notes of :func:`sopdeep.noise.asymmetric_noise_authors`).
    On CIFAR-100 the authors swap two *randomly drawn* classes per block: no known matrix
    (``ValueError`` naming Forward's ``forward_matrix="estimated"``).

    >>> asymmetric_authors_transition(0.4, 10, "cifar10")[3, [3, 5]].round(2)
    array([0.76, 0.24])
    """
    k, r = _checked(rate, num_classes)
    _, family = _class_map(k, dataset)
    if family == "cifar100":
        raise ValueError("noise kind 'asym-authors' on CIFAR-100 swaps randomly drawn classes (no known transition "
                         "matrix); use forward_matrix='estimated'")
    t = asymmetric_transition(r, k, dataset)
    t[3, 5], t[3, 3] = r * (1.0 - r), 1.0 - r * (1.0 - r)  # cat (3), dog (5)
    return t
