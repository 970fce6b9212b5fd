"""The plumbing that soptheory, sopdeep and figures share: a leaf that imports none of them.

* :func:`atomic_path`, :func:`atomic_write_bytes`, :func:`atomic_savez`: a crash never leaves a half-written file;
* :func:`check_random_state`: None, int, SeedSequence or Generator to a numpy Generator.
"""

from sopcommon.files import atomic_path, atomic_savez, atomic_write_bytes
from sopcommon.seeding import check_random_state

__all__ = ["atomic_path", "atomic_savez", "atomic_write_bytes", "check_random_state"]
