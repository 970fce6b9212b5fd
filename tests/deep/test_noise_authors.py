"""The authors' noise generators (realised rates on the real CIFAR labels), class semantics, damaged files."""

from __future__ import annotations

import struct
import zipfile

import numpy as np
import pytest
import torch

from sopdeep.noise import (
    CIFAR10_ASYMMETRIC_MAP,
    asymmetric_noise,
    asymmetric_noise_authors,
    make_noisy_labels,
    read_cifar_n,
    symmetric_noise,
    symmetric_noise_authors,
)
from sopdeep.noise.authors import _authors_count


@pytest.fixture(scope="module")
def cifar10_labels(shared_data):
    return read_cifar_n(shared_data / "cifar-n" / "CIFAR-10_human.pt")["clean_label"]


@pytest.fixture(scope="module")
def cifar100_labels(shared_data):
    return read_cifar_n(shared_data / "cifar-n" / "CIFAR-100_human.pt")["clean_label"]


@pytest.mark.parametrize("n", [1, 7, 10, 999, 5000, 7000, 50_000])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0])
def test_authors_count_is_their_loop_condition(n, rate):
    # direct computation: the authors' `for i ...: if i < percent * len(...)` counted literally
    assert _authors_count(rate, n) == sum(1 for i in range(n) if i < rate * n)


@pytest.mark.data
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_symmetric_authors_realised_rate_is_rate_times_k_minus_1_over_k(cifar10_labels, rate):
    res = make_noisy_labels(cifar10_labels, "symmetric_authors", rate, dataset="cifar10", random_state=0)
    assert res.kind == "sym-authors"
    m = _authors_count(rate, 50_000)
    # changed ~ Binomial(m, 9/10): mean 0.9 m; 5 standard deviations (about 0.005 at rate 0.5)
    sd = np.sqrt(m * 0.9 * 0.1) / 50_000
    assert abs(res.realised_rate - 0.9 * m / 50_000) <= 5 * sd
    # the new label is uniform over all 10 classes: each off-diagonal count about m / 100 (sd about
    # sqrt(m / 100)); 5 standard deviations for each of the 90 cells
    T = res.transition(normalize=False)
    off = T[~np.eye(10, dtype=bool)]
    assert np.all(np.abs(off - m / 100) <= 5 * np.sqrt(m / 100))


def test_symmetric_authors_equals_symmetric_a2_variant_when_counts_agree():
    # 0.5 * 1000 is an integer: ceil and round agree, so the two draws must be identical per seed
    y = np.arange(1000) % 10
    a = symmetric_noise_authors(y, 0.5, random_state=4)
    b = symmetric_noise(y, 0.5, include_true_class=True, random_state=4)
    np.testing.assert_array_equal(a.noisy_labels, b.noisy_labels)


@pytest.mark.data
def test_cifar10_asymmetric_authors_flips_on_the_already_flipped_labels(cifar10_labels):
    res = make_noisy_labels(cifar10_labels, "asymmetric_authors", 0.4, dataset="cifar10", random_state=0)
    T = res.transition(normalize=False)
    n_c = np.bincount(cifar10_labels, minlength=10)
    assert np.all(n_c == 5000)
    # only the listed flips occur (and cat -> dog, dog -> cat)
    allowed = np.eye(10, dtype=bool)
    for s, t in CIFAR10_ASYMMETRIC_MAP.items():
        allowed[s, t] = True
    assert np.all(T[~allowed] == 0)
    # truck, bird, deer: exactly ceil(0.4 * 5000) = 2000 flips each
    for s in (9, 2, 4):
        assert T[s, CIFAR10_ASYMMETRIC_MAP[s]] == 2000
    # cat: 2000 go to dog; dog then holds 7000 of which 2800 go to cat, hypergeometrically 800 of
    # them cats (variance 2800 * 2/7 * 5/7 * 4200/6999 = 342.9, sd 18.5); 5 sd
    sd = np.sqrt(2800 * (2 / 7) * (5 / 7) * (4200 / 6999))
    assert abs(T[3, 5] - 1200) <= 5 * sd
    assert T[5, 3] == 2800 - (2000 - T[3, 5])  # cats sent back = 2000 - cats still at dog
    assert abs(1 - T[3, 3] / 5000 - 0.24) <= 5 * sd / 5000
    assert abs(res.realised_rate - 0.184) <= 2 * 5 * sd / 50_000


@pytest.mark.data
def test_cifar100_asymmetric_authors_swaps_two_classes_per_block_of_five(cifar100_labels):
    res = make_noisy_labels(cifar100_labels, "asym-authors", 0.4, dataset="cifar100", random_state=0)
    T = res.transition(normalize=False)
    off = np.argwhere(T * (1 - np.eye(100, dtype=int)) > 0)
    assert len(off) == 40  # 20 blocks x 2 directions
    touched = set()
    for a, b in off:
        assert a // 5 == b // 5 and T[b, a] > 0
        touched.update((a, b))
    assert len(touched) == 40 and len({a // 5 for a in touched}) == 20
    # 20 000 samples of the 40 classes, each flipped with probability 0.4: Binomial sd 69 (0.14%); 5 sd
    assert abs(res.n_noisy - 8000) <= 5 * np.sqrt(20_000 * 0.4 * 0.6)
    assert res.params["dataset"] == "cifar100"


def test_authors_generators_are_seeded():
    y = np.repeat(np.arange(10), 300)
    for fn in (lambda s: symmetric_noise_authors(y, 0.5, random_state=s),
               lambda s: asymmetric_noise_authors(y, 0.4, dataset="cifar10", random_state=s)):
        np.testing.assert_array_equal(fn(1).noisy_labels, fn(1).noisy_labels)
        assert not np.array_equal(fn(1).noisy_labels, fn(2).noisy_labels)


def test_asymmetric_noise_refuses_a_dataset_without_a_class_map():
    y = np.repeat(np.arange(10), 10)
    for kind in ("asym", "asym-authors"):
        with pytest.raises(ValueError, match="'fashion-mnist' has none"):
            make_noisy_labels(y, kind, 0.4, dataset="fashion-mnist")
        with pytest.raises(ValueError, match="'npz' has none"):
            make_noisy_labels(y, kind, 0.4, dataset="npz")
        with pytest.raises(ValueError, match="needs dataset="):
            make_noisy_labels(y, kind, 0.4)
    # aliases of load_dataset's names select the map; the JPEG export is CIFAR-10
    for name in ("CIFAR-10", "cifar10-jpeg"):
        res = make_noisy_labels(y, "asym", 0.4, dataset=name, random_state=0)
        np.testing.assert_array_equal(res.noisy_labels, asymmetric_noise(y, 0.4, random_state=0).noisy_labels)
    # a custom map still works on any data
    res = asymmetric_noise(np.arange(4).repeat(5), 1.0, mapping={0: 1}, dataset=None)
    assert res.n_noisy == 5


def test_num_classes_that_invents_classes_is_refused():
    y = np.repeat(np.arange(10), 10)
    with pytest.raises(ValueError, match="num_classes=100 but the labels use classes 0..9"):
        symmetric_noise(y, 0.4, num_classes=100)
    with pytest.raises(ValueError, match="num_classes=100 but the labels use classes 0..9"):
        make_noisy_labels(y, "sym-authors", 0.4, num_classes=100, dataset="npz")
    with pytest.raises(ValueError, match="dataset='fashion-mnist' has 10"):
        symmetric_noise(y[:50], 0.4, num_classes=12, dataset="fashion-mnist")
    with pytest.raises(ValueError, match="labels must lie in"):
        symmetric_noise(y, 0.4, num_classes=5)
    # a subset missing the top classes keeps the dataset's classes when the dataset is named
    res = symmetric_noise(y[:50], 1.0, dataset="cifar10", random_state=0)  # labels 0..4 only
    assert res.num_classes == 10 and res.noisy_labels.max() > 4
    assert symmetric_noise(y[:50], 1.0, random_state=0).noisy_labels.max() <= 4


def _torch_zip(tmp_path):
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 10, 500)
    path = tmp_path / "CIFAR-10_human.pt"
    torch.save({"clean_label": clean, "worse_label": (clean + 1) % 10}, path)
    return path


def test_damaged_cifar_n_file_is_a_valueerror_naming_the_file(tmp_path):
    path = _torch_zip(tmp_path)
    good = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("data.pkl"))
    name_len, extra_len = struct.unpack("<HH", good[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    damaged = bytearray(good)
    damaged[start + info.file_size // 2] ^= 0xFF  # one flipped byte inside the pickle: a CRC mismatch
    path.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="CIFAR-10_human.pt"):
        read_cifar_n(path)
    for cut in (len(good) // 2, len(good) - 10, 5):  # truncated downloads
        path.write_bytes(good[:cut])
        with pytest.raises(ValueError, match="CIFAR-10_human.pt"):
            read_cifar_n(path)
    path.write_bytes(good)
    assert read_cifar_n(path)["worse_label"].shape == (500,)
