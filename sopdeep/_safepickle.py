"""Restricted unpickling for data files that may come from untrusted sources.

The CIFAR python batches and the CIFAR-N ``.pt`` label files are pickles. A plain
:func:`pickle.load` (or ``torch.load(..., weights_only=False)``) runs whatever callable the file
names, so a tampered file could execute arbitrary code. :class:`RestrictedUnpickler` admits only the
globals needed to rebuild numpy arrays (listed in :data:`ALLOWED_GLOBALS`) and refuses everything
else, including torch's persistent ids (tensor storages), with :class:`UnsafePickleError`.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from sopcommon.cli import one_line

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar as _np_scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar as _np_scalar
    from numpy.core.numeric import _frombuffer

__all__ = [
    "ALLOWED_GLOBALS",
    "UnsafePickleError",
    "RestrictedUnpickler",
    "restricted_loads",
    "load_torch_zip_pickle",
]


class UnsafePickleError(ValueError):
    """A pickle asked for a global (or a persistent object) outside the allow-list."""


def _latin1_encode(obj, encoding="utf-8"):
    """Stand-in for ``_codecs.encode`` that only turns ``str`` into ``bytes`` (py2 numpy pickles)."""
    if not isinstance(obj, str) or encoding.lower().replace("_", "-") not in {"latin1", "latin-1", "utf-8", "utf8"}:
        raise UnsafePickleError(f"_codecs.encode is admitted only for str with latin1/utf-8, got {type(obj).__name__}, {encoding!r}")
    return obj.encode(encoding)


def _empty_bytes(*args):
    """Stand-in for ``bytes``: protocol 2 pickles ``b""`` as ``bytes()``; any argument is refused
    (``bytes(10**12)`` would be a memory bomb)."""
    if args:
        raise UnsafePickleError("bytes(...) is admitted only without arguments (the empty bytes object)")
    return b""


#: the largest array a data pickle may ask for (CIFAR-100's training batch is 150 MB; a label file far less)
MAX_ARRAY_BYTES = 8 * 2**30


def _checked_reconstruct(subtype, shape, dtype):
    """numpy's ``_reconstruct``, refusing a shape too large to be data (a hostile file asking for
    10**13 elements would otherwise reach the allocator)."""
    try:
        n = int(np.prod([int(d) for d in np.atleast_1d(shape)], dtype=object))
        itemsize = np.dtype(dtype).itemsize
    except (TypeError, ValueError, OverflowError) as exc:
        raise UnsafePickleError(f"array of shape {shape!r}, dtype {dtype!r} is not a data array") from exc
    if n < 0 or n * max(itemsize, 1) > MAX_ARRAY_BYTES:
        raise UnsafePickleError(f"refusing an array of shape {tuple(int(d) for d in np.atleast_1d(shape))} "
                                f"({n * max(itemsize, 1) / 2**30:.3g} GiB, more than {MAX_ARRAY_BYTES / 2**30:g} GiB)")
    return _reconstruct(subtype, shape, dtype)


#: (module, name) -> object: the only globals a data pickle may reference.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _checked_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _checked_reconstruct,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,  # pickle protocol 5
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` resolves only :data:`ALLOWED_GLOBALS`.

    Any other global (``os.system``, ``builtins.eval``, ``torch._utils._rebuild_tensor_v2``, ...)
    raises :class:`UnsafePickleError` before it is imported, so nothing from the file can run.
    """

    def find_class(self, module, name):  # noqa: D401 - pickle API
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: this data file may only hold numpy arrays, "
                "lists, dicts, strings and numbers"
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError(
            "refusing persistent object (a torch tensor storage?): this data file may only hold numpy arrays"
        )


def restricted_loads(data: bytes, *, encoding: str = "ASCII"):
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    Parameters
    ----------
    data : bytes
        The pickle stream.
    encoding : str, default "ASCII"
        How Python 2 ``str`` objects are decoded; use ``"latin1"`` for Python 2 numpy pickles
        (the CIFAR python batches).

    Raises
    ------
    UnsafePickleError
        If the stream references a global outside :data:`ALLOWED_GLOBALS`.
    ValueError
        If the stream is not a valid pickle.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
    except UnsafePickleError:
        raise
    except MemoryError as exc:   # e.g. numpy.ndarray((10**13,)) called directly: a hostile or damaged file
        raise ValueError("corrupt pickle: it asks for an array larger than the memory; not a data file") from exc
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, KeyError,
            ValueError, OverflowError) as exc:
        # ValueError: numpy's checks of a shape against its data (ndarray.__setstate__)
        raise ValueError(f"corrupt pickle: {type(exc).__name__}: {one_line(str(exc), limit=200)}") from exc


def load_torch_zip_pickle(path):
    """Read the ``data.pkl`` of a torch zip file (``torch.save`` format) with the restricted unpickler.

    Parameters
    ----------
    path : str or Path
        A file written by ``torch.save`` holding only numpy arrays and plain containers.

    Returns
    -------
    object
        The unpickled object.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a torch zip file, holds no single ``data.pkl``, or its pickle is corrupt.
    UnsafePickleError
        If the pickle references anything beyond numpy's array-reconstruction globals.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a torch zip file (torch.save format, a zip holding <name>/data.pkl)")
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(names) != 1:
            raise ValueError(f"{path}: expected exactly one data.pkl in the torch zip, found {names}")
        data = zf.read(names[0])
    return restricted_loads(data, encoding="latin1")
