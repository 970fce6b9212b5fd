"""Any ``.npz`` holding ``x_train, y_train, x_test, y_test`` (user data, the decoded CIFAR-10 JPEG
export): :func:`load_npz` and its writer :func:`save_npz`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sopcommon import atomic_path
from sopdeep.datasets.arrays import ArrayDataset

__all__ = ["load_npz", "save_npz"]

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path, *, num_classes=None, name=None):
    """Load a dataset from an ``.npz`` holding ``x_train, y_train, x_test, y_test``.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` file. Images are uint8 of shape (N, H, W, C) or (N, H, W) (read as C = 1);
        labels integers of shape (N,). An optional ``classes`` array of names is kept.
        Read with ``allow_pickle=False``.
    num_classes : int, optional
        K; default ``len(classes)`` when present, else ``max(label) + 1`` over train and test.
    name : str, optional
        Dataset name; default the file stem.

    Returns
    -------
    ArrayDataset

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a valid npz, lacks a key, or holds arrays of the wrong shape/dtype.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such npz file: {path} (expected keys {', '.join(_NPZ_KEYS)})")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            found = {k: npz[k] for k in npz.files if k in _NPZ_KEYS + ("classes",)}
    except Exception as exc:  # zipfile.BadZipFile, OSError, EOFError, pickled data refused, ...
        raise ValueError(f"{path} is not a readable npz file: {type(exc).__name__}: {exc}") from exc
    missing = [k for k in _NPZ_KEYS if k not in found]
    if missing:
        raise ValueError(f"{path} lacks the keys {missing}; expected {', '.join(_NPZ_KEYS)}")
    arrays = {k: found[k] for k in _NPZ_KEYS}
    classes = tuple(str(c) for c in found["classes"]) if "classes" in found else ()
    for k in ("x_train", "x_test"):
        if arrays[k].ndim == 3:
            arrays[k] = arrays[k][..., None]
    if num_classes is None:
        if classes:
            num_classes = len(classes)
        else:
            ys = [arrays["y_train"], arrays["y_test"]]
            if any(y.dtype.kind not in "iu" for y in ys):
                raise ValueError(f"{path}: y_train and y_test must hold integers")
            num_classes = int(max(int(y.max()) if y.size else 0 for y in ys)) + 1
    return ArrayDataset(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                        num_classes, name if name is not None else path.stem, classes)


def save_npz(dataset, path):
    """Write ``dataset`` to ``path`` in the format :func:`load_npz` reads (atomically)."""
    if not isinstance(dataset, ArrayDataset):
        raise ValueError(f"dataset must be an ArrayDataset, got {type(dataset).__name__}")
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:   # a file object: no ".npz" appended
        np.savez(fh, x_train=dataset.x_train, y_train=dataset.y_train, x_test=dataset.x_test,
                 y_test=dataset.y_test, classes=np.asarray(dataset.classes, dtype=str))
    return path
