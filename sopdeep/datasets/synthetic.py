"""A small seeded image classification problem held in memory, for tests and smoke runs (the
registry entry "synthetic": its images are drawn from the run's seed, no files are read)."""

from __future__ import annotations

import numpy as np

from sopdeep.datasets.arrays import ArrayDataset

__all__ = ["make_synthetic", "load_synthetic"]


def make_synthetic(n_train: int = 256, n_test: int = 128, num_classes: int = 4, image_size: int = 8,
                   channels: int = 1, noise: float = 40.0, seed: int = 0) -> ArrayDataset:
    """Images = a class prototype (uniform in [60, 196]) + Gaussian pixel noise, clipped to uint8.

    Parameters
    ----------
    n_train, n_test : int
        Sizes; labels cycle through the classes (balanced) then are shuffled.
    num_classes, image_size, channels : int
        K, H = W and C.
    noise : float
        Standard deviation of the pixel noise (in 0-255 units).
    seed : int
        Seed of the ``numpy.random.Generator`` that draws everything.

    Returns
    -------
    ArrayDataset with ``name="synthetic"``.
    """
    rng = np.random.default_rng(seed)
    protos = rng.uniform(60, 196, size=(num_classes, image_size, image_size, channels))

    def draw(n):
        y = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
        x = protos[y] + rng.normal(0, noise, size=(n, image_size, image_size, channels))
        return np.clip(np.rint(x), 0, 255).astype(np.uint8), y

    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    return ArrayDataset(xtr, ytr, xte, yte, num_classes, name="synthetic")


def load_synthetic(root=None, *, seed=0):
    """The registry's loader of "synthetic": :func:`make_synthetic` with its defaults and ``seed``
    (the run's seed); ``root`` is ignored (nothing is read)."""
    return make_synthetic(seed=seed)
