"""Certification of the batched solver of eq. (25) (soptheory.batched_convex).

Every check recomputes optimality from (J, y, λ) and the returned (θ, s, ν) alone, or compares with
an independent solver (CLARABEL at tight tolerances) through CVXPY.
"""

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st
from theory_strategies import log_uniform

from soptheory import make_problem, solve_convex, solve_convex_batched
from soptheory.phase import CLARABEL_TIGHT, draw_instances, instance_seed

# The agreement the batched solver is specified to reach (issue 3).
REL_AGREEMENT = 1e-7


def rel_err(a, b, floor):
    """||a - b|| / max(||b||, floor): relative error, with an absolute floor for b ~ 0."""
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), floor)


def clarabel_reference(J, y, lam):
    sol = solve_convex(J, y, lam, solver="CLARABEL", **CLARABEL_TIGHT)
    return sol.theta, sol.s


def assert_kkt(J, y, lam, theta, s, nu):
    """KKT conditions of (25) (appendix B.2), checked directly."""
    scale = 1.0 + np.abs(y).max()
    # 1e-10 relative: the polish solves a linear system exactly up to round-off (~1e-13 here);
    # a wrong support would leave residuals of the size of the smallest |s_i| or of |ν_i| - λ.
    assert np.abs(y - J @ theta - s).max() <= 1e-10 * scale
    assert np.abs(theta - J.T @ nu).max() <= 1e-10 * (1.0 + np.abs(theta).max())
    assert np.abs(nu).max() <= lam * (1 + 1e-10)
    on = s != 0
    np.testing.assert_allclose(nu[on], lam * np.sign(s[on]), rtol=1e-10, atol=0)


@settings(max_examples=15)
@given(r=st.integers(1, 40), k=st.integers(1, 60), seed=st.integers(0, 2**31 - 1),
       lam=log_uniform(1e-4, 1.0))
def test_agrees_with_tight_clarabel_and_satisfies_kkt(r, k, seed, lam):
    prob = make_problem(60, 90, r, k, random_state=seed)
    res = solve_convex_batched(prob.J, prob.y, lam)
    assert res.certified[0]
    theta, s, nu = res.theta[0], res.s[0], res.nu[0]
    assert_kkt(prob.J, prob.y, lam, theta, s, nu)
    th_ref, s_ref = clarabel_reference(prob.J, prob.y, lam)
    # Absolute floor 1e-6 ||y||: CLARABEL stops at 1e-12 relative gap, which leaves O(1e-9 ||y||)
    # absolute noise in its s; when the exact s is ~0 (r close to N) a pure relative error of that
    # noise is meaningless.
    floor = 1e-6 * np.linalg.norm(prob.y)
    assert rel_err(theta, th_ref, floor) <= REL_AGREEMENT
    assert rel_err(s, s_ref, floor) <= REL_AGREEMENT


def test_figure4_sized_stack_agrees_with_clarabel():
    # A stack of Figure-4 instances (N=100, p=150) across the phase transition, solved at once.
    cells = [(5, 5), (20, 20), (30, 45), (45, 20), (60, 60), (95, 90)]
    Js, ys = [], []
    for r, k in cells:
        d = draw_instances(100, 150, r, k, [instance_seed(11, 100, 150, r, k, 0)])
        Js.append(d["J"][0]); ys.append(d["y"][0])
    res = solve_convex_batched(np.stack(Js), np.stack(ys), 0.1)
    assert res.certified.all()
    for i in range(len(cells)):
        assert_kkt(Js[i], ys[i], 0.1, res.theta[i], res.s[i], res.nu[i])
        th_ref, s_ref = clarabel_reference(Js[i], ys[i], 0.1)
        floor = 1e-6 * np.linalg.norm(ys[i])   # as above
        assert rel_err(res.theta[i], th_ref, floor) <= REL_AGREEMENT
        assert rel_err(res.s[i], s_ref, floor) <= REL_AGREEMENT


def test_duality_gap_closes_and_certificate_is_a_valid_bound():
    prob = make_problem(40, 60, 5, 6, random_state=3)
    lams = np.geomspace(1e-4, 1, 9)
    res = solve_convex_batched(prob.J, prob.y, lams)
    J, y = prob.J, prob.y
    for i, lam in enumerate(lams):
        P = 0.5 * res.theta[i] @ res.theta[i] + lam * np.abs(res.s[i]).sum()
        D = y @ res.nu[i] - 0.5 * np.sum((J.T @ res.nu[i]) ** 2)
        # weak duality must hold (up to round-off), and at the optimum the gap is round-off:
        # 1e-11 relative to P (two O(P) numbers subtracted in double precision)
        assert P - D >= -1e-11 * max(1.0, P)
        assert P - D <= 1e-11 * max(1.0, P)


def test_one_matrix_many_lambdas_equals_stack_of_copies():
    prob = make_problem(30, 45, 4, 5, random_state=7)
    lams = np.geomspace(1e-3, 1, 5)
    shared = solve_convex_batched(prob.J, prob.y, lams)
    stacked = solve_convex_batched(np.repeat(prob.J[None], 5, 0), np.repeat(prob.y[None], 5, 0), lams)
    # identical mathematics, different broadcasting: round-off only (1e-10)
    np.testing.assert_allclose(shared.theta, stacked.theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(shared.s, stacked.s, rtol=1e-10, atol=1e-12)


def test_closed_form_when_lambda_is_small_s_absorbs_y():
    # As λ -> 0, θ -> 0 and s -> y; for λ small enough the exact solution is
    # θ = Jᵀν with ν = λ sign(y) as long as |(J Jᵀ ν)_i| < |y_i| (s keeps the signs of y).
    prob = make_problem(20, 40, 3, 3, random_state=1)
    lam = 1e-6
    nu = lam * np.sign(prob.y)
    theta = prob.J.T @ nu
    s = prob.y - prob.J @ theta
    assert np.all(np.sign(s) == np.sign(prob.y))          # the closed form applies
    res = solve_convex_batched(prob.J, prob.y, lam)
    np.testing.assert_allclose(res.theta[0], theta, rtol=1e-9, atol=1e-15)  # round-off level
    np.testing.assert_allclose(res.s[0], s, rtol=1e-12)


def test_gram_factor_input_gives_the_same_answer():
    d = draw_instances(50, 80, 7, 9, [instance_seed(0, 50, 80, 7, 9, t) for t in range(3)])
    a = solve_convex_batched(d["J"], d["y"], 0.05)
    b = solve_convex_batched(d["J"], d["y"], 0.05, factor=d["factor"])
    # F F^T = J J^T either way: the same optimum, to round-off (1e-9 relative)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-9, atol=1e-12)
    assert a.certified.all() and b.certified.all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lam=0.0), "lam"),
        (dict(lam=-1.0), "lam"),
        (dict(lam=np.nan), "lam"),
        (dict(y=np.ones(7)), "y"),
        (dict(J=np.full((8, 12), np.inf)), "J"),
        (dict(lam=np.ones(3), y=np.ones((2, 8))), "broadcast"),
        (dict(tol=0.0), "tol"),
        # issue 11: each of these was accepted or gave an unhelpful error
        (dict(max_iter=0), "max_iter must be >= 1"),
        (dict(max_iter=-3), "max_iter must be >= 1"),
        (dict(tol="1e-9"), "tol must be a real number"),
        (dict(J=np.ones((8, 12)) * (1 + 1j)), "J must be real"),
        (dict(J=np.empty((0, 12)), y=np.empty(0)), "J must be a non-empty"),
        (dict(J="sparse"), "J must be a dense array"),
        (dict(factor=np.ones((8, 2)) * 1j), "factor must be real"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs, match):
    rng = np.random.default_rng(0)
    args = dict(J=rng.standard_normal((8, 12)), y=rng.standard_normal(8), lam=0.1)
    args.update(kwargs)
    J, y, lam = args.pop("J"), args.pop("y"), args.pop("lam")
    if isinstance(J, str):
        J = scipy.sparse.csr_matrix(rng.standard_normal((8, 12)))
    with pytest.raises(ValueError, match=match):
        solve_convex_batched(J, y, lam, **args)


def test_regression_ill_conditioned_instance_from_figure4_grid_is_certified():
    # This Figure-4 instance (r = 65, k = 100) drove the interior point to a numerically singular
    # Newton system before the complementarity stop and the robust solve were added.
    d = draw_instances(100, 150, 65, 100, [instance_seed(4, 100, 150, 65, 100, 4)])
    res = solve_convex_batched(d["J"], d["y"], 0.1, factor=d["factor"])
    assert res.certified[0]
    th_ref, s_ref = clarabel_reference(d["J"][0], d["y"][0], 0.1)
    floor = 1e-6 * np.linalg.norm(d["y"][0])   # as in the tests above
    assert rel_err(res.theta[0], th_ref, floor) <= REL_AGREEMENT
    assert rel_err(res.s[0], s_ref, floor) <= REL_AGREEMENT


def test_success_labels_match_ecos_on_figure4_cells_at_the_transition():
    # The paper's method (CVXPY + ECOS, default tolerances) on Figure-4 instances (its seeds) in
    # cells where the success rate is strictly between 0 and 1, i.e. where labels can flip.
    import warnings

    from soptheory.convex import SolverInaccurateWarning
    from figures import fig_phase_transition as fig4

    for r, k in [(30, 35), (45, 25), (65, 10)]:
        seeds = [instance_seed(fig4.BASE_SEED, 100, 150, r, k, t) for t in range(5)]
        d = draw_instances(100, 150, r, k, seeds)
        res = solve_convex_batched(d["J"], d["y"], 0.1, factor=d["factor"])
        for i in range(len(seeds)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SolverInaccurateWarning)
                ecos = solve_convex(d["J"][i], d["y"][i], 0.1, solver="ECOS")
            for est_b, est_e, truth in ((res.theta[i], ecos.theta, d["theta_star"][i]),
                                        (res.s[i], ecos.s, d["s_star"][i])):
                eps_b = np.linalg.norm(est_b - truth) / np.linalg.norm(truth)
                eps_e = np.linalg.norm(est_e - truth) / np.linalg.norm(truth)
                assert (eps_b < 1e-3) == (eps_e < 1e-3), (r, k, i, eps_b, eps_e)


def test_stack_of_different_ranks_pads_the_factor_and_matches_single_solves():
    # gram_factor keeps the largest numerical rank of the stack and zero-pads the others;
    # F Fᵀ is unchanged, so each member must get its own single-instance answer (round-off).
    probs = [make_problem(30, 45, r, 4, random_state=r) for r in (2, 5, 9)]
    J = np.stack([pb.J for pb in probs])
    y = np.stack([pb.y for pb in probs])
    stacked = solve_convex_batched(J, y, 0.2)
    assert stacked.certified.all()
    for i, pb in enumerate(probs):
        single = solve_convex_batched(pb.J, pb.y, 0.2)
        np.testing.assert_allclose(stacked.theta[i], single.theta[0], rtol=1e-9,
                                   atol=1e-12 * np.abs(single.theta[0]).max())
        np.testing.assert_allclose(stacked.s[i], single.s[0], rtol=1e-9,
                                   atol=1e-12 * np.abs(pb.y).max())


def test_robust_solve_answers_a_singular_member_by_least_squares():
    from soptheory.batched_convex import _robust_solve

    rng = np.random.default_rng(0)
    A = rng.standard_normal((3, 4, 4))
    A[1] = np.outer(np.ones(4), [1.0, 2.0, 0.0, 0.0])   # exactly singular: LAPACK zero pivot
    B = rng.standard_normal((3, 4, 2))
    X = _robust_solve(A, B)
    for i in (0, 2):   # regular members: the exact solution (round-off, 1e-10)
        np.testing.assert_allclose(A[i] @ X[i], B[i], rtol=0, atol=1e-10)
    np.testing.assert_allclose(X[1], np.linalg.lstsq(A[1], B[1], rcond=None)[0], atol=1e-12)
