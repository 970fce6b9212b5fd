"""sopdeep.label_issues: cleanlab-like scores and masks from one SOP run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sopdeep.detection import auroc
from sopdeep.label_issues import (CLEANLAB_SCORE_METHODS, NUM_ISSUES_METHODS, SCORE_METHODS, estimate_num_issues,
                                  find_label_issues, from_run, get_label_quality_scores,
                                  order_label_issues)


def _random_inputs(n=50, k=4, seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), size=n)
    labels = rng.integers(0, k, size=n)
    u2 = rng.uniform(0, 1, size=n)
    return labels, probs, u2


@pytest.mark.parametrize("method", SCORE_METHODS)
def test_scores_have_one_value_per_sample_in_unit_interval(method):
    labels, probs, u2 = _random_inputs()
    q = get_label_quality_scores(labels, probs, noise_score=u2, method=method)
    assert q.shape == labels.shape and q.dtype == np.float64
    assert np.all((q >= 0) & (q <= 1))


# the same formulas in float64, evaluated in another order: equal to a few ulps of 1
ROUND_OFF = 1e-12


def _cleanlab_scores_by_hand(labels, probs):
    """The three cleanlab scores from their definitions, one sample at a time in plain Python."""
    out = {name: [] for name in CLEANLAB_SCORE_METHODS}
    k = probs.shape[1]
    for y, row in zip(labels, probs.tolist()):
        out["self_confidence"].append(row[y])
        out["normalized_margin"].append((1 + row[y] - max(v for j, v in enumerate(row) if j != y)) / 2)
        entropy = -sum(v * math.log(v) for v in row if v > 0) / math.log(k)
        s = entropy / max(row[y], 1e-6)
        out["confidence_weighted_entropy"].append(math.log(1 + s) / max(s, 1e-6))
    return {name: np.array(v) for name, v in out.items()}


def _inputs_with_one_hot_rows(n=60, k=5, seed=1):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.3), size=n)  # peaked rows: small entropies
    labels = rng.integers(0, k, size=n)
    probs[:3] = np.eye(k)[labels[:3]]            # one-hot at the label: entropy 0
    probs[3:6] = np.eye(k)[(labels[3:6] + 1) % k]  # one-hot elsewhere: p_y = 0
    return labels, probs


@pytest.mark.parametrize("method", CLEANLAB_SCORE_METHODS)
def test_cleanlab_scores_equal_their_definitions(method):
    labels, probs = _inputs_with_one_hot_rows()
    expected = _cleanlab_scores_by_hand(labels, probs)[method]
    np.testing.assert_allclose(get_label_quality_scores(labels, probs, method=method), expected,
                               rtol=0, atol=ROUND_OFF)
    np.testing.assert_allclose(get_label_quality_scores(labels, probs, method=method), expected, rtol=0, atol=ROUND_OFF)


def test_normalized_margin_and_entropy_on_worked_rows():
    # p = (0.5, 0.3, 0.2), label 0: margin 0.2 -> 0.6; label 2: margin -0.3 -> 0.35
    probs = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    np.testing.assert_allclose(get_label_quality_scores([0, 2], probs, method="normalized_margin"), [0.6, 0.35],
                               rtol=0, atol=ROUND_OFF)
    # uniform over K = 2 at the label: H = 1, s = 1 / 0.5 = 2, score log(3) / 2
    q = get_label_quality_scores([0], [[0.5, 0.5]], method="confidence_weighted_entropy")
    np.testing.assert_allclose(q, [math.log(3) / 2], rtol=0, atol=ROUND_OFF)


@pytest.mark.parametrize("method", CLEANLAB_SCORE_METHODS)
def test_scores_equal_cleanlab(method):
    cleanlab_rank = pytest.importorskip("cleanlab.rank")
    labels, probs = _inputs_with_one_hot_rows()
    theirs = cleanlab_rank.get_label_quality_scores(labels, probs, method=method)
    # cleanlab's own implementation of the same definitions: equal to round-off
    np.testing.assert_allclose(get_label_quality_scores(labels, probs, method=method), theirs, rtol=0, atol=ROUND_OFF)


@pytest.mark.parametrize("ranked_by", [None, *CLEANLAB_SCORE_METHODS])
def test_find_label_issues_with_cleanlabs_arguments_equals_cleanlab(ranked_by):
    cleanlab_filter = pytest.importorskip("cleanlab.filter")
    labels, probs, _ = _random_inputs(n=200, k=4, seed=7)  # continuous scores: no exact ties
    labels[:3] = 1
    probs[0] = [0.4, 0.4, 0.1, 0.1]  # an exact tie with the label: cleanlab counts it for the label
    probs[1] = [0.4 + 4e-7, 0.4 - 4e-7, 0.1, 0.1]  # a near tie (within 1e-6): also the label's
    probs[2] = [0.4 + 4e-6, 0.4 - 4e-6, 0.1, 0.1]  # beyond 1e-6: a disagreement
    kwargs = dict(filter_by="predicted_neq_given", return_indices_ranked_by=ranked_by)
    ours = find_label_issues(labels, probs, **kwargs)
    theirs = cleanlab_filter.find_label_issues(labels, probs, **kwargs)
    assert ours.dtype == theirs.dtype and np.count_nonzero(ours) > 0  # a non-empty mask or list to compare
    np.testing.assert_array_equal(ours, theirs)


def test_prediction_ties_count_for_the_given_label():
    labels = np.array([1, 1, 1, 0])
    probs = np.array([[0.4, 0.4, 0.2], [0.4 + 4e-7, 0.4 - 4e-7, 0.2], [0.4 + 4e-6, 0.4 - 4e-6, 0.2], [0.1, 0.6, 0.3]])
    np.testing.assert_array_equal(find_label_issues(labels, probs, filter_by="predicted_neq_given"),
                                  [False, False, True, True])
    assert estimate_num_issues(labels, probs) == 2


@pytest.mark.parametrize("rank_by", CLEANLAB_SCORE_METHODS)
def test_order_label_issues_equals_cleanlab(rank_by):
    cleanlab_rank = pytest.importorskip("cleanlab.rank")
    labels, probs, _ = _random_inputs(n=200, k=4, seed=8)
    mask = np.random.default_rng(0).random(200) < 0.3
    np.testing.assert_array_equal(order_label_issues(mask, labels, probs, rank_by=rank_by),
                                  cleanlab_rank.order_label_issues(mask, labels, probs, rank_by=rank_by))


def test_without_a_noise_score_the_score_is_self_confidence():
    labels, probs, _ = _random_inputs(n=40, seed=2)
    p_label = probs[np.arange(40), labels]
    np.testing.assert_array_equal(get_label_quality_scores(labels, probs), p_label)
    # cleanlab's plain call: m = #(argmax != label) flagged, lowest p(label) first
    m = int(np.count_nonzero(probs.argmax(1) != labels))
    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    np.testing.assert_array_equal(ranked, np.argsort(p_label)[:m])
    np.testing.assert_array_equal(np.flatnonzero(find_label_issues(labels, probs)), np.sort(ranked))


def test_saturated_noise_scores_are_ordered_by_self_confidence():
    # six wrong labels with u² saturated at 1, p(label) NOT in index order, and two clean ones
    labels = np.zeros(8, dtype=np.int64)
    p_label = np.array([0.30, 0.05, 0.20, 0.10, 0.25, 0.15, 0.9, 0.8])
    probs = np.c_[p_label, 1 - p_label]
    u2 = np.r_[np.ones(6), 0.0, 0.1]
    by_confidence = [1, 3, 5, 2, 4, 0]  # p(label) rising; index order would be 0..5
    for method in ("correction", "sop"):
        ranked = find_label_issues(labels, probs, u2, method=method, num_issues=6, return_indices_ranked_by="severity")
        np.testing.assert_array_equal(ranked, by_confidence)
    # the cut at m breaks the tie the same way: the two least confident of the saturated six
    np.testing.assert_array_equal(np.flatnonzero(find_label_issues(labels, probs, u2, method="correction",
                                                                   num_issues=2)), [1, 3])


def test_equal_borda_scores_are_ordered_by_self_confidence():
    # rank sums: u² ranks (3, 2, 1) + (1 - p) ranks (2, 3, 1) = (5, 5, 2): samples 0 and 1 tie
    labels = np.zeros(3, dtype=np.int64)
    p_label = np.array([0.6, 0.5, 0.9])
    probs = np.c_[p_label, 1 - p_label]
    u2 = np.array([0.9, 0.8, 0.1])
    q = get_label_quality_scores(labels, probs, noise_score=u2)
    assert q[0] == q[1] < q[2]  # an exact tie, not one made or broken by round-off
    ranked = find_label_issues(labels, probs, u2, num_issues=3, return_indices_ranked_by="severity")
    np.testing.assert_array_equal(ranked, [1, 0, 2])


def test_equal_self_confidence_is_ordered_by_margin():
    labels = np.zeros(3, dtype=np.int64)
    # p(label) 0.4 twice: margin 0.4 - 0.3 = 0.1 (sample 0) and 0.4 - 0.6 = -0.2 (sample 1)
    probs = np.array([[0.4, 0.3, 0.3], [0.4, 0.6, 0.0], [0.9, 0.05, 0.05]])
    ranked = find_label_issues(labels, probs, num_issues=3, return_indices_ranked_by="self_confidence")
    np.testing.assert_array_equal(ranked, [1, 0, 2])


def test_sop_score_falls_with_correction_and_rises_with_label_probability():
    labels = np.zeros(3, dtype=np.int64)
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.5, 0.5]])
    q = get_label_quality_scores(labels, probs, noise_score=[0.0, 0.8, 0.8])
    assert q[0] > q[1] > q[2]
    # u² = 1 ties on the correction alone; the network's p(label) breaks the tie
    q_tied = get_label_quality_scores(labels, probs, noise_score=[1.0, 1.0, 1.0])
    assert q_tied[0] == q_tied[1] > q_tied[2]


def test_count_estimates_on_constructed_inputs():
    # 10 samples, 3 of them predicted as another class than their label; u² sums to 4
    labels = np.zeros(10, dtype=np.int64)
    probs = np.tile([0.8, 0.2], (10, 1))
    probs[[2, 5, 7]] = [0.1, 0.9]
    u2 = np.zeros(10)
    u2[[2, 5, 7, 9]] = 1.0
    assert estimate_num_issues(labels, probs, method="predicted_neq_given") == 3
    assert estimate_num_issues(labels, probs, u2, method="correction") == 4
    mask = find_label_issues(labels, probs, u2, num_issues="predicted_neq_given")
    np.testing.assert_array_equal(np.flatnonzero(mask), [2, 5, 7])
    mask4 = find_label_issues(labels, probs, u2, num_issues="correction")
    np.testing.assert_array_equal(np.flatnonzero(mask4), [2, 5, 7, 9])


@pytest.mark.parametrize("num_issues", [*NUM_ISSUES_METHODS, 0, 7])
def test_ranked_indices_are_the_mask_in_order_of_rising_quality(num_issues):
    labels, probs, u2 = _random_inputs(seed=3)
    mask = find_label_issues(labels, probs, u2, num_issues=num_issues)
    ranked = find_label_issues(labels, probs, u2, num_issues=num_issues, return_indices_ranked_by="severity")
    assert mask.dtype == bool and mask.shape == labels.shape
    np.testing.assert_array_equal(np.sort(ranked), np.flatnonzero(mask))
    q = get_label_quality_scores(labels, probs, noise_score=u2)
    assert np.all(np.diff(q[ranked]) >= 0)
    # every flagged sample has a quality no higher than any unflagged one
    if mask.any() and not mask.all():
        assert q[mask].max() <= q[~mask].min()


def test_empty_input_and_rows_that_are_not_distributions_are_refused_by_name():
    with pytest.raises(ValueError, match="at least one sample"):
        get_label_quality_scores(np.zeros(0, dtype=int), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="rows must each sum to 1"):
        find_label_issues([0, 1], [[0.5, 0.2], [0.5, 0.5]])  # logits or unnormalised scores, not probabilities
    # a float32 softmax is accepted (its rows sum to 1 within round-off)
    probs = np.random.default_rng(0).dirichlet(np.ones(100), size=50).astype(np.float32)
    assert get_label_quality_scores(np.zeros(50, dtype=int), probs).shape == (50,)


@pytest.mark.parametrize("kwargs, match", [
    (dict(labels=[0, 1], pred_probs=[0.5, 0.5]), "pred_probs"),
    (dict(labels=[0, 2], pred_probs=[[0.5, 0.5], [0.5, 0.5]]), "labels"),
    (dict(labels=[0.0, 1.0], pred_probs=[[0.5, 0.5], [0.5, 0.5]]), "labels"),
    (dict(labels=[0, 1], pred_probs=[[0.5, 0.5], [np.nan, 0.5]]), "pred_probs"),
    (dict(labels=[0, 1], pred_probs=[[0.5, 0.5], [0.5, 0.5]], noise_score=[0.1, 1.5]), "noise_score"),
    (dict(labels=[0, 1], pred_probs=[[0.5, 0.5], [0.5, 0.5]], noise_score=[0.1]), "noise_score"),
    (dict(labels=[0, 1], pred_probs=[[0.5, 0.5], [0.5, 0.5]], method="sop"), "noise_score"),
    (dict(labels=[0, 1], pred_probs=[[0.5, 0.5], [0.5, 0.5]], method="correction"), "noise_score"),
    (dict(labels=[0, 1], pred_probs=[[0.5, 0.5], [0.5, 0.5]], noise_score="self_confidence"), "noise_score"),
    (dict(labels=[0, 1], pred_probs=[[0.5, 0.5], [0.5, 0.5]], noise_score=[0, 0], method="margin"), "method"),
])
def test_bad_input_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_label_quality_scores(**kwargs)


def test_bad_num_issues_and_ranking_raise():
    labels, probs, u2 = _random_inputs(n=5)
    for bad in ("all", -1, 6, True, 2.0):
        with pytest.raises(ValueError, match="num_issues"):
            find_label_issues(labels, probs, u2, num_issues=bad)
    for bad in ("margin", "sop_score"):
        with pytest.raises(ValueError, match="return_indices_ranked_by"):
            find_label_issues(labels, probs, u2, return_indices_ranked_by=bad)
    with pytest.raises(ValueError, match="return_indices_ranked_by"):  # SOP's score needs u²
        find_label_issues(labels, probs, return_indices_ranked_by="sop")
    for bad in ("prune_by_noise_rate", "confident_learning", "low_self_confidence", "threshold"):
        with pytest.raises(ValueError, match="filter_by"):
            find_label_issues(labels, probs, u2, filter_by=bad)
    with pytest.raises(ValueError, match="num_issues"):  # cleanlab's rule flags every disagreement
        find_label_issues(labels, probs, u2, filter_by="predicted_neq_given", num_issues=2)
    with pytest.raises(ValueError, match="label_issues_mask"):
        order_label_issues(np.ones(4, bool), labels, probs)


def _write_samples(folder, with_correction):
    labels, probs, u2 = _random_inputs(n=20, k=3, seed=5)
    samples = dict(given_label=labels, pred_prob=probs.astype(np.float32),
                   noise_score=(u2 if with_correction else 1 - probs[np.arange(20), labels]).astype(np.float32),
                   is_noisy=u2 > 0.5)
    if with_correction:
        samples["correction"] = np.where(np.eye(3, dtype=bool)[labels], u2[:, None], -0.1).astype(np.float32)
    folder.mkdir()
    np.savez(folder / "samples.npz", **samples)
    return labels, probs, u2


def test_from_run_reads_a_sop_run_folder(tmp_path):
    labels, probs, u2 = _write_samples(tmp_path / "sop", with_correction=True)
    run = from_run(tmp_path / "sop")
    np.testing.assert_allclose(run["label_quality"], get_label_quality_scores(labels, probs, noise_score=u2), atol=1e-6)  # float32 file
    np.testing.assert_array_equal(run["is_label_issue"], find_label_issues(labels, probs.astype(np.float32), u2.astype(np.float32)))
    assert set(run["issues_ranked"]) == set(np.flatnonzero(run["is_label_issue"]))


def test_from_run_on_a_ce_run_uses_self_confidence(tmp_path):
    labels, probs, _ = _write_samples(tmp_path / "ce", with_correction=False)
    run = from_run(tmp_path / "ce")
    np.testing.assert_allclose(run["label_quality"], probs[np.arange(20), labels], atol=1e-6)


def test_from_run_without_samples_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="samples.npz"):
        from_run(tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing_key", "ragged"])
def test_from_run_on_damaged_samples_names_the_file(tmp_path, damage):
    path = tmp_path / "samples.npz"
    good = dict(given_label=np.zeros(4, dtype=np.int64), pred_prob=np.full((4, 2), 0.5),
                noise_score=np.zeros(4))
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "truncated":
        np.savez(path, **good)
        path.write_bytes(path.read_bytes()[:60])
    elif damage == "missing_key":
        np.savez(path, **{k: v for k, v in good.items() if k != "pred_prob"})
    else:
        np.savez(path, **{**good, "noise_score": np.zeros(3)})
    with pytest.raises(ValueError, match="samples.npz"):
        from_run(tmp_path)


def test_one_sop_run_ranks_the_wrong_labels_first(tmp_path):
    """End to end on the synthetic problem (256 images, 4 classes, 40 % symmetric noise, MLP
    width 64, 30 epochs): train SOP once, read the run folder, rank.

    Measured over seeds 0-5 (this exact setting): AUROC of 1 - label_quality_scores 0.902-0.943,
    of u² alone 0.964-0.989, of the network's 1 - p(label) alone 0.766-0.852 (the network
    memorises part of the wrong labels here). The bounds sit about 0.05 below the lowest
    measured value; a score that lost the noisy-first ranking would give about 0.5.
    """
    import torch

    from sopdeep.config import TrainConfig
    from sopdeep.training import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: one thread avoids oversubscribing a shared machine
    cfg = TrainConfig(dataset="synthetic", arch="mlp", width=64, depth=2, epochs=30, batch_size=32, lr=0.05,
                      schedule="constant", weight_decay=0.0, noise="sym", noise_rate=0.4, noise_seed=0, seed=0,
                      device="cpu", progress=False, out=str(tmp_path / "run"), alpha_u=10.0, alpha_v=10.0,
                      checkpoint=False)
    try:
        res = train(cfg)
    finally:
        torch.set_num_threads(threads)
    run = from_run(tmp_path / "run")
    # the one detection summary scores the run's own outputs; the threshold family is gone
    detection_keys = {key for key in res.summary if key.endswith(("_auroc", "_precision", "_recall"))}
    assert detection_keys == {"final_issues_auroc", "final_issues_precision", "final_issues_recall"}
    assert res.summary["final_issues_auroc"] == auroc(1.0 - run["label_quality"], run["is_noisy"])
    assert {"monitor_auroc", "monitor_precision", "monitor_recall"} <= set(res.history[-1])
    assert auroc(1.0 - run["label_quality"], run["is_noisy"]) > 0.85
    assert auroc(run["noise_score"], run["is_noisy"]) > 0.91
    assert np.all((run["label_quality"] >= 0) & (run["label_quality"] <= 1))
