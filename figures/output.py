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

A rerun keeps the published data file when its own agrees with it to round-off
(:func:`data_agree`, :data:`RTOL` and :data:`ATOL`): the staged file is replaced by a copy of the
published one before drawing, so data, png and pdf come back byte for byte and a checkout stays
clean on another machine whose BLAS rounds differently.  No fixed print precision could do that:
a value that moves by 1e-8 crosses a rounding boundary of any format now and then, and the
solver-noise columns (residuals, gaps, errors of exact recoveries, ~1e-12) move by up to 100 %.

The pictures are kept the same way: matplotlib's bytes depend on its version and fontTools' (the
PDF font subsets differ between releases; neither is pinned), so a redraw on another machine would
change every tracked pdf although nothing it shows changed.  Each png and pdf carries a stamp
(:func:`drawing_stamp`: the SHA-256 of its data file and of the source of the figure's module and
of ``figures/style.py``); when the published png and pdf both carry the stamp the
drawing would get, they are copied instead of drawn (:func:`keep_pictures`).  A change of the
data or of the drawing code changes the stamp, and the figure is redrawn.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from sopcommon import lock_folder, remove_stale_temporaries

__all__ = ["FigureError", "locked_folder", "recover", "staging_folder", "publish", "data_agree",
           "drawing_stamp", "picture_stamp", "keep_pictures", "RTOL", "ATOL"]

# Round-off of a rerun, measured on Figures 2-4 between two runs of the main job whose batches
# differ (BLAS summation order, as between machines): numbers of size >= 1e-6 moved by <= 5.2e-8
# relative (the batched solver is certified to 1e-7; mu by 1.5e-10), solver-noise numbers below
# 1e-6 (residuals, gaps, errors of exact recoveries) by <= 2.7e-11 absolute.  RTOL and ATOL sit
# 20x and 37x above those, and far below what a figure shows (success is eps < 1e-3; flags,
# integers and strings must match exactly).
RTOL = 1e-6
ATOL = 1e-9

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


def data_agree(new, old, *, rtol=RTOL, atol=ATOL):
    """Whether data files ``new`` and ``old`` hold the same data up to round-off.

    Identical bytes agree.  Two ``.csv`` tables (read by :func:`soptheory.phase.load_table`) or
    two ``.npz`` files agree when they have the same columns (arrays) in the same order, of the
    same shapes and kinds, every float within ``|a - b| <= atol + rtol * max(|a|, |b|)`` (NaN
    matches NaN, an infinity only itself) and everything else (integers, flags, strings) equal.
    Any other pair, or a file that cannot be read as its kind, does not agree.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from soptheory.phase import save_table
    >>> d = Path(tempfile.mkdtemp())
    >>> x = np.array([0.25, 3e-12, np.nan])
    >>> a = save_table({"x": x, "ok": np.array([True, False, True])}, d / "a.csv")
    >>> b = save_table({"x": x * (1 + 1e-9) + 1e-11, "ok": np.array([True, False, True])}, d / "b.csv")
    >>> data_agree(b, a), a.read_bytes() == b.read_bytes()
    (True, False)
    """
    new, old = Path(new), Path(old)
    try:
        if new.read_bytes() == old.read_bytes():
            return True
        if new.suffix != old.suffix:
            return False
        if new.suffix == ".csv":
            from soptheory.phase import load_table

            a, b = load_table(new), load_table(old)
        elif new.suffix == ".npz":
            with np.load(new, allow_pickle=False) as za, np.load(old, allow_pickle=False) as zb:
                a = {k: za[k] for k in za.files}
                b = {k: zb[k] for k in zb.files}
        else:
            return False
    except Exception:  # noqa: BLE001  (unreadable or not of its kind: publish the new file)
        return False
    if list(a) != list(b):
        return False
    return all(_arrays_agree(np.asarray(a[k]), np.asarray(b[k]), rtol, atol) for k in a)


def _arrays_agree(a, b, rtol, atol):
    if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
        return False
    if a.dtype.kind not in "fc":
        return bool(np.array_equal(a, b))
    with np.errstate(invalid="ignore", over="ignore"):   # inf - inf: NaN, caught by a == b
        close = np.abs(a - b) <= atol + rtol * np.maximum(np.abs(a), np.abs(b))
    return bool(np.all(close | (a == b) | (np.isnan(a) & np.isnan(b))))


def _move_out(committed, folder):
    manifest = committed / MANIFEST
    names = manifest.read_text().split() if manifest.is_file() else []
    for name in names:
        if (committed / name).exists():    # a recovered folder may have moved some already
            os.replace(committed / name, folder / name)
    shutil.rmtree(committed)


# -- pictures kept when nothing they show changed --------------------------------------------------


def drawing_stamp(figure, data_path):
    """SHA-256 (hex) of what ``figure``'s drawing depends on in this repository.

    The bytes of ``data_path`` and the source files of ``figure``'s module and of
    ``figures/style.py``: a ``plot`` reads only its data file and draws with its module's code
    and the shared style (the other ``figures`` modules it uses are settings that shape the data
    too).  Not the versions of matplotlib and the fonts: they change the bytes of a drawing, not
    what it shows.  Helpers of ``compute`` are left out on purpose, so that a change to them
    redraws nothing whose data agree.
    """
    sources = sorted({Path(figure.__file__).resolve(), Path(__file__).with_name("style.py").resolve()})
    h = hashlib.sha256()
    for chunk in [Path(data_path).read_bytes()] + [p.name.encode() + b"\0" + p.read_bytes() for p in sources]:
        h.update(struct.pack("<Q", len(chunk)) + chunk)   # length-prefixed: no two inputs hash alike
    return h.hexdigest()


_PDF_STAMP = re.compile(rb"/Keywords \(sop-figure ([0-9a-f]{64})\)")


def picture_stamp(path):
    """The stamp :func:`figures.style.save_figure` wrote into a png or pdf, or None (no stamp,
    another kind of file, unreadable)."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    if path.suffix == ".pdf":
        found = _PDF_STAMP.findall(blob)
        return found[-1].decode() if len(found) == 1 else None
    if path.suffix != ".png" or not blob.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos = 8
    while pos + 8 <= len(blob):   # chunks: length (4 bytes, big-endian), type, data, CRC
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        data = blob[pos + 8:pos + 8 + length]
        if kind == b"tEXt" and data.startswith(b"sop-figure\0"):
            return data.split(b"\0", 1)[1].decode("latin-1")
        if kind in (b"IDAT", b"IEND"):   # matplotlib writes its text chunks before the image
            return None
        pos += 12 + length
    return None


def keep_pictures(figure, folder, stage, stamp):
    """Copy ``figure``'s published png and pdf from ``folder`` into ``stage`` when both carry
    ``stamp``; return their names, or ``[]`` when the figure must be drawn."""
    names = [f"{figure.NAME}.png", f"{figure.NAME}.pdf"]
    if not all(picture_stamp(Path(folder) / name) == stamp for name in names):
        return []
    for name in names:
        shutil.copyfile(Path(folder) / name, Path(stage) / name)
    return names
