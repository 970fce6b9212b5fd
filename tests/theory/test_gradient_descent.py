import numpy as np
import pytest
from hypothesis import given, settings
from theory_strategies import log_uniform, problems

from soptheory import (
    GradientDescentDiverged,
    default_step,
    flow_limit,
    gradient_descent,
    make_problem,
    relative_difference,
)


@pytest.fixture(scope="module")
def fig2():
    return make_problem(20, 40, 3, 3, random_state=0)


def test_gd_with_automatic_step_matches_flow_limit_across_figure2_range(fig2):
    alphas = np.array([4.0, 30.0, 150.0, 300.0, 1000.0, 4000.0])
    gd = gradient_descent(fig2.J, fig2.y, alphas)
    fl = flow_limit(fig2.J, fig2.y, alphas)
    assert np.all(gd.converged) and not np.any(gd.diverged)
    # The finite step leaves a discretisation bias proportional to safety_alpha (1e-3): measured
    # <= 7.9e-4 in theta and <= 5.2e-3 in s over 30 alpha in [4, 4000]
    # (benchmarks/theory_fig2_instance.py); bounds at about twice that.
    assert np.all(relative_difference(gd.theta, fl.theta) <= 2e-3)
    assert np.all(relative_difference(gd.s, fl.s) <= 1e-2)
    # The automatic step shrinks with alpha (it must, for stability).
    assert np.all(np.diff(gd.tau) < 0)


def test_gd_bias_shrinks_in_proportion_to_the_step(fig2):
    # GD -> gradient flow as tau -> 0: at large alpha the gap to the flow limit is a
    # discretisation bias O(alpha tau |r|), so dividing safety_alpha by 4 divides it by ~4.
    alpha = 1000.0
    fl = flow_limit(fig2.J, fig2.y, alpha)
    gaps = []
    for c in (4e-3, 1e-3):
        gd = gradient_descent(fig2.J, fig2.y, alpha, safety_alpha=c, tol=1e-6)
        assert gd.converged
        gaps.append(relative_difference(gd.theta, fl.theta))
    assert gaps[1] <= gaps[0] / 2.5  # 4 predicted; 2.5 leaves room for the O(tau^2) part


@settings(max_examples=6)
@given(prob=problems(N=(5, 10), r=(1, 2), k=(0, 2)), alpha=log_uniform(2.0, 200.0))
def test_gd_matches_flow_limit_on_random_problems(prob, alpha):
    gamma = np.exp(-4.0)
    gd = gradient_descent(prob.J, prob.y, alpha, gamma, tol=1e-6, max_iter=400_000)
    fl = flow_limit(prob.J, prob.y, alpha, gamma)
    assert gd.converged
    # 1e-2: the O(safety_alpha) discretisation bias plus the 1e-6 stopping tolerance; measured
    # up to 8.6e-4 (theta) and 4.8e-3 (s, when k = 0 and s_inf is small) in 12 such draws.
    assert relative_difference(gd.theta, fl.theta) <= 1e-2
    assert relative_difference(gd.s, fl.s) <= 1e-2


def test_constant_step_path_runs_eq15_verbatim(fig2):
    alphas = np.array([10.0, 1000.0])
    taus = default_step(fig2.J, fig2.y, alphas)
    gd = gradient_descent(fig2.J, fig2.y, alphas, tau=taus)
    np.testing.assert_array_equal(gd.tau, taus)
    assert np.all(gd.converged)
    fl = flow_limit(fig2.J, fig2.y, alphas)
    # default_step uses safety_alpha = 0.02: a bias ~20x the adaptive default's, measured 1.3e-2
    # in theta at alpha = 1000-4000; bound 3e-2.
    assert np.all(relative_difference(gd.theta, fl.theta) <= 3e-2)
    # One explicit step of eq. (15) from (18), computed by hand.
    one = gradient_descent(fig2.J, fig2.y, 10.0, tau=1e-4, max_iter=1, check_every=1)
    g = np.exp(-8.0)
    r0 = 2 * g * g * 0 - fig2.y  # theta = 0, u = v = gamma: r = -y
    np.testing.assert_allclose(one.theta, -1e-4 * fig2.J.T @ r0, rtol=1e-14)
    np.testing.assert_allclose(one.u, g * (1 - 2 * 10.0 * 1e-4 * r0), rtol=1e-14)
    np.testing.assert_allclose(one.v, g * (1 + 2 * 10.0 * 1e-4 * r0), rtol=1e-14)
    assert one.n_iter == 1 and not one.converged


def test_gd_reports_non_convergence_within_max_iter(fig2):
    gd = gradient_descent(fig2.J, fig2.y, [10.0, 100.0], max_iter=300)
    assert not np.any(gd.converged)
    assert np.all(gd.n_iter == 300)


def test_gd_divergence_raises_or_is_flagged(fig2):
    alphas = np.array([10.0, 4000.0])
    taus = np.array([1e-4, 1e-3])  # alpha * tau * max|y| ~ 60 >> 1/2 for alpha = 4000
    with pytest.raises(GradientDescentDiverged, match=r"alpha = \[4000.0\]"):
        gradient_descent(fig2.J, fig2.y, alphas, tau=taus)
    res = gradient_descent(fig2.J, fig2.y, alphas, tau=taus, on_divergence="flag", max_iter=20_000)
    np.testing.assert_array_equal(res.diverged, [False, True])
    assert not res.converged[1]
    for arr in (res.theta, res.s, res.u, res.v):
        assert np.all(np.isfinite(arr))


def test_gd_batch_and_scalar_shapes(fig2):
    single = gradient_descent(fig2.J, fig2.y, 50.0)
    batch = gradient_descent(fig2.J, fig2.y, np.array([50.0, 500.0]))
    assert single.theta.shape == (40,) and single.s.shape == (20,) and isinstance(single.n_iter, int)
    assert batch.theta.shape == (2, 40) and batch.u.shape == (2, 20) and batch.n_iter.shape == (2,)
    # Same arithmetic row by row; the batched matmul may round differently: 1e-8 relative.
    np.testing.assert_allclose(batch.theta[0], single.theta, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("seed, alpha", [(3, 4000.0), (2, 26.9)])
def test_gd_does_not_stop_on_a_plateau(seed, alpha):
    # Two cases where the extrapolated change alone stopped GD early (rho_theta 2.8e-2 and
    # rho_s 0.17): a small entry of s still growing from gamma^2 while (theta, s) barely move.
    # The range-of-J and residual guards must carry the run to its limit (bias-level agreement,
    # the same 2e-3 / 1e-2 bounds as on seed 0).
    prob = make_problem(20, 40, 3, 3, random_state=seed)
    gd = gradient_descent(prob.J, prob.y, alpha)
    fl = flow_limit(prob.J, prob.y, alpha)
    assert gd.converged
    assert relative_difference(gd.theta, fl.theta) <= 2e-3
    assert relative_difference(gd.s, fl.s) <= 1e-2
