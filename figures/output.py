"""The output folder of ``python -m figures``: one run at a time, each figure published as a set.

A figure's files (data, png, pdf) are written into a staging folder ``.<name>.staging-XXXX``
beside the targets, with a ``MANIFEST`` listing them in publication order (data first).  When all
are written, the folder is renamed to ``.<name>.publish-XXXX``: that rename is the commit point.
The files are then moved onto their targets with :func:`os.replace` and the folder removed.  A
run killed before the commit leaves the previous set untouched (its staging folder is deleted by
the next run); a run killed during the moves leaves the committed folder, which the next run
finishes first (:func:`recover`), so a set is never left half from one run and half from another
once any later run has started.  An exclusive lock on the folder (``flock`` on the directory;
POSIX only, no lock elsewhere) keeps two runs apart and makes every leftover of the
kinds above, and every ``.*.tmp`` file of :func:`sopcommon.atomic_path`, safe to remove.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock
    fcntl = None

__all__ = ["FigureError", "locked_folder", "recover", "staging_folder", "publish"]

MANIFEST = "MANIFEST"
_STAGING = ".staging-"
_COMMITTED = ".publish-"


class FigureError(RuntimeError):
    """A failure the command line reports as one line (the message says what to do)."""


@contextmanager
def locked_folder(folder):
    """Create ``folder`` if needed and hold an exclusive lock on it for the ``with`` block.

    Raises :class:`FigureError` at once (no waiting) when another process holds the lock.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield folder
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FigureError(f"another run is writing into {folder}; wait for it to finish or "
                              "choose another folder") from None
        yield folder
    finally:
        os.close(fd)                       # closing releases the lock


def recover(folder):
    """Finish the sets a killed run committed, delete its staging folders and ``.*.tmp`` files.

    Call it only while holding :func:`locked_folder` on ``folder``. Returns the names removed or
    finished (for the log).
    """
    done = []
    for entry in sorted(Path(folder).iterdir()):
        if not entry.name.startswith("."):
            continue
        if entry.is_dir() and _COMMITTED in entry.name:
            _move_out(entry, Path(folder))
            done.append(f"finished {entry.name}")
        elif entry.is_dir() and _STAGING in entry.name:
            shutil.rmtree(entry)
            done.append(f"removed {entry.name}")
        elif entry.is_file() and entry.name.endswith(".tmp"):
            entry.unlink()
            done.append(f"removed {entry.name}")
    return done


@contextmanager
def staging_folder(folder, name):
    """Yield a new empty staging folder for figure ``name`` inside ``folder``; removed on exit."""
    stage = Path(tempfile.mkdtemp(dir=folder, prefix=f".{name}{_STAGING}"))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)   # gone already once published


def publish(stage, folder, files):
    """Publish ``files`` (names in ``stage``, in that order) into ``folder`` as one set.

    Returns the published paths. Every file must exist in ``stage``.
    """
    stage, folder = Path(stage), Path(folder)
    missing = [f for f in files if not (stage / f).is_file()]
    if missing:
        raise FigureError(f"{stage.name} lacks {', '.join(missing)}: nothing was published")
    (stage / MANIFEST).write_text("\n".join(files) + "\n")
    committed = stage.with_name(stage.name.replace(_STAGING, _COMMITTED, 1))
    os.replace(stage, committed)           # the commit point
    _move_out(committed, folder)
    return [folder / f for f in files]


def _move_out(committed, folder):
    manifest = committed / MANIFEST
    names = manifest.read_text().split() if manifest.is_file() else []
    for name in names:
        if (committed / name).exists():    # a recovered folder may have moved some already
            os.replace(committed / name, folder / name)
    shutil.rmtree(committed)
