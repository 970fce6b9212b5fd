"""The landscape of :math:`h(\\theta,u,v) = \\tfrac12\\|J\\theta + u\\odot u - v\\odot v - y\\|_2^2`
(eq. 14): gradient, Hessian (appendix B.1) and the strict-saddle certificate of Proposition 3.2.

Hessian quadratic form (eq. B.2), with :math:`r = J\\theta + u\\odot u - v\\odot v - y`:

.. math::

    d^\\top\\nabla^2 h\\,d = \\|Jd_\\theta\\|_2^2 + 4\\|u\\odot d_u\\|_2^2 + 4\\|v\\odot d_v\\|_2^2
    + 2\\langle r, d_u\\odot d_u - d_v\\odot d_v\\rangle
    + 4\\langle Jd_\\theta, u\\odot d_u - v\\odot d_v\\rangle - 8\\langle u\\odot d_u, v\\odot d_v\\rangle.

Proposition 3.2: a critical point is a global minimiser (``r = 0``) or a strict saddle. By
Lemma B.1 a critical point with ``r != 0`` has an ``i`` with ``u_i = v_i = 0 != r_i``; then
``d_v = e_i`` (if ``r_i > 0``) or ``d_u = e_i`` (if ``r_i < 0``) has curvature ``-2|r_i| < 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_positive, check_system, check_vector

__all__ = [
    "CriticalPointReport",
    "classify_critical_point",
    "gradient_h",
    "hessian_h",
    "hessian_quadratic_form",
    "objective_h",
]


def _check_point(J, y, theta, u, v):
    J, y = check_system(J, y)
    N, p = J.shape
    theta = check_vector(theta, "theta", size=p)
    u = check_vector(u, "u", size=N)
    v = check_vector(v, "v", size=N)
    return J, y, theta, u, v


def objective_h(J, y, theta, u, v):
    """:math:`h = \\tfrac12\\|J\\theta + u\\odot u - v\\odot v - y\\|_2^2` (eq. 14).

    Parameters
    ----------
    J : array_like of shape (N, p)
    y : array_like of shape (N,)
    theta : array_like of shape (p,)
    u, v : array_like of shape (N,)

    Returns
    -------
    float
    """
    J, y, theta, u, v = _check_point(J, y, theta, u, v)
    r = J @ theta + u * u - v * v - y
    return float(0.5 * r @ r)


def gradient_h(J, y, theta, u, v):
    """Gradient of ``h``: :math:`(J^\\top r,\\ 2r\\odot u,\\ -2r\\odot v)` (proof of Lemma B.1).

    Returns
    -------
    tuple of ndarray of shapes (p,), (N,), (N,)
    """
    J, y, theta, u, v = _check_point(J, y, theta, u, v)
    r = J @ theta + u * u - v * v - y
    return J.T @ r, 2.0 * r * u, -2.0 * r * v


def hessian_h(J, y, theta, u, v):
    """Explicit Hessian of ``h`` in the variable order ``(theta, u, v)`` (appendix B.1).

    .. math::

        \\nabla^2 h = \\begin{pmatrix}
        J^\\top J & 2J^\\top\\mathrm{diag}(u) & -2J^\\top\\mathrm{diag}(v)\\\\
        2\\,\\mathrm{diag}(u)J & 2\\,\\mathrm{diag}(r + 2u\\odot u) & -4\\,\\mathrm{diag}(u\\odot v)\\\\
        -2\\,\\mathrm{diag}(v)J & -4\\,\\mathrm{diag}(u\\odot v) & -2\\,\\mathrm{diag}(r - 2v\\odot v)
        \\end{pmatrix}

    Returns
    -------
    ndarray of shape (p + 2N, p + 2N)
    """
    J, y, theta, u, v = _check_point(J, y, theta, u, v)
    r = J @ theta + u * u - v * v - y
    Ju = 2.0 * J.T * u[None, :]
    Jv = -2.0 * J.T * v[None, :]
    return np.block(
        [
            [J.T @ J, Ju, Jv],
            [Ju.T, np.diag(2.0 * (r + 2.0 * u * u)), np.diag(-4.0 * u * v)],
            [Jv.T, np.diag(-4.0 * u * v), np.diag(-2.0 * (r - 2.0 * v * v))],
        ]
    )


def hessian_quadratic_form(J, y, theta, u, v, d_theta, d_u, d_v):
    """The quadratic form :math:`d^\\top\\nabla^2 h(\\theta,u,v)\\,d` of eq. (B.2).

    .. math::

        \\|Jd_\\theta\\|^2 + 4\\|u\\odot d_u\\|^2 + 4\\|v\\odot d_v\\|^2
        + 2\\langle r, d_u^2 - d_v^2\\rangle + 4\\langle Jd_\\theta, u\\odot d_u - v\\odot d_v\\rangle
        - 8\\langle u\\odot d_u, v\\odot d_v\\rangle

    Parameters
    ----------
    J : array_like of shape (N, p)
    y : array_like of shape (N,)
    theta : array_like of shape (p,)
    u, v : array_like of shape (N,)
    d_theta : array_like of shape (p,)
    d_u, d_v : array_like of shape (N,)

    Returns
    -------
    float
    """
    J, y, theta, u, v = _check_point(J, y, theta, u, v)
    N, p = J.shape
    d_theta = check_vector(d_theta, "d_theta", size=p)
    d_u = check_vector(d_u, "d_u", size=N)
    d_v = check_vector(d_v, "d_v", size=N)
    r = J @ theta + u * u - v * v - y
    Jd = J @ d_theta
    ud, vd = u * d_u, v * d_v
    return float(
        Jd @ Jd
        + 4.0 * ud @ ud
        + 4.0 * vd @ vd
        + 2.0 * r @ (d_u * d_u - d_v * d_v)
        + 4.0 * Jd @ (ud - vd)
        - 8.0 * ud @ vd
    )


@dataclass(frozen=True)
class CriticalPointReport:
    """Verdict of :func:`classify_critical_point`.

    Attributes
    ----------
    is_global_minimizer : bool
        ``True`` iff ``r = 0`` (to ``atol``): ``h = 0``, its global minimum.
    direction : tuple of ndarray (d_theta, d_u, d_v) or None
        A unit direction of negative curvature (Proposition 3.2), ``None`` at a global minimiser.
    curvature : float or None
        :math:`d^\\top\\nabla^2h\\,d` along ``direction`` (from eq. B.2), ``< 0``.
    index : int or None
        The coordinate ``i`` of Lemma B.1 used.
    residual : ndarray of shape (N,)
        :math:`r = J\\theta + u\\odot u - v\\odot v - y`.
    """

    is_global_minimizer: bool
    direction: object
    curvature: object
    index: object
    residual: np.ndarray


def classify_critical_point(J, y, theta, u, v, *, atol=1e-10):
    """Global minimiser or strict saddle? The dichotomy of Proposition 3.2 at a critical point.

    The point must be critical: :math:`\\|\\nabla h\\|_\\infty \\le \\mathrm{atol}`. If
    :math:`\\|r\\|_\\infty \\le \\mathrm{atol}` it is a global minimiser. Otherwise, with
    :math:`i = \\arg\\max_j |r_j|` (where Lemma B.1 gives :math:`u_i = v_i = 0`), the direction is
    :math:`d_v = e_i` if :math:`r_i > 0` (curvature :math:`4v_i^2 - 2r_i`) or :math:`d_u = e_i` if
    :math:`r_i < 0` (curvature :math:`4u_i^2 + 2r_i`), both :math:`\\approx -2|r_i| < 0`.

    Parameters
    ----------
    J : array_like of shape (N, p)
    y : array_like of shape (N,)
    theta : array_like of shape (p,)
    u, v : array_like of shape (N,)
    atol : float, default=1e-10
        Absolute tolerance for criticality and for ``r = 0``.

    Returns
    -------
    CriticalPointReport

    Raises
    ------
    ValueError
        If the point is not critical (``||grad h||_inf > atol``), or on bad input.
    """
    J, y, theta, u, v = _check_point(J, y, theta, u, v)
    atol = float(check_positive(atol, "atol"))
    N, p = J.shape
    r = J @ theta + u * u - v * v - y
    g_theta, g_u, g_v = J.T @ r, 2.0 * r * u, -2.0 * r * v
    gmax = max(np.max(np.abs(g_theta)), np.max(np.abs(g_u)), np.max(np.abs(g_v)))
    if gmax > atol:
        raise ValueError(
            f"(theta, u, v) is not a critical point of h: ||grad h||_inf = {gmax:.3g} > atol = {atol:.3g}"
        )
    if np.max(np.abs(r)) <= atol:
        return CriticalPointReport(True, None, None, None, r)
    i = int(np.argmax(np.abs(r)))
    d_theta, d_u, d_v = np.zeros(p), np.zeros(N), np.zeros(N)
    if r[i] > 0:
        d_v[i] = 1.0
    else:
        d_u[i] = 1.0
    curv = hessian_quadratic_form(J, y, theta, u, v, d_theta, d_u, d_v)
    if not curv < 0:  # cannot happen at a critical point with r != 0 (Lemma B.1)
        raise ValueError(
            f"no negative curvature found at coordinate {i} (curvature {curv:.3g}); the point is "
            "not critical to working precision"
        )
    return CriticalPointReport(False, (d_theta, d_u, d_v), curv, i, r)
