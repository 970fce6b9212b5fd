"""Loaders read the exact on-disk formats, validate them, and fail clearly on missing/corrupt files."""

from __future__ import annotations

import gzip
import pickle
import shutil

import numpy as np
import pytest

from fake_datasets import fake_cifar10, fake_cifar100, fake_fashion, write_cifar_batch, write_idx  # noqa: F401 (fixtures)
from sopdeep.datasets import (
    ArrayDataset,
    decode_cifar10_jpeg,
    load_cifar10,
    load_cifar100,
    load_cifar100_coarse_labels,
    load_dataset,
    load_fashion_mnist,
    load_npz,
    save_npz,
)


def _pixel_from_row(row, r, c, ch):
    # CIFAR row layout: 1024 red, then 1024 green, then 1024 blue values, each plane row-major 32x32.
    return row[ch * 1024 + r * 32 + c]


def _check_cifar_images(x, rows):
    rng = np.random.default_rng(0)
    for _ in range(50):
        n, r, c, ch = rng.integers(0, len(rows)), rng.integers(0, 32), rng.integers(0, 32), rng.integers(0, 3)
        assert x[n, r, c, ch] == _pixel_from_row(rows[n], r, c, ch)


def test_cifar10_round_trip_preserves_pixels_labels_and_order(fake_cifar10):
    root, rows, labels = fake_cifar10
    ds = load_cifar10(root)
    train_rows = np.concatenate([rows[f"data_batch_{i}"] for i in range(1, 6)])
    train_labels = np.concatenate([labels[f"data_batch_{i}"] for i in range(1, 6)])
    assert ds.x_train.shape == (15, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (4, 32, 32, 3)
    assert ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.y_train, train_labels)
    np.testing.assert_array_equal(ds.y_test, labels["test_batch"])
    _check_cifar_images(ds.x_train, train_rows)
    _check_cifar_images(ds.x_test, rows["test_batch"])
    assert ds.num_classes == 10 and ds.name == "cifar10" and ds.classes[9] == "truck"


def test_cifar10_accepts_the_batches_folder_itself_and_str_keys(fake_cifar10, tmp_path):
    root, rows, labels = fake_cifar10
    base = root / "cifar-10-batches-py"
    write_cifar_batch(base / "test_batch", rows["test_batch"], labels["test_batch"], bytes_keys=False)
    ds = load_cifar10(base)
    np.testing.assert_array_equal(ds.y_test, labels["test_batch"])


def test_cifar10_missing_batch_names_layout_and_path(fake_cifar10):
    root, _, _ = fake_cifar10
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"data_batch_3.*expected layout.*cifar-10-batches-py"):
        load_cifar10(root)


def test_cifar10_missing_root_raises_filenotfound(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path / "nowhere")


def test_cifar10_given_the_jpeg_export_names_the_dataset_to_use(tmp_path):
    for name in ("decode.py", "cifar10_jpeg.npz"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"JPEG export: use --dataset cifar10-jpeg --set cache_path"):
        load_cifar10(tmp_path)
    (tmp_path / "decode.py").unlink()  # not the export: the plain layout message alone
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(tmp_path)
    assert "JPEG" not in str(err.value)


@pytest.mark.parametrize("corruption", ["truncated", "not_a_dict", "bad_shape", "label_out_of_range", "no_labels"])
def test_cifar10_corrupt_batch_raises_valueerror(fake_cifar10, corruption):
    root, rows, labels = fake_cifar10
    p = root / "cifar-10-batches-py" / "data_batch_2"
    if corruption == "truncated":
        p.write_bytes(p.read_bytes()[:100])
    elif corruption == "not_a_dict":
        p.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    elif corruption == "bad_shape":
        write_cifar_batch(p, rows["data_batch_2"][:, :1000], labels["data_batch_2"])
    elif corruption == "label_out_of_range":
        write_cifar_batch(p, rows["data_batch_2"], [10, 0, 1])
    else:
        p.write_bytes(pickle.dumps({b"data": rows["data_batch_2"]}, protocol=2))
    with pytest.raises(ValueError):
        load_cifar10(root)


def test_cifar100_round_trip_and_coarse_map(fake_cifar100):
    root, out = fake_cifar100
    ds = load_cifar100(root)
    assert ds.num_classes == 100 and ds.x_train.shape == (150, 32, 32, 3) and ds.x_test.shape == (60, 32, 32, 3)
    np.testing.assert_array_equal(ds.y_train, out["train"][1])
    np.testing.assert_array_equal(ds.y_test, out["test"][1])
    _check_cifar_images(ds.x_train, out["train"][0])
    assert ds.classes[7] == "f7"
    f2c, names = load_cifar100_coarse_labels(root)
    np.testing.assert_array_equal(f2c, out["fine_to_coarse"])
    assert len(names) == 20 and names[3] == "c3"


def test_cifar100_inconsistent_coarse_labels_raise(fake_cifar100):
    root, out = fake_cifar100
    data, fine = out["train"]
    bad_coarse = out["fine_to_coarse"][fine].copy()
    counts = np.bincount(fine, minlength=100)
    cls = int(np.flatnonzero(counts >= 2)[0])  # a fine class seen twice in train: give it two super-classes
    i = np.flatnonzero(fine == cls)[0]
    bad_coarse[i] = (bad_coarse[i] + 1) % 20
    write_cifar_batch(root / "cifar-100-python" / "train", data, fine, label_key="fine_labels",
                      extra={"coarse_labels": [int(c) for c in bad_coarse]})
    with pytest.raises(ValueError, match="one super-class per fine class"):
        load_cifar100_coarse_labels(root)


def test_cifar100_missing_file_names_layout(fake_cifar100):
    root, _ = fake_cifar100
    (root / "cifar-100-python" / "test").unlink()
    with pytest.raises(FileNotFoundError, match=r"cifar-100-python.*\{train, test, meta\}"):
        load_cifar100(root)


@pytest.mark.parametrize("layout", ["torchvision", "flat", "flat_uncompressed"])
def test_fashion_mnist_round_trip_in_each_layout(fake_fashion, tmp_path, layout):
    root, arrays = fake_fashion
    if layout != "torchvision":
        root = tmp_path / "flat"
        root.mkdir()
        for stem, arr in arrays.items():
            if layout == "flat":
                write_idx(root / (stem + ".gz"), arr)
            else:
                write_idx(root / stem, arr, compress=False)
    ds = load_fashion_mnist(root)
    assert ds.x_train.shape == (7, 28, 28, 1) and ds.x_test.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert ds.y_train.dtype == np.int64 and ds.in_channels == 1


def test_fashion_mnist_missing_files_name_every_candidate(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte.*FashionMNIST[/\\]raw"):
        load_fashion_mnist(tmp_path)


@pytest.mark.parametrize("corruption", ["bad_magic", "truncated_body", "bad_gzip", "count_mismatch"])
def test_fashion_mnist_corrupt_file_raises_valueerror(fake_fashion, corruption):
    root, arrays = fake_fashion
    raw = root / "FashionMNIST" / "raw"
    p = raw / "train-images-idx3-ubyte.gz"
    if corruption == "bad_magic":
        write_idx(p, arrays["train-images-idx3-ubyte"][0])  # 2-D instead of 3-D: ndim byte differs
    elif corruption == "truncated_body":
        data = gzip.decompress(p.read_bytes())[:-10]
        p.write_bytes(gzip.compress(data))
    elif corruption == "bad_gzip":
        p.write_bytes(p.read_bytes()[:50])
    else:
        write_idx(p, arrays["train-images-idx3-ubyte"][:6])
    with pytest.raises(ValueError):
        load_fashion_mnist(root)


def _tiny(n_train=6, n_test=3, shape=(8, 8, 3), k=4, seed=0):
    rng = np.random.default_rng(seed)
    return ArrayDataset(rng.integers(0, 256, (n_train, *shape), dtype=np.uint8), rng.integers(0, k, n_train),
                        rng.integers(0, 256, (n_test, *shape), dtype=np.uint8), rng.integers(0, k, n_test),
                        k, "tiny", tuple(f"c{i}" for i in range(k)))


def test_npz_round_trip(tmp_path):
    ds = _tiny()
    path = save_npz(ds, tmp_path / "d.npz")
    back = load_npz(path)
    for attr in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(ds, attr))
    assert back.classes == ds.classes and back.num_classes == ds.num_classes and back.name == "d"


def test_npz_grey_images_without_channel_axis_get_c_equal_1(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "g.npz", x_train=rng.integers(0, 256, (5, 6, 6), dtype=np.uint8), y_train=np.array([0, 1, 2, 1, 0]),
             x_test=rng.integers(0, 256, (2, 6, 6), dtype=np.uint8), y_test=np.array([2, 2]))
    ds = load_npz(tmp_path / "g.npz")
    assert ds.image_shape == (6, 6, 1) and ds.num_classes == 3  # inferred: max label 2, plus one


def test_npz_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="x_train, y_train, x_test, y_test"):
        load_npz(tmp_path / "absent.npz")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((1, 2, 2, 1), np.uint8), y_train=np.zeros(1, np.int64))
    with pytest.raises(ValueError, match=r"lacks the keys \['x_test', 'y_test'\]"):
        load_npz(tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable npz"):
        load_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "float.npz", x_train=np.zeros((1, 2, 2, 1)), y_train=np.zeros(1, np.int64),
             x_test=np.zeros((1, 2, 2, 1)), y_test=np.zeros(1, np.int64))
    with pytest.raises(ValueError, match="x_train must be a uint8"):
        load_npz(tmp_path / "float.npz", num_classes=2)


def test_arraydataset_validates_its_arrays():
    ds = _tiny()
    with pytest.raises(ValueError, match="y_train must lie in"):
        ArrayDataset(ds.x_train, ds.y_train + 4, ds.x_test, ds.y_test, 4)
    with pytest.raises(ValueError, match="x_train and x_test must share"):
        ArrayDataset(ds.x_train, ds.y_train, ds.x_test[:, :4], ds.y_test, 4)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        ArrayDataset(ds.x_train, ds.y_train, ds.x_test, ds.y_test, 1)
    with pytest.raises(ValueError, match=r"y_test must have shape \(3,\)"):
        ArrayDataset(ds.x_train, ds.y_train, ds.x_test, ds.y_test[:2], 4)
    with pytest.raises(ValueError, match="classes must be empty or have"):
        ArrayDataset(ds.x_train, ds.y_train, ds.x_test, ds.y_test, 4, classes=("a",))
    assert not ds.x_train.flags.writeable


def test_subset_keeps_order_and_rejects_bad_indices():
    ds = _tiny()
    sub = ds.subset(np.array([4, 1]), None)
    np.testing.assert_array_equal(sub.x_train, ds.x_train[[4, 1]])
    np.testing.assert_array_equal(sub.y_train, ds.y_train[[4, 1]])
    assert sub.n_test == ds.n_test
    with pytest.raises(ValueError, match="train_indices must lie in"):
        ds.subset(np.array([6]))


def test_load_dataset_dispatch(fake_cifar10, tmp_path):
    root, _, labels = fake_cifar10
    ds = load_dataset("CIFAR-10", root)
    np.testing.assert_array_equal(ds.y_test, labels["test_batch"])
    with pytest.raises(ValueError, match="name must be one of"):
        load_dataset("imagenet", root)
    with pytest.raises(ValueError, match="cache_path is required"):
        load_dataset("cifar10-jpeg", root)


def test_decode_cifar10_jpeg_runs_the_exports_decoder_and_caches(shared_data, tmp_path):
    # A tiny export in the real format (JPEG bytes + offsets), decoded by the real decode.py.
    from PIL import Image
    import io

    rng = np.random.default_rng(0)
    src = tmp_path / "export"
    src.mkdir()
    shutil.copy(shared_data / "cifar10-jpeg" / "decode.py", src / "decode.py")
    arrays = {}
    for split, n in (("train", 4), ("test", 2)):
        # smooth images (a random colour plus gradients), which JPEG keeps within a few grey levels
        ramp = np.linspace(0, 60, 32)
        base = rng.integers(0, 160, (n, 1, 1, 3))  # max 159 + 60 + 30 < 256
        imgs = (base + ramp[None, :, None, None] + ramp[None, None, :, None] / 2).astype(np.uint8)
        blobs = []
        for img in imgs:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=95)
            blobs.append(buf.getvalue())
        arrays[f"{split}_jpeg"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(b) for b in blobs])
        arrays[f"y_{split}"] = rng.integers(0, 10, n)
        arrays[f"x_{split}_orig"] = imgs
    np.savez(src / "cifar10_jpeg.npz", classes=np.array([f"c{i}" for i in range(10)]),
             **{k: v for k, v in arrays.items() if not k.endswith("_orig")})
    cache = tmp_path / "cache" / "c10.npz"
    ds = load_dataset("cifar10-jpeg", src, cache_path=cache)
    assert cache.is_file() and ds.x_train.shape == (4, 32, 32, 3) and ds.name == "cifar10-jpeg"
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"])
    # JPEG (quality 95) of smooth images is lossy but close: mean abs error a few grey levels; 8/255 leaves
    # room for encoder differences while the images differ from each other by tens of levels (order check)
    for split in ("train", "test"):
        x = getattr(ds, f"x_{split}").astype(int)
        orig = arrays[f"x_{split}_orig"].astype(int)
        err = np.abs(x[:, None] - orig[None]).mean(axis=(2, 3, 4))  # (decoded, original)
        assert np.all(np.diag(err) < 8)
        np.testing.assert_array_equal(err.argmin(axis=1), np.arange(len(x)))
    (src / "cifar10_jpeg.npz").unlink()  # the cached file is used, the source is not read again
    assert decode_cifar10_jpeg(src, cache) == cache


def test_decode_cifar10_jpeg_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="decode.py"):
        decode_cifar10_jpeg(tmp_path, tmp_path / "out.npz")
    with pytest.raises(ValueError, match="must end in .npz"):
        decode_cifar10_jpeg(tmp_path, tmp_path / "out.bin")
    (tmp_path / "decode.py").write_text("import sys; sys.exit('boom')\n")
    (tmp_path / "cifar10_jpeg.npz").write_bytes(b"")
    with pytest.raises(RuntimeError, match="boom"):
        decode_cifar10_jpeg(tmp_path, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.data
def test_real_fashion_mnist_loads(shared_data):
    ds = load_fashion_mnist(shared_data / "fashion-mnist")
    assert (ds.n_train, ds.n_test) == (60000, 10000)
    assert ds.image_shape == (28, 28, 1)
    # Fashion-MNIST is balanced: 6000 train and 1000 test images per class
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=10), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=10), np.full(10, 1000))


def test_channel_stats_equal_numpy_mean_and_std():
    ds = _tiny(n_train=9, shape=(5, 4, 3))
    mean, std = ds.channel_stats()
    x = ds.x_train.astype(np.float64) / 255
    # float64 sums of a few hundred bytes: agreement to round-off
    np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(axis=(0, 1, 2)), rtol=1e-10)


@pytest.mark.parametrize("stratified", [False, True])
def test_split_indices_partition_with_exact_sizes(stratified):
    from sopdeep.datasets import split_indices

    labels = np.random.default_rng(0).integers(0, 7, 503)
    tr, va = split_indices(503, 50, labels=labels if stratified else None, random_state=1)
    assert len(va) == 50 and len(tr) == 453
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(503))
    tr2, va2 = split_indices(503, 50, labels=labels if stratified else None, random_state=1)
    np.testing.assert_array_equal(va, va2)
    if stratified:
        # each class gets its proportional share, within one sample (rounding to integers)
        expected = 50 * np.bincount(labels, minlength=7) / 503
        assert np.all(np.abs(np.bincount(labels[va], minlength=7) - expected) < 1)
    with pytest.raises(ValueError, match=r"n_val must be an integer in \[0, n=5\]"):
        split_indices(5, 6)
