"""Atomic file writes, shared by every writer of every package (tables, caches, figures,
checkpoints, run metrics): a crash or a kill never leaves a half-written file under the real name;
:func:`remove_stale_temporaries` removes the temporaries a killed writer left.
"""

from __future__ import annotations

import glob
import io
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_savez", "remove_stale_temporaries"]


def _read_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()   # read once at import: os.umask is process-wide, racy inside threads


@contextmanager
def atomic_path(path, *, suffix=".tmp"):
    """Yield a temporary path beside ``path``; on success publish it as ``path``.

    The temporary file (``.<name>.<random><suffix>`` in the same folder, so the rename stays on one
    file system) is created empty; the caller writes it. When the block exits normally it is
    fsync'ed, given the usual mode ``0o666 & ~umask`` (``mkstemp`` makes 0600) and renamed onto
    ``path`` with :func:`os.replace`, atomic on POSIX. When the block raises, it is removed and any
    previous ``path`` is left intact.

    Parameters
    ----------
    path : str or Path
        The final file; its folder must exist.
    suffix : str, default ".tmp"
        Ending of the temporary name (for writers that append an extension to bare names).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_savez(path, arrays):
    """Write ``arrays`` (dict name -> array) as an uncompressed ``.npz`` at ``path`` atomically.

    ``path`` is used exactly as given (``np.savez`` would append ``.npz`` to a bare name).
    """
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def remove_stale_temporaries(folder, names=None, *, suffix=".tmp"):
    """Delete the temporaries of :func:`atomic_path` left in ``folder`` by killed writers.

    Call it only while holding the folder's lock (:func:`sopcommon.locking.lock_folder`): a
    temporary of a live writer looks the same.

    Parameters
    ----------
    folder : str or Path
    names : iterable of str, optional
        Remove only the temporaries of these final names (``.<name>.<random><suffix>``); None
        removes every ``.*<suffix>`` file of the folder.
    suffix : str, default ".tmp"
        The ``suffix`` the writers passed to :func:`atomic_path`.

    Returns
    -------
    list of Path
        The files removed, sorted.
    """
    folder = Path(folder)
    patterns = [f".*{glob.escape(suffix)}"] if names is None else \
        [f".{glob.escape(name)}.*{glob.escape(suffix)}" for name in names]
    stale = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
