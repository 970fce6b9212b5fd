"""CIFAR-100 from the lossless PNG export: decoded once with the export's own ``decode.py`` into a
cached ``.npz`` (:mod:`sopdeep.datasets.export`), then read with :func:`sopdeep.datasets.npz.load_npz`.

The export keeps the original CIFAR-100 order, so train index i is CIFAR-100N index i (its fine
labels equal CIFAR-100N's ``clean_label`` on all 50,000). Its README notes 123 images (100 train,
classes beaver, shrew and skunk) whose place inside their class is unknown: there the CIFAR-100N
noisy label of index i may belong to another image of the same class (0.2 % of the training set).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sopcommon.files import DataFileError
from sopdeep.datasets.export import check_decoded_cache, decode_export
from sopdeep.datasets.npz import load_npz

__all__ = ["decode_cifar100_png", "load_cifar100_png", "load_cifar100_png_coarse_labels"]

# the export's packed file (fingerprinted beside the cache) and its name in error messages
_SOURCE_FILE = "cifar100_png.npz"
_WHAT = "CIFAR-100 PNG export"


def decode_cifar100_png(source, cache_path, *, overwrite=False, python=None, timeout=600):
    """Decode the CIFAR-100 PNG export into a uint8 ``.npz``, once, and return its path.

    :func:`sopdeep.datasets.export.decode_export` with this export's packed file
    (``cifar100_png.npz``): it runs the export's own ``python SOURCE/decode.py OUT.npz`` (numpy and
    Pillow) into a temporary file renamed into place when complete, and returns an existing
    ``cache_path`` as is. Parameters, return value and errors are that function's.
    """
    return decode_export(source, cache_path, source_file=_SOURCE_FILE, what=_WHAT, overwrite=overwrite,
                         python=python, timeout=timeout)


def load_cifar100_png(source, cache_path, *, overwrite=False):
    """CIFAR-100 (fine labels) from the PNG export: decode once to ``cache_path``, check it, load it.

    Parameters
    ----------
    source, cache_path, overwrite
        As :func:`decode_cifar100_png`.

    Returns
    -------
    ArrayDataset
        ``name="cifar100-png"``, 50000/10000 images (32, 32, 3), K = 100 fine classes named in label
        order, in the original CIFAR-100 order. Lossless: the pixels are CIFAR-100's. The coarse
        (super-class) labels: :func:`load_cifar100_png_coarse_labels`.

    Raises
    ------
    sopcommon.files.DataFileError
        If the cache cannot come from the export (:func:`sopdeep.datasets.export.check_decoded_cache`).
    """
    path = decode_cifar100_png(source, cache_path, overwrite=overwrite)
    ds = load_npz(path, num_classes=100, name="cifar100-png")
    check_decoded_cache(ds, source, path, source_file=_SOURCE_FILE, what=_WHAT)
    return ds


def load_cifar100_png_coarse_labels(source, cache_path):
    """Coarse (super-class) labels of the PNG export and the fine->coarse map they imply.

    The counterpart of :func:`sopdeep.datasets.cifar.load_cifar100_coarse_labels` for the export:
    the per-image coarse labels are ``fine_to_coarse[ds.y_train]`` and ``fine_to_coarse[ds.y_test]``
    (checked here to equal the decoded ``y_train_coarse`` and ``y_test_coarse``).

    Parameters
    ----------
    source, cache_path
        As :func:`load_cifar100_png` (the cache is decoded first if missing, and checked).

    Returns
    -------
    fine_to_coarse : ndarray of shape (100,), dtype int64
        ``fine_to_coarse[f]`` is the super-class (0..19) of fine class f.
    coarse_names : tuple of str
        The 20 super-class names, in coarse-label order.

    Raises
    ------
    sopcommon.files.DataFileError
        If the cache lacks the coarse arrays or they do not define one super-class per fine class.
    """
    ds = load_cifar100_png(source, cache_path)
    path = Path(cache_path)   # decoded and checked by the line above
    keys = ("y_train_coarse", "y_test_coarse", "coarse_classes")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in keys if k not in z.files]
        if missing:
            raise DataFileError(path, f"lacks {missing}: not decoded by the CIFAR-100 PNG export's decode.py; "
                                      "delete it to decode the export again")
        coarse = np.concatenate([z["y_train_coarse"], z["y_test_coarse"]]).astype(np.int64)
        names = tuple(str(c) for c in z["coarse_classes"])
    fine = np.concatenate([ds.y_train, ds.y_test])
    if coarse.shape != fine.shape or len(names) != 20 or coarse.min() < 0 or coarse.max() >= 20:
        raise DataFileError(path, f"coarse labels must be one per image in [0, 20) with 20 names, got "
                                  f"{coarse.shape[0]} labels for {fine.shape[0]} images and {len(names)} names")
    mapping = np.full(100, -1, dtype=np.int64)
    mapping[fine] = coarse
    # every fine class present, and no fine class split between two super-classes
    if np.any(mapping < 0) or np.any(mapping[fine] != coarse):
        raise DataFileError(path, "fine and coarse labels do not define one super-class per fine class")
    return mapping, names
