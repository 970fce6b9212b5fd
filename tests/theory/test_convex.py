import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from theory_strategies import log_uniform, problems

from soptheory import (
    ConvexProgram,
    SolverInaccurateWarning,
    dual_objective,
    duality_gap,
    kkt_residuals,
    make_problem,
    primal_objective,
    solve_convex,
)

# Tight interior-point tolerances: ECOS's defaults (1e-8 gap, feasibility) leave errors of ~1e-3
# in s on hard instances; 1e-10 is the tightest at which ECOS still reports "optimal" here.
ECOS_TIGHT = dict(abstol=1e-10, reltol=1e-10, feastol=1e-10, max_iters=200)
CLARABEL_TIGHT = dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)


@settings(max_examples=12)
@given(prob=problems(), lam=log_uniform(1e-3, 1.0))
def test_ecos_solution_satisfies_kkt_and_closes_duality_gap(prob, lam):
    J, y = prob.J, prob.y
    sol = solve_convex(J, y, lam, **ECOS_TIGHT)
    assert sol.status == "optimal"
    kkt = kkt_residuals(J, y, lam, sol.theta, sol.s, sol.nu)
    scale = 1.0 + np.abs(y).max() + np.abs(sol.theta).max()
    # 1e-6 relative: an interior-point method stopped at 1e-10 gap/feasibility leaves KKT
    # residuals of order sqrt(tolerance) in the complementarity-sensitive entries.
    assert kkt.primal <= 1e-6 * scale
    assert kkt.stationarity <= 1e-6 * scale
    assert kkt.dual <= 1e-6 * lam
    assert abs(kkt.complementarity) <= 1e-6 * scale
    gap = duality_gap(J, y, lam, sol.theta, sol.s, sol.nu)
    # Gap certified from our own primal and dual objectives: the solver's 1e-10 tolerances
    # bound it, 1e-7 relative allows for the clipping of nu onto the box and roundoff.
    assert gap >= -1e-7 * (1 + abs(sol.objective))
    assert gap <= 1e-7 * (1 + abs(sol.objective))


@settings(max_examples=8)
@given(prob=problems(), lam=log_uniform(1e-3, 1.0))
def test_ecos_and_clarabel_agree(prob, lam):
    a = solve_convex(prob.J, prob.y, lam, **ECOS_TIGHT)
    b = solve_convex(prob.J, prob.y, lam, solver="CLARABEL", **CLARABEL_TIGHT)
    # theta is unique (strongly convex term) and s = y - J theta with it; two independent
    # interior-point codes at 1e-10 agree to ~1e-6 in the worst (near-degenerate) instances.
    scale = 1.0 + np.abs(prob.y).max()
    np.testing.assert_allclose(a.theta, b.theta, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(a.s, b.s, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("lam", [0.05, 0.3, 1.0, 3.0])
def test_identity_design_has_soft_threshold_closed_form(lam):
    # J = I: min 1/2 theta^2 + lam |y - theta| per coordinate, so theta = clip(y, -lam, lam)
    # and s = sign(y) max(|y| - lam, 0) (soft thresholding).
    y = np.random.default_rng(0).standard_normal(7) * 2
    sol = solve_convex(np.eye(7), y, lam, **ECOS_TIGHT)
    # 1e-5: an interior-point method stops with complementarity products |s_i| (lam - |nu_i|)
    # of order its tolerance, so entries at the kink of |.| are only ~1e-6 accurate (measured
    # 6e-7 at lam = 0.05); two orders of magnitude below any closed-form difference tested.
    np.testing.assert_allclose(sol.theta, np.clip(y, -lam, lam), atol=1e-5)
    np.testing.assert_allclose(sol.s, np.sign(y) * np.maximum(np.abs(y) - lam, 0), atol=1e-5)


def test_lambda_sweep_reuses_compiled_problem_and_matches_fresh_solves():
    prob = make_problem(20, 40, 3, 3, random_state=0)
    program = ConvexProgram(prob.J, prob.y)
    assert program.problem.is_dcp(dpp=True)
    lams = np.array([1e-3, 1e-2, 1e-1])
    sweep = program.solve(lams, **ECOS_TIGHT)
    assert sweep.theta.shape == (3, 40) and sweep.s.shape == (3, 20) and len(sweep.status) == 3
    problem_obj = program.problem
    for i, lam in enumerate(lams):
        fresh = ConvexProgram(prob.J, prob.y).solve(lam, **ECOS_TIGHT)
        # Same solver, same data: identical up to the solver's tolerance (1e-7 absolute).
        np.testing.assert_allclose(sweep.theta[i], fresh.theta, atol=1e-7)
    assert program.problem is problem_obj
    # solve_convex keeps one compiled program per (J, y): equal answers through the cache.
    via_cache = solve_convex(prob.J, prob.y, lams, **ECOS_TIGHT)
    np.testing.assert_allclose(via_cache.theta, sweep.theta, atol=1e-7)


def test_kkt_residuals_reconstruct_the_multiplier():
    prob = make_problem(20, 40, 3, 3, random_state=0)
    lam = 0.1
    sol = solve_convex(prob.J, prob.y, lam, **ECOS_TIGHT)
    given_nu = kkt_residuals(prob.J, prob.y, lam, sol.theta, sol.s, sol.nu)
    rebuilt = kkt_residuals(prob.J, prob.y, lam, sol.theta, sol.s)
    # The reconstruction (lam sign(s) on the support, least squares elsewhere) certifies the
    # solution as well as the solver's own multiplier: 1e-6 as in the KKT test above.
    assert rebuilt.max() <= 1e-6 * (1 + np.abs(prob.y).max())
    assert given_nu.max() <= 1e-6 * (1 + np.abs(prob.y).max())


def test_kkt_residuals_detect_a_wrong_solution():
    prob = make_problem(20, 40, 3, 3, random_state=0)
    lam = 0.1
    sol = solve_convex(prob.J, prob.y, lam, **ECOS_TIGHT)
    theta = sol.theta * 1.01  # feasible after fixing s, but not optimal
    s = prob.y - prob.J @ theta
    kkt = kkt_residuals(prob.J, prob.y, lam, theta, s, sol.nu)
    assert kkt.stationarity > 1e-3 * np.abs(sol.theta).max()
    assert duality_gap(prob.J, prob.y, lam, theta, s, sol.nu) > 1e-6


@settings(max_examples=15)
@given(prob=problems(), lam=log_uniform(1e-3, 1.0))
def test_weak_duality_for_arbitrary_feasible_pairs(prob, lam):
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(prob.J.shape[1])
    s = prob.y - prob.J @ theta
    nu = rng.uniform(-lam, lam, size=prob.J.shape[0])
    # Any primal-feasible point and dual-feasible nu: primal >= dual (exact inequality; 1e-12
    # relative for rounding).
    p_val = primal_objective(theta, s, lam)
    d_val = dual_objective(prob.J, prob.y, nu)
    assert p_val >= d_val - 1e-12 * (abs(p_val) + abs(d_val))
    assert duality_gap(prob.J, prob.y, lam, theta, s, nu) == pytest.approx(p_val - d_val, rel=1e-12, abs=1e-12)


def test_failed_solve_raises_and_inaccurate_solve_warns():
    prob = make_problem(20, 40, 3, 3, random_state=0)
    with pytest.raises(RuntimeError, match="status 'user_limit'"):
        solve_convex(prob.J, prob.y, 0.01, max_iters=1)
    # ECOS cannot reach 1e-12 on this instance at lam=1 and reports optimal_inaccurate.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solve_convex(prob.J, prob.y, 1.0, abstol=1e-12, reltol=1e-12, feastol=1e-12, max_iters=500)
    ours = [w for w in caught if issubclass(w.category, SolverInaccurateWarning)]
    assert len(ours) == 1 and "optimal_inaccurate" in str(ours[0].message)
