"""One exclusive lock on an output folder, shared by sopdeep's run folders and the figures' output
folder: two processes never write into the same folder, and leftovers of killed processes found
while holding the lock are safe to remove (:func:`sopcommon.files.remove_stale_temporaries`).

The lock is ``fcntl.flock`` (POSIX; elsewhere no lock is taken), non-blocking: a held lock is
reported at once, never waited for. It is released when the descriptor is closed, so a killed
process never leaves a folder locked.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock
    fcntl = None

__all__ = ["FolderLockedError", "lock_folder"]


class FolderLockedError(RuntimeError):
    """Another process holds the lock of ``folder`` (on the file ``target``)."""

    def __init__(self, folder, target):
        self.folder, self.target = Path(folder), Path(target)
        super().__init__(f"{self.folder} is in use by another process (it holds the lock "
                         f"{self.target}); wait for it to finish or choose another folder")


@contextmanager
def lock_folder(folder, *, lock_file=None, locked_error=FolderLockedError):
    """Create ``folder`` if needed and hold an exclusive lock on it for the ``with`` block.

    Parameters
    ----------
    folder : str or Path
        The folder (created with its parents).
    lock_file : str, optional
        Lock this file inside ``folder`` (created, never removed: unlinking a lock file races);
        None locks the folder itself (nothing is written into it).
    locked_error : callable, default FolderLockedError
        ``locked_error(folder, target)`` gives the exception raised, at once, when another process
        holds the lock (each caller names its own error and what to do).

    Raises
    ------
    OSError
        When ``folder`` or the lock file cannot be created or opened (raised before the block runs).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield folder
        return
    target = folder if lock_file is None else folder / lock_file
    # a folder is opened read-only (the only way to open one); a lock file read-write, so that
    # flock also works where it is emulated with fcntl record locks (NFS)
    fd = os.open(target, os.O_RDONLY) if lock_file is None else os.open(target, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise locked_error(folder, target) from None
        yield folder
    finally:
        os.close(fd)  # releases the lock
