"""DatasetSpec: everything the package knows about one dataset, in one frozen record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

__all__ = ["DatasetSpec", "AUGMENTS", "LOADER_OPTIONS", "cifar_shaped_crop_flip"]

#: The weak views a dataset may default to (``TrainConfig.augment``, ``"auto"`` excluded).
AUGMENTS = ("none", "flip", "crop_flip")
#: The keywords :func:`sopdeep.datasets.load_dataset` may pass on to a loader.
LOADER_OPTIONS = ("cache_path", "image_size", "seed")

Normalization = tuple[tuple[float, ...], tuple[float, ...]]


def cifar_shaped_crop_flip(image_shape: tuple[int, int, int]) -> str:
    """The default weak view of data whose files decide the images (npz, imagefolder).

    ``"crop_flip"`` for CIFAR-shaped colour images (32, 32, 3), the setting the paper's crop
    (zero padding 4) and flip were made for; ``"none"`` otherwise (the rule the trainer applied
    to every dataset before it was a property of the dataset, kept so that runs do not change).
    """
    return "crop_flip" if tuple(image_shape) == (32, 32, 3) else "none"


@dataclass(frozen=True)
class DatasetSpec:
    """One entry of :data:`sopdeep.datasets.DATASETS`.

    Attributes
    ----------
    name : str
        The canonical name (lower case), the key of the registry and ``TrainConfig.dataset``.
    loader : callable
        ``loader(root, **options) -> ArrayDataset``; ``options`` are the keywords of
        :data:`LOADER_OPTIONS` named in ``takes`` that the caller gave.
    description : str
        One line: format and on-disk layout.
    num_classes : int or None
        K when the name fixes it (CIFAR-10: 10); None when the files decide (npz, imagefolder,
        synthetic). Label noise uses it to know which classes exist (:mod:`sopdeep.noise`).
    normalization : ((float, ...), (float, ...)) or None
        The authors' fixed per-channel (mean, std) in [0, 1] units (``normalization="fixed"``);
        None when they published none.
    asymmetric : {"cifar10", "cifar100"} or None
        The class map of asymmetric noise (paper A.2) the dataset uses; None: it has none.
    augment : str or callable
        The weak view ``augment="auto"`` resolves to: one of :data:`AUGMENTS`, or a rule
        ``augment(image_shape) -> str`` on the (H, W, C) of the loaded images.
    user_data : bool
        The images and labels are the user's own (npz, imagefolder), not a benchmark: a run's
        ``noise="auto"`` trains on their labels as given (no synthetic noise), and its summary
        reports no realised noise rate (no clean labels are known).
    aliases : tuple of str
        Further names accepted for it (lower case).
    takes : tuple of str
        The loader keywords (of :data:`LOADER_OPTIONS`) this dataset accepts.
    requires : tuple of str
        Those of ``takes`` that must be given.
    needs_root : bool
        False for data generated in memory (no files are read, ``root`` is ignored).
    """

    name: str
    loader: Callable
    description: str
    num_classes: int | None = None
    normalization: Normalization | None = None
    asymmetric: str | None = None
    augment: Union[str, Callable[[tuple[int, int, int]], str]] = "none"
    user_data: bool = False
    aliases: tuple[str, ...] = ()
    takes: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    needs_root: bool = True

    def __post_init__(self):
        if self.name != self.name.lower() or any(a != a.lower() for a in self.aliases):
            raise ValueError(f"dataset names and aliases must be lower case, got {self.name!r}, {self.aliases}")
        if self.num_classes is not None and (isinstance(self.num_classes, bool) or self.num_classes < 2):
            raise ValueError(f"num_classes must be None or an integer >= 2, got {self.num_classes!r}")
        if not callable(self.augment) and self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS} or a rule on the image shape, got {self.augment!r}")
        if self.asymmetric not in (None, "cifar10", "cifar100"):
            raise ValueError(f"asymmetric must be None, 'cifar10' or 'cifar100', got {self.asymmetric!r}")
        unknown = set(self.takes) - set(LOADER_OPTIONS)
        if unknown or not set(self.requires) <= set(self.takes):
            raise ValueError(f"takes must be among {LOADER_OPTIONS} and hold requires, got {self.takes}, {self.requires}")
        if self.normalization is not None:
            mean, std = self.normalization
            if len(mean) != len(std) or min(std) <= 0:
                raise ValueError(f"normalization must be (mean, std) of equal length, std > 0, got {self.normalization}")

    def default_augment(self, image_shape: tuple[int, int, int]) -> str:
        """The weak view of ``augment="auto"`` for images of shape (H, W, C)."""
        return self.augment(tuple(image_shape)) if callable(self.augment) else self.augment
