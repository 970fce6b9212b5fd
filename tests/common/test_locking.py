"""sopcommon.lock_folder and remove_stale_temporaries: the one folder lock and the one clean-up
behind sopdeep's run folders and the figures' output folder."""

import subprocess
import sys
import textwrap

import pytest

from sopcommon import FolderLockedError, lock_folder, remove_stale_temporaries
from sopcommon.files import atomic_path

pytest.importorskip("fcntl")   # POSIX: elsewhere no lock is taken


def _held_elsewhere(folder, lock_file=None):
    """Try the lock from another process (flock locks belong to the open file, so a second open in
    this process would conflict too; a process is what a real second run is)."""
    code = textwrap.dedent(f"""
        from sopcommon import FolderLockedError, lock_folder
        try:
            with lock_folder({str(folder)!r}, lock_file={lock_file!r}):
                print("free")
        except FolderLockedError as exc:
            print("held", exc.target)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.parametrize("lock_file", [None, ".lock"])
def test_a_held_lock_is_refused_at_once_and_released_on_exit(tmp_path, lock_file):
    folder = tmp_path / "new" / "out"
    with lock_folder(folder, lock_file=lock_file) as got:
        assert got == folder and folder.is_dir()                   # created
        target = folder if lock_file is None else folder / lock_file
        assert _held_elsewhere(folder, lock_file) == ["held", str(target)]
    assert _held_elsewhere(folder, lock_file) == ["free"]
    # the folder lock writes nothing into the folder; a lock file stays (unlinking one races)
    assert sorted(p.name for p in folder.iterdir()) == ([] if lock_file is None else [lock_file])


def test_the_caller_names_its_own_error(tmp_path):
    class Busy(Exception):
        pass

    with lock_folder(tmp_path):
        with pytest.raises(Busy, match=str(tmp_path)):
            with lock_folder(tmp_path, locked_error=lambda folder, target: Busy(f"{folder} busy")):
                pass
        with pytest.raises(FolderLockedError, match="in use by another process"):
            with lock_folder(tmp_path):
                pass


def test_an_error_inside_the_block_passes_through_and_releases_the_lock(tmp_path):
    with pytest.raises(KeyError):
        with lock_folder(tmp_path):
            raise KeyError("the block's own")
    with lock_folder(tmp_path):
        pass


def test_stale_temporaries_of_atomic_writes_are_removed(tmp_path):
    for name in (".config.json.k1ll3d.tmp", ".samples.npz.x9.tmp", ".notes.tmp", "keep.tmp", "data.csv"):
        (tmp_path / name).write_text("x")
    (tmp_path / ".dir.tmp").mkdir()
    assert [p.name for p in remove_stale_temporaries(tmp_path, ["config.json", "samples.npz"])] == \
        [".config.json.k1ll3d.tmp", ".samples.npz.x9.tmp"]             # only those of the names given
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".notes.tmp"]   # every hidden .tmp file
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dir.tmp", "data.csv", "keep.tmp"]


def test_the_clean_up_matches_the_names_atomic_path_uses(tmp_path):
    target = tmp_path / "fig[1].npz"            # a name with glob characters
    with atomic_path(target, suffix=".tmp.npz") as tmp:
        name = tmp.name                         # what a SIGKILL at this point leaves behind
        tmp.write_bytes(b"v1")
    stale = tmp_path / name
    stale.write_bytes(b"half")                  # as if that writer had been killed
    assert remove_stale_temporaries(tmp_path, [target.name], suffix=".tmp") == []
    assert remove_stale_temporaries(tmp_path, [target.name], suffix=".tmp.npz") == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
