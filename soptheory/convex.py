"""The convex program (25) of the long version, its dual, and its optimality certificate.

.. math::

    \\min_{\\theta,s}\\ \\tfrac12\\|\\theta\\|_2^2 + \\lambda\\|s\\|_1
    \\quad\\text{s.t.}\\quad y = J\\theta + s. \\qquad (25)

With the Lagrangian :math:`L = \\tfrac12\\|\\theta\\|^2 + \\lambda\\|s\\|_1 + \\nu^\\top(y - J\\theta - s)`
the dual is

.. math::

    \\max_\\nu\\ y^\\top\\nu - \\tfrac12\\|J^\\top\\nu\\|_2^2
    \\quad\\text{s.t.}\\quad \\|\\nu\\|_\\infty \\le \\lambda,

and :math:`(\\theta, s, \\nu)` is optimal iff (Lemma B.2, eq. B.3) :math:`y = J\\theta + s`,
:math:`\\theta = J^\\top\\nu` and :math:`\\nu\\in\\lambda\\,\\mathrm{sign}(s)`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._validation import check_positive, check_system, check_vector

__all__ = [
    "ConvexProgram",
    "ConvexSolution",
    "KKTResiduals",
    "SolverInaccurateWarning",
    "dual_objective",
    "duality_gap",
    "kkt_residuals",
    "primal_objective",
    "solve_convex",
]


class SolverInaccurateWarning(RuntimeWarning):
    """The solver reported ``optimal_inaccurate``: the numbers are returned but not certified."""


@dataclass(frozen=True)
class ConvexSolution:
    """Solution(s) of (25); a leading axis of size L when ``lam`` was an array.

    Attributes
    ----------
    theta : ndarray of shape (p,) or (L, p)
    s : ndarray of shape (N,) or (L, N)
    nu : ndarray of shape (N,) or (L, N)
        Multiplier of ``y = J theta + s`` with the sign convention of the module docstring
        (so that ``theta = J^T nu`` at optimality).
    lam : float or ndarray of shape (L,)
    status : str or list of str
        CVXPY status of each solve (``"optimal"`` or ``"optimal_inaccurate"``).
    objective : float or ndarray of shape (L,)
        Primal objective value reported by the solver.
    solver : str
    """

    theta: np.ndarray
    s: np.ndarray
    nu: np.ndarray
    lam: object
    status: object
    objective: object
    solver: str


class ConvexProgram:
    """Problem (25) for fixed ``(J, y)``, compiled once, with ``lambda`` a CVXPY parameter.

    Parameters
    ----------
    J : array_like of shape (N, p)
    y : array_like of shape (N,)

    Notes
    -----
    The problem is DPP (``lam * norm1(s)`` with a nonnegative parameter), so CVXPY caches the
    canonicalisation and a sweep over ``lam`` only re-solves. This is asserted at construction.

    Examples
    --------
    >>> from soptheory import make_problem
    >>> prob = make_problem(20, 40, 3, 3, random_state=0)
    >>> program = ConvexProgram(prob.J, prob.y)
    >>> sol = program.solve([0.01, 0.1])
    >>> sol.theta.shape
    (2, 40)
    """

    def __init__(self, J, y):
        import cvxpy as cp

        J, y = check_system(J, y)
        self.J, self.y = J, y
        N, p = J.shape
        self._theta = cp.Variable(p, name="theta")
        self._s = cp.Variable(N, name="s")
        self._lam = cp.Parameter(nonneg=True, name="lam")
        # Written as y - J theta - s == 0 so that the CVXPY dual is nu of the module docstring.
        self._constraint = y - J @ self._theta - self._s == 0
        objective = cp.Minimize(0.5 * cp.sum_squares(self._theta) + self._lam * cp.norm1(self._s))
        self.problem = cp.Problem(objective, [self._constraint])
        assert self.problem.is_dcp(dpp=True), "problem (25) must be DPP to be re-used across lambda"

    def solve(self, lam, solver="ECOS", **solver_options):
        """Solve (25) for each ``lam``; see :func:`solve_convex` for the parameters."""
        import cvxpy as cp

        lam_arr = check_positive(lam, "lam")
        if np.ndim(lam_arr) > 1:
            raise ValueError(f"lam must be a scalar or a 1-D array, got shape {np.shape(lam_arr)}")
        if not isinstance(solver, str) or solver.upper() not in cp.installed_solvers():
            raise ValueError(f"solver must be one of {cp.installed_solvers()}, got {solver!r}")
        solver = solver.upper()
        lams = np.atleast_1d(np.asarray(lam_arr, dtype=float))
        thetas, ss, nus, statuses, objs = [], [], [], [], []
        for value in lams:
            self._lam.value = float(value)
            try:
                with warnings.catch_warnings():
                    # CVXPY's generic "may be inaccurate" message is replaced by ours below.
                    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                    self.problem.solve(solver=solver, **solver_options)
            except cp.error.SolverError as exc:
                raise RuntimeError(f"solver {solver} failed on problem (25) at lam={value}: {exc}") from exc
            status = self.problem.status
            if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
                raise RuntimeError(f"solver {solver} returned status {status!r} at lam={value}")
            if status == cp.OPTIMAL_INACCURATE:
                warnings.warn(
                    f"solver {solver} returned 'optimal_inaccurate' at lam={value}: the solution is "
                    "not certified; tighten the tolerances or try another solver",
                    SolverInaccurateWarning,
                    stacklevel=3,
                )
            thetas.append(np.array(self._theta.value, dtype=float))
            ss.append(np.array(self._s.value, dtype=float))
            nus.append(np.array(self._constraint.dual_value, dtype=float).reshape(-1))
            statuses.append(status)
            objs.append(float(self.problem.value))
        if np.ndim(lam_arr) == 0:
            return ConvexSolution(
                theta=thetas[0], s=ss[0], nu=nus[0], lam=float(lams[0]), status=statuses[0],
                objective=objs[0], solver=solver,
            )
        return ConvexSolution(
            theta=np.stack(thetas), s=np.stack(ss), nu=np.stack(nus), lam=lams, status=statuses,
            objective=np.array(objs), solver=solver,
        )


# Compiled programs, keyed by the bytes of (J, y); small, since each holds a CVXPY problem.
_CACHE: dict = {}
_CACHE_SIZE = 8


def _program_for(J, y):
    key = (J.shape, J.tobytes(), y.tobytes())
    prog = _CACHE.pop(key, None)
    if prog is None:
        prog = ConvexProgram(J, y)
    _CACHE[key] = prog  # most recently used last
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    return prog


def solve_convex(J, y, lam, solver="ECOS", **solver_options):
    """Solve the convex program (25) with CVXPY, re-using the compiled problem across ``lam``.

    .. math::

        \\min_{\\theta,s}\\ \\tfrac12\\|\\theta\\|_2^2 + \\lambda\\|s\\|_1
        \\quad\\text{s.t.}\\quad y = J\\theta + s

    Parameters
    ----------
    J : array_like of shape (N, p)
    y : array_like of shape (N,)
    lam : float or array_like of shape (L,)
        Regularisation weight(s) :math:`\\lambda > 0`.
    solver : str, default="ECOS"
        Any installed CVXPY solver for SOCPs, e.g. ``"ECOS"`` (the paper's choice),
        ``"CLARABEL"``, ``"SCS"``.
    **solver_options
        Passed to the solver, e.g. ``abstol``, ``reltol``, ``feastol``, ``max_iters`` for ECOS
        (defaults 1e-8, 1e-8, 1e-8, 100), ``tol_gap_abs``, ``tol_gap_rel``, ``tol_feas`` for
        CLARABEL, ``eps`` for SCS. ECOS at its defaults is only about 1e-3 accurate in ``s`` on
        hard instances; certify with :func:`kkt_residuals` / :func:`duality_gap`.

    Returns
    -------
    ConvexSolution

    Raises
    ------
    ValueError
        Bad input (named argument) or an unknown solver.
    RuntimeError
        The solver failed or returned a status other than optimal / optimal_inaccurate.

    Warns
    -----
    SolverInaccurateWarning
        When the solver returns ``optimal_inaccurate``.

    Notes
    -----
    The compiled problem is cached per ``(J, y)`` (the 8 most recent pairs); use
    :class:`ConvexProgram` directly to hold one explicitly.
    """
    J, y = check_system(J, y)
    lam_checked = check_positive(lam, "lam")
    return _program_for(J, y).solve(lam_checked, solver=solver, **solver_options)


def primal_objective(theta, s, lam):
    """Objective of (25): :math:`\\tfrac12\\|\\theta\\|_2^2 + \\lambda\\|s\\|_1` (broadcasts over rows)."""
    theta = np.asarray(theta, dtype=float)
    s = np.asarray(s, dtype=float)
    lam = np.asarray(lam, dtype=float)
    return 0.5 * np.sum(theta**2, axis=-1) + lam * np.sum(np.abs(s), axis=-1)


def dual_objective(J, y, nu):
    """Dual objective :math:`y^\\top\\nu - \\tfrac12\\|J^\\top\\nu\\|_2^2` (no feasibility check)."""
    nu = np.asarray(nu, dtype=float)
    return nu @ y - 0.5 * np.sum((nu @ J) ** 2, axis=-1)


@dataclass(frozen=True)
class KKTResiduals:
    """Residuals of the optimality conditions (B.3) of (25); all ``>= 0``, zero iff optimal.

    Attributes
    ----------
    primal : float
        :math:`\\|y - J\\theta - s\\|_\\infty`.
    stationarity : float
        :math:`\\|\\theta - J^\\top\\nu\\|_\\infty`.
    dual : float
        :math:`\\max(\\|\\nu\\|_\\infty - \\lambda, 0)`.
    complementarity : float
        :math:`\\lambda\\|s\\|_1 - \\nu^\\top s` (``>= -dual * ||s||_1``; with ``|nu| <= lam`` it is
        zero iff :math:`\\nu_i = \\lambda\\,\\mathrm{sign}(s_i)` wherever :math:`s_i \\ne 0`).
    nu : ndarray of shape (N,)
        The multiplier used.
    """

    primal: float
    stationarity: float
    dual: float
    complementarity: float
    nu: np.ndarray

    def max(self):
        """The largest residual."""
        return max(self.primal, self.stationarity, self.dual, abs(self.complementarity))


def _check_candidate(J, y, lam, theta, s, nu):
    J, y = check_system(J, y)
    lam = float(check_positive(lam, "lam"))
    theta = check_vector(theta, "theta", size=J.shape[1])
    s = check_vector(s, "s", size=J.shape[0])
    if nu is not None:
        nu = check_vector(nu, "nu", size=J.shape[0])
    return J, y, lam, theta, s, nu


def _multiplier_from(J, lam, theta, s, support_rtol):
    """A multiplier for (theta, s) when none is given (see :func:`kkt_residuals`)."""
    smax = np.max(np.abs(s)) if s.size else 0.0
    on = np.abs(s) > support_rtol * max(smax, 1.0)
    nu = np.zeros(J.shape[0])
    nu[on] = lam * np.sign(s[on])
    off = ~on
    if off.any():
        # theta - J_on^T nu_on = J_off^T nu_off, minimum-norm least squares.
        rhs = theta - J[on].T @ nu[on]
        nu[off] = np.linalg.lstsq(J[off].T, rhs, rcond=None)[0]
    return nu


def kkt_residuals(J, y, lam, theta, s, nu=None, *, support_rtol=1e-6):
    """Residuals of the KKT conditions of Lemma B.2 for a candidate solution of (25).

    .. math::

        y = J\\theta + s, \\qquad \\theta = J^\\top\\nu, \\qquad \\nu \\in \\lambda\\,\\mathrm{sign}(s)

    Parameters
    ----------
    J : array_like of shape (N, p)
    y : array_like of shape (N,)
    lam : float
        :math:`\\lambda > 0`.
    theta : array_like of shape (p,)
    s : array_like of shape (N,)
    nu : array_like of shape (N,), optional
        Multiplier (e.g. ``ConvexSolution.nu``). If omitted it is reconstructed:
        :math:`\\nu_i = \\lambda\\,\\mathrm{sign}(s_i)` where
        :math:`|s_i| > \\mathrm{support\\_rtol}\\cdot\\max(\\|s\\|_\\infty, 1)`, and the other
        entries by minimum-norm least squares on :math:`\\theta = J^\\top\\nu`.
    support_rtol : float, default=1e-6
        Threshold defining the support of ``s`` for the reconstruction.

    Returns
    -------
    KKTResiduals
    """
    J, y, lam, theta, s, nu = _check_candidate(J, y, lam, theta, s, nu)
    if nu is None:
        nu = _multiplier_from(J, lam, theta, s, float(check_positive(support_rtol, "support_rtol")))
    return KKTResiduals(
        primal=float(np.max(np.abs(y - J @ theta - s))),
        stationarity=float(np.max(np.abs(theta - J.T @ nu))),
        dual=float(max(np.max(np.abs(nu)) - lam, 0.0)),
        complementarity=float(lam * np.sum(np.abs(s)) - nu @ s),
        nu=nu,
    )


def duality_gap(J, y, lam, theta, s, nu):
    """Duality gap of (25) at a primal candidate ``(theta, s)`` and a dual candidate ``nu``.

    .. math::

        \\mathrm{gap} = \\tfrac12\\|\\theta\\|_2^2 + \\lambda\\|s\\|_1
                        - \\big(y^\\top\\tilde\\nu - \\tfrac12\\|J^\\top\\tilde\\nu\\|_2^2\\big),
        \\qquad \\tilde\\nu = \\mathrm{clip}(\\nu, -\\lambda, \\lambda)

    ``nu`` is first clipped onto the dual feasible box, so the subtracted term is a valid lower
    bound on the optimal value (weak duality). If ``(theta, s)`` is feasible
    (``y = J theta + s``), the gap is ``>= 0`` and bounds the suboptimality of both; check
    feasibility separately (:func:`kkt_residuals`).

    Parameters
    ----------
    J : array_like of shape (N, p)
    y : array_like of shape (N,)
    lam : float
    theta : array_like of shape (p,)
    s : array_like of shape (N,)
    nu : array_like of shape (N,)

    Returns
    -------
    float
    """
    J, y, lam, theta, s, nu = _check_candidate(J, y, lam, theta, s, nu)
    if nu is None:
        raise ValueError("nu must be given for the duality gap")
    nu = np.clip(nu, -lam, lam)
    return float(primal_objective(theta, s, lam) - dual_objective(J, y, nu))
