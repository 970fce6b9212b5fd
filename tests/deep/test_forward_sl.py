"""Table 1's Forward correction and SL against their formulas (numpy, float64), the known transition
matrices against drawn noise, the anchor estimator against a planted T, and both methods trained."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sopdeep.config import TrainConfig
from sopdeep.methods import SL, Batch, Forward
from sopdeep.methods.forward import estimate_transition, forward_loss, label_error_posterior
from sopdeep.methods.sl import PUBLISHED_WEIGHTS, sl_loss, sl_weights
from sopdeep.noise import make_noisy_labels, transition_matrix
from sopdeep.training import train

# float32 log-softmax / logsumexp against a float64 reference: relative error ~1e-6 per term
FLOAT32_RTOL = 1e-5


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _random_problem(b=7, k=5, seed=0):
    """Logits (B, K), labels (B,) and a random row-stochastic T (K, K) with a dominant diagonal."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, size=(b, k))
    labels = rng.integers(0, k, size=b)
    t = 0.6 * np.eye(k) + 0.4 * rng.dirichlet(np.ones(k), size=k)
    return logits, labels, t


# -- Forward: loss and gradient --------------------------------------------------------------------


def test_forward_loss_is_minus_log_of_the_corrected_probability():
    z, y, t = _random_problem()
    got = forward_loss(torch.tensor(z, dtype=torch.float32), torch.tensor(y), torch.tensor(t, dtype=torch.float32))
    q = _softmax(z) @ t  # (T^T p)_j for every j, float64
    assert np.allclose(got.numpy(), -np.log(q[np.arange(len(y)), y]), rtol=FLOAT32_RTOL)


def test_forward_gradient_matches_the_closed_form_and_gradcheck():
    z, y, t = _random_problem(seed=1)
    # closed form: d/dz_j -log (T^T p)_y = p_j (1 - T_jy / q_y)
    logits = torch.tensor(z, dtype=torch.float32, requires_grad=True)
    (grad,) = torch.autograd.grad(forward_loss(logits, torch.tensor(y), torch.tensor(t)).sum(), logits)
    p = _softmax(z)
    q_y = (p @ t)[np.arange(len(y)), y][:, None]
    expected = p * (1 - t[:, y].T / q_y)
    # float32 gradient of O(1) entries against float64: absolute error ~1e-7
    assert np.allclose(grad.numpy(), expected, rtol=FLOAT32_RTOL, atol=1e-6)
    # and autograd against finite differences in float64 (gradcheck's default tolerances)
    z64 = torch.tensor(z, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: forward_loss(x, torch.tensor(y), torch.tensor(t)), (z64,))


def test_forward_with_the_identity_is_cross_entropy_bit_for_bit():
    g = torch.Generator().manual_seed(2)
    logits = (3 * torch.randn(64, 10, generator=g)).requires_grad_()
    labels = torch.randint(0, 10, (64,), generator=g)
    loss = forward_loss(logits, labels, torch.eye(10))
    ce = F.cross_entropy(logits, labels, reduction="none")
    assert torch.equal(loss, ce)  # the off-diagonal terms enter as exp(log p_i - 87): below float32's rounding
    (g_fw,) = torch.autograd.grad(loss.sum(), logits)
    (g_ce,) = torch.autograd.grad(ce.sum(), logits)
    # the floored off-diagonal entries add p_i * 1.2e-38 to the gradient: nothing at float32 resolution
    assert torch.allclose(g_fw, g_ce, rtol=0, atol=1e-30)


def test_a_zero_column_of_t_gives_a_finite_loss_and_gradient():
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # label 1 impossible under T
    logits = torch.zeros(1, 2, requires_grad=True)
    loss = forward_loss(logits, torch.tensor([1]), t)
    loss.sum().backward()
    # the floor 1.2e-38 of T: -log(p_0 floor + p_1 floor) = -log(1.2e-38) = 87.3
    assert torch.isfinite(loss).all() and 87.0 < float(loss.detach()) < 88.0
    assert torch.isfinite(logits.grad).all()


# -- Forward: the known matrix ---------------------------------------------------------------------


@pytest.mark.parametrize("kind, dataset, k, n", [
    ("sym", "cifar10", 10, 100_000), ("sym-all", "cifar10", 10, 100_000), ("sym-authors", "cifar10", 10, 100_000),
    ("sym", "synthetic", 4, 40_000), ("asym", "cifar10", 10, 100_000), ("asym-authors", "cifar10", 10, 100_000),
    ("asym", "cifar100", 100, 200_000), ("none", "cifar10", 10, 10_000)])
def test_known_transition_matrix_matches_the_drawn_noise(kind, dataset, k, n):
    rate = 0.4
    clean = np.arange(n) % k  # balanced: n / k samples per class
    noisy = make_noisy_labels(clean, kind, rate, dataset=dataset, num_classes=k, random_state=7)
    empirical = noisy.transition()
    expected = transition_matrix(kind, rate, k, dataset)
    assert np.allclose(expected.sum(1), 1.0)
    assert np.all(empirical[expected == 0] == 0)  # no flip the definition does not allow
    n_c = n // k
    # each entry is a frequency over n_c samples: 5 binomial standard errors (a 5-sigma miss has
    # probability < 1e-6) plus 2 / n_c for the generators' rounded counts (round, ceil)
    tol = 5 * np.sqrt(expected * (1 - expected) / n_c) + 2 / n_c
    assert np.all(np.abs(empirical - expected) <= tol), np.abs(empirical - expected).max()


def test_known_transition_matrix_closed_forms():
    t = transition_matrix("sym", 0.3, 4)
    assert np.allclose(np.diag(t), 0.7) and np.allclose(t[~np.eye(4, dtype=bool)], 0.1)
    t = transition_matrix("sym-all", 0.3, 4)
    assert np.allclose(np.diag(t), 0.7 + 0.3 / 4) and np.allclose(t[0, 1], 0.3 / 4)
    t = transition_matrix("asym", 0.3, 10, "cifar10")
    assert t[9, 1] == 0.3 and t[9, 9] == 0.7 and t[3, 5] == 0.3 and t[5, 3] == 0.3 and t[0, 0] == 1.0


@pytest.mark.parametrize("kind, dataset, k, match", [
    ("cifar10n", "cifar10", 10, "no known transition matrix.*estimated"),
    ("cifar100n", "cifar100", 100, "no known transition matrix.*estimated"),
    ("asym-authors", "cifar100", 100, "randomly drawn classes.*estimated"),
    ("asym", "synthetic", 4, "class map"),
    ("asym", "cifar10", 4, "num_classes must be 10"),
    ("sym", "cifar10", 1, "num_classes must be an integer >= 2"),
])
def test_known_transition_matrix_refuses_what_it_cannot_know(kind, dataset, k, match):
    with pytest.raises(ValueError, match=match) as err:
        transition_matrix(kind, 0.4, k, dataset)
    assert "\n" not in str(err.value)


def test_forward_known_takes_the_runs_noise_and_refuses_human_noise():
    cfg = TrainConfig(method="forward", forward_matrix="known", dataset="synthetic", noise="sym", noise_rate=0.3,
                      epochs=2)
    method = Forward(cfg)
    assert method.init_state(10, 4, torch.Generator(), torch.device("cpu")) == {}
    assert np.allclose(method.transition.numpy(), transition_matrix("sym", 0.3, 4))
    human = Forward(cfg.replace(noise="cifar10n"))
    with pytest.raises(ValueError, match="forward_matrix='estimated'"):
        human.init_state(10, 4, torch.Generator(), torch.device("cpu"))


# -- Forward: the anchor estimator -----------------------------------------------------------------


def _planted(k=5, n_anchor=200, n_other=1000, n_outlier=4, seed=3):
    """Noisy-label posteriors T^T p_clean of: perfect anchors (p_clean = e_i), Dirichlet samples,
    and overconfident outliers (noisy posterior e_i), with a column-dominant planted T."""
    rng = np.random.default_rng(seed)
    t = 0.6 * np.eye(k) + 0.4 * rng.dirichlet(np.ones(k), size=k)  # T_ii >= 0.6 > 0.4 >= T_ci
    clean = np.concatenate([np.repeat(np.eye(k), n_anchor, axis=0), rng.dirichlet(np.ones(k), size=n_other)])
    outliers = np.repeat(np.eye(k), n_outlier, axis=0)
    probs = np.concatenate([clean @ t, outliers])
    return torch.tensor(probs[rng.permutation(len(probs))]), torch.tensor(t)


def test_anchor_estimator_recovers_a_planted_transition_matrix():
    probs, t = _planted()
    # 20 outliers (0.9 %) sit above the 200 anchors of each class; the 97th percentile falls among
    # the anchors, whose noisy posterior is exactly row i of T (e_i @ T is exact in float64)
    assert torch.equal(estimate_transition(probs, 97.0), t)
    # the argmax (percentile 100) takes an outlier: row e_i, not T's row
    assert torch.equal(estimate_transition(probs, 100.0), torch.eye(5, dtype=torch.float64))


def test_anchor_estimator_takes_the_percentile_order_statistic():
    # independent computation: numpy's nearest-rank-above ("higher") percentile of each column
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(6), size=301)
    got = estimate_transition(torch.tensor(probs), 97.0).numpy()
    for i in range(6):
        value = np.percentile(probs[:, i], 97, method="higher")
        assert got[i, i] == value
        assert np.array_equal(got[i], probs[np.flatnonzero(probs[:, i] == value)[0]])


def test_forward_estimates_t_once_after_the_warm_up_and_carries_it_across_a_resume():
    cfg = TrainConfig(method="forward", forward_warmup=2, dataset="synthetic", epochs=5)
    method = Forward(cfg)
    method.init_state(8, 3, torch.Generator(), torch.device("cpu"))
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(5))

    def predictions():  # as the trainer's: (indices, logits, labels) in batches
        for lo in (0, 5):
            idx = torch.arange(lo, min(lo + 5, 8))
            yield idx, logits[idx], torch.zeros(len(idx), dtype=torch.int64)

    def untouched():
        raise AssertionError("the predictions were read before the warm-up ended")
        yield

    method.end_of_epoch(untouched(), {}, 0.1)
    assert method.transition is None and method.state_dict()["epochs_done"] == 1
    method.end_of_epoch(predictions(), {}, 0.1)
    expected = estimate_transition(torch.softmax(logits, 1), 97.0)
    assert torch.equal(method.transition, expected)
    method.end_of_epoch(untouched(), {}, 0.1)  # estimated once
    resumed = Forward(cfg)
    resumed.init_state(8, 3, torch.Generator(), torch.device("cpu"))
    resumed.load_state_dict(method.state_dict())
    assert torch.equal(resumed.transition, expected) and resumed.epochs_done == 3


def test_forward_loss_is_cross_entropy_until_t_is_set_then_corrected():
    g = torch.Generator().manual_seed(6)
    model = torch.nn.Linear(6, 3)
    x, y = torch.randn(5, 6, generator=g), torch.randint(0, 3, (5,), generator=g)
    batch = Batch(indices=torch.arange(5), images=x, labels=y, raw=x, normalize=lambda v: v)
    method = Forward(TrainConfig(method="forward", forward_warmup=1, dataset="synthetic", epochs=2))
    method.init_state(5, 3, torch.Generator(), torch.device("cpu"))
    assert torch.equal(method.batch_loss(model, batch, {}).loss, F.cross_entropy(model(x), y))
    t = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.0, 0.3, 0.7]])
    method.load_state_dict({"epochs_done": torch.tensor(1), "transition": t})
    out = method.batch_loss(model, batch, {})
    assert torch.equal(out.loss, forward_loss(model(x), y, t).mean())
    assert torch.equal(out.terms["ce"], F.cross_entropy(model(x), y))


def test_forward_noise_score_is_the_posterior_of_a_wrong_label():
    rng = np.random.default_rng(8)
    p = rng.dirichlet(np.ones(4), size=50)
    y = rng.integers(0, 4, size=50)
    t = 0.7 * np.eye(4) + 0.3 * rng.dirichlet(np.ones(4), size=4)
    got = label_error_posterior(torch.tensor(p), torch.tensor(y), torch.tensor(t)).numpy()
    # Bayes from the definitions: P(clean = c | x, noisy = y) ∝ p_c T_cy
    joint = p * t[:, y].T
    assert np.allclose(got, 1 - joint[np.arange(50), y] / joint.sum(1), rtol=1e-12)
    # symmetric T: the same ranking as the base score 1 - p_y
    sym = torch.tensor(transition_matrix("sym", 0.4, 4))
    score = label_error_posterior(torch.tensor(p), torch.tensor(y), sym).numpy()
    assert np.array_equal(np.argsort(score, kind="stable"), np.argsort(1 - p[np.arange(50), y], kind="stable"))


# -- SL --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha, beta, a", [(0.1, 1.0, -4.0), (6.0, 0.1, -4.0), (1.0, 1.0, -9.21)])
def test_sl_loss_is_alpha_ce_plus_beta_reverse_ce(alpha, beta, a):
    z, y, _ = _random_problem(b=9, k=6, seed=9)
    loss, ce, rce = sl_loss(torch.tensor(z, dtype=torch.float32), torch.tensor(y), alpha, beta, a)
    p = _softmax(z)
    q = np.clip(np.eye(6)[y], np.exp(a), 1.0)  # the one-hot label with log 0 = A
    rce_ref = -(p * np.log(q)).sum(1)
    ce_ref = -np.log(p[np.arange(9), y])
    assert np.allclose(rce.numpy(), rce_ref, rtol=FLOAT32_RTOL)
    assert np.allclose(ce.numpy(), ce_ref, rtol=FLOAT32_RTOL)
    assert np.allclose(loss.numpy(), alpha * ce_ref + beta * rce_ref, rtol=FLOAT32_RTOL)


def test_sl_gradient_matches_the_closed_form_and_gradcheck():
    z, y, _ = _random_problem(seed=10)
    alpha, beta, a = 0.1, 1.0, -4.0
    logits = torch.tensor(z, dtype=torch.float32, requires_grad=True)
    (grad,) = torch.autograd.grad(sl_loss(logits, torch.tensor(y), alpha, beta, a)[0].sum(), logits)
    # d/dz [alpha CE] = alpha (p - e_y); d/dz [-A (1 - p_y)] = A p_y (e_y - p)
    p, e = _softmax(z), np.eye(5)[y]
    expected = alpha * (p - e) + beta * a * p[np.arange(len(y)), y][:, None] * (e - p)
    assert np.allclose(grad.numpy(), expected, rtol=FLOAT32_RTOL, atol=1e-6)  # float32: abs error ~1e-7
    z64 = torch.tensor(z, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: sl_loss(x, torch.tensor(y), alpha, beta, a)[0], (z64,))


def test_sl_defaults_are_the_published_weights_of_the_dataset():
    assert PUBLISHED_WEIGHTS == {"cifar10": (0.1, 1.0), "cifar100": (6.0, 0.1)}  # Wang et al. 2019, Sec. 4.1
    for dataset, expected in [("cifar10", (0.1, 1.0)), ("cifar100", (6.0, 0.1)), ("cifar10-jpeg", (0.1, 1.0)),
                              ("cifar100-png", (6.0, 0.1)), ("fashion-mnist", (0.1, 1.0)), ("synthetic", (0.1, 1.0)),
                              ("npz", (0.1, 1.0))]:
        method = SL(TrainConfig(method="sl", dataset=dataset))
        assert (method.alpha, method.beta) == expected, dataset
    # a value given is kept, the other still comes from the dataset
    method = SL(TrainConfig(method="sl", dataset="cifar100", sl_alpha=1.0))
    assert (method.alpha, method.beta) == (1.0, 0.1)
    assert sl_weights("cifar10", 0.0, None) == (0.0, 1.0)
    assert sl_weights("CIFAR-100") == (6.0, 0.1)  # aliases resolve as in load_dataset


# -- bad options -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kw, match", [
    (dict(method="forward", forward_matrix="oracle"), "forward_matrix must be one of"),
    (dict(method="forward", forward_warmup=0), "forward_warmup must be an integer >= 1"),
    (dict(method="forward", forward_percentile=101), r"forward_percentile must be a finite number in \[0.0, 100.0\]"),
    (dict(method="sl", sl_alpha=-1), "sl_alpha must be a finite number >= 0.0"),
    (dict(method="sl", sl_beta=float("nan")), "sl_beta must be a finite number"),
    (dict(method="sl", sl_log_zero=0.0), "sl_log_zero must be a finite number < 0.0"),
    (dict(method="sl", sl_alpha=0, sl_beta=0), "sl_alpha and sl_beta must not both be 0"),
    (dict(method="sl", forward_warmup=3), r"forward_warmup.*do not apply to method 'sl'"),
])
def test_bad_options_are_refused_in_one_line(kw, match):
    with pytest.raises(ValueError, match=match) as err:
        TrainConfig(**kw)
    assert "\n" not in str(err.value)


def test_a_warm_up_as_long_as_the_run_is_refused():
    with pytest.raises(ValueError, match=r"forward_warmup must be < epochs \(3\)"):
        Forward(TrainConfig(method="forward", forward_warmup=3, epochs=3))
    Forward(TrainConfig(method="forward", forward_matrix="known", forward_warmup=3, epochs=3))  # unused there


# -- trained on the synthetic set ------------------------------------------------------------------


def _cfg(tmp_path, name, **kw):
    base = dict(dataset="synthetic", arch="cnn", width=4, epochs=2, batch_size=32, lr=0.05, noise="sym",
                noise_rate=0.4, device="cpu", progress=False, seed=3, out=str(tmp_path / name))
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("method, options", [
    ("forward", dict(forward_matrix="known")), ("forward", dict(forward_warmup=1)), ("sl", {})])
def test_each_method_trains_on_the_synthetic_set(tmp_path, method, options):
    res = train(_cfg(tmp_path, "run", method=method, **options))
    assert [row["epoch"] for row in res.history] == [1, 2]
    assert all(np.isfinite(row["train_loss"]) for row in res.history)
    if options.get("forward_warmup") is None:  # the same loss both epochs: it went down
        assert res.history[1]["train_loss"] < res.history[0]["train_loss"]
    s = res.samples
    assert s["noise_score"].shape == s["given_label"].shape
    assert np.all((s["noise_score"] >= 0) & (s["noise_score"] <= 1))
    if method == "sl":
        # the logged loss is alpha CE + beta RCE of the logged terms, with the published CIFAR-10 weights
        row = res.history[-1]
        assert np.isclose(row["train_loss"], 0.1 * row["train_ce"] + 1.0 * row["train_rce"], rtol=1e-6)
        return
    t = res.method_state["transition"]
    assert res.method_state["epochs_done"] == 2
    if options.get("forward_matrix") == "known":
        assert np.allclose(t.numpy(), transition_matrix("sym", 0.4, 4))
    else:  # estimated after epoch 1: rows are softmax outputs of the warm-up network
        assert t.shape == (4, 4) and torch.allclose(t.sum(1), torch.ones(4)) and (t > 0).all()
        assert res.history[0]["train_forward"] == res.history[0]["train_ce"]  # the warm-up is CE
    # the final noise score: the Bayes posterior under T, recomputed from the saved probabilities
    probs, y = s["pred_prob"].astype(np.float64), s["given_label"]
    joint = probs * t.double().numpy()[:, y].T
    assert np.allclose(s["noise_score"], 1 - joint[np.arange(len(y)), y] / joint.sum(1), atol=1e-6)


@pytest.mark.parametrize("warmup", [1, 2])
def test_estimated_forward_resumes_bit_identically(tmp_path, warmup):
    # stopped after epoch 1: with warmup 1 T was just estimated and checkpointed; with warmup 2 the
    # resumed run must estimate it itself at the end of epoch 2 (the epoch count is checkpointed)
    def cfg(name):
        return _cfg(tmp_path, name, method="forward", forward_warmup=warmup, epochs=3, schedule="cosine")

    full = train(cfg("full"))

    class Stop(Exception):
        pass

    def stop_after_first(epoch, row):
        if epoch == 0:
            raise Stop

    with pytest.raises(Stop):
        train(cfg("cut"), callbacks={"epoch": stop_after_first})
    resumed = train(cfg("cut"), resume=True)
    assert set(full.method_state) == {"epochs_done", "transition"}
    for key in full.method_state:
        assert torch.equal(full.method_state[key], resumed.method_state[key]), key
    for key, val in full.model.state_dict().items():
        assert torch.equal(val, resumed.model.state_dict()[key]), key
    strip = [{k: v for k, v in row.items() if k != "epoch_time"} for row in full.history]
    assert json.dumps(strip) == json.dumps([{k: v for k, v in row.items() if k != "epoch_time"}
                                            for row in resumed.history])
    for key in full.samples:
        assert np.array_equal(full.samples[key], resumed.samples[key]), key
    # the corrected loss did take over: after the estimate the logged loss is no longer CE
    assert full.history[-1]["train_forward"] != full.history[-1]["train_ce"]
