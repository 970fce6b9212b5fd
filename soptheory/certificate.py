"""The optimality certificate of the convex program (25): objectives, KKT residuals, duality gap.

.. math::

    P(\\theta, s) = \\tfrac12\\|\\theta\\|_2^2 + \\lambda\\|s\\|_1, \\qquad
    D(\\nu) = y^\\top\\nu - \\tfrac12\\|J^\\top\\nu\\|_2^2 \\ \\ (\\|\\nu\\|_\\infty \\le \\lambda),

and :math:`(\\theta, s, \\nu)` is optimal iff :math:`y = J\\theta + s`, :math:`\\theta = J^\\top\\nu`,
:math:`\\nu \\in \\lambda\\,\\mathrm{sign}(s)` (Lemma B.2, eq. B.3). The one family of these
functions: :func:`soptheory.solve_convex` users certify with :func:`kkt_residuals` and
:func:`duality_gap`, :func:`soptheory.solve_convex_batched` and :mod:`soptheory.phase` with
:func:`convex_certificate`; all three share the objectives and the gap below.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import (check_array, check_positive, check_positive_scalar, check_system, check_vector,
                          check_vectors)

__all__ = [
    "KKTResiduals",
    "convex_certificate",
    "dual_objective",
    "duality_gap",
    "kkt_residuals",
    "primal_objective",
    "rmatvec",
]


def _matvec(J, x):
    """``J x`` for one J (N, p) or a stack (M, N, p); x of shape (p,) or (M, p)."""
    return (J @ x[..., None])[..., 0] if J.ndim == 3 else x @ J.T


def rmatvec(J, v):
    """``J^T v`` for one J (N, p) or a stack (M, N, p); v of shape (N,) or (M, N)."""
    return (v[:, None, :] @ J)[:, 0, :] if J.ndim == 3 else v @ J


def primal_objective(theta, s, lam):
    """Objective of (25), :math:`\\tfrac12\\|\\theta\\|_2^2 + \\lambda\\|s\\|_1`, over the last axis.

    Parameters
    ----------
    theta : array_like of shape (..., p)
    s : array_like of shape (..., N)
    lam : float or array_like of shape (...)

    Returns
    -------
    float or ndarray of shape (...)

    Examples
    --------
    >>> float(primal_objective([3.0, 4.0], [1.0, -1.0], 0.5))
    13.5
    """
    theta, = check_vectors({"theta": theta})
    s, = check_vectors({"s": s})
    lam = np.asarray(check_positive(lam, "lam"), dtype=float)
    try:   # one λ per leading index: theta (..., p), s (..., N), lam (...)
        np.broadcast_shapes(theta.shape[:-1], s.shape[:-1], lam.shape)
    except ValueError:
        raise ValueError(f"theta, s and lam must share leading shapes, got {theta.shape}, {s.shape}, "
                         f"{lam.shape}") from None
    return 0.5 * np.linalg.norm(theta, axis=-1) ** 2 + lam * np.abs(s).sum(axis=-1)


def dual_objective(J, y, nu):
    """Dual objective :math:`y^\\top\\nu - \\tfrac12\\|J^\\top\\nu\\|_2^2` (no feasibility check).

    Parameters
    ----------
    J : array_like of shape (N, p) or (M, N, p)
    y : array_like of shape (N,) or (M, N)
    nu : array_like of shape (N,) or (M, N)

    Returns
    -------
    float or ndarray of shape (M,)

    Examples
    --------
    >>> float(dual_objective(np.eye(2), [1.0, 1.0], [1.0, 0.0]))
    0.5
    """
    J = check_array(J, "J", ndims=(2, 3))
    y, nu = check_vectors({"y": y, "nu": nu})
    if y.shape[-1] != J.shape[-2]:
        raise ValueError(f"y and nu must have length N = {J.shape[-2]} (the rows of J), got {y.shape[-1]}")
    return np.einsum("...n,...n->...", y, nu) - 0.5 * (rmatvec(J, nu) ** 2).sum(axis=-1)


def _gap(J, y, lam, theta, s, nu):
    """``(P, P - D(clip(nu)))``: the primal objective and the duality gap, unchecked, stackable."""
    lam_col = np.asarray(lam, dtype=float)[..., None]
    primal = primal_objective(theta, s, lam)
    return primal, primal - dual_objective(J, y, np.clip(nu, -lam_col, lam_col))


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
        :math:`\\lambda\\|s\\|_1 - \\nu^\\top s`; with :math:`|\\nu| \\le \\lambda` it is zero iff
        :math:`\\nu_i = \\lambda\\,\\mathrm{sign}(s_i)` wherever :math:`s_i \\ne 0`.
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
    lam = check_positive_scalar(lam, "lam")   # one λ: a vector would broadcast into nonsense
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
    """Residuals of the KKT conditions (B.3) for a candidate solution of (25), in the inf-norm.

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
        Multiplier (e.g. ``ConvexSolution.nu``). If omitted: :math:`\\nu_i = \\lambda\\,
        \\mathrm{sign}(s_i)` where :math:`|s_i| > \\mathrm{support\\_rtol}\\max(\\|s\\|_\\infty, 1)`,
        the other entries by minimum-norm least squares on :math:`\\theta = J^\\top\\nu`.
    support_rtol : float, default=1e-6
        Threshold defining the support of ``s`` for that reconstruction.

    Returns
    -------
    KKTResiduals

    Examples
    --------
    >>> J, y = np.eye(2), np.array([2.0, 0.0])
    >>> float(kkt_residuals(J, y, 1.0, theta=[1.0, 0.0], s=[1.0, 0.0]).max())
    0.0
    """
    J, y, lam, theta, s, nu = _check_candidate(J, y, lam, theta, s, nu)
    if nu is None:
        nu = _multiplier_from(J, lam, theta, s, float(check_positive(support_rtol, "support_rtol")))
    return KKTResiduals(
        primal=float(np.max(np.abs(y - _matvec(J, theta) - s))),
        stationarity=float(np.max(np.abs(theta - rmatvec(J, nu)))),
        dual=float(max(np.max(np.abs(nu)) - lam, 0.0)),
        complementarity=float(lam * np.sum(np.abs(s)) - nu @ s),
        nu=nu,
    )


def duality_gap(J, y, lam, theta, s, nu):
    """Duality gap of (25) at ``(theta, s)`` and ``nu`` clipped onto the dual box.

    .. math::

        P(\\theta, s) - D(\\tilde\\nu), \\qquad \\tilde\\nu = \\mathrm{clip}(\\nu, -\\lambda, \\lambda)

    ``D`` of a clipped ``nu`` is a lower bound on the optimal value (weak duality), so for a
    feasible ``(theta, s)`` (check with :func:`kkt_residuals`) the gap is ``>= 0`` and bounds the
    suboptimality of both.

    Parameters
    ----------
    J : array_like of shape (N, p)
    y : array_like of shape (N,)
    lam : float
    theta : array_like of shape (p,)
    s, nu : array_like of shape (N,)

    Returns
    -------
    float

    Examples
    --------
    >>> J, y = np.eye(2), np.array([2.0, 0.0])
    >>> duality_gap(J, y, 1.0, theta=[1.0, 0.0], s=[1.0, 0.0], nu=[1.0, 0.0])
    0.0
    """
    J, y, lam, theta, s, nu = _check_candidate(J, y, lam, theta, s, nu)
    return float(_gap(J, y, lam, theta, s, nu)[1])


def convex_certificate(J, y, lam, theta, s, nu):
    """Relative certificate of a stack of candidates ``(theta, s, nu)`` of (25), from the data alone.

    .. math::

        \\frac{\\|y - J\\theta - s\\|}{\\max(1, \\|y\\|)},\\quad
        \\frac{\\|\\theta - J^\\top\\nu\\|}{\\max(1, \\|\\theta\\|)},\\quad
        \\frac{\\max(0, \\|\\nu\\|_\\infty - \\lambda)}{\\lambda},\\quad
        \\frac{P - D(\\mathrm{clip}(\\nu, -\\lambda, \\lambda))}{\\max(1, |P|)}

    Parameters
    ----------
    J : ndarray of shape (N, p) or (M, N, p)
    y : ndarray of shape (M, N)
    lam : ndarray of shape (M,)
    theta : ndarray of shape (M, p)
    s, nu : ndarray of shape (M, N)

    Returns
    -------
    dict of ndarray of shape (M,)
        ``primal_residual``, ``stationarity``, ``dual_infeasibility``, ``gap``, in that order.

    Notes
    -----
    ``D <= P*`` always, so ``P - D`` bounds the suboptimality; ``P`` is 1-strongly convex in
    θ, so ``||θ - θ*|| <= sqrt(2 (P - D))`` when ``y = Jθ + s`` holds exactly.

    Examples
    --------
    >>> J, y = np.eye(2), np.array([[2.0, 0.0]])
    >>> cert = convex_certificate(J, y, np.array([1.0]), np.array([[1.0, 0.0]]),
    ...                           np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]))
    >>> [float(v[0]) for v in cert.values()]
    [0.0, 0.0, 0.0, 0.0]
    """
    J = check_array(J, "J", ndims=(2, 3))
    y, s, nu = check_vectors({"y": y, "s": s, "nu": nu})   # each of length N (candidates may be NaN)
    theta, = check_vectors({"theta": theta})
    if y.shape[-1] != J.shape[-2] or theta.shape[-1] != J.shape[-1]:
        raise ValueError(f"y, s, nu must have length N = {J.shape[-2]} and theta length p = {J.shape[-1]} "
                         f"(J of shape {J.shape}), got {y.shape[-1]} and {theta.shape[-1]}")
    lam = np.asarray(check_positive(lam, "lam"), dtype=float)
    primal_residual = np.linalg.norm(y - _matvec(J, theta) - s, axis=-1) / np.maximum(
        1.0, np.linalg.norm(y, axis=-1))
    stationarity = np.linalg.norm(theta - rmatvec(J, nu), axis=-1) / np.maximum(
        1.0, np.linalg.norm(theta, axis=-1))
    dual_infeasibility = np.maximum(0.0, np.abs(nu).max(axis=-1) - lam) / lam
    primal, gap = _gap(J, y, lam, theta, s, nu)
    return {"primal_residual": primal_residual, "stationarity": stationarity,
            "dual_infeasibility": dual_infeasibility, "gap": gap / np.maximum(1.0, np.abs(primal))}
