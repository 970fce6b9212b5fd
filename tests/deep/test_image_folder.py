"""ImageFolder-style input (Clothing1M / WebVision-like): a tiny folder of PNGs written here."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sopdeep.datasets import DATASETS, canonical_dataset_name, load_dataset, load_image_folder

# class name -> constant RGB colour; sizes differ so resizing is exercised
COLOURS = {"shirt": (200, 10, 10), "jacket": (10, 200, 10), "dress": (10, 10, 200)}


def _write(root, split, cls, name, colour, size=(20, 12), gradient=False):
    folder = root / split / cls
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.empty((size[1], size[0], 3), dtype=np.uint8)
    arr[...] = colour
    if gradient:
        arr[..., 0] = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :]
    Image.fromarray(arr).save(folder / f"{name}.png")


@pytest.fixture
def folder(tmp_path):
    for cls, colour in COLOURS.items():
        for i in range(2):
            _write(tmp_path, "train", cls, f"img{i}", colour, size=(20 + 3 * i, 12 + i))
        _write(tmp_path, "test", cls, "t0", colour)
    return tmp_path


def test_image_folder_loads_sorted_classes_resized_constant_images(folder):
    ds = load_image_folder(folder, image_size=8)
    assert ds.classes == ("dress", "jacket", "shirt")  # torchvision's find_classes: sorted names
    assert ds.num_classes == 3 and ds.image_shape == (8, 8, 3)
    assert ds.n_train == 6 and ds.n_test == 3
    # samples in sorted path order: class 0's two images, then class 1's, ...
    np.testing.assert_array_equal(ds.y_train, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(ds.y_test, [0, 1, 2])
    # a constant image stays exactly constant under bilinear resizing
    for x, y in zip(ds.x_train, ds.y_train):
        assert np.all(x == np.array(COLOURS[ds.classes[y]], dtype=np.uint8))


def test_image_folder_resize_matches_pil_and_grey_and_rectangular_sizes(tmp_path):
    for cls in ("a", "b"):
        _write(tmp_path, "train", cls, "g", (0, 50, 100), size=(40, 30), gradient=True)
        _write(tmp_path, "val", cls, "g", (0, 50, 100), size=(40, 30), gradient=True)  # "val" accepted as test
    ds = load_image_folder(tmp_path, image_size=(10, 16))
    with Image.open(tmp_path / "train" / "a" / "g.png") as img:
        ref = np.asarray(img.convert("RGB").resize((16, 10), Image.BILINEAR))
    np.testing.assert_array_equal(ds.x_train[0], ref)  # direct computation with Pillow
    grey = load_image_folder(tmp_path, image_size=12, channels=1)
    assert grey.image_shape == (12, 12, 1)


def test_image_folder_errors_name_the_problem(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="train"):
        load_image_folder(tmp_path / "missing")
    bad = folder / "train" / "shirt" / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        load_image_folder(folder)
    bad.unlink()
    _write(folder, "test", "hat", "t0", (1, 2, 3))
    with pytest.raises(ValueError, match="absent from"):
        load_image_folder(folder)
    with pytest.raises(ValueError, match="image_size"):
        load_image_folder(folder, image_size=0)
    with pytest.raises(ValueError, match="channels"):
        load_image_folder(folder, channels=4)


def test_load_dataset_reads_image_folders_and_names_resolve(folder):
    ds = load_dataset("image-folder", folder, image_size=4)
    assert ds.name == "imagefolder" and ds.image_shape == (4, 4, 3)
    assert load_dataset("imagefolder", folder).image_shape == (32, 32, 3)
    with pytest.raises(ValueError, match="image_size is only used"):
        load_dataset("npz", folder / "x.npz", image_size=8)
    assert canonical_dataset_name("FMNIST") == "fashion-mnist"
    assert canonical_dataset_name("synthetic") == "synthetic"  # an ordinary registry entry
    with pytest.raises(ValueError, match="dataset name must be one of"):
        canonical_dataset_name("imagenet")
    assert DATASETS["cifar100"].num_classes == 100 and DATASETS["imagefolder"].num_classes is None
