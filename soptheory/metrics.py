"""Error measures exactly as the paper defines them (long version, Sec. 3.2-3.3)."""

from __future__ import annotations

import numpy as np

from ._validation import check_vectors

__all__ = ["relative_difference", "recovery_error"]


def relative_difference(a, b, axis=-1):
    """Relative difference of Figure 2.

    .. math:: \\rho(a, b) = \\frac{\\|a - b\\|_2}{\\max(\\|a\\|_2, \\|b\\|_2)}

    Defined as 0 when both vectors are zero. Broadcasts over leading axes.

    Parameters
    ----------
    a, b : array_like of shape (..., n)
    axis : int, default=-1
        Axis holding the vector entries.

    Returns
    -------
    float or ndarray of shape (...)

    Examples
    --------
    >>> relative_difference([3.0, 4.0], [0.0, 0.0])
    1.0
    """
    a, b = check_vectors({"a": a, "b": b}, axis=axis)   # a shape mismatch would broadcast silently
    num = np.linalg.norm(a - b, axis=axis)
    den = np.maximum(np.linalg.norm(a, axis=axis), np.linalg.norm(b, axis=axis))
    out = np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)
    return float(out) if np.ndim(out) == 0 else out


def recovery_error(estimate, truth, axis=-1):
    """Relative recovery error of Figures 3-4.

    .. math:: \\varepsilon = \\frac{\\|\\hat x - x^\\star\\|_2}{\\|x^\\star\\|_2}

    Parameters
    ----------
    estimate, truth : array_like of shape (..., n)
    axis : int, default=-1

    Returns
    -------
    float or ndarray of shape (...)

    Raises
    ------
    ValueError
        If ``truth`` is the zero vector (the error is undefined; e.g. ``k = 0`` for ``s*``).

    Examples
    --------
    >>> recovery_error([1.0, 0.0], [1.0, 0.0])
    0.0
    """
    estimate, truth = check_vectors({"estimate": estimate, "truth": truth}, axis=axis)
    den = np.linalg.norm(truth, axis=axis)
    if np.any(den == 0):
        raise ValueError("truth has zero norm: the relative recovery error is undefined")
    out = np.linalg.norm(estimate - truth, axis=axis) / den
    return float(out) if np.ndim(out) == 0 else out
