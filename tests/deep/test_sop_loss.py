"""The SOP loss against closed forms (appendix A.1), its gradient routing and the u/v step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from sop_reference import closed_form_grads, projected_sgd_step
from sopdeep.sop_loss import (
    correction,
    init_sample_variables,
    phi,
    sop_loss_terms,
)

# float64 throughout: the closed forms and autograd evaluate the same expression in a different
# order, so they agree to a few ulps of the largest term (terms are O(1/eps) at most = 1e4);
# 1e-10 relative is far above that rounding and far below any real discrepancy.
RTOL, ATOL = 1e-10, 1e-12


def _batch(seed: int, b: int, k: int, scale: float = 0.5):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, k, (b,), generator=g)
    u = (torch.rand(b, k, generator=g, dtype=torch.float64) * 2 - 1) * scale
    v = (torch.rand(b, k, generator=g, dtype=torch.float64) * 2 - 1) * scale
    return logits, labels, u, v


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 6), k=st.integers(2, 12))
def test_ce_gradients_match_closed_form_A2(seed, b, k):
    # The closed form holds where phi's clamp is inactive. Scale 0.2 gives |s| <= 0.04 off the
    # label; where a tiny probability still dips below eps, fall back to uniform probabilities.
    logits, labels, u, v = _batch(seed, b, k, scale=0.2)
    prob = torch.softmax(logits, 1)
    y = F.one_hot(labels, k).double()
    s = correction(u, v, y)
    if not bool(((prob + s) > 1e-4).all()):
        logits = logits * 0.0  # uniform prob 1/k >= 1/12 > 0.04: clamp inactive
        prob = torch.softmax(logits, 1)
    uu = u.clone().requires_grad_()
    vv = v.clone().requires_grad_()
    # the full eq. (A.1) loss, v NOT detached: the quantity whose gradient (A.2) describes
    loss = -torch.log(phi(prob + correction(uu, vv, y)).gather(1, labels[:, None])).sum()
    gu, gv = torch.autograd.grad(loss, (uu, vv))
    ref = closed_form_grads(prob, labels, u, v, hard=torch.zeros_like(prob))
    torch.testing.assert_close(gu, ref["ce_u"], rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(gv, ref["ce_v"], rtol=RTOL, atol=ATOL)


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 6), k=st.integers(2, 12))
def test_mse_gradient_matches_closed_form_A4(seed, b, k):
    logits, labels, u, v = _batch(seed, b, k)
    vv = v.clone().requires_grad_()
    terms = sop_loss_terms(logits, labels, u, vv)
    (gv,) = torch.autograd.grad(terms.mse.sum(), (vv,))
    hard = F.one_hot(logits.argmax(1), k).double()
    ref = closed_form_grads(torch.softmax(logits, 1), labels, u, v, hard)
    torch.testing.assert_close(gv, ref["mse_v"], rtol=RTOL, atol=ATOL)


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(2, 8))
def test_ce_u_gradient_matches_finite_differences(seed, k):
    # independent of the closed form: central differences in float64, step 1e-6 -> truncation
    # error O(h^2 * f''') ~ 1e-12 * O(1e2), rounding O(1e-16/1e-6) = 1e-10; 1e-6 covers both.
    logits, labels, u, v = _batch(seed, 1, k, scale=0.2)
    logits = logits * 0.3  # keep probabilities away from the eps clamp
    uu = u.clone().requires_grad_()
    (g,) = torch.autograd.grad(sop_loss_terms(logits, labels, uu, v).ce.sum(), (uu,))
    h = 1e-6
    c = int(labels[0])
    up, um = u.clone(), u.clone()
    up[0, c] += h
    um[0, c] -= h
    fd = (sop_loss_terms(logits, labels, up, v).ce - sop_loss_terms(logits, labels, um, v).ce) / (2 * h)
    assert abs(float(g[0, c]) - float(fd[0])) < 1e-6
    # entries of u off the label never enter the loss
    off = torch.ones(k, dtype=torch.bool)
    off[c] = False
    assert torch.all(g[0, off] == 0)


def test_gradient_routing_v_only_mse_u_and_theta_only_ce():
    logits, labels, u, v = _batch(0, 5, 7)
    z = logits.clone().requires_grad_()
    uu = u.clone().requires_grad_()
    vv = v.clone().requires_grad_()
    t = sop_loss_terms(z, labels, uu, vv)
    gz, gu, gv = torch.autograd.grad(t.ce.sum(), (z, uu, vv), allow_unused=True)
    assert gv is None or torch.all(gv == 0)  # v never receives the CE gradient (A.1)
    assert gz.abs().sum() > 0 and gu.abs().sum() > 0
    gz, gu, gv = torch.autograd.grad(t.mse.sum(), (z, uu, vv), allow_unused=True)
    assert gz is None or torch.all(gz == 0)  # the prediction in the MSE term is a detached one-hot
    assert gu is None or torch.all(gu == 0)
    assert gv.abs().sum() > 0


def test_phi_is_a_floored_l1_normalisation():
    w = torch.tensor([[0.5, -0.2, 0.0, 1.5]], dtype=torch.float64)
    p = phi(w, eps=1e-3)
    m = torch.tensor([[0.5, 1e-3, 1e-3, 1.5]], dtype=torch.float64)
    torch.testing.assert_close(p, m / m.sum(), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="eps"):
        phi(w, eps=0.0)


def test_ce_without_correction_is_plain_cross_entropy():
    # s = 0 and probabilities above eps: phi(softmax) = softmax, so the CE term is F.cross_entropy.
    logits, labels, _, _ = _batch(3, 8, 5)
    zeros = torch.zeros(8, 1, dtype=torch.float64)
    t = sop_loss_terms(logits * 0.5, labels, zeros, torch.zeros(8, 5, dtype=torch.float64))
    torch.testing.assert_close(t.ce, F.cross_entropy(logits * 0.5, labels, reduction="none"),
                               rtol=1e-12, atol=1e-12)


def test_scalar_u_equals_vector_u_at_the_label():
    logits, labels, u, v = _batch(5, 6, 4)
    u_scalar = u.gather(1, labels[:, None]).clone().requires_grad_()
    u_vector = u.clone().requires_grad_()
    ts = sop_loss_terms(logits, labels, u_scalar, v)
    tv = sop_loss_terms(logits, labels, u_vector, v)
    torch.testing.assert_close(ts.ce, tv.ce, rtol=0, atol=1e-15)
    torch.testing.assert_close(ts.mse, tv.mse, rtol=0, atol=1e-15)
    (gs,) = torch.autograd.grad(ts.ce.sum(), (u_scalar,))
    (gv,) = torch.autograd.grad(tv.ce.sum(), (u_vector,))
    torch.testing.assert_close(gs, gv.gather(1, labels[:, None]), rtol=0, atol=1e-15)


def test_projected_step_is_hand_written_step_and_clamps():
    rows = torch.tensor([[0.5, -0.9], [0.99, 0.0]])
    grad = torch.tensor([[1.0, 2.0], [-3.0, 0.5]])
    out = projected_sgd_step(rows, grad, lr=0.1)
    expected = torch.tensor([[0.4, -1.0], [1.0, -0.05]])  # -1.1 -> -1, 1.29 -> 1
    torch.testing.assert_close(out, expected)
    assert rows[0, 0] == 0.5  # input untouched


def test_init_is_seeded_gaussian_with_requested_shape_and_std():
    a = init_sample_variables(20000, 10, "vector", 1e-8, torch.Generator().manual_seed(1))
    b = init_sample_variables(20000, 10, "vector", 1e-8, torch.Generator().manual_seed(1))
    assert a.shape == (20000, 10) and torch.equal(a, b)
    # sample std of 2e5 normals: relative standard error 1/sqrt(2*2e5) ~ 0.16%; 2% is > 10 sigma
    assert abs(float(a.std()) / 1e-8 - 1) < 0.02
    assert init_sample_variables(7, 10, "scalar", 1e-8, torch.Generator()).shape == (7, 1)
    with pytest.raises(ValueError, match="shape"):
        init_sample_variables(7, 10, "matrix", 1e-8, torch.Generator())


@given(seed=st.integers(0, 2**31 - 1), lr=st.floats(0.0, 100.0))
def test_projected_step_stays_in_the_box_and_is_exact_inside_it(seed, lr):
    g = torch.Generator().manual_seed(seed)
    rows = torch.rand(16, 3, generator=g, dtype=torch.float64) * 2 - 1
    grad = torch.randn(16, 3, generator=g, dtype=torch.float64) * 3
    out = projected_sgd_step(rows, grad, lr)
    raw = rows - lr * grad
    assert bool((out.abs() <= 1).all())
    inside = raw.abs() <= 1
    assert torch.equal(out[inside], raw[inside])  # same float expression: bit-identical
    assert torch.equal(out[~inside], raw[~inside].sign())
