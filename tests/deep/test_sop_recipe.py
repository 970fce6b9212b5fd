"""The authors' SOP variants (switches of sop_loss_terms, the u/v step) against direct computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from sop_reference import closed_form_grads, projected_sgd_step
from sopdeep.sop_loss import (
    RECIPES,
    recipe_switches,
    sgd_step,
    sop_loss_terms,
    uv_step_size,
)

# float64: autograd and the closed forms evaluate one expression in different orders; they agree to
# a few ulps of terms of size at most 1/eps = 1e4, so 1e-10 relative is far above rounding.
RTOL, ATOL = 1e-10, 1e-12
EPS = 1e-4


def _batch(seed, b, k, scale=0.5, shape="vector"):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, k, (b,), generator=g)
    width = k if shape == "vector" else 1
    u = ((torch.rand(b, width, generator=g, dtype=torch.float64) * 2 - 1) * scale).requires_grad_(True)
    v = ((torch.rand(b, k, generator=g, dtype=torch.float64) * 2 - 1) * scale).requires_grad_(True)
    return logits, labels, u, v


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 6), k=st.integers(2, 12))
def test_u_learning_from_mse_adds_4u_times_residual_over_b(seed, b, k):
    # the CE closed form holds where phi's clamp is inactive: scale 0.2 keeps |s| <= 0.04 off the
    # label; where a tiny probability still dips below eps, use uniform logits (1/k >= 1/12 > 0.04)
    logits, labels, u, v = _batch(seed, b, k, scale=0.2)
    y = F.one_hot(labels, k).to(u.dtype)
    s = u.detach() ** 2 * y - v.detach() ** 2 * (1 - y)
    if not bool(((torch.softmax(logits, 1) + s) > EPS).all()):
        logits = logits * 0.0
    t = sop_loss_terms(logits, labels, u, v, EPS, u_learns_mse=True)
    gu, gv = torch.autograd.grad(t.ce.mean() + t.mse.mean(), (u, v))
    prob = torch.softmax(logits, 1)
    hard = F.one_hot(logits.argmax(1), k).to(u.dtype)
    closed = closed_form_grads(prob, labels, u.detach(), v.detach(), hard)
    u_c, hard_c = u.detach(), (hard * y).sum(1, keepdim=True)
    mse_u = 4 * u_c * (hard_c + u_c**2 - 1) * y  # the residual at the label; v is zero there
    torch.testing.assert_close(gu, (closed["ce_u"] + mse_u) / b, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(gv, closed["mse_v"] / b, rtol=RTOL, atol=ATOL)  # v unchanged
    # the paper's routing is the same minus that term
    t0 = sop_loss_terms(logits, labels, u, v, EPS)
    gu0 = torch.autograd.grad(t0.ce.mean() + t0.mse.mean(), u)[0]
    torch.testing.assert_close(gu - gu0, mse_u / b, rtol=RTOL, atol=ATOL)


def test_u_learning_from_mse_with_scalar_u():
    logits, labels, u, v = _batch(3, 5, 7, shape="scalar")
    t = sop_loss_terms(logits, labels, u, v, EPS, u_learns_mse=True)
    g_mse = torch.autograd.grad(t.mse.mean(), u)[0]
    hard_c = (logits.argmax(1) == labels).to(u.dtype)[:, None]
    torch.testing.assert_close(g_mse, 4 * u.detach() * (hard_c + u.detach() ** 2 - 1) / 5, rtol=RTOL, atol=ATOL)


def test_clamped_corrections_are_min_1_and_have_no_gradient_above():
    logits, labels, u, v = _batch(1, 8, 5, scale=1.5)  # |u|, |v| up to 1.5: u^2 up to 2.25
    t = sop_loss_terms(logits, labels, u, v, EPS, u_learns_mse=True, clamp_corrections=True)
    gu, gv = torch.autograd.grad(t.ce.sum() + t.mse.sum(), (u, v))
    # direct computation: substitute min(u^2, 1), min(v^2, 1) as constants where above 1
    y = F.one_hot(labels, 5).to(u.dtype)
    uc, vc = (u.detach() ** 2).clamp(max=1.0), (v.detach() ** 2).clamp(max=1.0)
    s = uc * y - vc * (1 - y)
    w = (torch.softmax(logits, 1) + s).clamp_min(EPS)
    ce = -torch.log((w / w.sum(1, keepdim=True)).gather(1, labels[:, None]))[:, 0]
    mse = (F.one_hot(logits.argmax(1), 5) + s - y).square().sum(1)
    torch.testing.assert_close(t.ce, ce, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(t.mse, mse, rtol=RTOL, atol=ATOL)
    above_u, above_v = (u.detach().abs() > 1) & (y > 0), (v.detach().abs() > 1) & (y == 0)
    assert above_u.any() and above_v.any()
    assert torch.all(gu[above_u] == 0) and torch.all(gv[above_v] == 0)
    assert torch.all(gv[~above_v & (y == 0)] != 0)  # below the clamp the MSE still moves v


def test_clamped_phi_floors_the_label_entry_at_eps_with_zero_gradient():
    # label logit -40: p_c ~ 1e-18 < eps; the floored entries make the sum exceed 1, so without the
    # second clamp phi_c = eps / sum < eps (and the sum carries a gradient to the logits)
    logits = torch.tensor([[-40.0, 3.0, 0.0, -30.0], [1.0, 0.0, -1.0, 0.5]], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0])
    u = torch.zeros(2, 1, dtype=torch.float64)
    v = torch.zeros(2, 4, dtype=torch.float64)
    plain = sop_loss_terms(logits, labels, u, v, EPS)
    clamped = sop_loss_terms(logits, labels, u, v, EPS, clamp_phi=True)
    w = torch.softmax(logits.detach(), 1).clamp_min(EPS)
    assert plain.ce[0].item() == pytest.approx(-torch.log(EPS / w[0].sum()).item(), rel=1e-12)
    assert plain.ce[0].item() > -torch.log(torch.tensor(EPS, dtype=torch.float64)).item()
    assert clamped.ce[0].item() == pytest.approx(-torch.log(torch.tensor(EPS, dtype=torch.float64)).item(), rel=1e-12)
    g = torch.autograd.grad(clamped.ce[0], logits)[0]
    assert torch.all(g == 0)
    torch.testing.assert_close(clamped.ce[1], plain.ce[1], rtol=0, atol=0)  # inactive elsewhere


def _authors_loss(logits, labels, u, v, eps=EPS):
    """The released code's loss (model/loss.py at 4d991ce), written from its formula."""
    label = F.one_hot(labels, logits.shape[1]).to(u.dtype)
    U = torch.clamp(u**2 * label, 0, 1)
    V = torch.clamp(v**2 * (1 - label), 0, 1)
    pred = torch.clamp(torch.softmax(logits, 1) + U - V.detach(), min=eps)
    pred = torch.clamp(F.normalize(pred, p=1, eps=eps), min=eps, max=1.0)
    hard = F.one_hot(logits.detach().argmax(1), logits.shape[1]).to(u.dtype)
    mse = F.mse_loss(hard + U - V, label, reduction="sum") / len(label)
    return torch.mean(-torch.sum(label * torch.log(pred), dim=-1)) + mse


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 6), k=st.integers(2, 10))
def test_the_authors_recipe_is_the_released_loss(seed, b, k):
    logits, labels, u, v = _batch(seed, b, k, scale=1.3, shape="scalar")
    logits.requires_grad_(True)
    sw = recipe_switches("authors")
    t = sop_loss_terms(logits, labels, u, v, EPS, u_learns_mse=sw["u_learns_mse"],
                       clamp_corrections=sw["clamp_corrections"], clamp_phi=sw["clamp_phi"])
    ours = t.ce.mean() + t.mse.mean()
    theirs = _authors_loss(logits, labels, u, v)
    torch.testing.assert_close(ours, theirs, rtol=RTOL, atol=ATOL)
    for a, b_ in zip(torch.autograd.grad(ours, (logits, u, v)), torch.autograd.grad(theirs, (logits, u, v))):
        torch.testing.assert_close(a, b_, rtol=RTOL, atol=ATOL)


def test_authors_step_is_torch_sgd_on_the_batch_mean_and_ignores_the_schedule():
    logits, labels, u, v = _batch(5, 6, 4, scale=1.2)
    b, lr_u = 6, 10.0
    # reference: torch.optim.SGD (momentum 0, weight decay 0) on the batch-mean loss, as their train.py
    param = torch.nn.Parameter(u.detach().clone())
    opt = torch.optim.SGD([param], lr=lr_u, momentum=0, weight_decay=0)
    t = sop_loss_terms(logits, labels, param, v.detach(), EPS, u_learns_mse=True, clamp_corrections=True)
    (t.ce.mean() + t.mse.mean()).backward()
    opt.step()
    # ours: per-sample gradient B * grad(mean) and step lr_u / B, no projection
    t = sop_loss_terms(logits, labels, u, v.detach(), EPS, u_learns_mse=True, clamp_corrections=True)
    g = torch.autograd.grad(t.ce.mean() + t.mse.mean(), u)[0] * b
    for network_lr in (0.02, 2e-4):  # the network's schedule does not enter
        step = uv_step_size("constant", batch_size=b, constant_lr=lr_u, network_lr=network_lr)
        new = sgd_step(u.detach(), g, step, project=False)
        torch.testing.assert_close(new, param.detach(), rtol=RTOL, atol=ATOL)
    assert (param.detach().abs() > 1).any()  # unprojected: some rows leave [-1, 1]


def test_paper_step_follows_the_schedule_and_projects():
    rows = torch.tensor([[0.9], [-0.2], [0.0]], dtype=torch.float64)
    grad = torch.tensor([[-1.0], [0.5], [2.0]], dtype=torch.float64)
    assert uv_step_size("network", batch_size=128, alpha=10.0, network_lr=0.02) == pytest.approx(0.2, rel=1e-15)
    assert uv_step_size("network", batch_size=128, alpha=10.0, network_lr=2e-4) == pytest.approx(2e-3, rel=1e-15)
    assert uv_step_size("constant", batch_size=128, constant_lr=10.0) == 10.0 / 128
    out = sgd_step(rows, grad, 0.2, project=True)
    torch.testing.assert_close(out, torch.tensor([[1.0], [-0.3], [-0.4]], dtype=torch.float64), rtol=0, atol=1e-15)
    torch.testing.assert_close(out, projected_sgd_step(rows, grad, 0.2), rtol=0, atol=0)
    torch.testing.assert_close(sgd_step(rows, grad, 0.2, project=False)[0], torch.tensor([1.1], dtype=torch.float64))


def test_recipes_and_bad_switches():
    assert recipe_switches() == RECIPES["paper"]
    assert all(RECIPES["authors"][k] != RECIPES["paper"][k] for k in RECIPES["paper"])
    assert recipe_switches("authors", u_learns_mse=False)["u_learns_mse"] is False
    with pytest.raises(ValueError, match="recipe must be one of"):
        recipe_switches("mine")
    with pytest.raises(ValueError, match="unknown switch"):
        recipe_switches("paper", momentum=0.9)
    with pytest.raises(ValueError, match="schedule must be one of"):
        uv_step_size("cosine", batch_size=4, constant_lr=1.0)
    with pytest.raises(ValueError, match="needs constant_lr"):
        uv_step_size("constant", batch_size=4)
    with pytest.raises(ValueError, match="needs alpha and network_lr"):
        uv_step_size("network", batch_size=4, alpha=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        uv_step_size("constant", batch_size=0, constant_lr=1.0)
