"""Input checks shared by every public function of :mod:`soptheory`.

Each check raises :class:`ValueError` naming the offending argument and the allowed range,
so a user never receives a silent wrong number or a NaN.
"""

from __future__ import annotations

import numbers

import numpy as np

from sopcommon.seeding import check_random_state  # noqa: F401  (re-exported for soptheory's modules)

__all__ = [
    "check_matrix",
    "check_vector",
    "check_positive",
    "check_open_unit",
    "check_int",
    "check_system",
]


def check_int(value, name, *, low=None, high=None):
    """Check that ``value`` is an integer in ``[low, high]`` (either bound optional)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_positive(value, name):
    """Check that ``value`` is a finite real number (or array of them) strictly greater than 0."""
    arr = np.asarray(value, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return arr if arr.ndim else float(arr)


def check_open_unit(value, name):
    """Check that ``value`` lies in the open interval (0, 1)."""
    arr = np.asarray(value, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0) or np.any(arr >= 1):
        raise ValueError(f"{name} must lie in the open interval (0, 1), got {value!r}")
    return arr if arr.ndim else float(arr)


def check_matrix(J, name="J"):
    """Return ``J`` as a finite 2-D float64 array."""
    J = np.asarray(J, dtype=float)
    if J.ndim != 2 or J.shape[0] == 0 or J.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {J.shape}")
    if not np.all(np.isfinite(J)):
        raise ValueError(f"{name} contains non-finite entries (NaN or inf)")
    return J


def check_vector(y, name="y", *, size=None):
    """Return ``y`` as a finite 1-D float64 array, optionally of a given length."""
    y = np.asarray(y, dtype=float)
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
