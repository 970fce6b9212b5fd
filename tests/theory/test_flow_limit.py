import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp
from theory_strategies import log_uniform, problems

from soptheory import flow_limit, make_problem

EPS = np.finfo(float).eps


def _scale(J, y, res):
    """Size of the terms that make up r = J J^T nu + s - y: rounding error is eps times this."""
    return np.linalg.norm(J, 2) ** 2 * np.max(np.abs(res.nu)) + np.max(np.abs(y)) + np.max(np.abs(res.s))


@given(prob=problems(), alpha=log_uniform(1.0, 1e4), log_inv_gamma=st.floats(2.0, 40.0))
def test_flow_limit_is_stationary_and_interpolates(prob, alpha, log_inv_gamma):
    J, y = prob.J, prob.y
    gamma = np.exp(-log_inv_gamma)
    res = flow_limit(J, y, alpha, gamma)
    assert res.converged
    # Recomputed here from (theta, u, v) alone, not from the solver's gradient: r_inf = 0
    # (Prop. 3.3, global convergence). 1e-11 relative = ~50 eps times the magnitude of the terms.
    r = J @ res.theta + res.u**2 - res.v**2 - y
    assert np.max(np.abs(r)) <= 1e-11 * _scale(J, y, res)
    # grad F(nu) = J J^T nu - y + 2 gamma^2 sinh(4 alpha nu) vanishes at nu_inf (same tolerance).
    grad = J @ (J.T @ res.nu) - y + 2 * gamma**2 * np.sinh(np.clip(4 * alpha * res.nu, -700, 700))
    assert np.max(np.abs(grad)) <= 1e-11 * _scale(J, y, res)
    # The parametrisation (19): theta = J^T nu, u = gamma e^{2 alpha nu}, v = gamma e^{-2 alpha nu}:
    # exact up to a few roundings of exp (relative 1e-12 leaves margin for |2 alpha nu| ~ 1e2).
    np.testing.assert_allclose(res.theta, J.T @ res.nu, rtol=0, atol=1e-12 * (1 + np.abs(res.theta).max()))
    np.testing.assert_allclose(res.u * res.v, gamma**2, rtol=1e-12)
    np.testing.assert_allclose(res.s, res.u**2 - res.v**2, rtol=1e-12, atol=1e-12 * np.max(res.u**2 + res.v**2))


def test_flow_limit_matches_long_time_integration_of_the_flow():
    # An independent route to the same limit: integrate nu' = -r(nu) (eqs. 16-20) with a stiff
    # ODE solver far past the slowest time scale, 1 / lambda_min(Hessian of F) (~ 1 here).
    prob = make_problem(6, 8, 2, 1, random_state=3)
    J, y = prob.J, prob.y
    alpha, gamma = 2.0, np.exp(-1.0)

    def rhs(_t, nu):
        return -(J @ (J.T @ nu) - y + 2 * gamma**2 * np.sinh(4 * alpha * nu))

    def jac(_t, nu):
        return -(J @ J.T + np.diag(8 * alpha * gamma**2 * np.cosh(4 * alpha * nu)))

    sol = solve_ivp(rhs, (0, 400.0), np.zeros(6), method="Radau", jac=jac, rtol=1e-12, atol=1e-14)
    assert sol.success
    res = flow_limit(J, y, alpha, gamma)
    nu_T = sol.y[:, -1]
    # 1e-8: the integrator's global error at rtol=1e-12 over a long stiff run, with margin.
    np.testing.assert_allclose(res.nu, nu_T, atol=1e-8)
    np.testing.assert_allclose(res.theta, J.T @ nu_T, atol=1e-8)


def test_flow_limit_batch_equals_single_calls():
    prob = make_problem(20, 40, 3, 3, random_state=0)
    alphas = np.array([4.0, 40.0, 400.0, 4000.0])
    batch = flow_limit(prob.J, prob.y, alphas)
    assert batch.theta.shape == (4, 40) and batch.s.shape == (4, 20) and batch.n_iter.shape == (4,)
    for i, a in enumerate(alphas):
        single = flow_limit(prob.J, prob.y, a)
        assert single.theta.shape == (40,)
        # Same minimiser of a strictly convex F, found to ~1e-14: agree to 1e-10 relative
        # (conditioning of theta in nu is at most ||J||).
        np.testing.assert_allclose(batch.theta[i], single.theta, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(batch.s[i], single.s, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("log_inv_gamma, lam", [(200.0, 1e-3), (300.0, 1e-4), (8.0, 1e3)])
def test_flow_limit_is_overflow_safe_at_extreme_scales(log_inv_gamma, lam):
    # 4 alpha nu reaches ~ 2 log(1/gamma) = 400-600, where cosh overflows float64 if computed
    # naively; the log-domain evaluation must still return finite, converged numbers.
    prob = make_problem(20, 40, 3, 3, random_state=1)
    gamma = np.exp(-log_inv_gamma)
    res = flow_limit(prob.J, prob.y, log_inv_gamma / (2 * lam), gamma)
    assert res.converged
    for arr in (res.theta, res.s, res.u, res.v, res.nu):
        assert np.all(np.isfinite(arr))
    r = prob.J @ res.theta + res.s - prob.y
    assert np.max(np.abs(r)) <= 1e-11 * _scale(prob.J, prob.y, res)


@settings(max_examples=10)
@given(prob=problems(), lam=log_uniform(1e-3, 1.0), L=st.floats(8.0, 120.0))
def test_flow_multiplier_is_nearly_dual_feasible(prob, lam, L):
    # With alpha = L / (2 lam) (eq. 22), nu_inf = lam * asinh(s e^{2L} / 2) / (2L), hence
    # |nu_inf| <= lam * (1 + log(1 + |s|) / (2L)): the smoothed box of the dual of (25).
    res = flow_limit(prob.J, prob.y, L / (2 * lam), np.exp(-L))
    bound = lam * (1 + np.log1p(np.abs(res.s)) / (2 * L))
    # 1e-12 relative: rounding in asinh/log of the reconstruction.
    assert np.all(np.abs(res.nu) <= bound * (1 + 1e-12))
