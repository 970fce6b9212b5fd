"""The paper's Table 1 baselines GCE and ELR against their formulas, written out here in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sopdeep.config import TrainConfig
from sopdeep.methods import ELR, GCE, Batch
from sopdeep.methods.gce import gce_loss

# float32 softmax and log against a float64 numpy reference: relative error ~1e-6 per term
FLOAT32_RTOL = 1e-5


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _batch(n=10, k=4, b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    idx = torch.tensor([3, 0, 7, 9, 4])[:b]
    model = torch.nn.Linear(6, k)
    return model, Batch(indices=idx, images=x[idx], labels=y[idx], raw=x[idx], normalize=lambda t: t), x, y


@pytest.mark.parametrize("q", [0.7, 1.0, 0.3])
def test_gce_is_one_minus_p_y_to_the_q_over_q(q):
    model, batch, _, _ = _batch()
    out = GCE(TrainConfig(method="gce", gce_q=q)).batch_loss(model, batch, {})
    p = _softmax(model(batch.images).detach().double().numpy())
    p_y = p[np.arange(len(batch.labels)), batch.labels.numpy()]
    assert np.isclose(out.loss.item(), np.mean((1 - p_y ** q) / q), rtol=FLOAT32_RTOL)


def test_gce_gradient_matches_the_closed_form():
    # d/dz_j [(1 - p_y^q)/q] = -p_y^q (1[j = y] - p_j)
    logits = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    q = 0.7
    (grad,) = torch.autograd.grad(gce_loss(logits.float(), labels, q).sum(), logits)
    p = _softmax(logits.detach().numpy())
    p_y = p[np.arange(6), labels.numpy()][:, None]
    expected = -(p_y ** q) * (np.eye(5)[labels.numpy()] - p)
    assert np.allclose(grad.numpy(), expected, rtol=FLOAT32_RTOL, atol=1e-7)


def test_gce_tends_to_cross_entropy_as_q_goes_to_zero():
    logits, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    # (1 - p^q)/q = -log p - q log(p)^2 / 2 + O(q^2): q = 1e-4 gives |error| < 1e-3 here
    assert torch.allclose(gce_loss(logits, labels, 1e-4), ce, atol=1e-3)


def test_elr_updates_the_visited_targets_then_adds_lambda_log_one_minus_inner_product():
    beta, lam = 0.7, 3.0
    model, batch, _, _ = _batch()
    method = ELR(TrainConfig(method="elr", elr_beta=beta, elr_lambda=lam))
    state = method.init_state(10, 4, torch.Generator(), torch.device("cpu"))
    state["target"][batch.indices] = torch.rand(5, 4, generator=torch.Generator().manual_seed(1)) / 4
    before = state["target"].clone().double().numpy()
    out = method.batch_loss(model, batch, state)
    # the formula, in float64
    p = np.clip(_softmax(model(batch.images).detach().double().numpy()), 1e-4, 1 - 1e-4)
    idx = batch.indices.numpy()
    t = beta * before[idx] + (1 - beta) * p / p.sum(1, keepdims=True)
    y = batch.labels.numpy()
    ce = -np.log(_softmax(model(batch.images).detach().double().numpy())[np.arange(5), y])
    expected = np.mean(ce) + lam * np.mean(np.log(1 - (p * t).sum(1)))
    assert np.isclose(out.loss.item(), expected, rtol=FLOAT32_RTOL)
    after = state["target"].double().numpy()
    assert np.allclose(after[idx], t, rtol=FLOAT32_RTOL)
    others = np.setdiff1d(np.arange(10), idx)
    assert np.array_equal(after[others], before[others])  # no other row changes
    # noise score: the target's mass away from the given label
    labels = torch.arange(10) % 4
    assert np.allclose(method.noise_scores(state, labels).numpy(), 1 - after[np.arange(10), labels.numpy()])


def test_elr_regulariser_gradient_reaches_the_network_only_through_p():
    # t is a detached ensemble: the gradient of log(1 - <p, t>) is that of the formula with t fixed
    model, batch, _, _ = _batch()
    method = ELR(TrainConfig(method="elr"))
    state = method.init_state(10, 4, torch.Generator(), torch.device("cpu"))
    out = method.batch_loss(model, batch, state)
    out.loss.backward()
    assert not state["target"].requires_grad and all(p.grad is not None for p in model.parameters())


def test_baseline_options_are_their_papers_defaults():
    assert TrainConfig(method="gce").options.gce_q == 0.7  # Zhang & Sabuncu 2018
    elr = TrainConfig(method="elr").options
    assert (elr.elr_beta, elr.elr_lambda) == (0.7, 3.0)  # Liu et al. 2020, CIFAR-10
