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

__all__ = [
    "coherence",
    "coherence_of_basis",
    "numerical_rank",
    "recovery_condition",
    "recovery_condition_holds",
]


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
    return float(coherence_of_basis(U[:, :r]))


def coherence_of_basis(U):
    """Coherence (eq. 26) from an orthonormal basis ``U`` of the column space of J.

    .. math:: \\mu = \\frac{N}{r}\\max_i \\|U^\\top e_i\\|_2^2

    Parameters
    ----------
    U : ndarray of shape (..., N, r)
        Orthonormal columns (not checked); leading axes are a batch.

    Returns
    -------
    float or ndarray of shape (...)

    Examples
    --------
    >>> float(coherence_of_basis(np.eye(4)[:, :2]))
    2.0
    """
    N, r = U.shape[-2:]
    return (N / r) * (U**2).sum(axis=-1).max(axis=-1)


def recovery_condition(k, r, N, mu):
    """The sufficient condition (27), :math:`k^2 r < N / (4\\mu)`, elementwise.

    Parameters
    ----------
    k, r, N : int or array_like of int
    mu : float or array_like
        Coherence, as from :func:`coherence`.

    Returns
    -------
    bool or ndarray of bool

    Examples
    --------
    >>> bool(recovery_condition(1, 1, 100, 2.0))
    True
    """
    return np.asarray(k, dtype=float) ** 2 * r < np.asarray(N) / (4.0 * np.asarray(mu))


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
    return bool(recovery_condition(k, r, N, mu))
