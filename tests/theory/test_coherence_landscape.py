import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.linalg import hadamard
from theory_strategies import problems

from soptheory import (
    classify_critical_point,
    coherence,
    flow_limit,
    gradient_h,
    hessian_h,
    hessian_quadratic_form,
    make_problem,
    numerical_rank,
    objective_h,
    recovery_condition_holds,
)

# ---------------------------------------------------------------- coherence (Definition 3.4)


@given(N=st.integers(2, 30), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_coherence_is_maximal_for_coordinate_subspaces(N, data, seed):
    # Column space spanned by r coordinate vectors: ||U^T e_i||^2 = 1 on those rows, so mu = N/r.
    r = data.draw(st.integers(1, N))
    rng = np.random.default_rng(seed)
    rows = rng.choice(N, size=r, replace=False)
    J = np.zeros((N, r + 3))
    J[rows, :r] = rng.standard_normal((r, r)) + 5 * np.eye(r)  # invertible block
    # 1e-12 relative: an SVD of a well-conditioned matrix.
    assert coherence(J) == pytest.approx(N / r, rel=1e-12)


@pytest.mark.parametrize("N, r", [(4, 1), (8, 3), (16, 4), (32, 7)])
def test_coherence_is_one_for_hadamard_subspaces(N, r):
    # Columns of a Hadamard matrix have entries +-1/sqrt(N) once normalised, so every row of U
    # has squared norm r/N and mu = 1 (the minimum). Mixing columns keeps the column space.
    H = hadamard(N) / np.sqrt(N)
    mix = np.random.default_rng(0).standard_normal((r, r)) + 3 * np.eye(r)
    J = H[:, :r] @ mix @ np.random.default_rng(1).standard_normal((r, 2 * N))
    assert numerical_rank(J) == r
    assert coherence(J) == pytest.approx(1.0, rel=1e-10)  # rounding of a rank-r product


@given(prob=problems(N=(2, 30)))
def test_coherence_lies_between_one_and_N_over_r(prob):
    mu = coherence(prob.J)
    N, r = prob.J.shape[0], prob.rank
    # Sum of the N leverage scores is r, so their max is in [r/N, 1]; 1e-12 for rounding.
    assert 1 - 1e-12 <= mu <= N / r + 1e-12


def test_numerical_rank_uses_relative_tolerance():
    prob = make_problem(20, 40, 3, 0, random_state=0)
    noise = 1e-9 * np.random.default_rng(0).standard_normal(prob.J.shape)
    assert numerical_rank(prob.J) == 3
    assert numerical_rank(prob.J + noise) == 20  # default tolerance ~ 40 eps sigma_max
    assert numerical_rank(prob.J + noise, rtol=1e-6) == 3
    assert coherence(prob.J + noise, rtol=1e-6) == pytest.approx(coherence(prob.J), rel=1e-6)


def test_recovery_condition_matches_closed_form():
    # Hadamard subspace: mu = 1, so k^2 r < N / 4. N = 16, r = 1: true for k = 1, false for k = 2.
    H = hadamard(16) / 4.0
    J = H[:, :1] @ np.ones((1, 5))
    assert recovery_condition_holds(J, 1)
    assert not recovery_condition_holds(J, 2)
    # Coordinate subspace: mu = N / r, so k^2 r < r / 4 never holds for k >= 1; holds for k = 0.
    J = np.eye(16)[:, :2]
    assert not recovery_condition_holds(J, 1)
    assert recovery_condition_holds(J, 0)


# ---------------------------------------------------------------- landscape (Prop. 3.2, B.2)


def _random_point(N, p, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n) for n in (p, N, N, p, N, N)]


@given(prob=problems(N=(3, 10)), seed=st.integers(0, 2**32 - 1))
def test_quadratic_form_B2_equals_explicit_hessian(prob, seed):
    J, y = prob.J, prob.y
    N, p = J.shape
    th, u, v, dth, du, dv = _random_point(N, p, seed)
    d = np.concatenate([dth, du, dv])
    H = hessian_h(J, y, th, u, v)
    np.testing.assert_array_equal(H, H.T)
    q = hessian_quadratic_form(J, y, th, u, v, dth, du, dv)
    # Two evaluation orders of the same polynomial: 1e-12 relative to its absolute terms.
    assert q == pytest.approx(d @ H @ d, rel=1e-12, abs=1e-12 * (np.abs(H) @ np.abs(d)) @ np.abs(d))


@given(prob=problems(N=(3, 8)), seed=st.integers(0, 2**32 - 1))
def test_gradient_and_hessian_match_finite_differences(prob, seed):
    J, y = prob.J, prob.y
    N, p = J.shape
    th, u, v, dth, du, dv = _random_point(N, p, seed)
    eps = 1e-4

    def h_at(t):
        return objective_h(J, y, th + t * dth, u + t * du, v + t * dv)

    g = np.concatenate(gradient_h(J, y, th, u, v))
    d = np.concatenate([dth, du, dv])
    # h is a quartic polynomial, so central differences are exact up to O(eps^2) * 4th
    # derivative (directional derivative) and O(eps^2) * 4th derivative (second difference);
    # with eps = 1e-4 and unit-scale data both errors are ~1e-7 relative; rounding adds
    # eps_mach * h / eps^2 ~ 1e-8 relative for the second difference. Tolerance 1e-5 relative.
    fd1 = (h_at(eps) - h_at(-eps)) / (2 * eps)
    fd2 = (h_at(eps) - 2 * h_at(0.0) + h_at(-eps)) / eps**2
    scale = 1.0 + h_at(0.0)
    assert fd1 == pytest.approx(g @ d, rel=1e-5, abs=1e-5 * scale)
    q = hessian_quadratic_form(J, y, th, u, v, dth, du, dv)
    assert fd2 == pytest.approx(q, rel=1e-5, abs=1e-5 * scale)


def test_flow_limit_is_classified_as_global_minimizer():
    prob = make_problem(20, 40, 3, 3, random_state=0)
    res = flow_limit(prob.J, prob.y, 100.0)
    # r_inf ~ 1e-12 (flow_limit's certificate), so atol = 1e-9 both for criticality and r = 0.
    report = classify_critical_point(prob.J, prob.y, res.theta, res.u, res.v, atol=1e-9)
    assert report.is_global_minimizer and report.direction is None


@given(prob=problems(N=(4, 15), k=(1, 3)))
def test_saddle_gets_a_negative_curvature_direction(prob):
    # u = v = 0 and theta = least-squares solution: grad h = (J^T r, 0, 0) = 0 but r = y - P_J y
    # != 0 since y = J theta0 + s* with s* != 0 generic and rank(J) <= 3 < N: a critical point
    # that is not a global minimiser.
    J, y = prob.J, prob.y
    N, p = J.shape
    theta = np.linalg.lstsq(J, y, rcond=None)[0]
    u = v = np.zeros(N)
    r = J @ theta - y
    # atol: J^T r of a least-squares solve is ~eps ||J|| ||y|| ||J^+ ||; 1e-8 of ||J|| ||y||.
    atol = 1e-8 * (1 + np.abs(y).max()) * (1 + np.linalg.norm(J, 2))
    assert np.max(np.abs(r)) > atol
    report = classify_critical_point(J, y, theta, u, v, atol=atol)
    assert not report.is_global_minimizer
    d = np.concatenate(report.direction)
    H = hessian_h(J, y, theta, u, v)
    # Proof of Prop. 3.2: curvature -2|r_i| exactly (u_i = v_i = 0), i = argmax |r|.
    assert report.curvature == pytest.approx(-2 * np.max(np.abs(r)), rel=1e-12)
    assert d @ H @ d == pytest.approx(report.curvature, rel=1e-12)
    assert np.linalg.eigvalsh(H).min() <= report.curvature + 1e-9  # strict saddle


def test_non_critical_point_is_rejected():
    prob = make_problem(10, 12, 2, 1, random_state=0)
    with pytest.raises(ValueError, match="not a critical point"):
        classify_critical_point(prob.J, prob.y, np.zeros(12), np.full(10, 0.5), np.full(10, 0.5))
