"""Synthetic label noise (Liu et al., ICML 2022, Table 1 and appendix A.2): symmetric and asymmetric.

* **symmetric**: exactly ``round(rate * N)`` samples, chosen uniformly without replacement, get a
  label drawn uniformly from the K - 1 other classes (or, ``include_true_class=True``, A.2's variant,
  from all K classes);
* **asymmetric** (A.2, following Patrini et al. 2017): the class map of the dataset's entry in
  :data:`sopdeep.datasets.DATASETS` (``asymmetric``): CIFAR-10 TRUCK->AUTOMOBILE, BIRD->AIRPLANE,
  DEER->HORSE, CAT<->DOG; CIFAR-100 each class to the next one of its super-class, circularly;
  exactly ``round(rate * n_c)`` samples of each source class are flipped.
"""

from __future__ import annotations

import numpy as np

from sopcommon import check_random_state
from sopdeep.datasets import DATASETS
from sopdeep.noise.labels import NoisyLabels, check_labels, check_rate, dataset_name, resolve, seed_param

__all__ = ["CIFAR10_ASYMMETRIC_MAP", "CIFAR100_FINE_TO_COARSE", "no_noise", "symmetric_noise", "asymmetric_noise",
           "cifar100_asymmetric_map", "asymmetric_datasets"]

#: CIFAR-10 asymmetric flips (A.2): source class -> target class.
#: truck(9)->automobile(1), bird(2)->airplane(0), deer(4)->horse(7), cat(3)->dog(5), dog(5)->cat(3).
CIFAR10_ASYMMETRIC_MAP = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

#: The standard CIFAR-100 fine -> coarse (super-class) map, in fine-label order; each of the 20
#: super-classes holds 5 fine classes. Tested against the coarse labels of the real files.
CIFAR100_FINE_TO_COARSE = np.array([
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
], dtype=np.int64)
CIFAR100_FINE_TO_COARSE.flags.writeable = False



def no_noise(labels, *, num_classes=None, dataset=None):
    """The clean labels as a :class:`NoisyLabels` of kind "none" (realised rate 0)."""
    y, k = resolve(labels, num_classes, dataset)
    return NoisyLabels(y, y, k, "none", {})


def symmetric_noise(labels, rate, *, num_classes=None, dataset=None, include_true_class=False, random_state=None):
    """Symmetric label noise.

    Exactly ``m = round(rate * N)`` positions are chosen uniformly without replacement. Each chosen
    label y becomes

    * (default, Table 1) ``(y + r) mod K`` with r uniform on {1, ..., K-1}, i.e. uniform over the
      other K - 1 classes: the realised rate is exactly m / N;
    * (``include_true_class=True``, appendix A.2: "random one-hot vector with probability rate")
      uniform over all K classes: about m / K chosen labels stay put, so the realised rate is about
      ``rate * (K - 1) / K``.

    Parameters
    ----------
    labels : array-like of shape (N,), int
        Clean labels in ``[0, num_classes)``.
    rate : float in [0, 1]
        The noise level rho.
    num_classes : int, optional
        K (>= 2); default that of ``dataset``, else ``max(labels) + 1``; another value is refused
        (:mod:`sopdeep.noise.labels`, "Which classes exist").
    dataset : str, optional
        A dataset name of :data:`sopdeep.datasets.DATASETS`; fixes K for CIFAR-10,
        CIFAR-100 and Fashion-MNIST.
    include_true_class : bool, default False
        Use the A.2 variant (draw from all K classes).
    random_state : None, int, SeedSequence or numpy Generator
        Seed; equal seeds give equal noise.

    Returns
    -------
    NoisyLabels
        ``kind="sym"`` (or ``"sym-all"`` for the A.2 variant).
    """
    y, k = resolve(labels, num_classes, dataset)
    rate = check_rate(rate)
    noisy = redraw(y, k, int(round(rate * y.shape[0])), include_true_class, check_random_state(random_state))
    kind = "sym-all" if include_true_class else "sym"
    return NoisyLabels(noisy, y, k, kind, {"rate": rate, "seed": seed_param(random_state)})


def redraw(y, k, m, include_true_class, rng):
    """``m`` positions chosen uniformly without replacement get a uniform label (of all K or the others)."""
    pos = rng.choice(y.shape[0], size=m, replace=False)
    noisy = y.copy()
    if include_true_class:
        noisy[pos] = rng.integers(0, k, size=m)
    else:
        noisy[pos] = (y[pos] + rng.integers(1, k, size=m)) % k
    return noisy


def asymmetric_datasets():
    """Canonical dataset names with an asymmetric class map -> the map's family ("cifar10" / "cifar100")."""
    return {name: spec.asymmetric for name, spec in DATASETS.items() if spec.asymmetric is not None}


def asymmetric_family(dataset):
    name = dataset_name(dataset)
    family = None if name is None else DATASETS[name].asymmetric
    if family is None:
        raise ValueError(f"asymmetric noise needs a class map, and dataset={dataset!r} has none (defined for "
                         f"{sorted(asymmetric_datasets())}); pass mapping= to asymmetric_noise for other data")
    return family


def cifar100_asymmetric_map(fine_to_coarse=None):
    """The CIFAR-100 asymmetric flip: each fine class -> the next fine class of its super-class.

    Within each super-class the fine classes are taken in increasing label order and mapped
    circularly (the last one to the first).

    Parameters
    ----------
    fine_to_coarse : array-like of shape (100,), optional
        Super-class of each fine class; default :data:`CIFAR100_FINE_TO_COARSE` (or pass the map
        read from the dataset with :func:`sopdeep.datasets.load_cifar100_coarse_labels`).

    Returns
    -------
    ndarray of shape (100,), int64
        ``target[f]`` for every fine class f; a permutation with no fixed point when every
        super-class has >= 2 fine classes.
    """
    f2c = CIFAR100_FINE_TO_COARSE if fine_to_coarse is None else check_labels(fine_to_coarse, "fine_to_coarse")
    if f2c.shape != (100,):
        raise ValueError(f"fine_to_coarse must have shape (100,), got {f2c.shape}")
    target = np.arange(100, dtype=np.int64)
    for c in np.unique(f2c):
        members = np.flatnonzero(f2c == c)
        target[members] = np.roll(members, -1)
    return target


def asymmetric_noise(labels, rate=0.4, *, dataset="cifar10", mapping=None, fine_to_coarse=None, num_classes=None,
                     per_sample=False, random_state=None):
    """Asymmetric (class-dependent) label noise, appendix A.2.

    For each source class c of the map, exactly ``round(rate * n_c)`` of its ``n_c`` samples, chosen
    uniformly without replacement, are relabelled ``mapping[c]``; all other labels are kept. With
    ``per_sample=True`` each sample of a source class is instead flipped independently with
    probability ``rate`` (the realised rate is then Binomial around ``rate``).

    Parameters
    ----------
    labels : array-like of shape (N,), int
        Clean labels.
    rate : float in [0, 1], default 0.4
        The flip probability within each source class (the paper uses 40%).
    dataset : str or None, default "cifar10"
        A dataset name of :func:`sopdeep.datasets.load_dataset` (aliases allowed). Without ``mapping``
        it selects the standard map: :data:`CIFAR10_ASYMMETRIC_MAP` for "cifar10" / "cifar10-jpeg"
        (truck->automobile, bird->airplane, deer->horse, cat<->dog) or
        :func:`cifar100_asymmetric_map` for "cifar100" / "cifar100-png" (next class within the super-class); any
        other dataset has no map and is refused (ValueError). It also fixes K (:mod:`sopdeep.noise.labels`).
    mapping : dict {int: int} or array-like of shape (K,), optional
        A custom map source -> target (array entries equal to their index are not sources);
        ``dataset`` is then ignored and K is ``max(labels) + 1``.
    fine_to_coarse : array-like of shape (100,), optional
        For ``dataset="cifar100"``: the super-class of each fine class, e.g. read from the dataset
        with :func:`sopdeep.datasets.load_cifar100_coarse_labels`; default :data:`CIFAR100_FINE_TO_COARSE`.
    num_classes : int, optional
        K; default that of ``dataset`` (10 / 100 for the standard maps), else ``max(labels) + 1``.
    per_sample : bool, default False
        Independent Bernoulli(rate) flips instead of an exact count per source class.
    random_state : None, int, SeedSequence or numpy Generator

    Returns
    -------
    NoisyLabels
        ``kind="asym"``.
    """
    if mapping is None:
        family = asymmetric_family(dataset)
        if fine_to_coarse is not None and family != "cifar100":
            raise ValueError("fine_to_coarse is only used with dataset='cifar100' and no mapping")
        mapping = dict(CIFAR10_ASYMMETRIC_MAP) if family == "cifar10" else cifar100_asymmetric_map(fine_to_coarse)
        y, k = resolve(labels, num_classes, dataset)
    else:
        if fine_to_coarse is not None:
            raise ValueError("fine_to_coarse is only used with dataset='cifar100' and no mapping")
        y, k = resolve(labels, num_classes)  # a custom map: the labels define the classes
    if isinstance(mapping, dict):
        pairs = {int(s): int(t) for s, t in mapping.items()}
    else:
        arr = check_labels(mapping, "mapping", k)
        if arr.shape != (k,):
            raise ValueError(f"mapping must have shape ({k},), got {arr.shape}")
        pairs = {s: int(t) for s, t in enumerate(arr) if t != s}
    for s, t in pairs.items():
        if not (0 <= s < k and 0 <= t < k):
            raise ValueError(f"mapping entries must lie in [0, {k}), got {s} -> {t}")
    rate = check_rate(rate)
    rng = check_random_state(random_state)
    noisy = y.copy()
    if per_sample:
        flip = rng.random(y.shape[0]) < rate
        for s in sorted(pairs):
            noisy[flip & (y == s)] = pairs[s]
    else:
        for s in sorted(pairs):
            members = np.flatnonzero(y == s)
            m = int(round(rate * members.size))
            noisy[rng.choice(members, size=m, replace=False)] = pairs[s]
    return NoisyLabels(noisy, y, k, "asym", {"rate": rate, "seed": seed_param(random_state), "per_sample": per_sample,
                                             "mapping": {int(s): int(t) for s, t in pairs.items()}})
