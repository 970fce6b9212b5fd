"""Input checks shared by every public function of :mod:`soptheory`.

Each check raises one :class:`ValueError` naming the offending argument and the allowed range,
so a user never receives a silent wrong number, a NaN or a traceback from deep inside numpy.
"""

from __future__ import annotations

import numbers

import numpy as np

from sopcommon.seeding import check_random_state as _check_random_state

__all__ = [
    "as_real_array",
    "check_array",
    "check_matrix",
    "check_vector",
    "check_positive",
    "check_positive_scalar",
    "check_jobs",
    "check_vectors",
    "check_open_unit",
    "check_int",
    "check_system",
    "check_random_state",
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


def check_random_state(random_state, name="random_state"):
    """:func:`sopcommon.seeding.check_random_state`, with numpy's own refusals (a negative seed:
    "expected non-negative integer") named.

    >>> check_random_state(-1)
    Traceback (most recent call last):
    ...
    ValueError: random_state must be None, a non-negative int, a SeedSequence or a numpy Generator, got -1
    """
    try:
        return _check_random_state(random_state)
    except (ValueError, TypeError, OverflowError) as exc:
        if str(exc).startswith(name):
            raise
        raise ValueError(f"{name} must be None, a non-negative int, a SeedSequence or a numpy Generator, "
                         f"got {random_state!r}") from exc


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


def check_positive_scalar(value, name):
    """Check that ``value`` is one finite real number > 0 (a 0-d array or a length-1 array too).

    >>> check_positive_scalar(0.5, "lam")
    0.5
    >>> check_positive_scalar([0.1, 0.2], "lam")
    Traceback (most recent call last):
    ...
    ValueError: lam must be one number > 0, got an array of shape (2,) (pass one λ per call)
    """
    arr = as_real_array(value, name)
    if arr.size != 1:
        raise ValueError(f"{name} must be one number > 0, got an array of shape {arr.shape} (pass one λ per call)")
    return float(check_positive(arr.reshape(()), name))


def check_jobs(n_jobs, name="n_jobs", *, n_tasks=None, cores=None):
    """The number of workers to start for ``n_jobs``: -1 means every core; more than can run at
    once (the cores, the tasks) is capped there, so a typo cannot start thousands of processes.

    >>> check_jobs(10_000, n_tasks=3, cores=8)
    3
    >>> check_jobs(-1, cores=8)
    8
    """
    import os

    n_jobs = check_int(n_jobs, name, low=-1)
    if n_jobs == 0:
        raise ValueError(f"{name} must be a positive integer or -1 (every core), got 0")
    cores = cores or os.cpu_count() or 1
    limit = cores if n_tasks is None else max(1, min(cores, int(n_tasks)))
    return limit if n_jobs == -1 else min(n_jobs, limit)


def check_vectors(arrays, *, axis=-1):
    """Arrays of vectors (``name -> array_like``) as float64 arrays: each at least 1-D with a
    non-empty ``axis``, all of one length along it and with broadcastable leading shapes.

    >>> [a.shape for a in check_vectors({"a": [1.0, 2.0], "b": [[0.0, 1.0]]})]
    [(2,), (1, 2)]
    >>> check_vectors({"a": [1.0, 2.0], "b": [1.0, 2.0, 3.0]})
    Traceback (most recent call last):
    ...
    ValueError: a and b must have one length along axis -1, got shapes (2,) and (3,)
    """
    out = {name: as_real_array(value, name) for name, value in arrays.items()}
    for name, arr in out.items():
        if arr.ndim == 0 or arr.size == 0:
            raise ValueError(f"{name} must be a non-empty array of vectors, got shape {arr.shape}")
    names, shapes = list(out), [a.shape for a in out.values()]
    try:
        lengths = {a.shape[axis] for a in out.values()}
        np.broadcast_shapes(*shapes)
    except (IndexError, ValueError):
        lengths = None
    if lengths is None or len(lengths) != 1:
        raise ValueError(f"{' and '.join(names)} must have one length along axis {axis}, got shapes "
                         f"{' and '.join(map(str, shapes))}")
    return list(out.values())


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
