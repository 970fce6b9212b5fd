"""Fashion-MNIST from its four idx files (``.gz`` or extracted), in ``ROOT/FashionMNIST/raw/``
(torchvision), ``ROOT/raw/`` or directly in ``ROOT``."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from sopdeep.datasets.arrays import ArrayDataset

__all__ = ["FASHION_MNIST_CLASSES", "load_fashion_mnist"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def _read_idx(path, ndim):
    """Parse an idx file (gzip or plain) of unsigned bytes with ``ndim`` dimensions."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable idx file: {exc}") from exc
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated idx header ({len(raw)} bytes)")
    zero, dtype_code, nd = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or nd != ndim:
        raise ValueError(f"{path}: bad idx magic (expected 0x0000 0x08 {ndim:#04x}, "
                         f"got {zero:#06x} {dtype_code:#04x} {nd:#04x})")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: idx header says {dims} = {int(np.prod(dims))} bytes, file holds {body.size}")
    return body.reshape(dims)


def load_fashion_mnist(root):
    """Load Fashion-MNIST from its four idx files.

    Parameters
    ----------
    root : str or Path
        A folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``), either
        directly or under ``FashionMNIST/raw/`` (torchvision's layout) or ``raw/``.

    Returns
    -------
    ArrayDataset
        ``name="fashion-mnist"``, images of shape (28, 28, 1), K = 10.

    Raises
    ------
    FileNotFoundError
        If the four files are not found in any of the candidate folders (all are named).
    ValueError
        If a file is corrupt (bad header, truncated) or the counts disagree.
    """
    root = Path(root)
    candidates = [root / "FashionMNIST" / "raw", root / "raw", root]

    def find(stem, folder):
        for p in (folder / (stem + ".gz"), folder / stem):
            if p.is_file():
                return p
        return None

    for folder in candidates:
        paths = {k: find(stem, folder) for k, stem in _IDX_FILES.items()}
        if all(paths.values()):
            break
    else:
        raise FileNotFoundError(
            "Fashion-MNIST idx files not found; expected " + ", ".join(s + "[.gz]" for s in _IDX_FILES.values())
            + " in one of: " + ", ".join(str(c) for c in candidates))
    x_train = _read_idx(paths["x_train"], 3)[..., None]
    y_train = _read_idx(paths["y_train"], 1)
    x_test = _read_idx(paths["x_test"], 3)[..., None]
    y_test = _read_idx(paths["y_test"], 1)
    for xk, yk, x, y in (("x_train", "y_train", x_train, y_train), ("x_test", "y_test", x_test, y_test)):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{paths[xk]} holds {x.shape[0]} images but {paths[yk]} holds {y.shape[0]} labels")
    return ArrayDataset(x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), 10,
                        "fashion-mnist", FASHION_MNIST_CLASSES)
