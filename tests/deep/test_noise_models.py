"""Properties of the label-noise models, and the real CIFAR-N files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from sopdeep.noise import (
    CIFAR10_ASYMMETRIC_MAP,
    CIFAR100_FINE_TO_COARSE,
    NoisyLabels,
    asymmetric_noise,
    cifar100_asymmetric_map,
    load_cifar_n,
    make_noisy_labels,
    no_noise,
    read_cifar_n,
    symmetric_noise,
)


@st.composite
def label_problems(draw, min_n=1, max_n=400):
    """(labels, K, rate, seed): hypothesis draws sizes and seeds; numpy builds the labels."""
    k = draw(st.integers(2, 12))
    n = draw(st.integers(min_n, max_n))
    rate = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    labels = np.random.default_rng(seed).integers(0, k, size=n)
    labels[-1] = k - 1  # K = max(labels) + 1: noise may not invent classes (sopdeep.noise.labels docstring)
    return labels, k, rate, seed


@given(label_problems())
def test_symmetric_flips_exactly_round_rate_n_labels_to_other_classes(problem):
    labels, k, rate, seed = problem
    res = symmetric_noise(labels, rate, num_classes=k, random_state=seed)
    m = int(round(rate * len(labels)))
    assert res.n_noisy == m
    assert res.realised_rate == pytest.approx(m / len(labels), abs=0)  # a ratio of two exact counts
    np.testing.assert_array_equal(res.clean_labels, labels)
    assert np.all((res.noisy_labels >= 0) & (res.noisy_labels < k))
    np.testing.assert_array_equal(res.is_noisy, res.noisy_labels != labels)


@given(label_problems(min_n=50))
def test_symmetric_is_deterministic_per_seed_and_differs_across_seeds(problem):
    labels, k, rate, seed = problem
    rate = max(rate, 0.2)  # at least 10 flips, so two seeds agree with negligible probability
    a = symmetric_noise(labels, rate, num_classes=k, random_state=seed)
    b = symmetric_noise(labels, rate, num_classes=k, random_state=seed)
    c = symmetric_noise(labels, rate, num_classes=k, random_state=seed + 1)
    np.testing.assert_array_equal(a.noisy_labels, b.noisy_labels)
    assert not np.array_equal(a.noisy_labels, c.noisy_labels)


def test_symmetric_targets_are_uniform_over_the_other_classes():
    k, n, rate = 5, 50_000, 0.4
    labels = np.random.default_rng(0).integers(0, k, n)
    t = symmetric_noise(labels, rate, num_classes=k, random_state=1).transition()
    off = t[~np.eye(k, dtype=bool)]
    # each off-diagonal entry is rate/(K-1) = 0.1 in expectation; with ~10000 samples per class its
    # std is sqrt(0.1 * 0.9 / 10000) = 0.003, so 0.015 is 5 standard deviations
    np.testing.assert_allclose(off, rate / (k - 1), atol=0.015)
    np.testing.assert_allclose(np.diag(t), 1 - rate, atol=0.015)


def test_symmetric_a2_variant_keeps_about_one_in_k_of_the_drawn_labels():
    k, n, rate = 10, 20_000, 0.4
    labels = np.random.default_rng(0).integers(0, k, n)
    res = symmetric_noise(labels, rate, num_classes=k, include_true_class=True, random_state=3)
    m = round(rate * n)
    # kept among the m redrawn labels ~ Binomial(m, 1/K): std sqrt(8000 * 0.09) = 26.8 samples,
    # i.e. 0.00134 in rate; allow 5 standard deviations
    assert res.realised_rate == pytest.approx(rate * (k - 1) / k, abs=5 * np.sqrt(m * (1 / k) * (1 - 1 / k)) / n)
    assert res.n_noisy <= m
    assert res.kind == "sym-all"


@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_cifar10_asymmetric_changes_only_listed_classes_to_listed_targets(seed, rate):
    labels = np.random.default_rng(seed).integers(0, 10, size=500)
    res = asymmetric_noise(labels, rate, dataset="cifar10", random_state=seed)
    changed = res.is_noisy
    for s, t in CIFAR10_ASYMMETRIC_MAP.items():
        np.testing.assert_array_equal(res.noisy_labels[changed & (labels == s)], t)
        assert np.count_nonzero(changed & (labels == s)) == round(rate * np.count_nonzero(labels == s))
    others = ~np.isin(labels, list(CIFAR10_ASYMMETRIC_MAP))
    assert not np.any(changed & others)
    np.testing.assert_array_equal(res.clean_labels, labels)


def test_cifar10_asymmetric_map_is_the_papers():
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    pairs = {(names[s], names[t]) for s, t in CIFAR10_ASYMMETRIC_MAP.items()}
    # appendix A.2: TRUCK -> AUTOMOBILE, BIRD -> AIRPLANE, DEER -> HORSE, CAT <-> DOG
    assert pairs == {("truck", "automobile"), ("bird", "airplane"), ("deer", "horse"), ("cat", "dog"), ("dog", "cat")}


def test_cifar100_map_moves_each_class_to_another_class_of_its_superclass_circularly():
    target = cifar100_asymmetric_map()
    assert sorted(target) == list(range(100))  # a permutation
    assert np.all(target != np.arange(100))
    np.testing.assert_array_equal(CIFAR100_FINE_TO_COARSE[target], CIFAR100_FINE_TO_COARSE)
    for c in range(20):
        members = np.flatnonzero(CIFAR100_FINE_TO_COARSE == c)
        assert len(members) == 5
        # following the map from the smallest member visits all five in increasing order, then returns
        cycle = [members[0]]
        for _ in range(5):
            cycle.append(target[cycle[-1]])
        assert cycle == list(members) + [members[0]]


@given(st.integers(0, 2**32 - 1))
def test_cifar100_asymmetric_rate_is_exact_per_class(seed):
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(100), 7))
    res = asymmetric_noise(labels, 0.4, dataset="cifar100", random_state=seed)
    target = cifar100_asymmetric_map()
    np.testing.assert_array_equal(res.noisy_labels[res.is_noisy], target[labels[res.is_noisy]])
    np.testing.assert_array_equal(np.bincount(labels[res.is_noisy], minlength=100), np.full(100, round(0.4 * 7)))


def test_asymmetric_custom_map_and_determinism():
    labels = np.random.default_rng(0).integers(0, 4, 300)
    a = asymmetric_noise(labels, 0.5, mapping={0: 1}, num_classes=4, random_state=7)
    b = asymmetric_noise(labels, 0.5, mapping=np.array([1, 1, 2, 3]), num_classes=4, random_state=7)
    np.testing.assert_array_equal(a.noisy_labels, b.noisy_labels)
    assert set(np.flatnonzero(a.is_noisy)) <= set(np.flatnonzero(labels == 0))


def test_transition_counts_and_rows():
    res = NoisyLabels(np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]), 3, "manual")
    np.testing.assert_array_equal(res.transition(normalize=False), [[1, 1, 0], [0, 1, 1], [0, 0, 0]])
    np.testing.assert_allclose(res.transition(), [[0.5, 0.5, 0], [0, 0.5, 0.5], [0, 0, 0]])
    assert res.realised_rate == 0.5 and res.n_noisy == 2
    sub = res.subset(np.array([1, 3]))
    assert sub.realised_rate == 1.0


def test_invalid_arguments_raise_valueerror():
    y = np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"rate must be a real number in \[0, 1\]"):
        symmetric_noise(y, 1.5)
    with pytest.raises(ValueError, match="labels must lie in"):
        symmetric_noise(y, 0.1, num_classes=2)
    with pytest.raises(ValueError, match="random_state must be"):
        symmetric_noise(y, 0.1, random_state="seed")
    with pytest.raises(ValueError, match="labels must hold integers"):
        symmetric_noise(np.array([0.5, 1.0]), 0.1)
    with pytest.raises(ValueError, match="dataset name must be one of"):
        asymmetric_noise(y, 0.4, dataset="mnist")
    with pytest.raises(ValueError, match="kind must be one of"):
        make_noisy_labels(y, "pair", 0.2)
    with pytest.raises(ValueError, match="label must be one of"):
        load_cifar_n("x.pt", "best")
    with pytest.raises(ValueError, match="noisy_labels and clean_labels must have the same shape"):
        NoisyLabels(np.array([0, 1]), np.array([0]), 2, "x")


def test_make_noisy_labels_dispatches():
    y = np.random.default_rng(0).integers(0, 10, 200)
    assert make_noisy_labels(y, "none").realised_rate == 0
    np.testing.assert_array_equal(make_noisy_labels(y, "sym", 0.3, random_state=2).noisy_labels,
                                  symmetric_noise(y, 0.3, random_state=2).noisy_labels)
    np.testing.assert_array_equal(make_noisy_labels(y, "asym", 0.4, dataset="cifar10", random_state=2).noisy_labels,
                                  asymmetric_noise(y, 0.4, random_state=2).noisy_labels)
    assert no_noise(y).kind == "none"


def _fake_cifar10n(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 10, 100)
    d = {"clean_label": clean}
    for key in ("aggre_label", "worse_label", "random_label1", "random_label2", "random_label3"):
        d[key] = np.where(rng.random(100) < 0.3, rng.integers(0, 10, 100), clean)
    path = tmp_path / "CIFAR-10_human.pt"
    torch.save(d, path)
    return path, d


def test_cifar_n_round_trip_from_a_file_in_the_released_format(tmp_path):
    path, d = _fake_cifar10n(tmp_path)
    res = load_cifar_n(tmp_path, "worst", clean_labels=d["clean_label"])  # a folder: the file is found by name
    np.testing.assert_array_equal(res.noisy_labels, d["worse_label"])
    np.testing.assert_array_equal(res.clean_labels, d["clean_label"])
    assert res.kind == "cifar10n-worst"
    assert res.realised_rate == np.mean(d["worse_label"] != d["clean_label"])
    res = make_noisy_labels(d["clean_label"], "cifar10n", cifar_n_path=path, cifar_n_label="random2")
    np.testing.assert_array_equal(res.noisy_labels, d["random_label2"])


def test_cifar_n_rejects_misaligned_clean_labels(tmp_path):
    path, d = _fake_cifar10n(tmp_path)
    shuffled = d["clean_label"][::-1]
    with pytest.raises(ValueError, match="not in CIFAR-10/100 training order"):
        load_cifar_n(path, "aggregate", clean_labels=shuffled)


def test_cifar_n_wrong_file_content_raises(tmp_path):
    torch.save({"labels": np.zeros(3, dtype=np.int64)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a CIFAR-N label file"):
        read_cifar_n(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_cifar_n(tmp_path, "noisy")  # CIFAR-100_human.pt absent


# Figures measured by the data README ("Checks on these files"), in percent with two decimals.
README_RATES = {"aggregate": 9.01, "random1": 17.23, "random2": 18.12, "random3": 17.64, "worst": 40.21, "noisy": 40.20}


@pytest.mark.data
@pytest.mark.parametrize("label", sorted(README_RATES))
def test_real_cifar_n_noise_rates_match_the_data_readme(shared_data, label):
    res = load_cifar_n(shared_data / "cifar-n", label)
    assert len(res.noisy_labels) == 50_000
    # the README rounds to 0.01 percentage points, so the computed rate must agree within half of that
    assert abs(100 * res.realised_rate - README_RATES[label]) <= 0.005


@pytest.mark.data
def test_real_cifar10n_clean_labels_match_the_jpeg_export_order(shared_data):
    with np.load(shared_data / "cifar10-jpeg" / "cifar10_jpeg.npz", allow_pickle=False) as z:
        y_train = z["y_train"]
    res = load_cifar_n(shared_data / "cifar-n", "worst", clean_labels=y_train)  # raises if misaligned
    assert res.noisy_labels.shape == y_train.shape


@pytest.mark.data
def test_standard_cifar100_coarse_map_matches_the_real_coarse_labels(shared_data):
    d = read_cifar_n(shared_data / "cifar-n" / "CIFAR-100_human.pt")
    np.testing.assert_array_equal(CIFAR100_FINE_TO_COARSE[d["clean_label"]], d["clean_coarse_label"])


def test_asymmetric_per_sample_variant_flips_about_rate_of_each_source_class():
    n, rate = 40_000, 0.4
    labels = np.random.default_rng(0).integers(0, 10, n)
    res = asymmetric_noise(labels, rate, per_sample=True, random_state=5)
    for s, t in CIFAR10_ASYMMETRIC_MAP.items():
        members = labels == s
        flipped = res.is_noisy & members
        np.testing.assert_array_equal(res.noisy_labels[flipped], t)
        # ~4000 samples per class: Binomial std sqrt(0.24 / 4000) = 0.0077; 5 standard deviations
        assert flipped.sum() / members.sum() == pytest.approx(rate, abs=5 * np.sqrt(rate * (1 - rate) / members.sum()))
    assert not np.any(res.is_noisy & ~np.isin(labels, list(CIFAR10_ASYMMETRIC_MAP)))


def test_cifar100_asymmetric_uses_a_given_fine_to_coarse_map():
    f2c = np.repeat(np.arange(20), 5)  # super-class c = fine classes 5c..5c+4
    labels = np.repeat(np.arange(100), 5)
    res = asymmetric_noise(labels, 1.0, dataset="cifar100", fine_to_coarse=f2c, random_state=0)
    np.testing.assert_array_equal(res.noisy_labels, np.where(labels % 5 == 4, labels - 4, labels + 1))
    with pytest.raises(ValueError, match="fine_to_coarse is only used"):
        asymmetric_noise(labels, 0.4, dataset="cifar10", fine_to_coarse=f2c)
