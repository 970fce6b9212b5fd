"""The output folder of ``python -m figures``: one run at a time, each figure published as a set.

A figure's files (data, png, pdf) are written into a staging folder ``.<name>.staging-XXXX``
beside the targets, with a ``MANIFEST`` listing them in publication order (data first).  When all
are written, the folder is renamed to ``.<name>.publish-XXXX``: that rename is the commit point.
The files are then moved onto their targets with :func:`os.replace` and the folder removed.  A
run killed before the commit leaves the previous set untouched (its staging folder is deleted by
the next run); a run killed during the moves leaves the committed folder, which the next run
finishes first (:func:`recover`), so a set is never left half from one run and half from another
once any later run has started.  An exclusive lock on the folder (:func:`sopcommon.lock_folder`
on the directory; POSIX only, no lock elsewhere) keeps two runs apart and makes every leftover
of the kinds above, and every ``.*.tmp`` file of :func:`sopcommon.atomic_path`, safe to remove.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sopcommon import lock_folder, remove_stale_temporaries

__all__ = ["FigureError", "locked_folder", "recover", "staging_folder", "publish"]

MANIFEST = "MANIFEST"
_STAGING = ".staging-"
_COMMITTED = ".publish-"


class FigureError(RuntimeError):
    """A failure the command line reports as one line (the message says what to do)."""


def locked_folder(folder):
    """Create ``folder`` if needed and hold an exclusive lock on it for the ``with`` block.

    :func:`sopcommon.lock_folder` on the folder itself (no lock file among the outputs); raises
    :class:`FigureError` at once (no waiting) when another process holds the lock.
    """
    return lock_folder(folder, locked_error=_locked)


def _locked(folder, target):
    return FigureError(f"another run is writing into {folder}; wait for it to finish or "
                       "choose another folder")


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
    # every writer here (figures, cell cache) uses atomic_path's default suffix
    done += [f"removed {path.name}" for path in remove_stale_temporaries(folder)]
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
