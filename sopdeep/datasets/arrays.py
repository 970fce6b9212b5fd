"""In-memory labelled image datasets: :class:`ArrayDataset` and :func:`split_indices`.

Every loader of :mod:`sopdeep.datasets` returns an :class:`ArrayDataset`: uint8 images in NHWC
layout ``(N, H, W, C)`` and int64 labels in ``[0, num_classes)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sopcommon import check_random_state

__all__ = ["ArrayDataset", "EmptyDatasetError", "split_indices"]


class EmptyDatasetError(ValueError):
    """A dataset was loaded without training or without test images (the CLI names the data file)."""


def _check_images(x, name):
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 array of images, got dtype {x.dtype}")
    if x.ndim != 4 or x.shape[3] not in (1, 3) or min(x.shape[1:3]) < 1:
        raise ValueError(f"{name} must have shape (N, H, W, C) with C in (1, 3), got {x.shape}")
    return x


def _check_labels(y, n, num_classes, name):
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {y.shape}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), got range [{y.min()}, {y.max()}]")
    return y


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A labelled image classification dataset held in memory.

    Parameters
    ----------
    x_train : ndarray of shape (n_train, H, W, C), dtype uint8
        Training images, channels last; C is 3 (colour) or 1 (grey).
    y_train : ndarray of shape (n_train,), dtype int64
        Training labels in ``[0, num_classes)``.
    x_test : ndarray of shape (n_test, H, W, C), dtype uint8
        Test images, same H, W, C as ``x_train``.
    y_test : ndarray of shape (n_test,), dtype int64
        Test labels in ``[0, num_classes)``.
    num_classes : int
        K, the number of classes (>= 2).
    name : str, default "arrays"
        A short name ("cifar10", "cifar100", "fashion-mnist", ...).
    classes : tuple of str, default ()
        Class names, empty or of length ``num_classes``.
    train_paths : tuple of str, default ()
        Where each training image came from (image folders: its path relative to the root), in the
        order of ``x_train``; empty when the images were not read from files of their own.

    All arrays are validated on construction and made read-only.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str = "arrays"
    classes: tuple = field(default_factory=tuple)
    train_paths: tuple = field(default_factory=tuple)

    def __post_init__(self):
        k = self.num_classes
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {k!r}")
        object.__setattr__(self, "num_classes", int(k))
        xtr = _check_images(self.x_train, "x_train")
        xte = _check_images(self.x_test, "x_test")
        for split, x in (("training", xtr), ("test", xte)):
            if x.shape[0] == 0:   # found otherwise only after training (an accuracy over 0 images)
                raise EmptyDatasetError(f"dataset {self.name!r} has no {split} images: nothing to "
                                        f"{'train on' if split == 'training' else 'evaluate on'}")
        if xtr.shape[1:] != xte.shape[1:]:
            raise ValueError(f"x_train and x_test must share (H, W, C), got {xtr.shape[1:]} and {xte.shape[1:]}")
        ytr = _check_labels(self.y_train, xtr.shape[0], k, "y_train")
        yte = _check_labels(self.y_test, xte.shape[0], k, "y_test")
        classes = tuple(str(c) for c in self.classes)
        if classes and len(classes) != k:
            raise ValueError(f"classes must be empty or have num_classes={k} names, got {len(classes)}")
        for attr, arr in (("x_train", xtr), ("y_train", ytr), ("x_test", xte), ("y_test", yte)):
            arr = np.ascontiguousarray(arr)
            arr.flags.writeable = False
            object.__setattr__(self, attr, arr)
        paths = tuple(str(p) for p in self.train_paths)
        if paths and len(paths) != xtr.shape[0]:
            raise ValueError(f"train_paths must be empty or have one path per training image ({xtr.shape[0]}), "
                             f"got {len(paths)}")
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "train_paths", paths)
        object.__setattr__(self, "name", str(self.name))

    @property
    def image_shape(self):
        """(H, W, C) of every image."""
        return tuple(self.x_train.shape[1:])

    @property
    def in_channels(self):
        """C, the number of image channels (the ``in_channels`` of :func:`sopdeep.models.build_model`)."""
        return int(self.x_train.shape[3])

    @property
    def n_train(self):
        return int(self.x_train.shape[0])

    @property
    def n_test(self):
        return int(self.x_test.shape[0])

    def channel_stats(self):
        """Per-channel mean and standard deviation of the training images, on the [0, 1] scale.

        Returns
        -------
        mean, std : ndarray of shape (C,), float64
            ``mean[c] = mean(x_train[..., c]) / 255`` and ``std[c]`` the population standard
            deviation / 255, computed in float64 (for input standardisation, A.4).
        """
        x = self.x_train.reshape(-1, self.in_channels)
        if x.shape[0] == 0:
            raise ValueError("channel_stats needs at least one training image")
        mean = x.mean(axis=0, dtype=np.float64)
        var = np.zeros_like(mean)
        for lo in range(0, x.shape[0], 1 << 22):  # chunks bound the float64 copy
            chunk = x[lo:lo + (1 << 22)].astype(np.float64) - mean
            var += np.einsum("ij,ij->j", chunk, chunk)
        return mean / 255.0, np.sqrt(var / x.shape[0]) / 255.0

    def subset(self, train_indices=None, test_indices=None):
        """Return a new dataset restricted to the given train/test indices (None keeps all).

        Indices keep their order, so per-sample label files (CIFAR-N) can be indexed the same way.
        """
        def take(x, y, idx, name, n):
            if idx is None:
                return x, y
            idx = np.asarray(idx)
            if idx.ndim != 1 or idx.dtype.kind not in "iu":
                raise ValueError(f"{name} must be a 1-D integer array, got shape {idx.shape}, dtype {idx.dtype}")
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"{name} must lie in [0, {n}), got range [{idx.min()}, {idx.max()}]")
            return x[idx], y[idx]

        xtr, ytr = take(self.x_train, self.y_train, train_indices, "train_indices", self.n_train)
        xte, yte = take(self.x_test, self.y_test, test_indices, "test_indices", self.n_test)
        paths = self.train_paths
        if paths and train_indices is not None:
            paths = tuple(paths[i] for i in np.asarray(train_indices).tolist())
        return ArrayDataset(xtr, ytr, xte, yte, self.num_classes, self.name, self.classes, paths)

    def __repr__(self):
        return (f"ArrayDataset(name={self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
                f"image_shape={self.image_shape}, num_classes={self.num_classes})")


def split_indices(n, n_val, *, labels=None, random_state=None):
    """Split ``range(n)`` into training and held-out validation indices.

    Parameters
    ----------
    n : int
        Number of samples.
    n_val : int
        Size of the validation part, ``0 <= n_val <= n`` (Table A.1 holds out 5,000 of CIFAR's 50,000
        for the ResNet34 settings).
    labels : array-like of shape (n,), optional
        If given, the split is stratified: each class contributes ``round(n_val * n_c / n)`` samples
        (adjusted by largest remainders so the total is exactly ``n_val``).
    random_state : None, int, SeedSequence or numpy Generator

    Returns
    -------
    train_idx, val_idx : ndarray of int64, sorted
        Disjoint, together ``range(n)``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(n_val, bool) or not isinstance(n_val, (int, np.integer)) or not 0 <= n_val <= n:
        raise ValueError(f"n_val must be an integer in [0, n={n}], got {n_val!r}")
    rng = check_random_state(random_state)
    if labels is None:
        val = rng.choice(n, size=int(n_val), replace=False)
    else:
        y = np.asarray(labels)
        if y.shape != (n,) or y.dtype.kind not in "iu":
            raise ValueError(f"labels must be an integer array of shape ({n},), got {y.dtype} {y.shape}")
        classes, counts = np.unique(y, return_counts=True)
        quota = n_val * counts / n
        take = np.floor(quota).astype(np.int64)
        extra = int(n_val - take.sum())
        take[np.argsort(-(quota - take), kind="stable")[:extra]] += 1
        val = np.concatenate([rng.choice(np.flatnonzero(y == c), size=int(t), replace=False)
                              for c, t in zip(classes, take)]) if n else np.zeros(0, np.int64)
    mask = np.zeros(n, dtype=bool)
    mask[val] = True
    return np.flatnonzero(~mask).astype(np.int64), np.flatnonzero(mask).astype(np.int64)
