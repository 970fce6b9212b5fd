"""Gradient descent with discrepant learning rates, eq. (15) of the long version.

On :math:`h(\\theta,u,v) = \\tfrac12\\|J\\theta + u\\odot u - v\\odot v - y\\|_2^2` (eq. 14),
from :math:`\\theta_0 = 0,\\ u_0 = v_0 = \\gamma\\mathbf 1` (eq. 18):

.. math::

    \\theta_{k+1} = \\theta_k - \\tau J^\\top r_k, \\qquad
    u_{k+1} = u_k - 2\\alpha\\tau\\, u_k\\odot r_k, \\qquad
    v_{k+1} = v_k + 2\\alpha\\tau\\, v_k\\odot r_k,

with :math:`r_k = J\\theta_k + u_k\\odot u_k - v_k\\odot v_k - y`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_int, check_open_unit, check_positive, check_system

__all__ = ["GradientDescentResult", "GradientDescentDiverged", "gradient_descent", "default_step"]


# The adaptive step is recomputed every _TAU_EVERY iterations (it changes slowly; docs/theory.md).
_TAU_EVERY = 10


class GradientDescentDiverged(FloatingPointError):
    """Raised when an iterate of eq. (15) becomes non-finite or explodes."""


@dataclass(frozen=True)
class GradientDescentResult:
    """Final iterate of eq. (15); arrays carry a leading axis of size B when ``alpha`` was an array.

    Attributes
    ----------
    theta : ndarray of shape (p,) or (B, p)
    s : ndarray of shape (N,) or (B, N)
        :math:`u\\odot u - v\\odot v`.
    u, v : ndarray of shape (N,) or (B, N)
    residual : ndarray of shape (N,) or (B, N)
        :math:`r = J\\theta + s - y` at the returned iterate.
    n_iter : int or ndarray of shape (B,)
        Iterations performed.
    converged : bool or ndarray of shape (B,)
        Whether the stopping test of :func:`gradient_descent` was met.
    diverged : bool or ndarray of shape (B,)
        Whether the run was stopped for divergence (only with ``on_divergence="flag"``; the
        iterate is then the last finite one checked).
    tau : float or ndarray of shape (B,)
        Step size used (for the adaptive step: the last one).
    est_error : float or ndarray of shape (B,)
        Estimated remaining relative distance of ``(theta, s)`` to the limit (see Notes of
        :func:`gradient_descent`); ``inf`` when no estimate is available.
    range_error : float or ndarray of shape (B,)
        :math:`\\|J^+r\\|_2/\\|\\theta\\|_2`: the relative change of ``theta`` that would absorb the
        part of the residual lying in the range of ``J`` (see Notes).
    alpha : float or ndarray of shape (B,)
    """

    theta: np.ndarray
    s: np.ndarray
    u: np.ndarray
    v: np.ndarray
    residual: np.ndarray
    n_iter: object
    converged: object
    diverged: object
    tau: object
    est_error: object
    range_error: object
    alpha: object


def default_step(J, y, alpha, *, safety_J=1.0, safety_alpha=0.02):
    """A safe constant step size for :func:`gradient_descent` (``tau=default_step(...)``).

    .. math::

        \\tau(\\alpha) = \\min\\Big(\\frac{c_J}{\\|J\\|_2^2},\\;
                               \\frac{c_\\alpha}{\\alpha\\,\\max_i |y_i|}\\Big)

    The first bound is half the stability limit of the ``theta`` block, the second keeps the
    multiplicative ``u, v`` updates within :math:`1 \\pm 2c_\\alpha` (justification in
    ``docs/theory.md``). :func:`gradient_descent` uses an adaptive step by default instead.

    Parameters
    ----------
    J : array_like of shape (N, p)
    y : array_like of shape (N,)
    alpha : float or array_like of shape (B,)
    safety_J : float, default=1.0
        :math:`c_J`, in (0, 2).
    safety_alpha : float, default=0.02
        :math:`c_\\alpha`, in (0, 0.5).

    Returns
    -------
    float or ndarray of shape (B,)

    Examples
    --------
    >>> default_step(np.eye(2), [1.0, 0.0], alpha=[1.0, 100.0]).tolist()
    [0.02, 0.0002]
    """
    J, y = check_system(J, y)
    alpha = check_positive(alpha, "alpha")
    if not 0 < safety_J < 2:
        raise ValueError(f"safety_J must lie in (0, 2), got {safety_J!r}")
    if not 0 < safety_alpha < 0.5:
        raise ValueError(f"safety_alpha must lie in (0, 0.5), got {safety_alpha!r}")
    ymax = float(np.max(np.abs(y)))
    bound_J = safety_J / np.linalg.norm(J, 2) ** 2
    bound_a = safety_alpha / (np.asarray(alpha) * ymax) if ymax > 0 else np.inf
    out = np.minimum(bound_J, bound_a)
    return float(out) if np.ndim(out) == 0 else out


def gradient_descent(
    J,
    y,
    alpha,
    gamma=np.exp(-8.0),
    tau=None,
    *,
    max_iter=1_000_000,
    tol=1e-4,
    rtol_residual=1e-2,
    check_every=100,
    patience=3,
    blowup=1e8,
    on_divergence="raise",
    safety_J=1.0,
    safety_alpha=0.001,
):
    """Run eq. (15) for one or a batch of learning-rate ratios ``alpha`` (vectorised).

    .. math::

        \\theta \\leftarrow \\theta - \\tau J^\\top r,\\quad
        u \\leftarrow u - 2\\alpha\\tau\\,u\\odot r,\\quad
        v \\leftarrow v + 2\\alpha\\tau\\,v\\odot r,\\qquad
        r = J\\theta + u\\odot u - v\\odot v - y,

    from :math:`\\theta=0,\\ u=v=\\gamma\\mathbf 1`. All ``alpha`` of a batch advance together,
    each with its own step; converged ones are frozen and dropped from the work.

    Parameters
    ----------
    J : array_like of shape (N, p)
    y : array_like of shape (N,)
    alpha : float or array_like of shape (B,)
        Learning-rate ratio(s), ``> 0``.
    gamma : float, default=exp(-8)
        Initialisation scale, in (0, 1).
    tau : None, float or array_like of shape (B,), default=None
        Constant step size(s), ``> 0`` (eq. 15 verbatim; :func:`default_step` gives a safe one).
        ``None``: the adaptive step, recomputed every 10 iterations,

        .. math::

            \\tau_k = \\min\\Big(\\frac{c_J}{\\|J\\|_2^2 + 4\\alpha\\max_i(u_i^2+v_i^2)},\\;
                               \\frac{c_\\alpha}{\\alpha\\max_i|r_{k,i}|}\\Big)

        (stable near a solution, and bounding the drift of the implicit bias by
        :math:`O(c_\\alpha)`; see ``docs/theory.md``). With the defaults GD is within about 1e-3
        in theta and 1e-2 in s (relative) of :func:`flow_limit` on Figure 2 instances.
    max_iter : int, default=1_000_000
        Iteration cap per ``alpha``, ``>= 1``.
    tol : float, default=1e-4
        Tolerance on ``est_error``, the extrapolated remaining relative change of
        ``(theta, s)`` (see Notes).
    rtol_residual : float, default=1e-2
        Loose guard: also require :math:`\\|r\\|_2 \\le \\mathrm{rtol\\_residual}\\,\\|s\\|_2`
        (a stalled residual is measured relative to ``s``, the part that must absorb it).
    check_every : int, default=100
        Window length (iterations) between convergence / divergence checks.
    patience : int, default=3
        Consecutive windows that must pass the test.
    blowup : float, default=1e8
        An iterate with :math:`\\max(\\|\\theta\\|_\\infty, \\|u\\|_\\infty, \\|v\\|_\\infty)` above
        ``blowup * (1 + ||y||_inf)`` counts as diverged.
    on_divergence : {"raise", "flag"}, default="raise"
        ``"raise"``: raise :class:`GradientDescentDiverged` naming the diverging ``alpha``.
        ``"flag"``: stop those runs, set ``diverged``, return their last finite checked iterate.
    safety_J : float, default=1.0
        :math:`c_J` of the adaptive step, in (0, 2).
    safety_alpha : float, default=0.001
        :math:`c_\\alpha` of the adaptive step, in (0, 0.5).

    Returns
    -------
    GradientDescentResult

    Notes
    -----
    Why not stop on ``||r||`` alone: the slowest direction of the flow has curvature about
    :math:`8\\alpha\\gamma^2` (coordinates where :math:`s_\\infty\\approx 0` intersected with
    :math:`\\mathrm{null}(J^\\top)`), and near the transition values of ``alpha`` entries of
    :math:`s_\\infty` are tiny and their curvature :math:`4\\alpha|s_i|` small, so ``r`` can
    decay over millions of steps while ``(theta, s)`` barely move. Two estimates are combined,
    checked every ``check_every`` steps:

    * ``est_error`` (precision): with :math:`\\Delta_j = \\|z_j - z_{j-1}\\|/\\|z_j\\|` the
      relative change of :math:`z = (\\theta, s)` over window ``j`` and
      :math:`q_j = \\Delta_j/\\Delta_{j-1}`, a linearly converging sequence has remaining
      distance about :math:`\\Delta_j q_j/(1-q_j)` (geometric tail); ``inf`` unless ``q < 1``.
    * ``range_error`` (a guard against plateaus, where small-initialisation dynamics barely
      move while a part of ``y`` is still unexplained, so the extrapolation is fooled; seen on
      ``make_problem(20, 40, 3, 3, random_state=3)`` at ``alpha = 4000``, where a small entry
      of ``s`` is still growing): :math:`\\|J^+r\\|/\\|\\theta\\|`, the relative change of
      ``theta`` needed if ``theta`` absorbed the range-of-``J`` part of the residual. The slow
      directions lie in :math:`\\mathrm{null}(J^\\top)`, so a stalled residual does not count.

    A run converges when ``est_error <= tol``, ``range_error <= tol`` and
    ``||r|| <= rtol_residual ||s||`` in ``patience`` consecutive windows. These are estimates,
    not bounds: compare with :func:`soptheory.flow_limit` when it matters.

    Examples
    --------
    >>> from soptheory import make_problem
    >>> prob = make_problem(20, 40, 3, 3, random_state=0)
    >>> res = gradient_descent(prob.J, prob.y, alpha=[40.0, 400.0])
    >>> bool(np.all(res.converged)), res.theta.shape
    (True, (2, 40))
    """
    opts = _check_gd_options(J, y, alpha, gamma, tau, max_iter=max_iter, tol=tol,
                             rtol_residual=rtol_residual, check_every=check_every,
                             patience=patience, blowup=blowup, on_divergence=on_divergence,
                             safety_J=safety_J, safety_alpha=safety_alpha)
    J, y, alphas = opts.J, opts.y, opts.alphas
    state = _GDState.start(alphas.size, J.shape, opts.gamma, opts.taus)
    # (N, p): r @ Jpinv_t = J^+ r; singular values below 1e-10 sigma_max count as zero (a rank-r
    # product A @ B has rounding-level singular values ~1e-15 sigma_max that must not be inverted).
    Jpinv_t = np.linalg.pinv(J, rcond=1e-10).T
    theta_floor = 1e-12 * max(np.linalg.norm(y @ Jpinv_t), np.finfo(float).tiny)
    active = np.arange(alphas.size)
    while active.size:
        steps = min(opts.check_every, opts.max_iter - int(state.n_iter[active].max()))
        theta, u, v, tau_col = _run_window(opts, state.theta[active], state.u[active],
                                           state.v[active], alphas[active], opts.taus[active], steps)
        if opts.adaptive:
            state.last_tau[active] = tau_col[:, 0]
        state.n_iter[active] += steps
        good = _check_divergence(opts, state, active, theta, u, v)
        active = _check_convergence(opts, state, active[good], theta[good], u[good], v[good],
                                    Jpinv_t, theta_floor)
    return _gd_result(state, J, y, alphas, scalar=opts.scalar)


@dataclass
class _GDOptions:
    """The validated arguments of :func:`gradient_descent`."""

    J: np.ndarray
    y: np.ndarray
    alphas: np.ndarray
    scalar: bool
    gamma: float
    adaptive: bool
    taus: np.ndarray
    normJ2: float
    max_iter: int
    tol: float
    rtol_residual: float
    check_every: int
    patience: int
    limit: float
    on_divergence: str
    safety_J: float
    safety_alpha: float


def _check_gd_options(J, y, alpha, gamma, tau, *, max_iter, tol, rtol_residual, check_every,
                      patience, blowup, on_divergence, safety_J, safety_alpha):
    J, y = check_system(J, y)
    alpha_arr = check_positive(alpha, "alpha")
    if np.ndim(alpha_arr) > 1:
        raise ValueError(f"alpha must be a scalar or a 1-D array, got shape {np.shape(alpha_arr)}")
    gamma = float(check_open_unit(gamma, "gamma"))
    alphas = np.atleast_1d(np.asarray(alpha_arr, dtype=float))
    safety_J = float(check_positive(safety_J, "safety_J"))
    safety_alpha = float(check_positive(safety_alpha, "safety_alpha"))
    if safety_J >= 2:
        raise ValueError(f"safety_J must lie in (0, 2), got {safety_J!r}")
    if safety_alpha >= 0.5:
        raise ValueError(f"safety_alpha must lie in (0, 0.5), got {safety_alpha!r}")
    if tau is None:
        taus = np.full(alphas.size, np.nan)
    else:
        tau_arr = check_positive(tau, "tau")
        try:
            taus = np.broadcast_to(np.atleast_1d(tau_arr), (alphas.size,)).astype(float)
        except ValueError:
            raise ValueError(f"tau must be a scalar or have the shape of alpha ({alphas.size},)") from None
    if on_divergence not in ("raise", "flag"):
        raise ValueError(f"on_divergence must be 'raise' or 'flag', got {on_divergence!r}")
    return _GDOptions(
        J=J, y=y, alphas=alphas, scalar=np.ndim(alpha_arr) == 0, gamma=gamma, adaptive=tau is None,
        taus=taus, normJ2=np.linalg.norm(J, 2) ** 2,
        max_iter=check_int(max_iter, "max_iter", low=1), tol=float(check_positive(tol, "tol")),
        rtol_residual=float(check_positive(rtol_residual, "rtol_residual")),
        check_every=check_int(check_every, "check_every", low=1),
        patience=check_int(patience, "patience", low=1),
        limit=float(check_positive(blowup, "blowup")) * (1.0 + np.max(np.abs(y))),
        on_divergence=on_divergence, safety_J=safety_J, safety_alpha=safety_alpha,
    )


@dataclass
class _GDState:
    """Per-``alpha`` iterates (B, ...) and convergence bookkeeping of :func:`gradient_descent`."""

    theta: np.ndarray
    u: np.ndarray
    v: np.ndarray
    last_tau: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    diverged: np.ndarray
    est: np.ndarray
    range_err: np.ndarray
    streak: np.ndarray
    prev_delta: np.ndarray
    z_prev: np.ndarray

    @classmethod
    def start(cls, B, shape, gamma, taus):
        N, p = shape
        theta, u, v = np.zeros((B, p)), np.full((B, N), gamma), np.full((B, N), gamma)
        return cls(theta=theta, u=u, v=v, last_tau=taus.copy(), n_iter=np.zeros(B, dtype=int),
                   converged=np.zeros(B, dtype=bool), diverged=np.zeros(B, dtype=bool),
                   est=np.full(B, np.inf), range_err=np.full(B, np.inf),
                   streak=np.zeros(B, dtype=int), prev_delta=np.full(B, np.nan),
                   z_prev=np.concatenate([theta, u * u - v * v], axis=1))


def _run_window(opts, theta, u, v, alphas, taus, steps):
    """``steps`` iterations of eq. (15) on copies of the active rows; returns them and the step."""
    J, y = opts.J, opts.y
    Jt = np.ascontiguousarray(J.T)
    tau_col = taus[:, None]
    two_alpha_tau = 2.0 * alphas[:, None] * tau_col
    alpha_col = alphas[:, None]
    with np.errstate(over="ignore", invalid="ignore"):
        for it in range(steps):
            u2, v2 = u * u, v * v
            r = theta @ Jt + u2 - v2 - y
            if opts.adaptive and it % _TAU_EVERY == 0:
                tau_col = np.minimum(
                    opts.safety_J / (opts.normJ2 + 4.0 * alpha_col * np.max(u2 + v2, axis=1, keepdims=True)),
                    opts.safety_alpha / (alpha_col * np.max(np.abs(r), axis=1, keepdims=True)),
                )
                two_alpha_tau = 2.0 * alpha_col * tau_col
            theta -= tau_col * (r @ J)
            f = two_alpha_tau * r
            u -= u * f
            v += v * f
    return theta, u, v, tau_col


def _check_divergence(opts, state, active, theta, u, v):
    """Raise or flag the active runs whose iterates blew up; return the mask of the others."""
    big = np.maximum(np.abs(theta).max(axis=1), np.maximum(np.abs(u).max(axis=1), np.abs(v).max(axis=1)))
    bad = ~np.isfinite(big) | (big > opts.limit)
    if bad.any():
        if opts.on_divergence == "raise":
            raise GradientDescentDiverged(
                f"gradient descent diverged for alpha = {opts.alphas[active][bad].tolist()} "
                f"with tau = {opts.taus[active][bad].tolist()}: iterates became non-finite or "
                f"exceeded {opts.limit:.3g}; use a smaller tau"
            )
        state.diverged[active[bad]] = True  # keep the last finite checked iterate
    return ~bad


def _check_convergence(opts, state, rows, theta, u, v, Jpinv_t, theta_floor):
    """Store the iterates of ``rows``, update ``est_error`` / ``range_error`` / the streak of
    passed windows (Notes of :func:`gradient_descent`), and return the rows still running."""
    J, y = opts.J, opts.y
    state.theta[rows], state.u[rows], state.v[rows] = theta, u, v
    s = u**2 - v**2
    z = np.concatenate([theta, s], axis=1)
    znorm = np.maximum(np.linalg.norm(z, axis=1), np.finfo(float).tiny)
    delta = np.linalg.norm(z - state.z_prev[rows], axis=1) / znorm
    with np.errstate(divide="ignore", invalid="ignore"):
        q = delta / state.prev_delta[rows]
        est = np.where((q < 1) & np.isfinite(q), delta * q / (1.0 - q), np.inf)
    est = np.where(delta == 0, 0.0, est)
    state.est[rows] = est
    state.prev_delta[rows] = delta
    state.z_prev[rows] = z
    r = theta @ np.ascontiguousarray(J.T) + s - y
    range_err = np.linalg.norm(r @ Jpinv_t, axis=1) / np.maximum(np.linalg.norm(theta, axis=1), theta_floor)
    state.range_err[rows] = range_err
    s_norm = np.maximum(np.linalg.norm(s, axis=1), 1e-12 * np.linalg.norm(y))
    ok = ((est <= opts.tol) & (range_err <= opts.tol)
          & (np.linalg.norm(r, axis=1) <= opts.rtol_residual * s_norm))
    state.streak[rows] = np.where(ok, state.streak[rows] + 1, 0)
    state.converged[rows] = state.streak[rows] >= opts.patience
    return rows[~state.converged[rows] & (state.n_iter[rows] < opts.max_iter)]


def _gd_result(state, J, y, alphas, *, scalar):
    s = state.u * state.u - state.v * state.v
    out = dict(
        theta=state.theta, s=s, u=state.u, v=state.v, residual=state.theta @ np.ascontiguousarray(J.T) + s - y,
        n_iter=state.n_iter, converged=state.converged, diverged=state.diverged, tau=state.last_tau,
        est_error=state.est, range_error=state.range_err, alpha=alphas,
    )
    if scalar:
        out = {k: (val[0] if isinstance(val, np.ndarray) and val.ndim > 1 else val) for k, val in out.items()}
        out.update(
            n_iter=int(state.n_iter[0]), converged=bool(state.converged[0]),
            diverged=bool(state.diverged[0]), tau=float(state.last_tau[0]),
            est_error=float(state.est[0]), range_error=float(state.range_err[0]),
            alpha=float(alphas[0]),
        )
    return GradientDescentResult(**out)
