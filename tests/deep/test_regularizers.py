"""SOP+ regularisers (appendix A.3) against direct float64 numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sopdeep.regularizers import class_balance_loss, consistency_loss, sop_plus_penalty, uniform_prior


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _np_consistency(zw, zs):
    pw, ps = _softmax(zw), _softmax(zs)
    return float(np.mean(np.sum(pw * (np.log(pw) - np.log(ps)), axis=1)))


def _np_balance(z, p):
    fbar = _softmax(z).mean(axis=0)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / fbar[mask])))


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 17), k=st.integers(2, 12), scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_consistency_matches_numpy(seed, b, k, scale):
    rng = np.random.default_rng(seed)
    zw, zs = scale * rng.standard_normal((b, k)), scale * rng.standard_normal((b, k))
    got = consistency_loss(torch.from_numpy(zw), torch.from_numpy(zs)).item()
    # float64 on both sides; log-softmax vs log(softmax) differ by rounding only (~1e-15 per term).
    assert got == pytest.approx(_np_consistency(zw, zs), rel=1e-10, abs=1e-12)
    assert got >= -1e-12


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 17), k=st.integers(2, 12), scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_class_balance_matches_numpy(seed, b, k, scale):
    rng = np.random.default_rng(seed)
    z = scale * rng.standard_normal((b, k))
    p = rng.dirichlet(np.ones(k))
    got = class_balance_loss(torch.from_numpy(z), torch.from_numpy(p)).item()
    assert got == pytest.approx(_np_balance(z, p), rel=1e-10, abs=1e-12)
    assert got >= -1e-12
    got_u = class_balance_loss(torch.from_numpy(z)).item()
    assert got_u == pytest.approx(_np_balance(z, np.full(k, 1.0 / k)), rel=1e-10, abs=1e-12)


def test_class_balance_zero_prior_entries_are_dropped():
    z = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]])
    p = np.array([0.5, 0.0, 0.5])
    got = class_balance_loss(torch.from_numpy(z), torch.from_numpy(p)).item()
    assert np.isfinite(got)
    assert got == pytest.approx(_np_balance(z, p), rel=1e-12)


def test_zero_when_equal():
    z = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # identical inputs: KL is exactly sum p*(a-a) = 0 up to rounding of exp (~1e-16)
    assert abs(consistency_loss(z, z.clone()).item()) < 1e-14
    # batch-mean prediction uniform: rows that are permutations of each other over all cyclic shifts
    row = torch.tensor([2.0, 0.0, -1.0, 0.5, 3.0], dtype=torch.float64)
    zc = torch.stack([torch.roll(row, s) for s in range(5)])
    assert abs(class_balance_loss(zc).item()) < 1e-14


def test_gradient_flows_to_strong_view_only():
    g = torch.Generator().manual_seed(1)
    zw = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    zs = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    consistency_loss(zw, zs).backward()
    assert zw.grad is None or torch.all(zw.grad == 0)
    # d/dz_s of mean_i KL(p_w || softmax(z_s)) = (p_s - p_w)/B  (closed form of the CE gradient)
    pw = torch.softmax(zw.detach(), 1)
    ps = torch.softmax(zs.detach(), 1)
    torch.testing.assert_close(zs.grad, (ps - pw) / 4, rtol=1e-12, atol=1e-14)
    # non-detached variant: gradient reaches the weak view too
    zw2 = zw.detach().clone().requires_grad_(True)
    consistency_loss(zw2, zs.detach(), detach_target=False).backward()
    assert zw2.grad.abs().sum() > 0


def test_class_balance_gradient_closed_form():
    # d L_B / d z_ik = (1/B) sum_j (-p_j / fbar_j) * P_ij (delta_jk - P_ik)
    g = torch.Generator().manual_seed(2)
    z = torch.randn(5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    p = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    class_balance_loss(z, p).backward()
    P = torch.softmax(z.detach(), 1)
    fbar = P.mean(0)
    w = -p / fbar  # (K,)
    expected = (P * w - P * (P * w).sum(1, keepdim=True)) / 5
    torch.testing.assert_close(z.grad, expected, rtol=1e-12, atol=1e-14)


def test_low_precision_logits_are_upcast():
    z = torch.randn(8, 10, generator=torch.Generator().manual_seed(3))
    assert consistency_loss(z.bfloat16(), z.bfloat16()).dtype == torch.float32
    assert class_balance_loss(z.half()).dtype == torch.float32


def test_penalty_combines_terms():
    g = torch.Generator().manual_seed(4)
    zw, zs = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    want = 0.9 * consistency_loss(zw, zs) + 0.1 * class_balance_loss(zw)
    total, terms = sop_plus_penalty(zw, zs, lambda_c=0.9, lambda_b=0.1)
    torch.testing.assert_close(total, want)
    torch.testing.assert_close(terms["consistency"], consistency_loss(zw, zs))
    torch.testing.assert_close(terms["balance"], class_balance_loss(zw))
    total, terms = sop_plus_penalty(zw, None, lambda_c=0.0, lambda_b=0.0)
    assert total.item() == 0.0 and terms == {}


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: consistency_loss(torch.zeros(3, 4), torch.zeros(3, 5)), "logits_strong"),
        (lambda: consistency_loss(torch.zeros(3), torch.zeros(3)), "logits_weak"),
        (lambda: class_balance_loss(torch.zeros(3, 4), torch.ones(3) / 3), "prior"),
        (lambda: class_balance_loss(torch.zeros(3, 2), torch.tensor([0.7, 0.7])), "prior"),
        (lambda: sop_plus_penalty(torch.zeros(3, 4), None, lambda_c=-1.0, lambda_b=0.1), "lambda_c"),
        (lambda: sop_plus_penalty(torch.zeros(3, 4), None, lambda_c=0.9, lambda_b=0.1), "logits_strong"),
        (lambda: uniform_prior(1), "n_classes"),
    ],
)
def test_bad_input_names_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_logged_balance_is_the_kl_the_authors_cross_entropy_minus_log_k():
    # the docs say: we log KL(p || f_bar); the authors log -sum p log f_bar = KL + H(p), H(uniform) = log K
    import math

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g, dtype=torch.float64, requires_grad=True)
    kl = class_balance_loss(logits)
    f_bar = torch.softmax(logits, dim=1).mean(0)
    ce = -(torch.full((5,), 0.2, dtype=torch.float64) * f_bar.log()).sum()
    # float64 and K = 5 terms: agreement to ~1e-15 expected; 1e-12 leaves rounding room
    assert abs(float((ce - kl).detach()) - math.log(5)) < 1e-12
    (g_kl,) = torch.autograd.grad(kl, logits, retain_graph=True)
    (g_ce,) = torch.autograd.grad(ce, logits)
    assert torch.allclose(g_kl, g_ce, rtol=0, atol=1e-12)  # same gradient, so the same training step
