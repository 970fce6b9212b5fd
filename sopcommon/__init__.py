"""The plumbing that soptheory, sopdeep and figures share: a leaf that imports none of them.

* :func:`atomic_path`, :func:`atomic_write_bytes`, :func:`atomic_savez`: a crash never leaves a half-written file;
  :func:`remove_stale_temporaries` removes those a killed writer left;
* :func:`lock_folder`: one process at a time writes into a folder (:class:`FolderLockedError`);
* :func:`check_random_state`: None, int, SeedSequence or Generator to a numpy Generator;
* :mod:`sopcommon.cli`: the one-line failure path of both command lines.
"""

from sopcommon.files import atomic_path, atomic_savez, atomic_write_bytes, remove_stale_temporaries
from sopcommon.locking import FolderLockedError, lock_folder
from sopcommon.seeding import check_random_state

__all__ = ["atomic_path", "atomic_savez", "atomic_write_bytes", "remove_stale_temporaries", "lock_folder",
           "FolderLockedError", "check_random_state"]
