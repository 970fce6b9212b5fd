"""In-memory image datasets and loaders for local files (nothing is ever downloaded).

Every loader returns an :class:`ArrayDataset`: uint8 images in NHWC layout ``(N, H, W, C)`` and
int64 labels in ``[0, num_classes)``. Supported on-disk formats:

* CIFAR-10, torchvision layout ``ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``;
* CIFAR-100, torchvision layout ``ROOT/cifar-100-python/{train, test, meta}``;
* Fashion-MNIST, the four idx files (``.gz`` or extracted) in ``ROOT/FashionMNIST/raw/`` (torchvision)
  or directly in ``ROOT``;
* any ``.npz`` holding ``x_train, y_train, x_test, y_test`` (user data, or the decoded CIFAR-10 JPEG
  export, see :func:`load_cifar10_jpeg`);
* an image folder in torchvision's ``ImageFolder`` layout, ``ROOT/{train,test}/<class>/<image>``
  (Clothing1M / WebVision-like data), decoded and resized once (:func:`load_image_folder`).

The CIFAR batches are Python pickles; they are read with a restricted unpickler that admits only
numpy's array globals (:mod:`sopdeep._safepickle`), so a tampered file cannot run code.
"""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sopcommon import atomic_path

from ._safepickle import restricted_loads

__all__ = [
    "ArrayDataset",
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "DATASET_NAMES",
    "load_cifar10",
    "load_cifar100",
    "load_cifar100_coarse_labels",
    "load_fashion_mnist",
    "load_npz",
    "save_npz",
    "decode_cifar10_jpeg",
    "load_cifar10_jpeg",
    "load_image_folder",
    "load_dataset",
    "canonical_dataset_name",
    "DATASET_NUM_CLASSES",
    "split_indices",
]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def _check_images(x, name):
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 array of images, got dtype {x.dtype}")
    if x.ndim != 4 or x.shape[3] not in (1, 3) or min(x.shape[1:3]) < 1:
        raise ValueError(f"{name} must have shape (N, H, W, C) with C in (1, 3), got {x.shape}")
    return x


def _check_labels(y, n, num_classes, name):
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {y.shape}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), got range [{y.min()}, {y.max()}]")
    return y


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A labelled image classification dataset held in memory.

    Parameters
    ----------
    x_train : ndarray of shape (n_train, H, W, C), dtype uint8
        Training images, channels last; C is 3 (colour) or 1 (grey).
    y_train : ndarray of shape (n_train,), dtype int64
        Training labels in ``[0, num_classes)``.
    x_test : ndarray of shape (n_test, H, W, C), dtype uint8
        Test images, same H, W, C as ``x_train``.
    y_test : ndarray of shape (n_test,), dtype int64
        Test labels in ``[0, num_classes)``.
    num_classes : int
        K, the number of classes (>= 2).
    name : str, default "arrays"
        A short name ("cifar10", "cifar100", "fashion-mnist", ...).
    classes : tuple of str, default ()
        Class names, empty or of length ``num_classes``.

    All arrays are validated on construction and made read-only.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str = "arrays"
    classes: tuple = field(default_factory=tuple)

    def __post_init__(self):
        k = self.num_classes
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {k!r}")
        object.__setattr__(self, "num_classes", int(k))
        xtr = _check_images(self.x_train, "x_train")
        xte = _check_images(self.x_test, "x_test")
        if xtr.shape[1:] != xte.shape[1:]:
            raise ValueError(f"x_train and x_test must share (H, W, C), got {xtr.shape[1:]} and {xte.shape[1:]}")
        ytr = _check_labels(self.y_train, xtr.shape[0], k, "y_train")
        yte = _check_labels(self.y_test, xte.shape[0], k, "y_test")
        classes = tuple(str(c) for c in self.classes)
        if classes and len(classes) != k:
            raise ValueError(f"classes must be empty or have num_classes={k} names, got {len(classes)}")
        for attr, arr in (("x_train", xtr), ("y_train", ytr), ("x_test", xte), ("y_test", yte)):
            arr = np.ascontiguousarray(arr)
            arr.flags.writeable = False
            object.__setattr__(self, attr, arr)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "name", str(self.name))

    @property
    def image_shape(self):
        """(H, W, C) of every image."""
        return tuple(self.x_train.shape[1:])

    @property
    def in_channels(self):
        """C, the number of image channels (the ``in_channels`` of :func:`sopdeep.models.build_model`)."""
        return int(self.x_train.shape[3])

    @property
    def n_train(self):
        return int(self.x_train.shape[0])

    @property
    def n_test(self):
        return int(self.x_test.shape[0])

    def channel_stats(self):
        """Per-channel mean and standard deviation of the training images, on the [0, 1] scale.

        Returns
        -------
        mean, std : ndarray of shape (C,), float64
            ``mean[c] = mean(x_train[..., c]) / 255`` and ``std[c]`` the population standard
            deviation / 255, computed in float64 (for input standardisation, A.4).
        """
        x = self.x_train.reshape(-1, self.in_channels)
        if x.shape[0] == 0:
            raise ValueError("channel_stats needs at least one training image")
        mean = x.mean(axis=0, dtype=np.float64)
        var = np.zeros_like(mean)
        for lo in range(0, x.shape[0], 1 << 22):  # chunks bound the float64 copy
            chunk = x[lo:lo + (1 << 22)].astype(np.float64) - mean
            var += np.einsum("ij,ij->j", chunk, chunk)
        return mean / 255.0, np.sqrt(var / x.shape[0]) / 255.0

    def subset(self, train_indices=None, test_indices=None):
        """Return a new dataset restricted to the given train/test indices (None keeps all).

        Indices keep their order, so per-sample label files (CIFAR-N) can be indexed the same way.
        """
        def take(x, y, idx, name, n):
            if idx is None:
                return x, y
            idx = np.asarray(idx)
            if idx.ndim != 1 or idx.dtype.kind not in "iu":
                raise ValueError(f"{name} must be a 1-D integer array, got shape {idx.shape}, dtype {idx.dtype}")
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"{name} must lie in [0, {n}), got range [{idx.min()}, {idx.max()}]")
            return x[idx], y[idx]

        xtr, ytr = take(self.x_train, self.y_train, train_indices, "train_indices", self.n_train)
        xte, yte = take(self.x_test, self.y_test, test_indices, "test_indices", self.n_test)
        return ArrayDataset(xtr, ytr, xte, yte, self.num_classes, self.name, self.classes)

    def __repr__(self):
        return (f"ArrayDataset(name={self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
                f"image_shape={self.image_shape}, num_classes={self.num_classes})")


def split_indices(n, n_val, *, labels=None, random_state=None):
    """Split ``range(n)`` into training and held-out validation indices.

    Parameters
    ----------
    n : int
        Number of samples.
    n_val : int
        Size of the validation part, ``0 <= n_val <= n`` (Table A.1 holds out 5,000 of CIFAR's 50,000
        for the ResNet34 settings).
    labels : array-like of shape (n,), optional
        If given, the split is stratified: each class contributes ``round(n_val * n_c / n)`` samples
        (adjusted by largest remainders so the total is exactly ``n_val``).
    random_state : None, int, SeedSequence or numpy Generator

    Returns
    -------
    train_idx, val_idx : ndarray of int64, sorted
        Disjoint, together ``range(n)``.
    """
    from .noise import check_random_state  # one resolver for the whole package

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(n_val, bool) or not isinstance(n_val, (int, np.integer)) or not 0 <= n_val <= n:
        raise ValueError(f"n_val must be an integer in [0, n={n}], got {n_val!r}")
    rng = check_random_state(random_state)
    if labels is None:
        val = rng.choice(n, size=int(n_val), replace=False)
    else:
        y = np.asarray(labels)
        if y.shape != (n,) or y.dtype.kind not in "iu":
            raise ValueError(f"labels must be an integer array of shape ({n},), got {y.dtype} {y.shape}")
        classes, counts = np.unique(y, return_counts=True)
        quota = n_val * counts / n
        take = np.floor(quota).astype(np.int64)
        extra = int(n_val - take.sum())
        take[np.argsort(-(quota - take), kind="stable")[:extra]] += 1
        val = np.concatenate([rng.choice(np.flatnonzero(y == c), size=int(t), replace=False)
                              for c, t in zip(classes, take)]) if n else np.zeros(0, np.int64)
    mask = np.zeros(n, dtype=bool)
    mask[val] = True
    return np.flatnonzero(~mask).astype(np.int64), np.flatnonzero(mask).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# CIFAR python pickles
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST (idx files)
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# npz (user data, decoded CIFAR-10 JPEG export)
# ---------------------------------------------------------------------------------------------

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
    RuntimeError
        If the decoder fails (its stderr is included).
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
    # decode.py writes with np.savez, which appends ".npz" to a path not ending in it
    with atomic_path(cache_path, suffix=".tmp.npz") as tmp:
        proc = subprocess.run([python or sys.executable, str(source / "decode.py"), str(tmp)],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{source / 'decode.py'} failed with exit code {proc.returncode}:\n{proc.stderr}")
    return cache_path


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
    return ds if ds.classes else ArrayDataset(ds.x_train, ds.y_train, ds.x_test, ds.y_test, 10,
                                              "cifar10-jpeg", CIFAR10_CLASSES)


# ---------------------------------------------------------------------------------------------
# image folders (torchvision's ImageFolder layout)
# ---------------------------------------------------------------------------------------------

_SPLIT_DIRS = {"train": ("train",), "test": ("test", "val")}


def _read_folder_split(folder, class_to_idx, size, mode):
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    try:
        samples = make_dataset(folder, class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as exc:  # a class folder without images
        raise ValueError(f"{folder}: {exc}") from exc
    channels = 3 if mode == "RGB" else 1
    x = np.empty((len(samples), size[0], size[1], channels), dtype=np.uint8)
    y = np.empty(len(samples), dtype=np.int64)
    for i, (path, label) in enumerate(samples):
        try:
            with Image.open(path) as img:
                img = img.convert(mode).resize((size[1], size[0]), Image.BILINEAR)
                x[i] = np.asarray(img, dtype=np.uint8).reshape(size[0], size[1], channels)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise ValueError(f"{path} is not a readable image: {exc}") from exc
        y[i] = label
    return x, y


def load_image_folder(root, *, image_size=32, channels=3, name="imagefolder"):
    """Load an image-folder dataset (Clothing1M / WebVision-like) into memory, resized.

    The layout is torchvision's ``ImageFolder`` one, per split::

        ROOT/train/<class name>/<image>.{png,jpg,...}
        ROOT/test/<class name>/<image>...      (or ROOT/val/...)

    Class indices follow :func:`torchvision.datasets.folder.find_classes` on ``ROOT/train`` (sorted
    folder names); the test split is read with the same ``class_to_idx`` and may not hold a class
    the training split lacks. Images are listed with :func:`torchvision.datasets.folder.make_dataset`
    (sorted paths, torchvision's image extensions), decoded with Pillow, converted to RGB (or L) and
    resized to ``image_size`` with bilinear interpolation.

    Parameters
    ----------
    root : str or Path
        Folder holding ``train/`` and ``test/`` (or ``val/``).
    image_size : int or (int, int), default 32
        Output H = W (or (H, W)). Everything is held in memory as uint8 (N * H * W * C bytes), so
        this is for small images or subsets, not the full 1M Clothing1M images at 224 px.
    channels : {3, 1}, default 3
        RGB or greyscale.
    name : str, default "imagefolder"

    Returns
    -------
    ArrayDataset
        ``classes`` the sorted class folder names, K = their number.

    Raises
    ------
    FileNotFoundError
        If ``root``, its ``train/`` or its ``test/`` (``val/``) folder is missing.
    ValueError
        On a bad ``image_size`` / ``channels``, fewer than 2 classes, a test class absent from
        training, an empty class folder or an unreadable image (the file is named).
    """
    from torchvision.datasets.folder import find_classes

    root = Path(root)
    if isinstance(image_size, (tuple, list)):
        size = tuple(image_size)
    else:
        size = (image_size, image_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in size):
        raise ValueError(f"image_size must be a positive integer or a pair (H, W), got {image_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 3 (RGB) or 1 (grey), got {channels!r}")
    folders = {}
    for split, names in _SPLIT_DIRS.items():
        found = [root / n for n in names if (root / n).is_dir()]
        if not found:
            raise FileNotFoundError(f"{root} has no {' or '.join(names)}/ folder; expected the ImageFolder layout "
                                    "ROOT/{train,test}/<class>/<image>")
        folders[split] = found[0]
    classes, class_to_idx = find_classes(folders["train"])
    if len(classes) < 2:
        raise ValueError(f"{folders['train']} must hold at least 2 class folders, got {classes}")
    test_classes, _ = find_classes(folders["test"])
    unknown = sorted(set(test_classes) - set(classes))
    if unknown:
        raise ValueError(f"{folders['test']} has class folders absent from {folders['train']}: {unknown}")
    mode = "RGB" if channels == 3 else "L"
    size = (int(size[0]), int(size[1]))
    x_train, y_train = _read_folder_split(folders["train"], class_to_idx, size, mode)
    x_test, y_test = _read_folder_split(folders["test"], class_to_idx, size, mode)
    return ArrayDataset(x_train, y_train, x_test, y_test, len(classes), name, tuple(classes))


_LOADERS = {
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "fashion-mnist": load_fashion_mnist,
    "npz": load_npz,
    "imagefolder": load_image_folder,
}
_ALIASES = {"cifar-10": "cifar10", "cifar-100": "cifar100", "fashion_mnist": "fashion-mnist",
            "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist", "image-folder": "imagefolder",
            "image_folder": "imagefolder"}
#: Names accepted by :func:`load_dataset` (aliases: cifar-10, cifar-100, fashion_mnist, fashionmnist, fmnist,
#: image-folder, image_folder).
DATASET_NAMES = ("cifar10", "cifar100", "fashion-mnist", "cifar10-jpeg", "npz", "imagefolder")
#: Class count of each named dataset whose classes are fixed by its name (npz / imagefolder: by the files).
DATASET_NUM_CLASSES = {"cifar10": 10, "cifar10-jpeg": 10, "cifar100": 100, "fashion-mnist": 10}


def canonical_dataset_name(name, *, extra=()):
    """The canonical form of a dataset name of :func:`load_dataset` (aliases resolved, lower case).

    Parameters
    ----------
    name : str
        E.g. ``"CIFAR-10"``, ``"fmnist"``.
    extra : tuple of str
        Further names to accept as they are (e.g. ``("synthetic",)``, the in-memory set of
        :mod:`sopdeep.synthetic`).

    Returns
    -------
    str, one of :data:`DATASET_NAMES` or ``extra``.

    Examples
    --------
    >>> canonical_dataset_name("CIFAR-100")
    'cifar100'
    """
    allowed = DATASET_NAMES + tuple(extra)
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be one of {allowed}, got {name!r}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in allowed:
        raise ValueError(f"dataset name must be one of {allowed}, got {name!r}")
    return key


def load_dataset(name, root, *, cache_path=None, image_size=None):
    """Load a dataset by name from local files.

    Parameters
    ----------
    name : {"cifar10", "cifar100", "fashion-mnist", "cifar10-jpeg", "npz", "imagefolder"}
        Which loader to use (case-insensitive; aliases "cifar-10", "cifar-100", "fashion_mnist",
        "fmnist", "image-folder").
    root : str or Path
        The data root of that loader: a torchvision-format root for cifar10/cifar100/fashion-mnist,
        the export folder for cifar10-jpeg, the ``.npz`` file for npz, the folder holding
        ``train/`` and ``test/`` for imagefolder.
    cache_path : str or Path, optional
        For "cifar10-jpeg" only: where the decoded npz is cached (required there).
    image_size : int or (int, int), optional
        For "imagefolder" only: the size images are resized to (default 32).

    Returns
    -------
    ArrayDataset
    """
    try:
        key = canonical_dataset_name(name)
    except ValueError:
        raise ValueError(f"name must be one of {DATASET_NAMES}, got {name!r}") from None
    if image_size is not None and key != "imagefolder":
        raise ValueError(f"image_size is only used for name='imagefolder', got name={name!r}")
    if key == "cifar10-jpeg":
        if cache_path is None:
            raise ValueError("cache_path is required for name='cifar10-jpeg' (where the decoded npz is kept)")
        return load_cifar10_jpeg(root, cache_path)
    if cache_path is not None:
        raise ValueError(f"cache_path is only used for name='cifar10-jpeg', got name={name!r}")
    if key == "imagefolder":
        return load_image_folder(root, image_size=32 if image_size is None else image_size)
    return _LOADERS[key](root)
