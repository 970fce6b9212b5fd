"""Input checks shared by every public function of :mod:`soptheory`.

Each check raises one :class:`ValueError` naming the offending argument and the allowed range,
so a user never receives a silent wrong number, a NaN or a traceback from deep inside numpy.
"""

from __future__ import annotations

import numbers

import numpy as np

from sopcommon.seeding import check_random_state  # noqa: F401  (re-exported for soptheory's modules)

__all__ = [
    "as_real_array",
    "check_array",
    "check_matrix",
    "check_vector",
    "check_positive",
    "check_open_unit",
    "check_int",
    "check_system",
]


def as_real_array(value, name):
    """``value`` as a float64 ndarray; sparse, complex and non-numeric input are refused.

    >>> as_real_array([1, 2], "x")
    array([1., 2.])
    >>> as_real_array("0.1", "tol")
    Traceback (most recent call last):
    ...
    ValueError: tol must be a real number or an array of real numbers, got '0.1'
    """
    if type(value).__module__.startswith("scipy.sparse"):
        raise ValueError(f"{name} must be a dense array, got a sparse {type(value).__name__} "
                         "(convert it with .toarray())")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = np.asarray(value, dtype=object)
    if arr.dtype.kind == "c":
        raise ValueError(f"{name} must be real, got complex dtype {arr.dtype}")
    if arr.dtype.kind in "biuf":
        return arr.astype(float, copy=False)
    if arr.dtype.kind == "O":
        try:
            return arr.astype(float)
        except (TypeError, ValueError):
            pass
    raise ValueError(f"{name} must be a real number or an array of real numbers, got {value!r}")


def check_int(value, name, *, low=None, high=None):
    """Check that ``value`` is an integer in ``[low, high]`` (either bound optional).

    >>> check_int(3, "k", low=0)
    3
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_positive(value, name):
    """Check that ``value`` is a finite real number (or array of them) strictly greater than 0.

    >>> check_positive(0.5, "lam")
    0.5
    """
    arr = as_real_array(value, name)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return arr if arr.ndim else float(arr)


def check_open_unit(value, name):
    """Check that ``value`` lies in the open interval (0, 1).

    >>> check_open_unit(0.25, "gamma")
    0.25
    """
    arr = as_real_array(value, name)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0) or np.any(arr >= 1):
        raise ValueError(f"{name} must lie in the open interval (0, 1), got {value!r}")
    return arr if arr.ndim else float(arr)


def check_array(value, name, *, ndims):
    """Return ``value`` as a finite, non-empty float64 array whose ``ndim`` is in ``ndims``.

    >>> check_array([[1.0, 2.0]], "J", ndims=(2, 3)).shape
    (1, 2)
    """
    arr = as_real_array(value, name)
    if arr.ndim not in ndims or arr.size == 0:
        dims = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name} must be a non-empty {dims} array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite entries (NaN or inf)")
    return arr


def check_matrix(J, name="J"):
    """Return ``J`` as a finite, non-empty 2-D float64 array."""
    return check_array(J, name, ndims=(2,))


def check_vector(y, name="y", *, size=None):
    """Return ``y`` as a finite 1-D float64 array, optionally of a given length."""
    y = as_real_array(y, name)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {y.shape}")
    if size is not None and y.shape[0] != size:
        raise ValueError(f"{name} must have length {size}, got {y.shape[0]}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains non-finite entries (NaN or inf)")
    return y


def check_system(J, y):
    """Validate the pair (J, y) of ``y = J theta + s``: J of shape (N, p), y of shape (N,)."""
    J = check_matrix(J, "J")
    y = check_vector(y, "y", size=J.shape[0])
    return J, y
