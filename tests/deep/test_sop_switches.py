"""The recipe switches as the SOP / SOP+ methods apply them (config -> method -> u, v step), each
checked against a direct computation written here from the formulas, not through sop_loss_terms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sopdeep import config as config_module
from sopdeep.config import TrainConfig
from sopdeep.methods import SOP, Batch
from sopdeep.presets import FAST_REASON, PRESET_REASONS, PRESETS, RECIPE_REASONS, list_presets
from sopdeep.regularizers import class_balance_loss
from sopdeep.sop_loss import RECIPES
from sopdeep.methods import SOPPlus
from sopdeep.training import learning_rate

K, B, N, D = 4, 6, 12, 5
# float64 throughout: the method and the direct formula then agree to rounding (~1e-15); 1e-10
# leaves five orders of margin and still catches any missing factor (the terms are O(1e-2..1))
TOL = dict(rtol=1e-10, atol=1e-10)


def _setup(u_value=0.5, v_value=0.3, **overrides):
    """A SOP method on a linear model, a batch of B of N samples, u (N, 1) and v (N, K) set to fixed values."""
    cfg = TrainConfig(dataset="synthetic", method="sop", **overrides)
    method = SOP(cfg)
    g = torch.Generator().manual_seed(0)
    state = {"u": torch.full((N, 1), u_value, dtype=torch.float64) + 0.01 * torch.randn(N, 1, generator=g,
                                                                                          dtype=torch.float64),
             "v": torch.full((N, K), v_value, dtype=torch.float64)}
    model = torch.nn.Linear(D, K).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(K, D, generator=g, dtype=torch.float64))
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    labels = torch.randint(0, K, (B,), generator=g)
    batch = Batch(indices=torch.arange(B) * 2, images=x, labels=labels, raw=x, normalize=lambda t: t)
    return method, state, model, batch


def _step(method, state, model, batch, lr):
    """One batch of the method (loss, backward, u/v step) on a copy of the state; returns it."""
    state = {k: v.clone() for k, v in state.items()}
    out = method.batch_loss(model, batch, state)
    out.loss.backward()
    method.after_backward(batch, out, state, lr)
    return state


def _direct_uv_grads(model, batch, u, v, *, eps, u_learns_mse, clamp):
    """Per-sample gradients of CE + MSE w.r.t. u, v (rows of the batch), from the formulas."""
    u = u.clone().requires_grad_(True)
    v = v.clone().requires_grad_(True)
    with torch.no_grad():
        z = model(batch.images)
    y = F.one_hot(batch.labels, K).double()
    up, vp = u * u * y, v * v * (1 - y)
    if clamp:
        up, vp = torch.clamp(up, max=1.0), torch.clamp(vp, max=1.0)
    w = (torch.softmax(z, 1) + up - vp.detach()).clamp_min(eps)
    q = w / w.sum(1, keepdim=True)
    if clamp:
        q = q.clamp(eps, 1.0)
    ce = -(q * y).sum(1).log()
    hard = F.one_hot(z.argmax(1), K).double()
    mse = ((hard + (up if u_learns_mse else up.detach()) - vp - y) ** 2).sum(1)
    return torch.autograd.grad((ce + mse).sum(), (u, v))


def test_constant_schedule_steps_lr_over_b_per_sample_whatever_the_network_lr():
    method, state, model, batch = _setup(recipe="authors", lr_u=2.0, lr_v=7.0)
    idx = batch.indices
    after_fast = _step(method, state, model, batch, lr=0.3)
    model.zero_grad()
    after_slow = _step(method, state, model, batch, lr=1e-5)
    assert torch.equal(after_fast["u"], after_slow["u"]) and torch.equal(after_fast["v"], after_slow["v"])
    gu, gv = _direct_uv_grads(model, batch, state["u"][idx], state["v"][idx], eps=method.options.eps,
                              u_learns_mse=True, clamp=True)
    torch.testing.assert_close(after_fast["u"][idx], state["u"][idx] - 2.0 / B * gu, **TOL)
    torch.testing.assert_close(after_fast["v"][idx], state["v"][idx] - 7.0 / B * gv, **TOL)
    others = torch.ones(N, dtype=torch.bool)
    others[idx] = False
    assert torch.equal(after_fast["u"][others], state["u"][others])  # rows outside the batch untouched


def test_network_schedule_steps_alpha_times_lr_per_sample():
    method, state, model, batch = _setup(alpha_u=3.0, alpha_v=5.0)
    idx = batch.indices
    after = _step(method, state, model, batch, lr=0.01)
    gu, gv = _direct_uv_grads(model, batch, state["u"][idx], state["v"][idx], eps=method.options.eps,
                              u_learns_mse=False, clamp=False)
    torch.testing.assert_close(after["u"][idx], (state["u"][idx] - 0.03 * gu).clamp(-1, 1), **TOL)
    torch.testing.assert_close(after["v"][idx], (state["v"][idx] - 0.05 * gv).clamp(-1, 1), **TOL)


def test_u_learns_mse_alone_adds_4u_times_the_residual_to_the_u_step():
    base = dict(alpha_u=2.0, alpha_v=2.0)
    method, state, model, batch = _setup(**base)
    with_mse, *_ = _setup(**base, u_learns_mse=True)
    assert with_mse.switches == {**RECIPES["paper"], "u_learns_mse": True}
    idx, lr = batch.indices, 0.05
    plain = _step(method, state, model, batch, lr)
    model.zero_grad()
    learned = _step(with_mse, state, model, batch, lr)
    u = state["u"][idx, 0]
    with torch.no_grad():
        hard_c = (model(batch.images).argmax(1) == batch.labels).double()
    extra = 4.0 * u * (hard_c + u * u - 1.0)  # per-sample gradient of the MSE term w.r.t. scalar u
    torch.testing.assert_close(learned["u"][idx, 0] - plain["u"][idx, 0], -2.0 * lr * extra, **TOL)
    assert torch.equal(learned["v"], plain["v"])  # v's step does not depend on the switch


def test_without_projection_u_leaves_the_box_but_score_and_correction_stay_clamped():
    # u starts near 1 with a huge constant lr: the CE gradient pushes u at the label up, past 1
    method, state, model, batch = _setup(u_value=0.95, recipe="authors", lr_u=500.0, lr_v=1.0)
    after = _step(method, state, model, batch, lr=0.1)
    idx = batch.indices
    assert float(after["u"][idx].abs().max()) > 1.0
    labels = torch.zeros(N, dtype=torch.long)
    labels[idx] = batch.labels
    scores = method.noise_scores(after, labels)
    assert float(scores.max()) == 1.0 and float(scores.min()) >= 0.0
    big = after["u"][:, 0].abs() > 1
    torch.testing.assert_close(scores[~big], after["u"][~big, 0] ** 2)
    s = method.correction(after, labels, K)
    assert float(s.max()) <= 1.0 and float(s.min()) >= -1.0
    # the projection override alone keeps u in [-1, 1]
    projected, *_ = _setup(recipe="authors", lr_u=500.0, lr_v=1.0, project_uv=True)
    model.zero_grad()
    after_p = _step(projected, state, model, batch, lr=0.1)
    assert float(after_p["u"].abs().max()) <= 1.0


def test_authors_recipe_sets_every_switch_and_each_override_works_alone():
    cfg = TrainConfig(recipe="authors", lr_u=1.0, lr_v=10.0)
    assert cfg.options.switches() == RECIPES["authors"] and SOP(cfg).switches == RECIPES["authors"]
    assert TrainConfig().options.switches() == RECIPES["paper"]
    flips = {"u_learns_mse": "u_learns_mse", "clamp_corrections": "clamp_corrections", "clamp_phi": "clamp_phi",
             "project_uv": "project"}
    for field, key in flips.items():
        for recipe in ("paper", "authors"):
            base = TrainConfig(recipe=recipe, lr_u=1.0, lr_v=1.0)
            changed = base.replace(**{field: not RECIPES[recipe][key]}).options.switches()
            assert changed == {**RECIPES[recipe], key: not RECIPES[recipe][key]}
    assert TrainConfig(recipe="authors", uv_lr_schedule="network").options.switches()["uv_lr_schedule"] == "network"
    assert TrainConfig(uv_lr_schedule="constant", lr_u=1.0, lr_v=1.0).options.switches() == {
        **RECIPES["paper"], "uv_lr_schedule": "constant"}


@pytest.mark.parametrize("overrides, match", [
    ({"recipe": "authors"}, "lr_u and lr_v must be > 0"),
    ({"uv_lr_schedule": "constant", "lr_u": 1.0}, "lr_u and lr_v must be > 0"),
    ({"recipe": "authors", "lr_u": 1.0, "lr_v": 1.0, "update": "epoch"}, "use update='batch'"),
    ({"uv_lr_schedule": "sometimes"}, "uv_lr_schedule must be"),
    ({"recipe": "theirs"}, "recipe must be one of"),
    ({"project_uv": "no"}, "project_uv must be of type bool"),
    ({"lr_u": -1.0}, "lr_u must be"),
    ({"normalization": "fixed", "dataset": "npz"}, "normalization='fixed' has constants"),
    ({"lr_min": 1.0, "lr": 0.1}, "lr_min must be <= lr"),
])
def test_bad_switch_values_are_refused(overrides, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**overrides)


def test_cosine_epoch_schedule_is_constant_within_an_epoch_and_ends_at_the_floor():
    cfg = TrainConfig(lr=0.02, schedule="cosine_epoch", lr_min=2e-4, epochs=4)
    rates = [learning_rate(cfg, step, 3) for step in range(12)]
    assert rates[0] == rates[2] == 0.02 and rates[3] == rates[5]
    import math
    for epoch in range(4):  # torch's CosineAnnealingLR(T_max=4, eta_min=2e-4) closed form
        assert rates[3 * epoch] == pytest.approx(2e-4 + 0.5 * (0.02 - 2e-4) * (1 + math.cos(math.pi * epoch / 4)))


def test_sop_plus_authors_recipe_balances_the_corrected_prediction():
    method, state, model, batch = _setup(recipe="authors", lr_u=1.0, lr_v=1.0)
    cfg = method.config.replace(method="sop+", lambda_c=0.0, lambda_b=0.1)
    plus = SOPPlus(cfg)
    out = plus.batch_loss(model, batch, state)
    idx = batch.indices
    with torch.no_grad():
        z = model(batch.images)
        y = F.one_hot(batch.labels, K).double()
        up = (state["u"][idx] ** 2 * y).clamp(max=1.0)
        vp = (state["v"][idx] ** 2 * (1 - y)).clamp(max=1.0)
        w = (torch.softmax(z, 1) + up - vp).clamp_min(cfg.options.eps)
        q = (w / w.sum(1, keepdim=True)).clamp(cfg.options.eps, 1.0)
        expected = (0.25 * (torch.log(torch.tensor(0.25, dtype=torch.float64)) - q.mean(0).log())).sum()
    torch.testing.assert_close(out.terms["balance"], expected, **TOL)
    paper = SOPPlus(cfg.replace(recipe="paper"))
    out_paper = paper.batch_loss(model, batch, state)
    torch.testing.assert_close(out_paper.terms["balance"], class_balance_loss(z), **TOL)


def test_sop_plus_torchvision_view_fills_cutout_with_the_mean():
    # a black image: the only non-zero pixels of the strong view are the Cutout fill (= the mean)
    # (AutoAugment ops map black to black except Invert/Solarize/Posterize/contrast ones, so check the
    # Cutout box explicitly on many draws: some pixel must equal the fill in every channel)
    raw = torch.zeros(16, 3, 32, 32, dtype=torch.uint8)
    mean = torch.tensor([10.0, 120.0, 250.0])
    batch = Batch(indices=torch.arange(16), images=raw.float(), labels=torch.zeros(16, dtype=torch.long), raw=raw,
                  normalize=lambda t: t.float(), mean=mean)
    plus = SOPPlus(TrainConfig(method="sop+", recipe="authors", lr_u=1.0, lr_v=1.0))
    view = plus.strong_view(batch)
    hit = (view == mean.view(1, 3, 1, 1)).all(dim=1)  # (16, 32, 32)
    assert bool(hit.flatten(1).any(1).all())


def test_every_preset_names_its_recipe_and_why():
    assert set(PRESET_REASONS) == set(PRESETS)
    for name, preset in PRESETS.items():
        if name.startswith("fast-"):  # our speed recipe; its SOP presets step u, v as recipe=paper does
            assert PRESET_REASONS[name] == FAST_REASON and preset.get("recipe", "paper") == "paper"
            continue
        assert preset["recipe"] in RECIPES
        assert PRESET_REASONS[name] == RECIPE_REASONS[preset["recipe"]]
        assert f"recipe={preset['recipe']}" in list_presets()
    assert "recipe=fast" in list_presets()
    authors = {n: p for n, p in PRESETS.items() if p.get("recipe") == "authors"}
    assert {"authors-table2-cifar100-sym50", "authors-table2-cifar10-sym50", "authors-table4-cifar10n-worst"} <= set(authors)
    c100 = TrainConfig().replace(**PRESETS["authors-table2-cifar100-sym50"])
    assert (c100.arch, c100.options.lr_u, c100.options.lr_v, c100.noise, c100.weight_decay, c100.schedule, c100.lr_min) == (
        "preact18_authors", 1.0, 10.0, "sym-authors", 1e-3, "cosine_epoch", 2e-4)
    assert c100.options.switches() == RECIPES["authors"] and c100.normalization == "fixed"
