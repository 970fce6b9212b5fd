"""Exports shipped with their own ``decode.py`` (the CIFAR-10 JPEG and CIFAR-100 PNG exports): decoded
once into a cached ``.npz`` with a fingerprint of the file it came from, and refused on every later
use when the cache cannot come from that file.

An export is a folder holding ``decode.py`` and one packed source file (``SOURCE_FILE``); its
documented procedure is ``python decode.py OUT.npz``. :func:`decode_export` runs it once;
:func:`check_decoded_cache` is the check every loader applies to what it reads back.
"""

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

__all__ = ["decode_export", "check_decoded_cache", "source_fingerprint", "sidecar_path", "DecodeError"]


class DecodeError(RuntimeError):
    """The export's ``decode.py`` failed or timed out; the message is one line (its last stderr line)."""


def decode_export(source, cache_path, *, source_file, what, overwrite=False, python=None, timeout=600):
    """Decode an export into a uint8 ``.npz``, once, and return its path.

    Runs the export's own documented procedure ``python SOURCE/decode.py OUT.npz`` in a subprocess,
    writing to a temporary file beside ``cache_path`` that is renamed into place only when complete,
    then records the fingerprint of ``SOURCE/source_file`` beside it (:func:`sidecar_path`). When
    ``cache_path`` already exists it is returned as is (and checked by :func:`check_decoded_cache`
    when read).

    Parameters
    ----------
    source : str or Path
        The export folder, holding ``decode.py`` and ``source_file``.
    cache_path : str or Path
        Where the decoded npz is kept (must end in ``.npz``); its folder is created.
    source_file : str
        The export's packed file (e.g. ``"cifar10_jpeg.npz"``), fingerprinted.
    what : str
        The export in words, for error messages (e.g. ``"CIFAR-10 JPEG export"``).
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
    ValueError
        If ``cache_path`` does not end in ``.npz``.
    FileNotFoundError
        If ``decode.py`` or ``source_file`` is missing in ``source``.
    DecodeError
        A ``RuntimeError``: the decoder failed or timed out (the last line of its stderr is included).
    """
    source = Path(source)
    cache_path = Path(cache_path)
    if cache_path.suffix != ".npz":
        raise ValueError(f"cache_path must end in .npz, got {cache_path}")
    if cache_path.is_file() and not overwrite:
        return cache_path
    for f in ("decode.py", source_file):
        if not (source / f).is_file():
            raise FileNotFoundError(f"missing {source / f}; expected the {what} folder "
                                    f"holding decode.py and {source_file}")
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
    # what the cache was decoded from: checked on every later use (check_decoded_cache)
    atomic_write_bytes(sidecar_path(cache_path), json.dumps(source_fingerprint(source / source_file)).encode())
    return cache_path


def _last_line(stderr):
    # a traceback's last line names the error (e.g. "ModuleNotFoundError: No module named 'PIL'")
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message on stderr"


def sidecar_path(cache_path):
    """The fingerprint file beside a decoded cache: ``<cache_path>.source.json``."""
    cache_path = Path(cache_path)
    return cache_path.with_name(cache_path.name + ".source.json")


def source_fingerprint(path):
    """``{"file", "size", "sha256"}`` of an export's packed file (SHA-256 at about 0.3 s per 100 MB)."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"file": path.name, "size": path.stat().st_size, "sha256": digest.hexdigest()}


def _source_counts(path):
    """(training, test) image counts of an export, from its label arrays; None when unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return len(z["y_train"]), len(z["y_test"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def check_decoded_cache(ds, source, cache_path, *, source_file, what, image_shape=(32, 32, 3)):
    """Refuse a decoded cache that cannot come from ``SOURCE/source_file``.

    Refused (:class:`sopcommon.files.DataFileError`, naming ``cache_path``): images not of
    ``image_shape``; counts other than the export's label arrays; a fingerprint in the sidecar
    other than the source file's (decoded from another file, or the file changed since). A cache
    without a sidecar (decoded before sidecars existed, or by hand) is checked by shape and counts only.

    Parameters
    ----------
    ds : ArrayDataset
        The cache as read.
    source : str or Path
        The export folder.
    cache_path : str or Path
        The cache ``ds`` was read from.
    source_file : str
        The export's packed file.
    what : str
        The export in words, for error messages.
    image_shape : tuple of int, default (32, 32, 3)
        (H, W, C) of every decoded image.
    """
    src = Path(source) / source_file
    redo = "delete it (or pass overwrite=True) to decode the export again"
    counts = (len(ds.y_train), len(ds.y_test))
    if ds.x_train.shape[1:] != tuple(image_shape):
        raise DataFileError(cache_path, f"not a decoded {what}: images of shape {ds.x_train.shape[1:]}, "
                                        f"expected {tuple(image_shape)}; {redo}")
    expected = _source_counts(src)
    if expected is not None and counts != expected:   # e.g. a valid npz of 30 other images
        raise DataFileError(cache_path, f"does not match its source {src}: {counts[0]} training and "
                                        f"{counts[1]} test images, the export has {expected[0]} and "
                                        f"{expected[1]}; {redo}")
    sidecar = sidecar_path(cache_path)
    if sidecar.is_file() and src.is_file():
        if read_json(sidecar, what="decoded-cache fingerprint") != source_fingerprint(src):
            raise DataFileError(cache_path, f"decoded from another file than {src} "
                                            f"(fingerprints differ, {sidecar.name}); {redo}")
