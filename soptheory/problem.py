"""The over-parameterized linear model with sparse corruption (long version, Sec. 3.1-3.2).

.. math::

    y = J \\theta^\\star + s^\\star, \\qquad
    \\theta^\\star = \\arg\\min_\\theta \\|\\theta\\|_2^2 \\ \\text{s.t.}\\ y - s^\\star = J\\theta
    \\quad\\text{(eq. 13)}

with ``J = A @ B`` of rank ``r`` and ``s*`` ``k``-sparse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_int, check_random_state

__all__ = ["SparseCorruptionProblem", "draw_factors", "make_problem"]


@dataclass(frozen=True)
class SparseCorruptionProblem:
    """One instance ``(J, y, theta_star, s_star)`` of ``y = J theta* + s*``.

    Attributes
    ----------
    J : ndarray of shape (N, p)
        The (low-rank) Jacobian.
    y : ndarray of shape (N,)
        The corrupted observations.
    theta_star : ndarray of shape (p,)
        Minimum-norm solution of ``J theta = y - s*`` (eq. 13).
    s_star : ndarray of shape (N,)
        The sparse corruption, ``k`` nonzero entries.
    theta0 : ndarray of shape (p,)
        The Gaussian vector used to generate ``y`` (``y = J theta0 + s*``).
    support : ndarray of shape (k,)
        Sorted indices of the nonzero entries of ``s*``.
    rank : int
        The rank ``r`` used to build ``J``.
    """

    J: np.ndarray
    y: np.ndarray
    theta_star: np.ndarray
    s_star: np.ndarray
    theta0: np.ndarray
    support: np.ndarray
    rank: int

    @property
    def shape(self):
        """``(N, p)``."""
        return self.J.shape

    @property
    def k(self):
        """Number of corrupted observations."""
        return int(self.support.size)


def draw_factors(N, p, r, k, rng):
    """The random draws of one instance, in this order: ``A``, ``B``, the support, ``s*``, ``theta0``.

    The one place that draws instances: :func:`make_problem` and
    :func:`soptheory.phase.draw_instances` both call it, so they agree bit for bit.

    Parameters
    ----------
    N, p, r, k : int
        Sizes, already validated.
    rng : numpy.random.Generator

    Returns
    -------
    A : ndarray of shape (N, r)
    B : ndarray of shape (r, p)
    support : ndarray of shape (k,)
        Sorted indices of the corrupted observations.
    s_star : ndarray of shape (N,)
    theta0 : ndarray of shape (p,)

    Examples
    --------
    >>> A, B, support, s_star, theta0 = draw_factors(5, 4, 2, 1, np.random.default_rng(0))
    >>> A.shape, B.shape, support.shape, int((s_star != 0).sum())
    ((5, 2), (2, 4), (1,), 1)
    """
    A = rng.standard_normal((N, r))
    B = rng.standard_normal((r, p))
    support = np.sort(rng.choice(N, size=k, replace=False))
    s_star = np.zeros(N)
    s_star[support] = rng.standard_normal(k)
    theta0 = rng.standard_normal(p)
    return A, B, support, s_star, theta0


def make_problem(N, p, r, k, random_state=None):
    """Draw an instance of the sparse-corruption model of Section 3.2.

    ``J = A @ B`` with ``A`` (N x r) and ``B`` (r x p) standard Gaussian; ``s*`` has ``k`` entries
    iid N(0, 1) at positions drawn uniformly without replacement; ``y = J theta0 + s*`` with
    ``theta0`` standard Gaussian; and ``theta* = J^+ (y - s*)``, the minimum-l2-norm solution of
    ``J theta = y - s*`` (eq. 13), which equals the projection of ``theta0`` on the row space of J.

    Parameters
    ----------
    N : int
        Number of observations, ``N >= 1``.
    p : int
        Number of parameters, ``p >= 1``.
    r : int
        Rank of ``J``, ``1 <= r <= min(N, p)``.
    k : int
        Number of corrupted observations, ``0 <= k <= N``.
    random_state : None, int or numpy.random.Generator, default=None
        Seed or generator; the same seed gives the same instance.

    Returns
    -------
    SparseCorruptionProblem

    Examples
    --------
    >>> prob = make_problem(20, 40, 3, 3, random_state=0)
    >>> prob.J.shape, int((prob.s_star != 0).sum())
    ((20, 40), 3)
    >>> bool(np.allclose(prob.J @ prob.theta_star + prob.s_star, prob.y))
    True
    """
    N = check_int(N, "N", low=1)
    p = check_int(p, "p", low=1)
    r = check_int(r, "r", low=1)
    if r > min(N, p):
        raise ValueError(f"r must be <= min(N, p) = {min(N, p)}, got {r}")
    k = check_int(k, "k", low=0)
    if k > N:
        raise ValueError(f"k must be <= N = {N}, got {k}")
    A, B, support, s_star, theta0 = draw_factors(N, p, r, k, check_random_state(random_state))
    J = A @ B
    y = J @ theta0 + s_star
    theta_star = np.linalg.lstsq(J, y - s_star, rcond=None)[0]
    return SparseCorruptionProblem(
        J=J, y=y, theta_star=theta_star, s_star=s_star, theta0=theta0, support=support, rank=r
    )
