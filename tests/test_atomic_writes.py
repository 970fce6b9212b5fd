import os

import pytest

from sopcommon import atomic_path, atomic_write_bytes


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    atomic_write_bytes(target, b"complete")
    with pytest.raises(RuntimeError, match="killed mid-write"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half-writ")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_successful_write_replaces_the_file_with_the_usual_mode(tmp_path):
    target = tmp_path / "cache.npz"
    atomic_write_bytes(target, b"v1")
    with atomic_path(target, suffix=".tmp.npz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".tmp.npz") and tmp.name.startswith(".")
        tmp.write_bytes(b"v2")
    assert target.read_bytes() == b"v2"
    mask = os.umask(0)
    os.umask(mask)
    # mkstemp creates 0600; published files get what open() would give them
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.npz"]
