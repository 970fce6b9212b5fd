"""CIFAR-10 from the JPEG export: decoded once with the export's own ``decode.py`` into a cached
``.npz``, then read with :func:`sopdeep.datasets.npz.load_npz`."""

from __future__ import annotations

from pathlib import Path

from sopdeep.datasets.arrays import ArrayDataset
from sopdeep.datasets.cifar import CIFAR10_CLASSES
from sopdeep.datasets.export import DecodeError, check_decoded_cache, decode_export
from sopdeep.datasets.npz import load_npz, save_npz

__all__ = ["decode_cifar10_jpeg", "load_cifar10_jpeg", "cifar10_jpeg_npz", "DecodeError"]


# the export's packed file (fingerprinted beside the cache) and its name in error messages
_SOURCE_FILE = "cifar10_jpeg.npz"
_WHAT = "CIFAR-10 JPEG export"


def decode_cifar10_jpeg(source, cache_path, *, overwrite=False, python=None, timeout=600):
    """Decode the CIFAR-10 JPEG export into a uint8 ``.npz``, once, and return its path.

    :func:`sopdeep.datasets.export.decode_export` with this export's packed file
    (``cifar10_jpeg.npz``): it runs the export's own ``python SOURCE/decode.py OUT.npz`` (numpy and
    Pillow) into a temporary file renamed into place when complete, and returns an existing
    ``cache_path`` as is. Parameters, return value and errors are that function's.
    """
    return decode_export(source, cache_path, source_file=_SOURCE_FILE, what=_WHAT, overwrite=overwrite,
                         python=python, timeout=timeout)


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
    check_decoded_cache(ds, source, path, source_file=_SOURCE_FILE, what=_WHAT)
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
