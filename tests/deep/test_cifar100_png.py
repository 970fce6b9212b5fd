"""CIFAR-100 from the lossless PNG export (dataset "cifar100-png"): decoded once by the export's own
decode.py, the cache refused when it cannot come from the export, fine and coarse labels, and on the
real export the alignment with CIFAR-100N (index i of the export is index i of the label file)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

from sopcommon.files import DataFileError
from sopdeep.config import TrainConfig
from sopdeep.datasets import (
    ArrayDataset,
    decode_cifar100_png,
    load_cifar100_png,
    load_cifar100_png_coarse_labels,
    load_dataset,
    save_npz,
)
from sopdeep.methods.sop_plus import strong_view_settings
from sopdeep.noise import CIFAR100_FINE_TO_COARSE, load_cifar_n, make_noisy_labels, read_cifar_n
from sopdeep.training import load_data

# ------------------------------------------------------------------------------------------------
# a tiny fake export (no real data): its decode.py writes what the real one writes


def _fake_export(folder, n_train=6, n_test=3, coarse_shift=0):
    """An export folder whose decode.py writes n_train / n_test random images, fine labels i % 100,
    coarse labels from the standard map (shifted by ``coarse_shift`` to make them inconsistent)."""
    folder.mkdir()
    np.savez(folder / "cifar100_png.npz", y_train=np.arange(n_train) % 100, y_test=np.arange(n_test) % 100)
    (folder / "decode.py").write_text(
        "import sys, numpy as np\n"
        "rng = np.random.default_rng(0)\n"
        f"f2c = np.array({CIFAR100_FINE_TO_COARSE.tolist()})\n"
        f"ytr, yte = np.arange({n_train}) % 100, np.arange({n_test}) % 100\n"
        f"np.savez(sys.argv[1], x_train=rng.integers(0, 256, ({n_train}, 32, 32, 3), dtype=np.uint8), y_train=ytr,\n"
        f"         y_train_coarse=(f2c[ytr] + {coarse_shift} * (np.arange({n_train}) % 2)) % 20,\n"
        f"         x_test=rng.integers(0, 256, ({n_test}, 32, 32, 3), dtype=np.uint8), y_test=yte,\n"
        "         y_test_coarse=f2c[yte], classes=np.array([f'fine{i:02d}' for i in range(100)]),\n"
        "         coarse_classes=np.array([f'coarse{i:02d}' for i in range(20)]))\n")
    return folder


def test_fake_export_decodes_once_with_fine_names_and_coarse_map(tmp_path):
    # all 100 fine classes present, so the coarse labels define the whole fine -> coarse map
    src, cache = _fake_export(tmp_path / "src", n_train=200, n_test=100), tmp_path / "cache" / "c100.npz"
    ds = load_dataset("cifar100-png", src, cache_path=cache)
    assert (ds.name, ds.num_classes, ds.n_train, ds.n_test) == ("cifar100-png", 100, 200, 100)
    assert ds.classes == tuple(f"fine{i:02d}" for i in range(100))
    np.testing.assert_array_equal(ds.y_train, np.arange(200) % 100)
    f2c, names = load_cifar100_png_coarse_labels(src, cache)
    np.testing.assert_array_equal(f2c, CIFAR100_FINE_TO_COARSE)   # the map the decoder wrote
    assert names == tuple(f"coarse{i:02d}" for i in range(20))
    with pytest.raises(ValueError, match="cache_path is required for dataset 'cifar100-png'"):
        load_dataset("cifar100-png", src)
    (src / "cifar100_png.npz").unlink()   # the cached file is used, the source is not decoded again
    assert decode_cifar100_png(src, cache) == cache


def test_coarse_labels_refuse_an_inconsistent_cache(tmp_path):
    # every second training image gets another super-class than its fine class's
    src = _fake_export(tmp_path / "src", n_train=200, n_test=100, coarse_shift=1)
    with pytest.raises(DataFileError, match="one super-class per fine class"):
        load_cifar100_png_coarse_labels(src, tmp_path / "c.npz")
    # a fine class without any image leaves its super-class unknown
    src = _fake_export(tmp_path / "few", n_train=6, n_test=3)
    with pytest.raises(DataFileError, match="one super-class per fine class"):
        load_cifar100_png_coarse_labels(src, tmp_path / "few.npz")


def test_decoded_cache_must_match_its_source(tmp_path):
    src, cache = _fake_export(tmp_path / "src"), tmp_path / "cache" / "c.npz"
    assert load_cifar100_png(src, cache).n_train == 6                          # decoded, fingerprinted
    assert (tmp_path / "cache" / "c.npz.source.json").is_file()
    # 1. a valid npz of 30 other images put in its place
    rng = np.random.default_rng(0)
    other = ArrayDataset(rng.integers(0, 255, (30, 32, 32, 3), dtype=np.uint8), np.arange(30),
                         rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8), np.arange(3), 100)
    save_npz(other, cache)
    with pytest.raises(DataFileError, match=r"c\.npz: does not match its source .*cifar100_png\.npz"):
        load_cifar100_png(src, cache)
    # 2. images of another shape
    save_npz(ArrayDataset(np.zeros((6, 8, 8, 3), np.uint8), np.arange(6), np.zeros((3, 8, 8, 3), np.uint8),
                          np.arange(3), 100), cache)
    with pytest.raises(DataFileError, match=r"not a decoded CIFAR-100 PNG export: images of shape \(8, 8, 3\)"):
        load_cifar100_png(src, cache)
    # 3. the right counts, but the source file changed since it was decoded
    load_cifar100_png(src, cache, overwrite=True)
    np.savez(src / "cifar100_png.npz", y_train=np.arange(6) + 1, y_test=np.arange(3))
    before = cache.read_bytes()
    with pytest.raises(DataFileError, match="fingerprints differ"):
        load_cifar100_png(src, cache)
    with pytest.raises(DataFileError, match="fingerprints differ"):   # the coarse labels are checked alike
        load_cifar100_png_coarse_labels(src, cache)
    assert cache.read_bytes() == before                                        # refused, not replaced


def test_missing_export_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CIFAR-100 PNG export folder holding decode.py and cifar100_png.npz"):
        load_cifar100_png(tmp_path, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_asymmetric_noise_on_the_export_is_cifar100s_map():
    # the export uses CIFAR-100's class map: the same flips as dataset="cifar100" from the same seed,
    # each flip staying inside its super-class
    y = np.repeat(np.arange(100), 30)
    png = make_noisy_labels(y, "asym", 0.4, dataset="cifar100-png", random_state=3)
    ref = make_noisy_labels(y, "asym", 0.4, dataset="cifar100", random_state=3)
    np.testing.assert_array_equal(png.noisy_labels, ref.noisy_labels)
    assert png.n_noisy == 100 * 12   # round(0.4 * 30) per class
    np.testing.assert_array_equal(CIFAR100_FINE_TO_COARSE[png.noisy_labels], CIFAR100_FINE_TO_COARSE[y])


def test_sop_plus_authors_recipe_treats_the_export_as_cifar100():
    config = TrainConfig(method="sop+", recipe="authors", lr_u=1.0, lr_v=10.0, dataset="cifar100-png")
    assert strong_view_settings(config) == strong_view_settings(config.replace(dataset="cifar100"))


# ------------------------------------------------------------------------------------------------
# the real export's decode.py on a tiny export in its format: lossless


@pytest.mark.data
def test_real_decoder_on_a_tiny_png_export_is_lossless_and_keeps_the_order(shared_data, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    src = tmp_path / "export"
    src.mkdir()
    shutil.copy(shared_data / "cifar100-png" / "decode.py", src / "decode.py")
    arrays, originals = {}, {}
    for split, n in (("train", 100), ("test", 2)):
        imgs = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)   # noise: any reordering would show
        blobs = []
        for img in imgs:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            blobs.append(buf.getvalue())
        arrays[f"{split}_png"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(b) for b in blobs])
        # every fine class once among the training images (the coarse map needs them all), shuffled
        arrays[f"y_{split}"] = rng.permutation(100)[:n]
        arrays[f"y_{split}_coarse"] = CIFAR100_FINE_TO_COARSE[arrays[f"y_{split}"]]
        originals[split] = imgs
    np.savez(src / "cifar100_png.npz", classes=np.array([f"c{i}" for i in range(100)]),
             coarse_classes=np.array([f"s{i}" for i in range(20)]), **arrays)
    ds = load_cifar100_png(src, tmp_path / "c.npz")
    # PNG is lossless: every pixel back exactly, in file order
    np.testing.assert_array_equal(ds.x_train, originals["train"])
    np.testing.assert_array_equal(ds.x_test, originals["test"])
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"])
    f2c, names = load_cifar100_png_coarse_labels(src, tmp_path / "c.npz")
    np.testing.assert_array_equal(f2c[ds.y_test], arrays["y_test_coarse"])
    assert names == tuple(f"s{i}" for i in range(20))


# ------------------------------------------------------------------------------------------------
# the real export (about 10-20 s to decode, once per session)


@pytest.fixture(scope="session")
def real_cifar100_png(shared_data, tmp_path_factory):
    """(export folder, decoded cache) of the real CIFAR-100 PNG export, decoded once per session."""
    source = shared_data / "cifar100-png"
    cache = tmp_path_factory.mktemp("cifar100_png_cache") / "cifar100_png.npz"
    decode_cifar100_png(source, cache)
    return source, cache


@pytest.mark.data
def test_real_export_shapes_classes_and_labels(real_cifar100_png):
    source, cache = real_cifar100_png
    ds = load_dataset("cifar100-png", source, cache_path=cache)
    assert ds.name == "cifar100-png" and ds.num_classes == 100
    assert (ds.x_train.shape, ds.x_test.shape) == ((50000, 32, 32, 3), (10000, 32, 32, 3))
    assert ds.x_train.dtype == ds.x_test.dtype == np.uint8 and ds.y_train.dtype == ds.y_test.dtype == np.int64
    # the README: 100 names, alphabetical = label order
    assert len(ds.classes) == 100 and list(ds.classes) == sorted(ds.classes) and ds.classes[0] == "apple"
    # CIFAR-100 is balanced: 500 training and 100 test images per fine class (all labels in [0, 100))
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=100), np.full(100, 500))
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=100), np.full(100, 100))
    # images are not blank or constant: the mean pixel of natural images lies well inside (0, 255)
    assert 80 < ds.x_train.mean() < 160


@pytest.mark.data
def test_real_export_is_aligned_with_cifar100n(real_cifar100_png, shared_data):
    source, cache = real_cifar100_png
    ds = load_cifar100_png(source, cache)
    human = read_cifar_n(shared_data / "cifar-n" / "CIFAR-100_human.pt")
    np.testing.assert_array_equal(human["clean_label"], ds.y_train)         # all 50,000
    # the data README's 40.20 % (rounded to 0.01 points): within 0.01 points, computed here directly
    rate = 100 * np.mean(human["noisy_label"] != ds.y_train)
    assert abs(rate - 40.20) <= 0.01
    # and through the loader, which checks the order itself
    noisy = load_cifar_n(shared_data / "cifar-n", "noisy", clean_labels=ds.y_train)
    assert noisy.realised_rate == pytest.approx(rate / 100, abs=1e-12)
    # coarse labels: the standard fine -> coarse map, and CIFAR-100N's coarse labels per image
    f2c, names = load_cifar100_png_coarse_labels(source, cache)
    np.testing.assert_array_equal(f2c, CIFAR100_FINE_TO_COARSE)
    np.testing.assert_array_equal(f2c[ds.y_train], human["clean_coarse_label"])
    assert len(names) == 20 and names[0] == "aquatic_mammals"


@pytest.mark.data
def test_real_export_trains_with_cifar100n_labels(real_cifar100_png, shared_data):
    source, cache = real_cifar100_png
    config = TrainConfig(dataset="cifar100-png", data_root=str(source), cache_path=str(cache), noise="cifar100n",
                         cifar_n_path=str(shared_data / "cifar-n" / "CIFAR-100_human.pt"), method="ce",
                         train_subset=1000)
    ds, noisy = load_data(config)
    assert (ds.n_train, ds.num_classes, noisy.kind) == (1000, 100, "cifar100n-noisy")
    # the first 1000 of the file's labels, against the first 1000 clean ones
    human = read_cifar_n(shared_data / "cifar-n" / "CIFAR-100_human.pt")
    np.testing.assert_array_equal(noisy.noisy_labels, human["noisy_label"][:1000])
    np.testing.assert_array_equal(noisy.clean_labels, ds.y_train)
