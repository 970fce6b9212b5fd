"""CIFAR-10 from the JPEG export: decoded once with the export's own ``decode.py`` into a cached
``.npz``, then read with :func:`sopdeep.datasets.npz.load_npz`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from sopcommon import atomic_path, atomic_write_bytes
from sopcommon.files import DataFileError, read_json
from sopdeep.datasets.arrays import ArrayDataset
from sopdeep.datasets.cifar import CIFAR10_CLASSES
from sopdeep.datasets.npz import load_npz, save_npz

__all__ = ["decode_cifar10_jpeg", "load_cifar10_jpeg", "cifar10_jpeg_npz", "DecodeError"]


def decode_cifar10_jpeg(source, cache_path, *, overwrite=False, python=None, timeout=600):
    """Decode the CIFAR-10 JPEG export into a uint8 ``.npz``, once, and return its path.

    Runs the export's own documented procedure ``python SOURCE/decode.py OUT.npz`` (numpy and
    Pillow) in a subprocess, writing to a temporary file beside ``cache_path`` that is renamed into
    place only when complete. When ``cache_path`` already exists it is returned as is.

    Parameters
    ----------
    source : str or Path
        The export folder, holding ``decode.py`` and ``cifar10_jpeg.npz``
        (e.g. ``../shared/data/cifar10-jpeg``).
    cache_path : str or Path
        Where the decoded npz is kept (must end in ``.npz``); its folder is created.
    overwrite : bool, default False
        Decode again even if ``cache_path`` exists.
    python : str, optional
        The interpreter to run ``decode.py`` with; default :data:`sys.executable`.
    timeout : float, default 600
        Seconds before the decoding subprocess is abandoned.

    Returns
    -------
    Path
        ``cache_path``.

    Raises
    ------
    FileNotFoundError
        If ``decode.py`` or ``cifar10_jpeg.npz`` is missing in ``source``.
    DecodeError
        A ``RuntimeError``: the decoder failed or timed out (the last line of its stderr is included).
    """
    source = Path(source)
    cache_path = Path(cache_path)
    if cache_path.suffix != ".npz":
        raise ValueError(f"cache_path must end in .npz, got {cache_path}")
    if cache_path.is_file() and not overwrite:
        return cache_path
    for f in ("decode.py", "cifar10_jpeg.npz"):
        if not (source / f).is_file():
            raise FileNotFoundError(f"missing {source / f}; expected the CIFAR-10 JPEG export folder "
                                    "holding decode.py and cifar10_jpeg.npz")
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    decoder = source / "decode.py"
    # decode.py writes with np.savez, which appends ".npz" to a path not ending in it
    with atomic_path(cache_path, suffix=".tmp.npz") as tmp:
        try:
            proc = subprocess.run([python or sys.executable, str(decoder), str(tmp)],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise DecodeError(f"{decoder} did not finish in {timeout:g} s: nothing cached; "
                              "run it again (or decode by hand)") from exc
        if proc.returncode != 0:
            raise DecodeError(f"{decoder} failed with exit code {proc.returncode}: {_last_line(proc.stderr)}; "
                              "nothing cached")
    # what the cache was decoded from: checked on every later use (_check_cache)
    atomic_write_bytes(_sidecar(cache_path), json.dumps(_source_fingerprint(source)).encode())
    return cache_path


class DecodeError(RuntimeError):
    """The export's ``decode.py`` failed or timed out; the message is one line (its last stderr line)."""


def _last_line(stderr):
    # a traceback's last line names the error (e.g. "ModuleNotFoundError: No module named 'PIL'")
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message on stderr"


def _sidecar(cache_path):
    return cache_path.with_name(cache_path.name + ".source.json")


def _source_fingerprint(source):
    """Size and SHA-256 of the export's ``cifar10_jpeg.npz`` (about 0.2 s for its 56 MB)."""
    path = Path(source) / "cifar10_jpeg.npz"
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"file": path.name, "size": path.stat().st_size, "sha256": digest.hexdigest()}


def _source_counts(source):
    """(training, test) image counts of the export, from its label arrays; None when unreadable."""
    try:
        with np.load(Path(source) / "cifar10_jpeg.npz", allow_pickle=False) as z:
            return len(z["y_train"]), len(z["y_test"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _check_cache(ds, source, cache_path):
    """Refuse a decoded cache that cannot come from ``source``: images not (32, 32, 3), counts other
    than the export's labels, or decoded from another source file (its sidecar's fingerprint)."""
    redo = "delete it (or pass overwrite=True) to decode the export again"
    counts = (len(ds.y_train), len(ds.y_test))
    if ds.x_train.shape[1:] != (32, 32, 3):
        raise DataFileError(cache_path, f"not a decoded CIFAR-10 export: images of shape {ds.x_train.shape[1:]}, "
                                        f"expected (32, 32, 3); {redo}")
    expected = _source_counts(source)
    if expected is not None and counts != expected:   # e.g. a valid npz of 30 other images
        raise DataFileError(cache_path, f"does not match its source {Path(source) / 'cifar10_jpeg.npz'}: "
                                        f"{counts[0]} training and {counts[1]} test images, the export has "
                                        f"{expected[0]} and {expected[1]}; {redo}")
    sidecar = _sidecar(cache_path)
    if sidecar.is_file() and (Path(source) / "cifar10_jpeg.npz").is_file():
        # caches decoded before the sidecar existed are checked by their counts and shapes only
        if read_json(sidecar, what="decoded-cache fingerprint") != _source_fingerprint(source):
            raise DataFileError(cache_path, f"decoded from another file than {Path(source) / 'cifar10_jpeg.npz'} "
                                            f"(fingerprints differ, {sidecar.name}); {redo}")


def load_cifar10_jpeg(source, cache_path, *, overwrite=False):
    """CIFAR-10 from the JPEG export: decode once to ``cache_path`` (:func:`decode_cifar10_jpeg`), load it.

    Returns
    -------
    ArrayDataset
        ``name="cifar10-jpeg"``, 50000/10000 images (32, 32, 3), K = 10, in the original CIFAR-10
        order (train index i is CIFAR-10N index i). JPEG is lossy: pixels differ from the original
        CIFAR-10 by about 6/255 on average.
    """
    path = decode_cifar10_jpeg(source, cache_path, overwrite=overwrite)
    ds = load_npz(path, num_classes=10, name="cifar10-jpeg")
    _check_cache(ds, source, path)
    return ds if ds.classes else ArrayDataset(ds.x_train, ds.y_train, ds.x_test, ds.y_test, 10,
                                              "cifar10-jpeg", CIFAR10_CLASSES)


def cifar10_jpeg_npz(data_dir, cache_dir, n_test=2000):
    """The CIFAR-10 JPEG export with all training images and the first ``n_test`` test images, as
    one npz in ``cache_dir`` (decoded once; the CIFAR-N runs of the figures and experiments).

    All 50,000 training images are kept because the CIFAR-N label files are indexed by them.

    Parameters
    ----------
    data_dir : str or Path
        The folder holding ``cifar10-jpeg/`` (the export, e.g. ``../shared/data``).
    cache_dir : str or Path
        Where the decoded export (``cifar10_jpeg_decoded.npz``) and the result
        (``cifar10_jpeg_test<n_test>.npz``) are kept; created if missing.
    n_test : int, default 2000
        How many test images to keep, in file order.

    Returns
    -------
    Path
        The npz, for ``TrainConfig(dataset="npz", data_root=...)``; an existing one is returned as is.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"cifar10_jpeg_test{n_test}.npz"
    if not path.exists():
        ds = load_cifar10_jpeg(Path(data_dir) / "cifar10-jpeg", cache_dir / "cifar10_jpeg_decoded.npz")
        save_npz(ds.subset(test_indices=list(range(min(n_test, len(ds.y_test))))), path)
    return path
