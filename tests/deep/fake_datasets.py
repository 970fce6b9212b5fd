"""Tiny datasets written in the exact on-disk formats the loaders read (helpers and pytest fixtures)."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest


def write_cifar_batch(path, data, labels, label_key="labels", bytes_keys=True, extra=None):
    """A CIFAR python batch: dict with 'data' (N, 3072) uint8 and a label list (keys as bytes like the originals)."""
    d = {"data": data, label_key: [int(v) for v in labels], "batch_label": "fake"}
    d.update(extra or {})
    if bytes_keys:
        d = {k.encode(): v for k, v in d.items()}
    path.write_bytes(pickle.dumps(d, protocol=2))


def write_idx(path, array, compress=True):
    """An idx file of unsigned bytes: 0x0000, 0x08, ndim, big-endian dims, then the bytes."""
    array = np.asarray(array, dtype=np.uint8)
    raw = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    with (gzip.open if compress else open)(path, "wb") as fh:
        fh.write(raw)


@pytest.fixture
def fake_cifar10(tmp_path):
    """ROOT with cifar-10-batches-py/: 5 train batches of 3 images, a test batch of 4; returns (root, rows, labels)."""
    rng = np.random.default_rng(0)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rows, labels = {}, {}
    for name, n in [(f"data_batch_{i}", 3) for i in range(1, 6)] + [("test_batch", 4)]:
        rows[name] = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels[name] = rng.integers(0, 10, size=n)
        write_cifar_batch(base / name, rows[name], labels[name])
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (base / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in names]}, protocol=2))
    return tmp_path, rows, labels


@pytest.fixture
def fake_cifar100(tmp_path):
    """ROOT with cifar-100-python/{train, test, meta}, coarse labels from a given fine->coarse map."""
    rng = np.random.default_rng(1)
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    f2c = rng.permutation(np.repeat(np.arange(20), 5))
    out = {"fine_to_coarse": f2c}
    for name, n in (("train", 150), ("test", 60)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = np.concatenate([np.arange(100), rng.integers(0, 100, size=n - 100)]) if n >= 100 else rng.integers(0, 100, size=n)
        write_cifar_batch(base / name, data, fine, label_key="fine_labels",
                          extra={"coarse_labels": [int(c) for c in f2c[fine]]})
        out[name] = (data, fine)
    meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}
    (base / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return tmp_path, out


@pytest.fixture
def fake_fashion(tmp_path):
    """The four Fashion-MNIST idx .gz files under ROOT/FashionMNIST/raw/; returns (root, arrays)."""
    rng = np.random.default_rng(2)
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=7, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=5, dtype=np.uint8),
    }
    for stem, arr in arrays.items():
        write_idx(raw / (stem + ".gz"), arr)
    return tmp_path, arrays
