"""Label noise: synthetic (symmetric, asymmetric) and real human noise (CIFAR-N).

Every generator is reproducible from ``random_state`` and returns a :class:`NoisyLabels` holding the
noisy labels, the clean labels (kept for evaluation), the mask of corrupted samples and the realised
noise rate. Definitions follow Liu et al. (ICML 2022), Table 1 and appendix A.2:

* **symmetric** (Table 1: "labels ... randomly flipped uniformly to another class"): exactly
  ``round(rate * N)`` samples, chosen uniformly without replacement, get a label drawn uniformly from
  the K - 1 *other* classes, so the realised rate is exactly ``round(rate * N) / N``. With
  ``include_true_class=True`` the appendix A.2 variant is used instead: the chosen samples get "a
  random one-hot vector", i.e. a label drawn uniformly from all K classes, so about 1/K of them keep
  their label and the realised rate is about ``rate * (K - 1) / K``.
* **asymmetric** (A.2, following Patrini et al. 2017): CIFAR-10 TRUCK->AUTOMOBILE, BIRD->AIRPLANE,
  DEER->HORSE, CAT<->DOG; CIFAR-100 each class to the next one of its super-class, circularly. In
  every source class exactly ``round(rate * n_c)`` of its ``n_c`` samples, chosen uniformly, are
  flipped (the per-class count of the authors' reference code), so the rate within each source class
  is exact.
* **the authors' generators** (``shengliu66/SOP`` at 4d991ce, ``data_loader/cifar10.py`` and
  ``cifar100.py``), which produced the paper's tables and differ from the definitions above:
  ``"sym-authors"`` draws the new label from all K classes for the first ``ceil(rate * N)`` of a
  random permutation (realised about ``rate * (K - 1) / K``: 45% at "50%", 72% at "80%" on
  CIFAR-10); ``"asym-authors"`` on CIFAR-10 flips class by class, 0 to 9, on the *already flipped*
  labels, so dog -> cat also moves cats that were just flipped to dog back (cat about 24%, about
  18.4% overall at "40%"); on CIFAR-100 it swaps two random classes inside each block of 5
  consecutive class indices, each sample of the two with probability ``rate`` (about 16% overall at
  "40%", 40 classes touched; the blocks are not the super-classes).
* **CIFAR-N** (Wei et al., ICLR 2022): the human labels of CIFAR-10N (aggregate, random1..3, worst)
  and CIFAR-100N (noisy), read from the ``.pt`` label files with a restricted unpickler that admits
  only numpy's array globals, so a tampered file cannot run code.

Which classes exist
-------------------
Noise may only move a label to a class of the data. The labels show the classes 0 .. max(labels);
``dataset``, when it names a dataset with fixed classes (:data:`sopdeep.data.DATASET_NUM_CLASSES`:
CIFAR-10 and its JPEG export, Fashion-MNIST 10, CIFAR-100 100), adds that its K classes exist even
if a subset misses the top ones. So K must be ``max(labels) + 1`` or the dataset's K (the default is
the larger); any other ``num_classes`` is refused: ``symmetric_noise(labels_in_0_to_9, 0.4,
num_classes=100)`` would put 40% of the labels in 90 classes that no sample has. ("npz",
"imagefolder" and "synthetic" do not fix K: their labels are the evidence.)
"""

from __future__ import annotations

import math
import numbers
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sopcommon import check_random_state

from ._safepickle import load_torch_zip_pickle
from .data import DATASET_NUM_CLASSES, canonical_dataset_name

__all__ = [
    "NoisyLabels",
    "NOISE_KINDS",
    "CIFAR10_ASYMMETRIC_MAP",
    "CIFAR100_FINE_TO_COARSE",
    "CIFAR10N_LABELS",
    "CIFAR100N_LABELS",
    "check_random_state",
    "no_noise",
    "symmetric_noise",
    "asymmetric_noise",
    "symmetric_noise_authors",
    "asymmetric_noise_authors",
    "ASYMMETRIC_DATASETS",
    "cifar100_asymmetric_map",
    "read_cifar_n",
    "load_cifar_n",
    "make_noisy_labels",
]

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

#: CIFAR-10N label sets: our name -> key in ``CIFAR-10_human.pt``.
CIFAR10N_LABELS = {
    "aggregate": "aggre_label",
    "random1": "random_label1",
    "random2": "random_label2",
    "random3": "random_label3",
    "worst": "worse_label",
}
#: CIFAR-100N label sets: our name -> key in ``CIFAR-100_human.pt``.
CIFAR100N_LABELS = {"noisy": "noisy_label"}

#: Kinds accepted by :func:`make_noisy_labels` (aliases: "clean", "symmetric", "asymmetric",
#: "symmetric_authors", "asymmetric_authors").
NOISE_KINDS = ("none", "sym", "sym-all", "asym", "sym-authors", "asym-authors", "cifar10n", "cifar100n")
_KIND_ALIASES = {"clean": "none", "symmetric": "sym", "asymmetric": "asym", "symmetric_authors": "sym-authors",
                 "asymmetric_authors": "asym-authors"}
#: Datasets (canonical names of :func:`sopdeep.data.canonical_dataset_name`) with an asymmetric class map.
ASYMMETRIC_DATASETS = {"cifar10": "cifar10", "cifar10-jpeg": "cifar10", "cifar100": "cifar100"}
#: Dataset names accepted by the noise generators: those of :func:`sopdeep.data.load_dataset` plus
#: the in-memory "synthetic" set.
_EXTRA_DATASETS = ("synthetic",)


@dataclass(frozen=True, eq=False)
class NoisyLabels:
    """Noisy training labels together with the clean ones.

    Attributes
    ----------
    noisy_labels : ndarray of shape (N,), int64
        The labels to train on.
    clean_labels : ndarray of shape (N,), int64
        The ground truth, for evaluation only.
    num_classes : int
        K.
    kind : str
        E.g. ``"none"``, ``"sym"``, ``"sym-all"``, ``"asym"``, ``"cifar10n-worst"``, ``"cifar100n-noisy"``.
    params : dict
        The generator's settings (rate, seed, ...), for logging.

    Derived: ``is_noisy`` (mask ``noisy != clean``), ``realised_rate`` (its mean), ``n_noisy`` and
    :meth:`transition` (the empirical K x K noise transition matrix).
    """

    noisy_labels: np.ndarray
    clean_labels: np.ndarray
    num_classes: int
    kind: str
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        k = _check_num_classes(self.num_classes)
        noisy = _check_labels(self.noisy_labels, "noisy_labels", k)
        clean = _check_labels(self.clean_labels, "clean_labels", k)
        if noisy.shape != clean.shape:
            raise ValueError(f"noisy_labels and clean_labels must have the same shape, got {noisy.shape} and {clean.shape}")
        for name, arr in (("noisy_labels", noisy), ("clean_labels", clean)):
            arr = arr.copy()
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "num_classes", k)
        object.__setattr__(self, "params", dict(self.params))

    @property
    def is_noisy(self):
        """ndarray of shape (N,), bool: ``noisy_labels != clean_labels``."""
        return self.noisy_labels != self.clean_labels

    @property
    def n_noisy(self):
        """Number of corrupted labels."""
        return int(np.count_nonzero(self.is_noisy))

    @property
    def realised_rate(self):
        """Fraction of corrupted labels, ``mean(noisy != clean)`` (0.0 for N = 0)."""
        n = self.noisy_labels.shape[0]
        return self.n_noisy / n if n else 0.0

    def transition(self, normalize=True):
        """Empirical noise transition matrix.

        Parameters
        ----------
        normalize : bool, default True
            If True, ``T[i, j] = #{clean = i, noisy = j} / #{clean = i}`` (rows of absent classes
            are zero); if False, the raw counts.

        Returns
        -------
        ndarray of shape (K, K)
        """
        k = self.num_classes
        counts = np.zeros((k, k), dtype=np.int64)
        np.add.at(counts, (self.clean_labels, self.noisy_labels), 1)
        if not normalize:
            return counts
        rows = counts.sum(axis=1, keepdims=True)
        return np.divide(counts, rows, out=np.zeros((k, k)), where=rows > 0)

    def subset(self, indices):
        """The same noise restricted to ``indices`` (e.g. a train/validation split)."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise ValueError(f"indices must be a 1-D integer array, got shape {idx.shape}, dtype {idx.dtype}")
        return NoisyLabels(self.noisy_labels[idx], self.clean_labels[idx], self.num_classes, self.kind, self.params)

    def __repr__(self):
        return (f"NoisyLabels(kind={self.kind!r}, n={self.noisy_labels.shape[0]}, num_classes={self.num_classes}, "
                f"realised_rate={self.realised_rate:.4f})")


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------

def _check_num_classes(k):
    if isinstance(k, bool) or not isinstance(k, (numbers.Integral, np.integer)) or k < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {k!r}")
    return int(k)


def _check_labels(labels, name, num_classes=None):
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {y.shape}")
    if y.size and y.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"{name} must be >= 0, got minimum {y.min()}")
    if num_classes is not None and y.size and y.max() >= num_classes:
        raise ValueError(f"{name} must lie in [0, {num_classes}), got maximum {y.max()}")
    return y


def _check_rate(rate):
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not (0.0 <= float(rate) <= 1.0):
        raise ValueError(f"rate must be a real number in [0, 1], got {rate!r}")
    return float(rate)


def _dataset_name(dataset):
    return None if dataset is None else canonical_dataset_name(dataset, extra=_EXTRA_DATASETS)


def _resolve(labels, num_classes, dataset=None):
    """Validated labels and K under the rule of the module docstring ("Which classes exist")."""
    y = _check_labels(labels, "labels")
    fixed = DATASET_NUM_CLASSES.get(_dataset_name(dataset))
    if num_classes is not None:
        num_classes = _check_num_classes(num_classes)
    if y.size == 0:
        k = num_classes if num_classes is not None else fixed
        if k is None:
            raise ValueError("num_classes is required when labels is empty")
        return y, k
    seen = max(int(y.max()) + 1, 2)
    if num_classes is None:
        num_classes = fixed if fixed is not None and fixed >= seen else seen
    elif num_classes < seen:
        _check_labels(y, "labels", num_classes)  # "labels must lie in [0, K)"
    elif num_classes not in (seen, fixed):
        known = f"dataset={dataset!r} has {fixed}" if fixed is not None else (
            "without a dataset of fixed classes K = max(labels) + 1" if dataset is None
            else f"dataset={dataset!r} does not fix the classes, so K = max(labels) + 1")
        raise ValueError(f"num_classes={num_classes} but the labels use classes 0..{seen - 1} and {known}: "
                         "noise must not invent classes that no sample has")
    return _check_labels(y, "labels", num_classes), num_classes


def _seed_param(random_state):
    return random_state if isinstance(random_state, (int, np.integer)) else None


# ---------------------------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------------------------

def no_noise(labels, *, num_classes=None, dataset=None):
    """The clean labels as a :class:`NoisyLabels` of kind "none" (realised rate 0)."""
    y, k = _resolve(labels, num_classes, dataset)
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
        (module docstring, "Which classes exist").
    dataset : str, optional
        A dataset name of :func:`sopdeep.data.load_dataset` (or "synthetic"); fixes K for CIFAR-10,
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
    y, k = _resolve(labels, num_classes, dataset)
    rate = _check_rate(rate)
    noisy = _redraw(y, k, int(round(rate * y.shape[0])), include_true_class, check_random_state(random_state))
    kind = "sym-all" if include_true_class else "sym"
    return NoisyLabels(noisy, y, k, kind, {"rate": rate, "seed": _seed_param(random_state)})


def _redraw(y, k, m, include_true_class, rng):
    """``m`` positions chosen uniformly without replacement get a uniform label (of all K or the others)."""
    pos = rng.choice(y.shape[0], size=m, replace=False)
    noisy = y.copy()
    if include_true_class:
        noisy[pos] = rng.integers(0, k, size=m)
    else:
        noisy[pos] = (y[pos] + rng.integers(1, k, size=m)) % k
    return noisy


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
    y, k = _resolve(labels, num_classes, dataset)
    rate = _check_rate(rate)
    noisy = _redraw(y, k, _authors_count(rate, y.shape[0]), True, check_random_state(random_state))
    return NoisyLabels(noisy, y, k, "sym-authors", {"rate": rate, "seed": _seed_param(random_state)})


def _asymmetric_family(dataset):
    name = _dataset_name(dataset)
    if name not in ASYMMETRIC_DATASETS:
        raise ValueError(f"asymmetric noise needs a class map, and dataset={dataset!r} has none (defined for "
                         f"{sorted(ASYMMETRIC_DATASETS)}); pass mapping= to asymmetric_noise for other data")
    return ASYMMETRIC_DATASETS[name]


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
        "cifar10", "cifar10-jpeg" or "cifar100" (any alias of :func:`sopdeep.data.load_dataset`);
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
    family = _asymmetric_family(dataset)
    y, k = _resolve(labels, None, dataset)
    rate = _check_rate(rate)
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
    return NoisyLabels(noisy, y, k, "asym-authors", {"rate": rate, "seed": _seed_param(random_state),
                                                     "dataset": _dataset_name(dataset)})


def cifar100_asymmetric_map(fine_to_coarse=None):
    """The CIFAR-100 asymmetric flip: each fine class -> the next fine class of its super-class.

    Within each super-class the fine classes are taken in increasing label order and mapped
    circularly (the last one to the first).

    Parameters
    ----------
    fine_to_coarse : array-like of shape (100,), optional
        Super-class of each fine class; default :data:`CIFAR100_FINE_TO_COARSE` (or pass the map
        read from the dataset with :func:`sopdeep.data.load_cifar100_coarse_labels`).

    Returns
    -------
    ndarray of shape (100,), int64
        ``target[f]`` for every fine class f; a permutation with no fixed point when every
        super-class has >= 2 fine classes.
    """
    f2c = CIFAR100_FINE_TO_COARSE if fine_to_coarse is None else _check_labels(fine_to_coarse, "fine_to_coarse")
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
        A dataset name of :func:`sopdeep.data.load_dataset` (aliases allowed). Without ``mapping``
        it selects the standard map: :data:`CIFAR10_ASYMMETRIC_MAP` for "cifar10" / "cifar10-jpeg"
        (truck->automobile, bird->airplane, deer->horse, cat<->dog) or
        :func:`cifar100_asymmetric_map` for "cifar100" (next class within the super-class); any
        other dataset has no map and is refused (ValueError). It also fixes K (module docstring).
    mapping : dict {int: int} or array-like of shape (K,), optional
        A custom map source -> target (array entries equal to their index are not sources);
        ``dataset`` is then ignored and K is ``max(labels) + 1``.
    fine_to_coarse : array-like of shape (100,), optional
        For ``dataset="cifar100"``: the super-class of each fine class, e.g. read from the dataset
        with :func:`sopdeep.data.load_cifar100_coarse_labels`; default :data:`CIFAR100_FINE_TO_COARSE`.
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
        family = _asymmetric_family(dataset)
        if fine_to_coarse is not None and family != "cifar100":
            raise ValueError("fine_to_coarse is only used with dataset='cifar100' and no mapping")
        mapping = dict(CIFAR10_ASYMMETRIC_MAP) if family == "cifar10" else cifar100_asymmetric_map(fine_to_coarse)
        y, k = _resolve(labels, num_classes, dataset)
    else:
        if fine_to_coarse is not None:
            raise ValueError("fine_to_coarse is only used with dataset='cifar100' and no mapping")
        y, k = _resolve(labels, num_classes)  # a custom map: the labels define the classes
    if isinstance(mapping, dict):
        pairs = {int(s): int(t) for s, t in mapping.items()}
    else:
        arr = _check_labels(mapping, "mapping", k)
        if arr.shape != (k,):
            raise ValueError(f"mapping must have shape ({k},), got {arr.shape}")
        pairs = {s: int(t) for s, t in enumerate(arr) if t != s}
    for s, t in pairs.items():
        if not (0 <= s < k and 0 <= t < k):
            raise ValueError(f"mapping entries must lie in [0, {k}), got {s} -> {t}")
    rate = _check_rate(rate)
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
    return NoisyLabels(noisy, y, k, "asym", {"rate": rate, "seed": _seed_param(random_state), "per_sample": per_sample,
                                             "mapping": {int(s): int(t) for s, t in pairs.items()}})


# ---------------------------------------------------------------------------------------------
# CIFAR-N
# ---------------------------------------------------------------------------------------------

_CIFAR_N_FILES = {"cifar10n": "CIFAR-10_human.pt", "cifar100n": "CIFAR-100_human.pt"}


def read_cifar_n(path):
    """Read a CIFAR-N label file safely.

    Parameters
    ----------
    path : str or Path
        ``CIFAR-10_human.pt`` or ``CIFAR-100_human.pt`` (torch zip files holding a dict of numpy
        arrays). Read with a restricted unpickler admitting only numpy's array globals: a file
        referencing any other callable raises :class:`sopdeep._safepickle.UnsafePickleError`
        (a ValueError) and nothing in it runs.

    Returns
    -------
    dict of str -> ndarray of shape (N,), int64
        Every label array of the file (lists such as the coarse labels of CIFAR-100N included).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a torch zip, is damaged (truncated, a CRC mismatch: the message names the
        file), or holds anything but a dict of 1-D integer arrays with ``clean_label``.
    """
    try:
        obj = load_torch_zip_pickle(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
        raise ValueError(f"{path} is a damaged CIFAR-N label file ({type(exc).__name__}: {exc}); "
                         "download it again") from exc
    if not isinstance(obj, dict) or "clean_label" not in obj:
        raise ValueError(f"{path} is not a CIFAR-N label file: expected a dict with 'clean_label', got "
                         f"{type(obj).__name__}{' with keys ' + str(sorted(obj)) if isinstance(obj, dict) else ''}")
    out = {}
    n = None
    for key, val in obj.items():
        arr = np.asarray(val)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise ValueError(f"{path}: entry {key!r} must be a 1-D integer array, got {arr.dtype} {arr.shape}")
        if n is not None and arr.shape[0] != n:
            raise ValueError(f"{path}: entry {key!r} has length {arr.shape[0]}, others {n}")
        n = arr.shape[0]
        out[str(key)] = arr.astype(np.int64)
    return out


def load_cifar_n(path, label="worst", *, clean_labels=None):
    """Human label noise of CIFAR-10N / CIFAR-100N.

    Parameters
    ----------
    path : str or Path
        A label file (``CIFAR-10_human.pt`` / ``CIFAR-100_human.pt``) or a folder holding it
        (e.g. ``../shared/data/cifar-n``; which file is chosen by ``label``).
    label : {"aggregate", "random1", "random2", "random3", "worst", "noisy"}, default "worst"
        CIFAR-10N's ``aggre_label``, ``random_label1..3``, ``worse_label``, or CIFAR-100N's
        ``noisy_label``.
    clean_labels : array-like of shape (50000,), optional
        The training labels of the dataset being used (e.g. ``ArrayDataset.y_train``); if given they
        must equal the file's ``clean_label`` (a check that images and labels are in the same order).

    Returns
    -------
    NoisyLabels
        ``kind="cifar10n-<label>"`` or ``"cifar100n-noisy"``; clean labels from the file.
    """
    if label in CIFAR10N_LABELS:
        family, key, k = "cifar10n", CIFAR10N_LABELS[label], 10
    elif label in CIFAR100N_LABELS:
        family, key, k = "cifar100n", CIFAR100N_LABELS[label], 100
    else:
        raise ValueError(f"label must be one of {sorted(CIFAR10N_LABELS) + sorted(CIFAR100N_LABELS)}, got {label!r}")
    path = Path(path)
    if path.is_dir():
        path = path / _CIFAR_N_FILES[family]
    d = read_cifar_n(path)
    if key not in d:
        raise ValueError(f"{path} has no {key!r} (label={label!r} needs {_CIFAR_N_FILES[family]}); keys: {sorted(d)}")
    clean = d["clean_label"]
    if clean_labels is not None:
        given = _check_labels(clean_labels, "clean_labels")
        if given.shape != clean.shape or not np.array_equal(given, clean):
            mism = int(np.count_nonzero(given != clean)) if given.shape == clean.shape else "all"
            raise ValueError(f"clean_labels disagree with clean_label of {path} ({mism} of {clean.shape[0]} differ): "
                             "the dataset is not in CIFAR-10/100 training order")
    return NoisyLabels(d[key], clean, k, f"{family}-{label}", {"file": str(path), "label": label})


def make_noisy_labels(labels, kind, rate=0.0, *, num_classes=None, dataset=None, cifar_n_path=None,
                      cifar_n_label="worst", random_state=None):
    """Dispatch to a noise model by name (for configs and the command line).

    Parameters
    ----------
    labels : array-like of shape (N,)
        Clean labels.
    kind : {"none", "sym", "sym-all", "asym", "sym-authors", "asym-authors", "cifar10n", "cifar100n"}
        "sym": :func:`symmetric_noise`; "sym-all": its A.2 variant; "asym": :func:`asymmetric_noise`
        with ``dataset``'s class map; "sym-authors" / "asym-authors": :func:`symmetric_noise_authors`
        / :func:`asymmetric_noise_authors`; "cifar10n"/"cifar100n": :func:`load_cifar_n` from
        ``cifar_n_path`` with ``cifar_n_label`` (``labels`` must equal the file's clean labels).
    rate : float in [0, 1], default 0.0
        Noise level for the synthetic kinds (ignored for none / CIFAR-N).
    num_classes : int, optional
        K; must agree with ``dataset`` / the labels (module docstring, "Which classes exist").
    dataset : str, optional
        The name of the dataset the labels belong to, as given to :func:`sopdeep.data.load_dataset`
        (``"cifar10"``, ``"cifar100"``, ``"fashion-mnist"``, ``"cifar10-jpeg"``, ``"npz"``,
        ``"imagefolder"``, aliases allowed) or ``"synthetic"``. The asymmetric kinds need one with a
        class map (:data:`ASYMMETRIC_DATASETS`) and refuse any other.
    random_state : None, int, SeedSequence or numpy Generator

    Returns
    -------
    NoisyLabels
        With ``realised_rate``, the fraction of labels actually changed.
    """
    kind = _KIND_ALIASES.get(kind, kind) if isinstance(kind, str) else kind
    if kind == "none":
        return no_noise(labels, num_classes=num_classes, dataset=dataset)
    if kind in ("sym", "sym-all"):
        return symmetric_noise(labels, rate, num_classes=num_classes, dataset=dataset,
                               include_true_class=kind == "sym-all", random_state=random_state)
    if kind == "sym-authors":
        return symmetric_noise_authors(labels, rate, num_classes=num_classes, dataset=dataset,
                                       random_state=random_state)
    if kind in ("asym", "asym-authors"):
        if dataset is None:
            raise ValueError(f"kind={kind!r} needs dataset= (one of {sorted(ASYMMETRIC_DATASETS)}) to pick the class map")
        if kind == "asym":
            return asymmetric_noise(labels, rate, dataset=dataset, num_classes=num_classes, random_state=random_state)
        _resolve(labels, num_classes, dataset)  # refuse a num_classes that disagrees with the dataset
        return asymmetric_noise_authors(labels, rate, dataset=dataset, random_state=random_state)
    if kind in ("cifar10n", "cifar100n"):
        if cifar_n_path is None:
            raise ValueError(f"cifar_n_path is required for kind={kind!r}")
        label = "noisy" if kind == "cifar100n" else cifar_n_label
        if kind == "cifar10n" and label not in CIFAR10N_LABELS:
            raise ValueError(f"cifar_n_label must be one of {sorted(CIFAR10N_LABELS)}, got {label!r}")
        return load_cifar_n(cifar_n_path, label, clean_labels=labels)
    raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
