"""CIFAR-10 and CIFAR-100 from their python pickles (torchvision's root layout).

* CIFAR-10: ``ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``;
* CIFAR-100: ``ROOT/cifar-100-python/{train, test, meta}``.

The batches are Python pickles; they are read with a restricted unpickler that admits only
numpy's array globals (:mod:`sopdeep._safepickle`), so a tampered file cannot run code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sopdeep._safepickle import restricted_loads
from sopdeep.datasets.arrays import ArrayDataset

__all__ = ["CIFAR10_CLASSES", "load_cifar10", "load_cifar100", "load_cifar100_coarse_labels"]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


def _read_pickle_dict(path, layout):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing file {path}; expected layout: {layout}")
    try:
        obj = restricted_loads(path.read_bytes(), encoding="latin1")
    except ValueError as exc:
        raise ValueError(f"{path} is not a valid CIFAR python batch ({exc}); expected layout: {layout}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path} must hold a pickled dict, got {type(obj).__name__}; expected layout: {layout}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _cifar_images(d, path, label_key):
    if "data" not in d or label_key not in d:
        raise ValueError(f"{path} lacks the keys 'data' and '{label_key}' of a CIFAR batch, has {sorted(d)}")
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: '{label_key}' must have length {data.shape[0]}, got shape {labels.shape}")
    # rows are 1024 red, 1024 green, 1024 blue values, each plane row-major: (N, C, H, W) -> NHWC
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.int64)


def _names(meta, key, k):
    names = meta.get(key)
    if names is None or len(names) != k:
        return ()
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def _cifar_dir(root, sub):
    root = Path(root)
    return root if root.name == sub and not (root / sub).is_dir() else root / sub


def load_cifar10(root):
    """Load CIFAR-10 from a torchvision-format root.

    Parameters
    ----------
    root : str or Path
        Folder holding ``cifar-10-batches-py/`` (or that folder itself), which holds the pickled
        batches ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and optionally ``batches.meta``.

    Returns
    -------
    ArrayDataset
        ``name="cifar10"``, 50000 train and 10000 test images of shape (32, 32, 3), K = 10,
        in the original file order (train index i is CIFAR-10N index i).

    Raises
    ------
    FileNotFoundError
        If a batch file is missing (the message names the expected layout and the path tried).
    ValueError
        If a batch is corrupt or not a CIFAR batch.
    """
    base = _cifar_dir(root, "cifar-10-batches-py")
    layout = f"{base}/{{data_batch_1..data_batch_5, test_batch}} (torchvision's CIFAR10 root layout)"
    if not base.is_dir() and all((Path(root) / f).is_file() for f in ("decode.py", "cifar10_jpeg.npz")):
        # the likeliest mistake on this project's machines: the JPEG export given to the pickle loader
        layout += (f"; {root} is the CIFAR-10 JPEG export: use --dataset cifar10-jpeg "
                   "--set cache_path=FILE.npz (decoded there once)")
    xs, ys = [], []
    for i in range(1, 6):
        p = base / f"data_batch_{i}"
        x, y = _cifar_images(_read_pickle_dict(p, layout), p, "labels")
        xs.append(x)
        ys.append(y)
    p = base / "test_batch"
    x_test, y_test = _cifar_images(_read_pickle_dict(p, layout), p, "labels")
    classes = CIFAR10_CLASSES
    if (base / "batches.meta").is_file():
        classes = _names(_read_pickle_dict(base / "batches.meta", layout), "label_names", 10) or classes
    return ArrayDataset(np.concatenate(xs), np.concatenate(ys), x_test, y_test, 10, "cifar10", classes)


def _cifar100_files(root):
    base = _cifar_dir(root, "cifar-100-python")
    layout = f"{base}/{{train, test, meta}} (torchvision's CIFAR100 root layout)"
    train = _read_pickle_dict(base / "train", layout)
    test = _read_pickle_dict(base / "test", layout)
    meta = _read_pickle_dict(base / "meta", layout) if (base / "meta").is_file() else {}
    return base, train, test, meta


def load_cifar100(root):
    """Load CIFAR-100 (fine labels) from a torchvision-format root.

    Parameters
    ----------
    root : str or Path
        Folder holding ``cifar-100-python/`` (or that folder itself) with the pickles ``train``,
        ``test`` and optionally ``meta``.

    Returns
    -------
    ArrayDataset
        ``name="cifar100"``, 50000 train and 10000 test images (32, 32, 3), K = 100 fine classes.
        The coarse (super-class) labels: :func:`load_cifar100_coarse_labels`.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`load_cifar10`.
    """
    base, train, test, meta = _cifar100_files(root)
    x_train, y_train = _cifar_images(train, base / "train", "fine_labels")
    x_test, y_test = _cifar_images(test, base / "test", "fine_labels")
    return ArrayDataset(x_train, y_train, x_test, y_test, 100, "cifar100",
                        _names(meta, "fine_label_names", 100))


def load_cifar100_coarse_labels(root):
    """Coarse (super-class) labels of CIFAR-100 and the fine->coarse map they imply.

    Parameters
    ----------
    root : str or Path
        As :func:`load_cifar100`.

    Returns
    -------
    fine_to_coarse : ndarray of shape (100,), dtype int64
        ``fine_to_coarse[f]`` is the super-class (0..19) of fine class f.
    coarse_names : tuple of str
        The 20 super-class names (empty when ``meta`` is absent).

    Raises
    ------
    ValueError
        If the files do not define a single super-class per fine class.
    """
    base, train, test, meta = _cifar100_files(root)
    fine = np.concatenate([np.asarray(train.get("fine_labels", [])), np.asarray(test.get("fine_labels", []))])
    coarse = np.concatenate([np.asarray(train.get("coarse_labels", [])), np.asarray(test.get("coarse_labels", []))])
    if fine.shape != coarse.shape or fine.size == 0:
        raise ValueError(f"{base}: train/test must hold 'fine_labels' and 'coarse_labels' of equal length")
    mapping = np.full(100, -1, dtype=np.int64)
    mapping[fine] = coarse
    if np.any(mapping < 0) or np.any(mapping[fine] != coarse):
        raise ValueError(f"{base}: fine and coarse labels do not define one super-class per fine class")
    return mapping, _names(meta, "coarse_label_names", 20)
