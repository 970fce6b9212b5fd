"""CIFAR-N (Wei et al., ICLR 2022): the human labels of CIFAR-10N (aggregate, random1..3, worst)
and CIFAR-100N (noisy), read from the ``.pt`` label files with a restricted unpickler that admits
only numpy's array globals (:mod:`sopdeep._safepickle`), so a tampered file cannot run code."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from sopdeep._safepickle import load_torch_zip_pickle
from sopdeep.noise.labels import NoisyLabels, check_labels

__all__ = ["CIFAR10N_LABELS", "CIFAR100N_LABELS", "read_cifar_n", "load_cifar_n"]

CIFAR10N_LABELS = {
    "aggregate": "aggre_label",
    "random1": "random_label1",
    "random2": "random_label2",
    "random3": "random_label3",
    "worst": "worse_label",
}
#: CIFAR-100N label sets: our name -> key in ``CIFAR-100_human.pt``.
CIFAR100N_LABELS = {"noisy": "noisy_label"}


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
        given = check_labels(clean_labels, "clean_labels")
        if given.shape != clean.shape or not np.array_equal(given, clean):
            mism = int(np.count_nonzero(given != clean)) if given.shape == clean.shape else "all"
            raise ValueError(f"clean_labels disagree with clean_label of {path} ({mism} of {clean.shape[0]} differ): "
                             "the dataset is not in CIFAR-10/100 training order")
    return NoisyLabels(d[key], clean, k, f"{family}-{label}", {"file": str(path), "label": label})
