"""An image folder in torchvision's ``ImageFolder`` layout, ``ROOT/{train,test}/<class>/<image>``
(Clothing1M / WebVision-like data), decoded and resized once into memory.

torchvision and Pillow are imported when a folder is read, not with this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sopdeep.datasets.arrays import ArrayDataset

__all__ = ["load_image_folder"]

_SPLIT_DIRS = {"train": ("train",), "test": ("test", "val")}


def _read_folder_split(folder, class_to_idx, size, mode):
    # (images, labels, paths): in make_dataset's order, classes sorted, then files sorted in each
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
        except Image.DecompressionBombError as exc:   # not an OSError: Pillow's guard on huge images
            raise ValueError(f"{path} is too large to decode ({exc}); remove or shrink that image") from exc
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise ValueError(f"{path} is not a readable image: {exc}") from exc
        y[i] = label
    return x, y, [path for path, _ in samples]


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

    Sample order: class by class in the order of the class indices (sorted folder names), and in
    each class folder the files sorted by path (subfolders included, as :func:`os.walk` finds them
    sorted). Row ``i`` of ``x_train`` is the file ``train_paths[i]``, written relative to ``root``
    with ``/`` separators (``"train/cat/001.png"``); a run writes these paths into its
    ``samples.npz`` as ``path``, so every per-sample output names its file.

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
        ``classes`` the sorted class folder names, K = their number; ``train_paths`` the files of
        the training images, in their order.

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
    x_train, y_train, train_files = _read_folder_split(folders["train"], class_to_idx, size, mode)
    x_test, y_test, _ = _read_folder_split(folders["test"], class_to_idx, size, mode)
    paths = tuple(Path(p).relative_to(root).as_posix() for p in train_files)  # make_dataset joins onto root
    return ArrayDataset(x_train, y_train, x_test, y_test, len(classes), name, tuple(classes), paths)
