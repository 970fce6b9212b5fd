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

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_savez", "remove_stale_temporaries",
           "DataFileError", "read_npz", "read_json", "check_table"]


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


# --------------------------------------------------------------------------------------------
# reading back: every file a package reads is checked before use, and every problem is one error


class DataFileError(ValueError):
    """A file read back is missing, damaged or not what the reader expects.

    The message is one line: the file, then what is wrong with it (and, where known, what to do).
    A ``ValueError`` so that callers catching bad input catch it too.
    """

    def __init__(self, path, problem):
        self.path, self.problem = Path(path), str(problem)
        super().__init__(f"{path}: {problem}")


def _first_line(exc):
    # the library's own message, flattened: the caller's message must stay one line
    from sopcommon.cli import one_line

    return one_line(exc, limit=200)


def read_npz(path, *, keys=(), what="data file"):
    """All arrays of the ``.npz`` at ``path`` (no pickles), refusing a damaged or incomplete file.

    ``keys`` are the arrays the reader needs; a file without one of them raises
    :class:`DataFileError` naming the file and the missing keys (``what`` says what the file is).
    """
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, f"no such {what}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {key: z[key] for key in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        # BadZipFile: truncated / not a zip; ValueError: object arrays (pickles) or a bad header
        raise DataFileError(path, f"damaged or not a {what} ({_first_line(exc)})") from exc
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DataFileError(path, f"not a {what}: missing {', '.join(missing)} "
                                  f"(has {', '.join(sorted(arrays)) or 'nothing'})")
    return arrays


def read_json(path, *, what="JSON file", text=None):
    """The parsed JSON of ``path`` (or of ``text`` read from it); :class:`DataFileError` naming the file
    when it is missing, not UTF-8 or not JSON."""
    import json

    path = Path(path)
    try:
        if text is None:
            text = path.read_bytes().decode("utf-8")
        return json.loads(text)
    except FileNotFoundError as exc:
        raise DataFileError(path, f"no such {what}") from exc
    except UnicodeDecodeError as exc:
        raise DataFileError(path, f"damaged {what}: not UTF-8 text (byte {exc.start})") from exc
    except ValueError as exc:   # JSONDecodeError
        raise DataFileError(path, f"damaged {what}: not JSON ({_first_line(exc)})") from exc


def check_table(path, table, columns, *, what="table", min_rows=1):
    """Refuse a column table (dict name -> 1-D array) that cannot be the ``what`` it should be.

    ``columns`` maps each required column to its kind: ``"number"`` (int or float, finite or not),
    ``"int"`` or ``"str"`` (anything). Every column must be 1-D and of one length, at least
    ``min_rows`` rows long. Returns ``table``; raises :class:`DataFileError` naming ``path``.
    """
    missing = [c for c in columns if c not in table]
    if missing:
        raise DataFileError(path, f"not a {what}: missing column(s) {', '.join(missing)}"
                                  " (a table of another figure, or damaged)")
    lengths = {c: np.shape(table[c]) for c in columns}
    if any(len(shape) != 1 for shape in lengths.values()) or len({s[0] for s in lengths.values()}) != 1:
        raise DataFileError(path, f"damaged {what}: columns of different lengths")
    n = next(iter(lengths.values()))[0] if lengths else 0
    if n < min_rows:
        raise DataFileError(path, f"empty {what}: {n} row(s), at least {min_rows} needed; recompute it")
    for c, kind in columns.items():
        dtype = np.asarray(table[c]).dtype
        ok = {"number": dtype.kind in "iufb", "int": dtype.kind in "iub", "str": True}[kind]
        if not ok:
            raise DataFileError(path, f"damaged {what}: column {c} is not {'an integer' if kind == 'int' else 'a number'}"
                                      " in every row")
    return table
