"""Coherence of J with the standard basis (Definition 3.4) and the recovery condition (27).

.. math::

    \\mu(J) = \\frac{N}{r}\\max_{1\\le i\\le N}\\|U^\\top e_i\\|_2^2 \\quad (26),
    \\qquad k^2 r < \\frac{N}{4\\mu(J)} \\quad (27),

with :math:`J = U\\Sigma V^\\top` the compact SVD and :math:`r` the rank of :math:`J`. Always
:math:`1 \\le \\mu(J) \\le N/r`.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_int, check_matrix, check_positive

__all__ = ["coherence", "numerical_rank", "recovery_condition_holds"]


def numerical_rank(J, rtol=None):
    """Rank of ``J``: the number of singular values above ``rtol * sigma_max``.

    Parameters
    ----------
    J : array_like of shape (N, p)
    rtol : float, optional
        Relative threshold, in (0, 1). Default ``max(N, p) * eps`` (numpy's ``matrix_rank``).

    Returns
    -------
    int
    """
    J = check_matrix(J, "J")
    sv = np.linalg.svd(J, compute_uv=False)
    return int(np.sum(sv > _threshold(J, sv, rtol)))


def _threshold(J, sv, rtol):
    if rtol is None:
        rtol = max(J.shape) * np.finfo(float).eps
    else:
        rtol = float(check_positive(rtol, "rtol"))
        if rtol >= 1:
            raise ValueError(f"rtol must lie in (0, 1), got {rtol!r}")
    return rtol * (sv[0] if sv.size else 0.0)


def coherence(J, rtol=None):
    """Coherence :math:`\\mu(J)` of Definition 3.4 (eq. 26).

    .. math:: \\mu(J) = \\frac{N}{r}\\max_i \\|U^\\top e_i\\|_2^2

    ``U`` holds the left singular vectors of the ``r`` singular values above
    ``rtol * sigma_max`` (numerical rank, as :func:`numpy.linalg.matrix_rank`).

    Parameters
    ----------
    J : array_like of shape (N, p)
    rtol : float, optional
        Relative rank tolerance in (0, 1); default ``max(N, p) * eps``.

    Returns
    -------
    float
        In ``[1, N / r]``.

    Raises
    ------
    ValueError
        If ``J`` is numerically zero (rank 0: the coherence is undefined) or invalid.

    Examples
    --------
    >>> coherence(np.eye(4)[:, :2])  # spans coordinate vectors: maximal, N / r
    2.0
    """
    J = check_matrix(J, "J")
    U, sv, _ = np.linalg.svd(J, full_matrices=False)
    r = int(np.sum(sv > _threshold(J, sv, rtol)))
    if r == 0 or sv[0] == 0:
        raise ValueError("J has numerical rank 0: the coherence is undefined")
    leverage = np.sum(U[:, :r] ** 2, axis=1)
    return float(J.shape[0] / r * np.max(leverage))


def recovery_condition_holds(J, k, rtol=None):
    """Whether the sufficient condition (27) of Proposition 3.5 holds: :math:`k^2 r < N/(4\\mu(J))`.

    Parameters
    ----------
    J : array_like of shape (N, p)
    k : int
        Number of corrupted observations, ``0 <= k <= N``.
    rtol : float, optional
        Rank tolerance, as in :func:`coherence`.

    Returns
    -------
    bool
    """
    J = check_matrix(J, "J")
    N = J.shape[0]
    k = check_int(k, "k", low=0)
    if k > N:
        raise ValueError(f"k must be <= N = {N}, got {k}")
    r = numerical_rank(J, rtol)
    mu = coherence(J, rtol)
    return bool(k * k * r < N / (4.0 * mu))
