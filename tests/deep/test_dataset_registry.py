"""sopdeep.datasets.DATASETS is the one place a dataset is defined: every entry loads through the same
call, and its class count, fixed normalisation, asymmetric class map and default augmentation are
the ones the loader, the noise and the trainer use."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fake_datasets import fake_cifar10, fake_cifar100, fake_fashion  # noqa: F401 (fixtures)
from sopdeep import distributed as ddp
from sopdeep.config import TrainConfig
from sopdeep.datasets import (
    DATASETS,
    ArrayDataset,
    DatasetSpec,
    canonical_dataset_name,
    default_augment,
    fixed_normalization,
    load_dataset,
    make_synthetic,
    save_npz,
)
from sopdeep.noise import asymmetric_datasets, make_noisy_labels
from sopdeep.training import training_data
from sopdeep.training.setup import build_run

# a stand-in for the export's decode.py: writes the npz the real one writes (tiny, colour 32 x 32)
FAKE_DECODER = """import sys, numpy as np
rng = np.random.default_rng(0)
np.savez(sys.argv[1], x_train=rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), y_train=np.arange(6) % 10,
         x_test=rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8), y_test=np.arange(3))
"""


def _colour_png_folder(root):
    from PIL import Image

    for split, n in (("train", 2), ("test", 1)):
        for cls, colour in (("a", (200, 0, 0)), ("b", (0, 0, 200))):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((9, 7, 3), colour, dtype=np.uint8)).save(root / split / cls / f"{i}.png")
    return root


@pytest.fixture
def every_dataset(tmp_path, fake_cifar10, fake_cifar100, fake_fashion):
    """name -> keyword arguments of load_dataset that read a tiny copy of it (one per registry entry)."""
    (tmp_path / "jpeg").mkdir()
    (tmp_path / "jpeg" / "decode.py").write_text(FAKE_DECODER)
    (tmp_path / "jpeg" / "cifar10_jpeg.npz").write_bytes(b"")  # present; only the fake decoder reads it
    (tmp_path / "png").mkdir()
    (tmp_path / "png" / "decode.py").write_text(FAKE_DECODER)
    (tmp_path / "png" / "cifar100_png.npz").write_bytes(b"")
    save_npz(make_synthetic(n_train=8, n_test=4), tmp_path / "user.npz")
    return {
        "cifar10": dict(root=fake_cifar10[0]),
        "cifar100": dict(root=fake_cifar100[0]),
        "fashion-mnist": dict(root=fake_fashion[0]),
        "cifar10-jpeg": dict(root=tmp_path / "jpeg", cache_path=tmp_path / "cache" / "c10.npz"),
        "cifar100-png": dict(root=tmp_path / "png", cache_path=tmp_path / "cache" / "c100.npz"),
        "npz": dict(root=tmp_path / "user.npz"),
        "imagefolder": dict(root=_colour_png_folder(tmp_path / "folder"), image_size=8),
        "synthetic": dict(seed=3),
    }


def test_every_registry_entry_loads_through_one_call(every_dataset):
    assert set(every_dataset) == set(DATASETS), "a registry entry without a loading test"
    for name, spec in DATASETS.items():
        assert isinstance(spec, DatasetSpec) and spec.name == name
        ds = load_dataset(name, **every_dataset[name])
        assert isinstance(ds, ArrayDataset) and ds.n_train > 0 and ds.n_test > 0
        if spec.num_classes is not None:  # the registry's K is the loader's K
            assert ds.num_classes == spec.num_classes
        for alias in spec.aliases:
            assert canonical_dataset_name(alias.upper()) == name
        # the noise accepts every dataset name and takes K from the registry
        noisy = make_noisy_labels(ds.y_train, "sym", 0.5, dataset=name, random_state=0)
        assert noisy.num_classes == (spec.num_classes or max(int(ds.y_train.max()) + 1, 2))


def test_loader_options_are_checked_against_the_spec(every_dataset):
    with pytest.raises(ValueError, match="cache_path is only used for name='cifar10-jpeg' or 'cifar100-png'"):
        load_dataset("cifar10", every_dataset["cifar10"]["root"], cache_path="x.npz")
    with pytest.raises(ValueError, match="image_size is only used for name='imagefolder'"):
        load_dataset("synthetic", image_size=8)
    with pytest.raises(ValueError, match="root must be set for name='npz'"):
        load_dataset("npz")
    # the in-memory set is drawn from the seed it is given, files ignore the seed
    a, b = load_dataset("synthetic", seed=1), load_dataset("synthetic", seed=2)
    assert np.array_equal(a.x_train, make_synthetic(seed=1).x_train) and not np.array_equal(a.x_train, b.x_train)
    assert np.array_equal(load_dataset("npz", seed=5, **every_dataset["npz"]).x_train,
                          load_dataset("npz", **every_dataset["npz"]).x_train)


@pytest.mark.parametrize("name, image_shape, expected", [
    ("cifar10", (32, 32, 3), "crop_flip"),
    ("cifar100", (32, 32, 3), "crop_flip"),
    ("cifar10-jpeg", (32, 32, 3), "crop_flip"),
    ("cifar100-png", (32, 32, 3), "crop_flip"),
    ("fashion-mnist", (28, 28, 1), "none"),
    ("synthetic", (8, 8, 1), "none"),
    ("synthetic", (32, 32, 3), "none"),  # a property of the dataset, not only of the shape
    ("npz", (32, 32, 3), "crop_flip"),  # user data: CIFAR-shaped colour images
    ("npz", (28, 28, 1), "none"),
    ("imagefolder", (32, 32, 3), "crop_flip"),
    ("imagefolder", (64, 64, 3), "none"),
])
def test_auto_augment_resolves_per_dataset(name, image_shape, expected):
    assert default_augment(name, image_shape) == expected


def test_the_trainer_resolves_auto_augment_through_the_registry(tmp_path):
    env = ddp.init_from_env("cpu")
    # CIFAR-shaped colour user data get the crop and flip; the synthetic set none
    save_npz(make_synthetic(n_train=8, n_test=4, image_size=32, channels=3), tmp_path / "c.npz")
    for dataset, extra, expected in (("synthetic", {}, "none"),
                                     ("npz", {"data_root": str(tmp_path / "c.npz")}, "crop_flip")):
        config = TrainConfig(dataset=dataset, arch="cnn", width=4, epochs=1, noise="none", device="cpu",
                             out=str(tmp_path / dataset), **extra)
        data = training_data(config)
        assert build_run(config, data, env, torch.device("cpu")).augment == expected


def test_fixed_normalization_is_the_authors_constants_and_names_the_datasets_that_have_them():
    assert fixed_normalization("cifar10") == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    assert fixed_normalization("CIFAR-10") == fixed_normalization("cifar10-jpeg") == fixed_normalization("cifar10")
    assert fixed_normalization("cifar100") == ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
    assert fixed_normalization("cifar100-png") == fixed_normalization("cifar100")
    have = sorted(name for name, spec in DATASETS.items() if spec.normalization is not None)
    assert have == ["cifar10", "cifar10-jpeg", "cifar100", "cifar100-png"]
    for name in ("fashion-mnist", "npz", "synthetic", "imagenet"):
        with pytest.raises(ValueError, match=r"constants for datasets \['cifar10', 'cifar10-jpeg', 'cifar100', "
                                             r"'cifar100-png'\]"):
            fixed_normalization(name)


def test_asymmetric_noise_follows_the_registry():
    assert asymmetric_datasets() == {"cifar10": "cifar10", "cifar10-jpeg": "cifar10", "cifar100": "cifar100",
                                     "cifar100-png": "cifar100"}
    for name, spec in DATASETS.items():
        if spec.asymmetric is None:
            with pytest.raises(ValueError, match="has none"):
                make_noisy_labels(np.arange(200) % 10, "asym", 0.4, dataset=name, random_state=0)
        else:
            y = np.arange(500) % (spec.num_classes or 10)
            assert make_noisy_labels(y, "asym", 0.4, dataset=name, random_state=0).n_noisy > 0


def test_user_data_flag_marks_the_users_own_files():
    assert {name for name, spec in DATASETS.items() if spec.user_data} == {"npz", "imagefolder"}
    assert [name for name, spec in DATASETS.items() if not spec.needs_root] == ["synthetic"]


def test_spec_refuses_inconsistent_entries():
    with pytest.raises(ValueError, match="augment must be one of"):
        DatasetSpec("x", lambda root: None, "x", augment="rotate")
    with pytest.raises(ValueError, match="takes must be among"):
        DatasetSpec("x", lambda root: None, "x", takes=("download",))
    with pytest.raises(ValueError, match="lower case"):
        DatasetSpec("X", lambda root: None, "x")
