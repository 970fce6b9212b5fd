"""The exact ``t -> infinity`` limit of the gradient flow (16)-(20) of the long version.

The flow from (18) is the gradient flow of the strictly convex

.. math::

    F(\\nu) = \\tfrac12\\|J^\\top\\nu\\|_2^2 - y^\\top\\nu
              + \\frac{\\gamma^2}{2\\alpha}\\sum_{i=1}^N \\cosh(4\\alpha\\nu_i),

and its limit is :math:`\\theta_\\infty = J^\\top\\nu_\\infty`,
:math:`s_\\infty = 2\\gamma^2\\sinh(4\\alpha\\nu_\\infty)` with :math:`\\nu_\\infty = \\arg\\min F`
(derivation in ``docs/theory.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_int, check_open_unit, check_positive, check_system

__all__ = ["FlowLimitResult", "flow_limit"]

# Largest exponent whose exp() is finite in float64 (log(DBL_MAX) = 709.78...).
_LOG_MAX = 709.0


@dataclass(frozen=True)
class FlowLimitResult:
    """Limit of the gradient flow; arrays carry a leading batch axis when ``alpha`` was an array.

    Attributes
    ----------
    theta : ndarray of shape (p,) or (B, p)
        :math:`\\theta_\\infty = J^\\top\\nu_\\infty`.
    s : ndarray of shape (N,) or (B, N)
        :math:`s_\\infty = 2\\gamma^2\\sinh(4\\alpha\\nu_\\infty) = u_\\infty^2 - v_\\infty^2`.
    u, v : ndarray of shape (N,) or (B, N)
        :math:`\\gamma e^{\\pm 2\\alpha\\nu_\\infty}`.
    nu : ndarray of shape (N,) or (B, N)
        The minimiser of ``F``.
    n_iter : int or ndarray of shape (B,)
        Newton iterations used.
    grad_norm : float or ndarray of shape (B,)
        :math:`\\|\\nabla F(\\nu_\\infty)\\|_\\infty = \\|r_\\infty\\|_\\infty`.
    converged : bool or ndarray of shape (B,)
        Whether the stopping test was met within ``max_iter``.
    alpha, gamma : float or ndarray of shape (B,)
    """

    theta: np.ndarray
    s: np.ndarray
    u: np.ndarray
    v: np.ndarray
    nu: np.ndarray
    n_iter: object
    grad_norm: object
    converged: object
    alpha: object
    gamma: object


def _exp_parts(nu, a, lg2):
    """Return ``(s, c)`` with ``s = 2 gamma^2 sinh(a nu)``, ``c = 2 gamma^2 cosh(a nu)``, overflow-safe.

    Computed as ``exp(lg2 + a|nu|) * (1 -/+ exp(-2 a |nu|))`` with ``lg2 = 2 log gamma``, so
    nothing overflows unless the result itself does (then ``inf``).
    """
    x = a * np.abs(nu)
    with np.errstate(over="ignore"):
        big = np.exp(np.minimum(lg2 + x, _LOG_MAX + 10.0))  # inf beyond the float range
    small = np.exp(-2.0 * x)
    s = np.sign(nu) * big * (-np.expm1(-2.0 * x))
    c = big * (1.0 + small)
    return s, c


def _objective(nu, JJt, y, a, lg2):
    """``(F(nu), size)`` for a batch ``nu`` of shape (B, N); ``inf`` where cosh overflows.

    ``size`` is the sum of the absolute values of the terms of ``F``: the rounding error of
    ``F`` is a few ``eps * size`` (the terms can cancel, so ``|F|`` itself can be much smaller).
    """
    _, c = _exp_parts(nu, a[:, None], lg2[:, None])
    quad = 0.5 * np.einsum("bi,ij,bj->b", nu, JJt, nu)
    lin = nu @ y
    with np.errstate(over="ignore", invalid="ignore"):
        cosh_term = np.sum(c, axis=1) / a
        val = quad - lin + cosh_term
        size = quad + np.abs(nu) @ np.abs(y) + cosh_term
    ok = np.isfinite(val)
    return np.where(ok, val, np.inf), np.where(ok, size, np.inf)


def flow_limit(J, y, alpha, gamma=np.exp(-8.0), *, rtol=1e-14, max_iter=500, max_exp_step=10.0):
    """Exact limit of the gradient flow (16) from (18), by safeguarded Newton on ``F``.

    Minimises ``F`` of the module docstring and returns :math:`\\theta_\\infty = J^\\top\\nu_\\infty`,
    :math:`s_\\infty = 2\\gamma^2\\sinh(4\\alpha\\nu_\\infty)`,
    :math:`u_\\infty = \\gamma e^{2\\alpha\\nu_\\infty}`, :math:`v_\\infty = \\gamma e^{-2\\alpha\\nu_\\infty}`.

    Safeguarded Newton from ``nu = 0`` (Levenberg-Marquardt damping with a trust region on the
    exponent, Armijo backtracking on ``F`` in the log domain; see ``docs/theory.md``), all
    ``alpha`` at once. Stops when :math:`\\|\\nabla F\\|_\\infty \\le \\mathrm{rtol}\\,
    (\\|JJ^\\top\\|_2\\|\\nu\\|_\\infty + \\|y\\|_\\infty + \\|s\\|_\\infty)` or when a step no
    longer changes ``nu``.

    Parameters
    ----------
    J : array_like of shape (N, p)
    y : array_like of shape (N,)
    alpha : float or array_like of shape (B,)
        Learning-rate ratio(s), each ``> 0``.
    gamma : float or array_like of shape (B,), default=exp(-8)
        Initialisation scale, in the open interval (0, 1); broadcast against ``alpha``.
    rtol : float, default=1e-14
        Relative stopping tolerance on the gradient (about 50 machine epsilons), ``> 0``. A run
        that stalls (no acceptable or no representable step) is declared converged when the
        gradient is within ``100 * rtol`` of the same scale.
    max_iter : int, default=500
        Maximum number of Newton iterations, ``>= 1``.
    max_exp_step : float, default=10.0
        Trust-region radius on ``4 alpha nu`` per iteration, ``> 0``.

    Returns
    -------
    FlowLimitResult

    Raises
    ------
    ValueError
        On bad input (named argument).

    Examples
    --------
    >>> from soptheory import make_problem
    >>> prob = make_problem(20, 40, 3, 3, random_state=0)
    >>> res = flow_limit(prob.J, prob.y, alpha=[4.0, 400.0])
    >>> bool(np.all(res.converged)), res.theta.shape
    (True, (2, 40))
    """
    J, y, a_b, g_b, scalar = _check_flow_args(J, y, alpha, gamma)
    rtol = float(check_positive(rtol, "rtol"))
    max_iter = check_int(max_iter, "max_iter", low=1)
    max_exp_step = float(check_positive(max_exp_step, "max_exp_step"))
    B, N = a_b.size, J.shape[0]
    a = 4.0 * a_b  # the exponent scale 4 alpha
    lg2 = 2.0 * np.log(g_b)  # log(gamma^2)
    F = _FlowObjective(J @ J.T, y)
    nu = np.zeros((B, N))
    n_iter = np.zeros(B, dtype=int)
    converged = np.zeros(B, dtype=bool)
    active = np.ones(B, dtype=bool)
    g, s, c = F.gradient(nu, a, lg2)
    mu_floor = 1e-12 * F.norm_JJt / a**2
    mu = np.repeat(np.maximum(F.ymax / (a * max_exp_step), mu_floor)[:, None], N, axis=1)
    Fval, Fsize = _objective(nu, F.JJt, y, a, lg2)
    for _ in range(max_iter):
        done = active & (np.max(np.abs(g), axis=1) <= rtol * F.scale(nu, s))
        converged |= done
        active &= ~done
        if not active.any():
            break
        idx = np.flatnonzero(active)
        d, mu_a = _damped_newton_direction(F.JJt, g[idx], c[idx], a[idx], mu[idx], max_exp_step)
        new, accepted, t = _line_search(F, nu[idx], d, a[idx], lg2[idx], Fval[idx], Fsize[idx],
                                        g[idx], s[idx], c[idx])
        # Stagnation: no acceptable step, or a step below the resolution of nu.
        eps = np.finfo(float).eps
        moved = np.max(np.abs(new["nu"] - nu[idx]), axis=1) > 4 * eps * np.max(np.abs(nu[idx]), axis=1)
        stuck = ~accepted | ~moved
        nu[idx], Fval[idx], g[idx], s[idx], c[idx] = (new[k] for k in ("nu", "F", "g", "s", "c"))
        Fsize[idx] = new["Fsize"]
        # Trust-region update: shrink the damping after a full step, grow it after backtracking.
        full = accepted & (t == 1.0)
        mu[idx] = np.where(full[:, None], np.maximum(mu_a / 4.0, mu_floor[idx, None]), mu_a * 4.0)
        n_iter[idx] += 1
        if stuck.any():
            # Final verdict for a stalled run: converged iff the gradient is at rounding level.
            sid = idx[stuck]
            converged[sid] = np.max(np.abs(g[sid]), axis=1) <= 100 * rtol * F.scale(nu[sid], s[sid])
            active[sid] = False
    return _flow_result(J, nu, s, g, a, a_b, g_b, n_iter, converged, scalar=scalar)


def _check_flow_args(J, y, alpha, gamma):
    """Validate; return J, y, alpha and gamma broadcast to (B,), and whether both were scalars."""
    J, y = check_system(J, y)
    alpha_arr = check_positive(alpha, "alpha")
    gamma_arr = check_open_unit(gamma, "gamma")
    if np.ndim(alpha_arr) > 1:
        raise ValueError(f"alpha must be a scalar or a 1-D array, got shape {np.shape(alpha_arr)}")
    if np.ndim(gamma_arr) > 1:
        raise ValueError(f"gamma must be a scalar or a 1-D array, got shape {np.shape(gamma_arr)}")
    try:
        a_b, g_b = np.broadcast_arrays(np.atleast_1d(alpha_arr), np.atleast_1d(gamma_arr))
    except ValueError:
        raise ValueError(
            f"gamma of shape {np.shape(gamma_arr)} does not broadcast against alpha of shape "
            f"{np.shape(alpha_arr)}"
        ) from None
    scalar = np.ndim(alpha_arr) == 0 and np.ndim(gamma_arr) == 0
    return J, y, np.array(a_b, dtype=float), np.array(g_b, dtype=float), scalar


class _FlowObjective:
    """``JJᵀ`` and ``y`` of ``F``, with the gradient and the scale of the stopping test."""

    def __init__(self, JJt, y):
        self.JJt, self.y = JJt, y
        self.norm_JJt = np.linalg.norm(JJt, 2)
        self.ymax = np.max(np.abs(y))

    def gradient(self, nu, a, lg2):
        """``(∇F(nu), s, c)`` with ``s, c = 2γ² sinh, cosh(a nu)`` for a batch nu (B, N)."""
        s, c = _exp_parts(nu, a[:, None], lg2[:, None])
        return nu @ self.JJt - self.y + s, s, c

    def scale(self, nu, s):
        """``||JJᵀ|| ||nu||_inf + ||y||_inf + ||s||_inf``: the size of the terms of ``∇F``."""
        return self.norm_JJt * np.max(np.abs(nu), axis=1) + self.ymax + np.max(np.abs(s), axis=1)


def _damped_newton_direction(JJt, g, c, a, mu, max_exp_step):
    """Levenberg-Marquardt step ``(JJᵀ + diag(a c) + a² diag(mu)) d = -g``, diagonally scaled.

    ``mu`` (per coordinate) is raised x4 where ``|a d_i| > max_exp_step`` until no coordinate
    exceeds it (at most 80 times); returns ``d`` and the damping used.
    """
    B, N = g.shape
    diag = np.arange(N)
    for _ in range(80):
        M = np.repeat(JJt[None, :, :], B, axis=0)
        M[:, diag, diag] += a[:, None] * c + mu * (a**2)[:, None]
        dsc = 1.0 / np.sqrt(M[:, diag, diag])
        H = M * (dsc[:, :, None] * dsc[:, None, :])
        d = -dsc * np.linalg.solve(H, (dsc * g)[:, :, None])[:, :, 0]
        too_big = np.abs(d) * a[:, None] > max_exp_step
        if not too_big.any():
            break
        mu = np.where(too_big, mu * 4.0, mu)
    return d, mu


def _line_search(F, nu, d, a, lg2, F0, Fsize0, g0, s0, c0):
    """Backtracking (halving, at most 60 times) from ``nu`` along ``d``: Armijo on ``F``, or, near
    the optimum where ``F`` no longer resolves decreases (its terms cancel), a step that changes
    ``F`` only at its rounding level and shrinks the gradient.

    Returns the new point (dict ``nu F Fsize g s c``, unchanged where nothing was accepted), the
    mask of accepted steps and the step lengths.
    """
    eps = np.finfo(float).eps
    slope = np.sum(g0 * d, axis=1)  # < 0 for a descent direction
    g0_norm = np.linalg.norm(g0, axis=1)
    t = np.ones(nu.shape[0])
    accepted = np.zeros(nu.shape[0], dtype=bool)
    new = {"nu": nu.copy(), "F": F0.copy(), "Fsize": Fsize0.copy(), "g": g0.copy(),
           "s": s0.copy(), "c": c0.copy()}
    for _ in range(60):
        todo = np.flatnonzero(~accepted)
        if todo.size == 0:
            break
        trial = nu[todo] + t[todo, None] * d[todo]
        F_trial, Fsize_trial = _objective(trial, F.JJt, F.y, a[todo], lg2[todo])
        g_trial, s_trial, c_trial = F.gradient(trial, a[todo], lg2[todo])
        armijo = F_trial <= F0[todo] + 1e-4 * t[todo] * slope[todo]
        flat = (np.abs(F_trial - F0[todo]) <= 1e3 * eps * Fsize0[todo]) & (
            np.linalg.norm(g_trial, axis=1) < g0_norm[todo])
        ok = np.isfinite(F_trial) & (armijo | flat)
        acc = todo[ok]
        for key, value in (("nu", trial), ("F", F_trial), ("Fsize", Fsize_trial), ("g", g_trial),
                           ("s", s_trial), ("c", c_trial)):
            new[key][acc] = value[ok]
        accepted[acc] = True
        t[todo[~ok]] *= 0.5
    return new, accepted, t


def _flow_result(J, nu, s, g, a, a_b, g_b, n_iter, converged, *, scalar):
    theta = nu @ J
    logg = np.log(g_b)[:, None]
    u = np.exp(np.minimum(logg + 0.5 * a[:, None] * nu, _LOG_MAX + 10.0))
    v = np.exp(np.minimum(logg - 0.5 * a[:, None] * nu, _LOG_MAX + 10.0))
    gnorm = np.max(np.abs(g), axis=1)
    if scalar:
        return FlowLimitResult(
            theta=theta[0], s=s[0], u=u[0], v=v[0], nu=nu[0], n_iter=int(n_iter[0]),
            grad_norm=float(gnorm[0]), converged=bool(converged[0]),
            alpha=float(a_b[0]), gamma=float(g_b[0]),
        )
    return FlowLimitResult(
        theta=theta, s=s, u=u, v=v, nu=nu, n_iter=n_iter, grad_norm=gnorm,
        converged=converged, alpha=a_b, gamma=g_b,
    )
