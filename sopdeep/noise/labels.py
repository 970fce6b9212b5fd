"""NoisyLabels, the result of every noise generator, and the checks the generators share.

Which classes exist
-------------------
Noise may only move a label to a class of the data. The labels show the classes 0 .. max(labels);
``dataset``, when it names a dataset with fixed classes (``num_classes`` of its entry in
:data:`sopdeep.datasets.DATASETS`: CIFAR-10 and its JPEG export, Fashion-MNIST 10, CIFAR-100 and its PNG export 100),
adds that its K classes exist even if a subset misses the top ones. So K must be ``max(labels) + 1`` or the dataset's K (the default is
the larger); any other ``num_classes`` is refused: ``symmetric_noise(labels_in_0_to_9, 0.4,
num_classes=100)`` would put 40% of the labels in 90 classes that no sample has. ("npz",
"imagefolder" and "synthetic" do not fix K: their labels are the evidence.)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from sopdeep.datasets import DATASETS, canonical_dataset_name

__all__ = ["NoisyLabels"]


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
        noisy = check_labels(self.noisy_labels, "noisy_labels", k)
        clean = check_labels(self.clean_labels, "clean_labels", k)
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


def check_labels(labels, name, num_classes=None):
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


def check_rate(rate):
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not (0.0 <= float(rate) <= 1.0):
        raise ValueError(f"rate must be a real number in [0, 1], got {rate!r}")
    return float(rate)


def dataset_name(dataset):
    return None if dataset is None else canonical_dataset_name(dataset)


def resolve(labels, num_classes, dataset=None):
    """Validated labels and K under the rule of the module docstring ("Which classes exist")."""
    y = check_labels(labels, "labels")
    name = dataset_name(dataset)
    fixed = None if name is None else DATASETS[name].num_classes
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
        check_labels(y, "labels", num_classes)  # "labels must lie in [0, K)"
    elif num_classes not in (seen, fixed):
        known = f"dataset={dataset!r} has {fixed}" if fixed is not None else (
            "without a dataset of fixed classes K = max(labels) + 1" if dataset is None
            else f"dataset={dataset!r} does not fix the classes, so K = max(labels) + 1")
        raise ValueError(f"num_classes={num_classes} but the labels use classes 0..{seen - 1} and {known}: "
                         "noise must not invent classes that no sample has")
    return check_labels(y, "labels", num_classes), num_classes


def seed_param(random_state):
    return random_state if isinstance(random_state, (int, np.integer)) else None
