"""A batched, certified solver for the convex program (25) of the long version.

.. math::

    \\min_{\\theta, s}\\ \\tfrac12\\|\\theta\\|_2^2 + \\lambda\\|s\\|_1
    \\quad\\text{s.t.}\\quad y = J\\theta + s \\qquad (25)

For a stack of instances at once: a Mehrotra interior-point method on the dual box QP (in the
factor space ``F Fᵀ = J Jᵀ``), an active-set polish that solves the KKT system exactly, and a
per-instance certificate (:func:`soptheory.convex_certificate`); an instance whose polish cannot
be verified keeps the interior-point answer and is flagged ``certified = False``. The method and
its tolerances are explained in ``docs/theory.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ._validation import check_array, check_int, check_positive
from .certificate import convex_certificate, rmatvec

__all__ = ["BatchedConvexResult", "solve_convex_batched", "gram_factor", "convex_certificate"]

# Relative certificate tolerance (a correct active set gives ~1e-13) and the relative gap at which
# the interior point hands over to the polish; both justified in docs/theory.md.
CERT_TOL = 1e-9
SCREEN_TOL = 1e-6


@dataclass(frozen=True)
class BatchedConvexResult:
    """Solutions and certificates of a stack of instances of eq. (25).

    Attributes
    ----------
    theta : ndarray of shape (M, p)
    s : ndarray of shape (M, N)
        Exact zeros off the recovered support when the instance is certified.
    nu : ndarray of shape (M, N)
        Dual solution, ``|nu| <= lam``.
    lam : ndarray of shape (M,)
    primal_residual : ndarray of shape (M,)
        ``||y - J theta - s|| / max(1, ||y||)``.
    stationarity : ndarray of shape (M,)
        ``||theta - J^T nu|| / max(1, ||theta||)``.
    dual_infeasibility : ndarray of shape (M,)
        ``max(0, max|nu| - lam) / lam``.
    gap : ndarray of shape (M,)
        Relative duality gap ``(P - D) / max(1, |P|)`` with ``P = ½||θ||² + λ||s||₁`` and
        ``D = yᵀν - ½||Jᵀν||²`` (ν clipped to the box, so D is a valid lower bound).
    certified : ndarray of bool, shape (M,)
        All four quantities above are <= ``CERT_TOL`` and the active-set polish verified.
    polished : ndarray of bool, shape (M,)
    n_iter : ndarray of int, shape (M,)
        Interior-point iterations.
    support_size : ndarray of int, shape (M,)
    """

    theta: np.ndarray
    s: np.ndarray
    nu: np.ndarray
    lam: np.ndarray
    primal_residual: np.ndarray
    stationarity: np.ndarray
    dual_infeasibility: np.ndarray
    gap: np.ndarray
    certified: np.ndarray
    polished: np.ndarray
    n_iter: np.ndarray
    support_size: np.ndarray

    def __len__(self):
        return self.theta.shape[0]


def gram_factor(J, *, rank_tol=None):
    """A thin factor F with ``F F^T = J J^T``: ``F = U Σ`` from the compact SVD of J.

    Parameters
    ----------
    J : ndarray of shape (N, p) or (M, N, p)
    rank_tol : float, optional
        Singular values ``<= rank_tol * σ_max`` are dropped (numerical rank); default
        ``max(N, p) * eps``.  Within a stack the factor keeps the largest rank and zeroes the
        surplus columns of lower-rank members, which leaves ``F F^T`` unchanged.

    Returns
    -------
    ndarray of shape (N, r) or (M, N, r)
    """
    J = check_array(J, "J", ndims=(2, 3))
    U, sig, _ = np.linalg.svd(J, full_matrices=False)
    if rank_tol is None:
        rank_tol = max(J.shape[-2:]) * np.finfo(float).eps
    keep = sig > rank_tol * sig[..., :1]
    r = max(int(keep.sum(axis=-1).max()), 1)
    sig = np.where(keep, sig, 0.0)[..., :r]
    return U[..., :r] * sig[..., None, :]


def single_threaded_blas():
    """Context manager limiting BLAS to one thread (threadpoolctl), a no-op if it is missing.

    The batched linear algebra here works on stacks of small matrices, where BLAS threads only
    add contention (measured 3-40x slower with 2 threads on 2 busy cores); parallelism comes from
    joblib workers instead.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _newton_solver(F, Ft, d, Q=None):
    """Factor ``F F^T + diag(d)`` once for a stack; return a function solving it for any rhs.

    Through the r x r matrix ``I + F^T D^{-1} F`` (Woodbury) when ``Q`` is None, else through the
    N x N matrix ``Q + D`` with ``Q = F F^T`` precomputed (cheaper once r > 2N/3: the per-iteration
    costs are about 2Nr² + (4/3)r³ and (4/3)N³ flops).  The matrix is formed once per iteration
    and shared by the predictor and the corrector.
    """
    M, N, r = F.shape
    if Q is None:
        dinv = 1.0 / d
        Fd = F * dinv[:, :, None]                       # D^{-1} F
        K = Ft @ Fd                                    # F^T D^{-1} F
        K[:, np.arange(r), np.arange(r)] += 1.0

        def solve(g):
            t = _robust_solve(K, Ft @ (dinv * g)[..., None])
            return dinv * g - (Fd @ t)[..., 0]

        return solve
    A = Q.copy()
    A[:, np.arange(N), np.arange(N)] += d
    return lambda g: _robust_solve(A, g[..., None])[..., 0]


def _robust_solve(A, B):
    """Batched ``solve``; a numerically singular member (LAPACK zero pivot, which happens only
    when the interior point has gone far past what double precision resolves) gets a
    least-squares answer instead of failing the whole stack."""
    try:
        return np.linalg.solve(A, B)
    except np.linalg.LinAlgError:
        out = np.empty(B.shape)
        for i in range(A.shape[0]):
            try:
                out[i] = np.linalg.solve(A[i], B[i])
            except np.linalg.LinAlgError:
                out[i] = np.linalg.lstsq(A[i], B[i], rcond=None)[0]
        return out


@dataclass
class _BoxQPIterate:
    """An interior point of ``-1 <= ω <= 1`` for a stack, all arrays of shape (M, N).

    ``slack_upper = 1 - ω`` and ``slack_lower = 1 + ω`` are kept as variables (their equations
    hold only at convergence); ``mult_upper`` and ``mult_lower`` are the multipliers of the two
    bounds.
    """

    omega: np.ndarray
    slack_upper: np.ndarray
    slack_lower: np.ndarray
    mult_upper: np.ndarray
    mult_lower: np.ndarray

    @classmethod
    def start(cls, b):
        M, N = b.shape
        return cls(omega=np.zeros((M, N)), slack_upper=np.ones((M, N)), slack_lower=np.ones((M, N)),
                   mult_upper=np.maximum(b, 0.0) + 1.0, mult_lower=np.maximum(-b, 0.0) + 1.0)

    def select(self, keep):
        return _BoxQPIterate(*(getattr(self, f.name)[keep] for f in fields(self)))

    def complementarity_sum(self):
        """``Σ_i slack_upper·mult_upper + slack_lower·mult_lower`` per instance."""
        return (self.slack_upper * self.mult_upper + self.slack_lower * self.mult_lower).sum(axis=1)


def _box_qp_gap(F, Ft, b, omega):
    """``(s̃, relative gap)`` of the box QP at ω, with ``s̃ = b - FFᵀω``.

    The duality gap ``P - D`` of the normalised problem (λ = 1, primal ``½‖c‖² + ‖s̃‖₁`` with
    ``c = Fᵀω``), written without cancellation as ``‖s̃‖₁ - s̃ᵀclip(ω, -1, 1)``, over ``max(1, |P|)``.
    """
    c = (Ft @ omega[..., None])[..., 0]
    s_scaled = b - (F @ c[..., None])[..., 0]
    gap = np.abs(s_scaled).sum(axis=1) - (s_scaled * np.clip(omega, -1.0, 1.0)).sum(axis=1)
    primal = 0.5 * (c**2).sum(axis=1) + np.abs(s_scaled).sum(axis=1)
    return s_scaled, gap / np.maximum(1.0, np.abs(primal))


def _interior_point(F, b, *, tol, max_iter):
    """Mehrotra primal-dual IPM for ``min ½ωᵀFFᵀω - bᵀω  s.t. -1 <= ω <= 1`` (a stack).

    Returns the best ω (smallest relative gap), that gap, and the iterations, per instance.
    """
    M, N, r = F.shape
    best_omega = np.zeros((M, N))
    best_gap = np.full(M, np.inf)
    n_iter = np.zeros(M, dtype=int)
    # the working set, compacted only when some instances finish
    work = np.arange(M)
    F_work = np.ascontiguousarray(F)
    Ft_work = np.swapaxes(F_work, 1, 2)          # a view: matmul passes it to BLAS transposed
    Q_work = F_work @ Ft_work if 3 * r > 2 * N else None      # see _newton_solver
    b_work = b
    point = _BoxQPIterate.start(b)
    for _ in range(max_iter + 1):
        s_scaled, rel_gap = _box_qp_gap(F_work, Ft_work, b_work, point.omega)
        better = rel_gap < best_gap[work]
        best_gap[work[better]] = rel_gap[better]
        best_omega[work[better]] = point.omega[better]
        # stop at the tolerance, or when round-off in the Newton systems (whose condition grows
        # like 1/mu) makes the gap grow again: the best iterate so far is kept for the polish
        mu_rel = point.complementarity_sum() / (2 * N * np.maximum(1.0, np.abs(b_work).max(axis=1)))
        done = (rel_gap <= tol) | (rel_gap > 1e3 * best_gap[work]) | (n_iter[work] >= max_iter)
        done |= mu_rel < 1e-15                   # complementarity below what double resolves
        if done.any():
            keep = ~done
            work, F_work, b_work, s_scaled, mu_rel = (
                a[keep] for a in (work, F_work, b_work, s_scaled, mu_rel))
            point = point.select(keep)
            Ft_work = np.swapaxes(F_work, 1, 2)
            if Q_work is not None:
                Q_work = Q_work[keep]
            if work.size == 0:
                break
        n_iter[work] += 1
        point = _predictor_corrector_step(F_work, Ft_work, Q_work, s_scaled, mu_rel, point)
    return best_omega, best_gap, n_iter


def _predictor_corrector_step(F, Ft, Q, s_scaled, mu_rel, point):
    """One Mehrotra step from ``point``: an affine predictor, then the centred corrector."""
    N = point.omega.shape[1]
    newton = _StepSystem(F, Ft, Q, s_scaled, point)
    # predictor (affine scaling)
    d_omega, d_su, d_sl, d_mu, d_ml = newton.direction(-point.slack_upper * point.mult_upper,
                                                        -point.slack_lower * point.mult_lower)
    step = newton.max_step(d_su, d_sl, d_mu, d_ml)[:, None]
    mu = point.complementarity_sum() / (2 * N)
    mu_aff = ((point.slack_upper + step * d_su) * (point.mult_upper + step * d_mu)
              + (point.slack_lower + step * d_sl) * (point.mult_lower + step * d_ml)).sum(axis=1) / (2 * N)
    sigma = np.clip((mu_aff / mu) ** 3, 0.0, 1.0)[:, None]
    # corrector
    target = sigma * mu[:, None]
    d_omega, d_su, d_sl, d_mu, d_ml = newton.direction(
        target - point.slack_upper * point.mult_upper - d_su * d_mu,
        target - point.slack_lower * point.mult_lower - d_sl * d_ml)
    eta = np.maximum(0.995, 1.0 - np.sqrt(mu_rel))[:, None]   # step-to-boundary fraction
    step = np.minimum(eta[:, 0] * newton.max_step(d_su, d_sl, d_mu, d_ml), 1.0)[:, None]
    return _BoxQPIterate(
        omega=point.omega + step * d_omega,
        slack_upper=point.slack_upper + step * d_su,
        slack_lower=point.slack_lower + step * d_sl,
        mult_upper=point.mult_upper + step * d_mu,
        mult_lower=point.mult_lower + step * d_ml,
    )


class _StepSystem:
    """The Newton system of the box QP at one iterate, factored once for predictor and corrector.

    Unknowns ``(dω, ds_u, ds_l, dm_u, dm_l)``; equations ``Q dω + dm_u - dm_l = -r_dual``,
    ``ds_u = -r_upper - dω``, ``ds_l = -r_lower + dω``, ``m_u ds_u + s_u dm_u = c_upper``,
    ``m_l ds_l + s_l dm_l = c_lower``, with the right-hand sides ``c_*`` given per call.
    """

    def __init__(self, F, Ft, Q, s_scaled, point):
        self.point = point
        self.dual_residual = point.mult_upper - point.mult_lower - s_scaled
        self.upper_residual = point.slack_upper + point.omega - 1.0
        self.lower_residual = point.slack_lower - point.omega - 1.0
        # reciprocals, used repeatedly
        self.inv_slack_upper = 1.0 / point.slack_upper
        self.inv_slack_lower = 1.0 / point.slack_lower
        self.inv_mult_upper = 1.0 / point.mult_upper
        self.inv_mult_lower = 1.0 / point.mult_lower
        self.solve = _newton_solver(F, Ft, point.mult_upper * self.inv_slack_upper
                                    + point.mult_lower * self.inv_slack_lower, Q)

    def direction(self, c_upper, c_lower):
        p = self.point
        g = ((c_lower + p.mult_lower * self.lower_residual) * self.inv_slack_lower
             - (c_upper + p.mult_upper * self.upper_residual) * self.inv_slack_upper
             - self.dual_residual)
        d_omega = self.solve(g)
        d_su = -self.upper_residual - d_omega
        d_sl = d_omega - self.lower_residual
        d_mu = (c_upper - p.mult_upper * d_su) * self.inv_slack_upper
        d_ml = (c_lower - p.mult_lower * d_sl) * self.inv_slack_lower
        return d_omega, d_su, d_sl, d_mu, d_ml

    def max_step(self, d_su, d_sl, d_mu, d_ml):
        """Largest step in (0, 1] keeping all four positive: ``1 / max(1, max_i(-dv_i / v_i))``."""
        worst = np.minimum(
            np.minimum((d_su * self.inv_slack_upper).min(axis=1), (d_sl * self.inv_slack_lower).min(axis=1)),
            np.minimum((d_mu * self.inv_mult_upper).min(axis=1), (d_ml * self.inv_mult_lower).min(axis=1)))
        return 1.0 / np.maximum(1.0, -worst)


def _pinv_pair(FZ, Z, rhs, omega_Z):
    """``c = FZ^+ rhs`` and ``ν = omega_Z + (FZ^+)^T (c - FZ^T omega_Z)`` for a stack (rows off Z are zero).

    Through the normal equations in the smaller space: ``G = FZᵀFZ`` (r x r) where |Z| >= r,
    ``G = FZ FZᵀ + diag(1 off Z)`` (N x N) where |Z| < r (about 5x cheaper than a batched SVD).
    Squaring the condition number costs accuracy only on ill-conditioned supports, which the
    verification of the polish and the certificate catch (such instances are then flagged).
    """
    M, N, r = FZ.shape
    c = np.empty((M, r))
    nu = np.empty((M, N))
    FZt = np.swapaxes(FZ, 1, 2)
    tall = Z.sum(axis=1) >= r
    for sel, is_tall in ((np.flatnonzero(tall), True), (np.flatnonzero(~tall), False)):
        if sel.size == 0:
            continue
        Fs, Fts, rh, om = FZ[sel], FZt[sel], rhs[sel, :, None], omega_Z[sel, :, None]
        if is_tall:
            G = Fts @ Fs
            # zero columns (a stack member of lower rank, zero-padded by gram_factor): put 1 on
            # their diagonal, which gives them c_j = 0, the pseudo-inverse's answer
            ridx = np.arange(r)
            G[:, ridx, ridx] += (G[:, ridx, ridx] == 0.0)
            cs = _robust_solve(G, Fts @ rh)
            nus = om + Fs @ _robust_solve(G, cs - Fts @ om)
        else:
            G = Fs @ Fts
            idx = np.arange(N)
            G[:, idx, idx] += ~Z[sel]
            cs = Fts @ _robust_solve(G, rh)
            nus = om + _robust_solve(G, Fs @ (cs - Fts @ om))
        c[sel], nu[sel] = cs[..., 0], nus[..., 0] * Z[sel]
    return c, nu


def _polish(F, b, omega, *, max_rounds=10):
    """Active-set polish of the normalised problem (λ = 1); see the module docstring.

    Returns c, s̃, ω (polished), and a bool ``ok`` per instance.
    """
    M, N, r = F.shape
    Ft = np.swapaxes(F, 1, 2)
    c0 = np.einsum("mrn,mn->mr", Ft, omega)
    s_scaled = b - np.einsum("mnr,mr->mn", F, c0)
    sgn = np.sign(s_scaled)
    slack = 1.0 - sgn * omega
    with np.errstate(divide="ignore"):
        ratio = np.abs(s_scaled) / slack                # > 1: bound active (multiplier exceeds slack)
    inS = ratio > 1.0
    sigma = np.where(inS, sgn, 0.0)
    c = c0.copy()
    nu = omega.copy()
    s_out = s_scaled.copy()
    ok = np.zeros(M, dtype=bool)
    todo = np.arange(M)
    scale = np.maximum(1.0, np.abs(b).max(axis=1))
    for _ in range(max_rounds):
        if todo.size == 0:
            break
        Fa, Fta, ba = F[todo], Ft[todo], b[todo]
        S = sigma[todo] != 0
        Z = ~S
        sg = sigma[todo]
        cS = np.einsum("mrn,mn->mr", Fta, sg)
        FZ = Fa * Z[:, :, None]                   # rows of S zeroed: same LS / min-norm solution
        rhs = (ba - np.einsum("mnr,mr->mn", Fa, cS)) * Z
        omega_Z = omega[todo] * Z
        # c' = F_Z^+ rhs, and the dual on Z: the point nearest to the interior-point ω_Z with
        # F_Z^T ν_Z = c', i.e. ν_Z = ω_Z + (F_Z^+)^T (c' - F_Z^T ω_Z)
        c_Z, nZ = _pinv_pair(FZ, Z, rhs, omega_Z)
        ca = cS + c_Z
        nua = np.where(S, sg, nZ)
        sa = ba - np.einsum("mnr,mr->mn", Fa, ca)
        tol_s = 1e-10 * scale[todo]
        bad_dual = Z & (np.abs(nua) > 1.0 + 1e-10)
        bad_sign = S & (sa * sg <= 0)
        bad_res = Z & (np.abs(sa) > tol_s[:, None])
        good = ~(bad_dual.any(axis=1) | bad_sign.any(axis=1) | bad_res.any(axis=1))
        sa_raw = sa
        sa = np.where(Z, 0.0, sa)
        c[todo] = ca
        nu[todo] = np.clip(nua, -1.0, 1.0)
        s_out[todo] = sa
        ok[todo[good]] = True
        # Correct one guess per failing instance and retry, most doubtful first: a sign error in
        # S moves its worst entry to Z; a dual violation in Z moves its worst entry to S; an
        # inconsistent system on Z (too many zeros) moves to S the entry of Z whose interior-point
        # ratio |s_i| / slack_i is largest, i.e. the one closest to being active.
        fix = np.flatnonzero(~good)
        rows = np.arange(fix.size)
        new = sg[fix].copy()
        viol_sign = np.where(bad_sign[fix], -sa_raw[fix] * sg[fix], -np.inf)
        viol_dual = np.where(bad_dual[fix], np.abs(nua[fix]), -np.inf)
        amb = np.where(Z[fix], ratio[todo[fix]], -np.inf)
        has_sign = bad_sign[fix].any(axis=1)
        has_dual = bad_dual[fix].any(axis=1) & ~has_sign
        has_res = ~has_sign & ~has_dual
        j = np.argmax(viol_sign, axis=1)
        new[rows[has_sign], j[has_sign]] = 0.0
        j = np.argmax(viol_dual, axis=1)
        new[rows[has_dual], j[has_dual]] = np.sign(nua[fix][rows[has_dual], j[has_dual]])
        j = np.argmax(amb, axis=1)
        new[rows[has_res], j[has_res]] = np.sign(s_scaled[todo[fix]][rows[has_res], j[has_res]])
        ratio[todo[fix], :] = np.where(new != 0, -np.inf, ratio[todo[fix], :])
        sigma[todo[fix]] = new
        todo = todo[fix]
    return c, s_out, nu, ok


def solve_convex_batched(J, y, lam, *, factor=None, tol=1e-9, max_iter=60, polish=True):
    """Solve a stack of instances of eq. (25) at once, with a certificate per instance.

    .. math::

        \\min_{\\theta, s}\\ \\tfrac12\\|\\theta\\|_2^2 + \\lambda\\|s\\|_1
        \\quad\\text{s.t.}\\quad y = J\\theta + s

    Parameters
    ----------
    J : ndarray of shape (N, p) or (M, N, p)
        One matrix shared by all instances, or a stack of equal-shaped matrices.
    y : ndarray of shape (N,) or (M, N)
    lam : float or ndarray of shape (M,)
        Weights λ > 0.  ``J``, ``y`` and ``lam`` broadcast against each other along M.
    factor : ndarray of shape (N, r) or (M, N, r), optional
        Any F with ``F F^T = J J^T`` (e.g. ``U Σ``); computed by :func:`gram_factor` when omitted.
        Passing it skips the SVD (``make_problem``-style data has ``J = A B`` and
        ``F = A R^T`` with ``B^T = Q R``).
    tol : float, default=1e-9
        Relative duality gap at which the interior-point phase stops and the polish starts (the
        polish then makes the answer exact; the interior point only has to find the support).
    max_iter : int, default=60
        Interior-point iteration cap.
    polish : bool, default=True
        Run the active-set polish (without it, results are interior-point accurate only).

    Returns
    -------
    BatchedConvexResult

    Notes
    -----
    Runs with BLAS limited to one thread (see :func:`single_threaded_blas`).

    Examples
    --------
    >>> from soptheory import make_problem
    >>> prob = make_problem(20, 40, 3, 3, random_state=0)
    >>> res = solve_convex_batched(prob.J, prob.y, [0.1, 1.0])
    >>> res.theta.shape, bool(res.certified.all())
    ((2, 40), True)
    """
    with single_threaded_blas():
        return _solve_convex_batched(J, y, lam, factor=factor, tol=tol, max_iter=max_iter,
                                     polish=polish)


def _solve_convex_batched(J, y, lam, *, factor, tol, max_iter, polish):
    J, y, lam, F = _check_batched_input(J, y, lam, factor)
    tol = float(check_positive(tol, "tol"))
    max_iter = check_int(max_iter, "max_iter", low=1)
    omega, s_scaled, ok, n_iter = _solve_normalised(F, y / lam[:, None], tol=tol, max_iter=max_iter,
                                                    polish=polish)
    nu = lam[:, None] * omega
    theta = rmatvec(J, nu)
    # s from the exact identity s = y - J θ off the zero set (already λ s̃ there)
    s = lam[:, None] * s_scaled
    cert = convex_certificate(J, y, lam, theta, s, nu)
    certified = ok.copy()
    for key in ("primal_residual", "stationarity", "dual_infeasibility", "gap"):
        certified &= cert[key] <= CERT_TOL
    return BatchedConvexResult(
        theta=theta, s=s, nu=nu, lam=lam.copy(), certified=certified, polished=ok,
        n_iter=n_iter, support_size=(s != 0).sum(axis=1), **cert,
    )


def _check_batched_input(J, y, lam, factor):
    """Validate and broadcast: J as given, y (M, N), lam (M,), the factor F (M, N, r)."""
    J = check_array(J, "J", ndims=(2, 3))
    y = check_array(y, "y", ndims=(1, 2))
    if y.shape[-1] != J.shape[-2]:
        raise ValueError(f"y must have shape (N,) or (M, N) with N = {J.shape[-2]}, got {y.shape}")
    lam = np.atleast_1d(check_positive(lam, "lam"))
    if lam.ndim != 1:
        raise ValueError(f"lam must be a scalar or 1-D, got shape {lam.shape}")
    counts = {"J": J.shape[0] if J.ndim == 3 else 1, "y": y.shape[0] if y.ndim == 2 else 1,
              "lam": lam.shape[0]}
    M = max(counts.values())
    for name, n in counts.items():
        if n not in (1, M):
            raise ValueError(f"{name} has {n} instances, which does not broadcast to {M}")
    F = check_array(gram_factor(J) if factor is None else factor, "factor", ndims=(2, 3))
    if F.shape[-2] != J.shape[-2]:
        raise ValueError(f"factor must have shape (N, r) or (M, N, r), got {F.shape}")
    N = J.shape[-2]
    F = np.broadcast_to(F if F.ndim == 3 else F[None], (M,) + F.shape[-2:])
    y = np.broadcast_to(y if y.ndim == 2 else y[None], (M, N))
    lam = np.broadcast_to(lam, (M,)).astype(float)
    return J, y, lam, F


def _solve_normalised(F, b, *, tol, max_iter, polish):
    """Solve the λ = 1 problem with data ``b = y / λ``: ``(ω, s̃, polished_ok, n_iter)``.

    With ``polish``, two stages: the interior point is stopped early (``SCREEN_TOL``) since the
    polish only needs the support; the few instances whose polish fails to verify are re-run to
    ``tol``, and those that still fail keep the interior-point answer.
    """
    M = F.shape[0]
    if not polish:
        omega, _, n_iter = _interior_point(F, b, tol=tol, max_iter=max_iter)
        return omega, _interior_s_scaled(F, b, omega), np.zeros(M, dtype=bool), n_iter
    screen_tol = max(tol, SCREEN_TOL)
    omega_ipm, _, n_iter = _interior_point(F, b, tol=screen_tol, max_iter=max_iter)
    _, s_scaled, omega, ok = _polish(F, b, omega_ipm)
    redo = np.flatnonzero(~ok)
    if redo.size and screen_tol > tol:
        omega_redo, _, n_iter_redo = _interior_point(F[redo], b[redo], tol=tol, max_iter=max_iter)
        _, s_scaled[redo], omega[redo], ok[redo] = _polish(F[redo], b[redo], omega_redo)
        omega_ipm[redo] = omega_redo
        n_iter[redo] += n_iter_redo
    if not ok.all():
        omega = np.where(ok[:, None], omega, omega_ipm)
        s_scaled = np.where(ok[:, None], s_scaled, _interior_s_scaled(F, b, omega_ipm))
    return omega, s_scaled, ok, n_iter


def _interior_s_scaled(F, b, omega):
    """``s̃ = b - F Fᵀ ω`` at an interior-point ω."""
    c = np.einsum("mnr,mn->mr", F, omega)
    return b - np.einsum("mnr,mr->mn", F, c)
