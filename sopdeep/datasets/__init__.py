"""Datasets and their registry: :data:`DATASETS`, one line per dataset (nothing is ever downloaded).

Every dataset is a :class:`~sopdeep.datasets.spec.DatasetSpec`: its loader, class count, the
authors' fixed normalisation, its asymmetric-noise class map, the weak view ``augment="auto"``
resolves to, whether it is the user's own data, and its aliases. A new dataset is a loader in a
module of its own plus one line below; :func:`load_dataset` reads any of them with one call.

Every loader returns an :class:`ArrayDataset`: uint8 images in NHWC layout ``(N, H, W, C)`` and
int64 labels in ``[0, num_classes)``. The formats, one module each:

* :mod:`~sopdeep.datasets.cifar`: CIFAR-10 / CIFAR-100 python pickles (torchvision's root layout),
  read with a restricted unpickler (:mod:`sopdeep._safepickle`), so a tampered file cannot run code;
* :mod:`~sopdeep.datasets.cifar10_jpeg`: the CIFAR-10 JPEG export, decoded once to an ``.npz``;
* :mod:`~sopdeep.datasets.cifar100_png`: the lossless CIFAR-100 PNG export (fine and coarse labels), the same way
  (:mod:`~sopdeep.datasets.export`: decoded once by the export's own ``decode.py``, checked on every use);
* :mod:`~sopdeep.datasets.fashion_mnist`: the four idx files;
* :mod:`~sopdeep.datasets.npz`: any ``.npz`` holding ``x_train, y_train, x_test, y_test``;
* :mod:`~sopdeep.datasets.image_folder`: torchvision's ``ImageFolder`` layout, resized once;
* :mod:`~sopdeep.datasets.synthetic`: a small seeded problem drawn in memory (tests, smoke runs).

This package imports neither torch (torchvision is imported only when an image folder is read)
nor :mod:`sopdeep.config`, so the config can validate names against it.

>>> sorted(DATASETS)
['cifar10', 'cifar10-jpeg', 'cifar100', 'cifar100-png', 'fashion-mnist', 'imagefolder', 'npz', 'synthetic']
>>> DATASETS[canonical_dataset_name("CIFAR-100")].num_classes
100
"""

from __future__ import annotations

from sopdeep.datasets.arrays import ArrayDataset, split_indices
from sopdeep.datasets.cifar import CIFAR10_CLASSES, load_cifar10, load_cifar100, load_cifar100_coarse_labels
from sopdeep.datasets.cifar10_jpeg import cifar10_jpeg_npz, decode_cifar10_jpeg, load_cifar10_jpeg
from sopdeep.datasets.cifar100_png import decode_cifar100_png, load_cifar100_png, load_cifar100_png_coarse_labels
from sopdeep.datasets.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from sopdeep.datasets.image_folder import load_image_folder
from sopdeep.datasets.npz import load_npz, save_npz
from sopdeep.datasets.spec import DatasetSpec, cifar_shaped_crop_flip
from sopdeep.datasets.synthetic import load_synthetic, make_synthetic

__all__ = [
    "DATASETS", "DatasetSpec", "ArrayDataset", "split_indices",
    "load_dataset", "dataset_spec", "canonical_dataset_name", "fixed_normalization", "default_augment",
    "CIFAR10_CLASSES", "FASHION_MNIST_CLASSES",
    "load_cifar10", "load_cifar100", "load_cifar100_coarse_labels", "load_fashion_mnist", "load_npz", "save_npz",
    "decode_cifar10_jpeg", "load_cifar10_jpeg", "cifar10_jpeg_npz",
    "decode_cifar100_png", "load_cifar100_png", "load_cifar100_png_coarse_labels", "load_image_folder", "make_synthetic",
]

# the authors' per-channel (mean, std) in [0, 1] units (their transforms.Normalize)
_CIFAR10_NORM = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
_CIFAR100_NORM = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))

#: The registered datasets, canonical name -> spec.
DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        "cifar10", load_cifar10, "CIFAR-10 pickles, ROOT/cifar-10-batches-py/", num_classes=10,
        normalization=_CIFAR10_NORM, asymmetric="cifar10", augment="crop_flip", aliases=("cifar-10",)),
    "cifar100": DatasetSpec(
        "cifar100", load_cifar100, "CIFAR-100 pickles (fine labels), ROOT/cifar-100-python/", num_classes=100,
        normalization=_CIFAR100_NORM, asymmetric="cifar100", augment="crop_flip", aliases=("cifar-100",)),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", load_fashion_mnist, "Fashion-MNIST idx files, ROOT[/FashionMNIST/raw]/", num_classes=10,
        augment="none", aliases=("fashion_mnist", "fashionmnist", "fmnist")),
    "cifar10-jpeg": DatasetSpec(
        "cifar10-jpeg", load_cifar10_jpeg, "CIFAR-10 JPEG export (ROOT/decode.py), decoded to cache_path",
        num_classes=10, normalization=_CIFAR10_NORM, asymmetric="cifar10", augment="crop_flip",
        takes=("cache_path",), requires=("cache_path",)),
    "cifar100-png": DatasetSpec(
        "cifar100-png", load_cifar100_png, "CIFAR-100 PNG export (ROOT/decode.py, fine labels), decoded to cache_path",
        num_classes=100, normalization=_CIFAR100_NORM, asymmetric="cifar100", augment="crop_flip",
        takes=("cache_path",), requires=("cache_path",)),
    "npz": DatasetSpec(
        "npz", load_npz, "an .npz holding x_train, y_train, x_test, y_test (ROOT is the file)",
        augment=cifar_shaped_crop_flip, user_data=True),
    "imagefolder": DatasetSpec(
        "imagefolder", load_image_folder, "ImageFolder layout ROOT/{train,test}/<class>/<image>, resized",
        augment=cifar_shaped_crop_flip, user_data=True, aliases=("image-folder", "image_folder"),
        takes=("image_size",)),
    "synthetic": DatasetSpec(
        "synthetic", load_synthetic, "a small seeded problem drawn in memory from the run's seed (no files)",
        augment="none", takes=("seed",), needs_root=False),
}

_ALIASES = {alias: name for name, spec in DATASETS.items() for alias in spec.aliases}


def canonical_dataset_name(name):
    """The canonical form of a dataset name (aliases resolved, lower case): a key of :data:`DATASETS`.

    Examples
    --------
    >>> canonical_dataset_name("fmnist")
    'fashion-mnist'
    """
    key = name.lower() if isinstance(name, str) else None
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"dataset name must be one of {tuple(DATASETS)}, got {name!r}")
    return key


def dataset_spec(name):
    """The :class:`DatasetSpec` of ``name`` (aliases allowed); ``ValueError`` naming the datasets."""
    return DATASETS[canonical_dataset_name(name)]


def fixed_normalization(name):
    """The authors' (mean, std) in [0, 1] units of ``normalization="fixed"`` for dataset ``name``.

    Raises ``ValueError`` naming the datasets that have constants.

    >>> fixed_normalization("cifar100")[0]
    (0.5071, 0.4867, 0.4408)
    """
    try:
        norm = dataset_spec(name).normalization
    except ValueError:
        norm = None
    if norm is None:
        have = sorted(key for key, spec in DATASETS.items() if spec.normalization is not None)
        raise ValueError(f"normalization='fixed' has constants for datasets {have} only, got dataset={name!r}; "
                         "use normalization='dataset'")
    return norm


def default_augment(name, image_shape):
    """The weak view ``augment="auto"`` resolves to for dataset ``name`` with images (H, W, C).

    >>> default_augment("cifar10", (32, 32, 3)), default_augment("npz", (28, 28, 1))
    ('crop_flip', 'none')
    """
    return dataset_spec(name).default_augment(image_shape)


def load_dataset(name, root=None, *, cache_path=None, image_size=None, seed=0):
    """Load any registered dataset with one call.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS` or an alias (case-insensitive: "CIFAR-10", "fmnist", "image-folder").
    root : str or Path, optional
        The data root of that loader: a torchvision-format root for cifar10 / cifar100 /
        fashion-mnist, the export folder for cifar10-jpeg / cifar100-png, the ``.npz`` file for npz, the folder
        holding ``train/`` and ``test/`` for imagefolder; ignored by synthetic (in memory).
    cache_path : str or Path, optional
        For the exports "cifar10-jpeg" and "cifar100-png" only: where the decoded npz is cached
        (required there).
    image_size : int or (int, int), optional
        For "imagefolder" only: the size images are resized to (default 32; a run's
        ``TrainConfig.image_size``).
    seed : int, default 0
        For data drawn in memory ("synthetic"): the seed it is drawn from; files ignore it.

    Returns
    -------
    ArrayDataset
    """
    try:
        spec = dataset_spec(name)
    except ValueError:
        raise ValueError(f"name must be one of {tuple(DATASETS)}, got {name!r}") from None
    given = {"cache_path": cache_path, "image_size": image_size}
    for key, value in given.items():
        if value is not None and key not in spec.takes:
            users = " or ".join(repr(n) for n, s in DATASETS.items() if key in s.takes)
            raise ValueError(f"{key} is only used for name={users}, got name={name!r}")
    for key in spec.requires:
        if given.get(key) is None:
            raise ValueError(f"{key} is required for dataset {spec.name!r} ({spec.description}); "
                             f"pass --set {key}=PATH (TrainConfig({key}=...))")
    if spec.needs_root and (root is None or str(root) == ""):
        raise ValueError(f"root must be set for name={spec.name!r}: a local folder or file "
                         f"({spec.description}); nothing is downloaded")
    options = {key: value for key, value in {**given, "seed": seed}.items()
               if key in spec.takes and value is not None}
    return spec.loader(root, **options)
