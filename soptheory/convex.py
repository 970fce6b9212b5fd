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

from ._validation import check_positive, check_system
from .certificate import (  # noqa: F401  (soptheory.convex keeps exporting the certificate)
    KKTResiduals,
    dual_objective,
    duality_gap,
    kkt_residuals,
    primal_objective,
)

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
    canonicalisation and a sweep over ``lam`` only re-solves; construction checks this.

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
        if not self.problem.is_dcp(dpp=True):  # pragma: no cover  (a CVXPY regression)
            raise RuntimeError("problem (25) is not DPP in this CVXPY version: it cannot be re-used "
                               "across lambda")

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
