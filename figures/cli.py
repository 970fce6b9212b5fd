"""Command line: ``python -m figures {NAME,paper,bridge,all} [--out DIR] [--quick] [--redraw] ...``.

Run from the repository root.  For each figure of :data:`figures.registry.FIGURES` asked for (one
name, or a group of :data:`figures.registry.GROUPS`: ``paper`` = Figures 2-4, ``bridge`` = the
deep-network figures, ``all``): compute its data file, then draw png and pdf from that file, and
publish the three as one set into ``--out`` (default ``results/figures``; see
:mod:`figures.output`).  ``--redraw`` draws from the data files already in ``--out`` without
computing.  A deep figure (``DEEP = True``: it trains networks) is redrawn from its data file in
``--out`` unless ``--deep compute``, which trains the runs missing from ``--runs-dir`` (default
``runs/figures``; finished runs are reused) on the data in ``--data-dir`` (default
``../shared/data``).  Phase grids are cached per cell under ``--cache``
(default ``<out>/.cache``), so an interrupted run resumes.  A computed data file that agrees
with the one in ``--out`` to round-off keeps that file's bytes (:func:`figures.output.data_agree`),
and a figure whose data and drawing code are unchanged keeps its png and pdf
(:func:`figures.output.keep_pictures`), so the main job leaves a checkout clean on any machine of
its kind, whatever its matplotlib version.  After the arguments are
parsed, every failure is one line ``figures: error: ...`` on stderr and a non-zero exit status;
``--debug`` (or the environment variable ``SOP_DEBUG=1``) prints the traceback too
(:mod:`sopcommon.cli`).

Each figure's ``compute`` receives the options of :func:`figure_options` that it declares as
keyword parameters, and only those (:func:`options_for`); it takes no ``**kwargs``, so an option
it does not declare is a ``TypeError``, never silently ignored.
"""

from __future__ import annotations

import argparse
import errno
import inspect
import os
import shutil
import sys
import time
import traceback
from contextlib import ExitStack
from pathlib import Path

from sopcommon.files import DataFileError
from sopcommon.cli import debug_from_env, fail, one_line, quiet_broken_pipe

from .output import (ATOL, RTOL, FigureError, data_agree, drawing_stamp, keep_pictures, locked_folder,
                     publish, recover, staging_folder)
from .style import stamped
from .registry import FIGURES, GROUPS, is_deep

__all__ = ["main", "build_parser", "figure_options", "options_for"]

PROG = "figures"


def build_parser():
    """The argument parser of ``python -m figures``."""
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Regenerate the figures of Liu et al. (ICML 2022), long version, with their "
                    "data files. Run from the repository root: python -m figures all")
    ap.add_argument("figure", choices=[*FIGURES, *GROUPS],
                    help="a figure, or a group: paper (Figures 2-4), bridge (deep networks), all")
    ap.add_argument("--out", default="results/figures",
                    help="output folder (default: results/figures)")
    ap.add_argument("--quick", action="store_true", help="small grids (seconds), for tests")
    ap.add_argument("--redraw", action="store_true",
                    help="draw png and pdf from the data files already in --out, compute nothing")
    ap.add_argument("--jobs", dest="n_jobs", type=int, default=None, metavar="N",
                    help="parallel workers: joblib workers of the phase grids, processes training "
                         "the deep runs (default: all cores; -1 all cores; capped at the cores)")
    ap.add_argument("--solver", choices=["batched", "ecos"], default="batched",
                    help="convex solver: the certified batched solver, or CVXPY+ECOS per "
                         "instance (the paper's method)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--gd", dest="method", action="store_const", const="gd",
                   help="Figure 2 from gradient descent (15), the paper's method (default)")
    g.add_argument("--flow", dest="method", action="store_const", const="flow",
                   help="Figure 2 from the exact limit of the gradient flow")
    ap.set_defaults(method="gd")
    ap.add_argument("--cache", default=None, help="cell cache folder (default: <out>/.cache)")
    ap.add_argument("--no-cache", action="store_true", help="do not read or write the cell cache")
    ap.add_argument("--no-progress", action="store_true", help="hide progress bars")
    ap.add_argument("--dask", default=None, metavar="ADDRESS",
                    help="run the phase grids on a dask.distributed scheduler at ADDRESS "
                         "(e.g. tcp://host:8786; needs the 'dask' extra)")
    ap.add_argument("--deep", choices=["redraw", "compute"], default="redraw",
                    help="deep figures (bridge): redraw from their data files in --out (default), "
                         "or compute them, training the runs missing from --runs-dir")
    ap.add_argument("--data-dir", default="../shared/data",
                    help="real data sets for --deep compute (default: ../shared/data)")
    ap.add_argument("--runs-dir", default="runs/figures",
                    help="cached deep runs (default: runs/figures); finished runs are reused")
    ap.add_argument("--debug", action="store_true",
                    help="on failure, print the traceback too (or set SOP_DEBUG=1)")
    return ap


@quiet_broken_pipe  # `python -m figures ... 2>&1 | head`: a quiet exit, not a traceback
def main(argv=None):
    """Entry point of ``python -m figures``; returns the exit status (0 on success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n_jobs is not None and (args.n_jobs == 0 or args.n_jobs < -1):
        parser.error("--jobs must be a positive integer or -1")
    if not args.out.strip():   # "" would be the current folder
        parser.error("--out is empty: name the output folder (default results/figures)")
    cores = os.cpu_count() or 1
    if args.n_jobs is not None and args.n_jobs > cores:
        # more workers than cores only adds processes (each with its own memory): cap, and say so
        _log(f"--jobs {args.n_jobs} capped at {cores}, the cores of this machine")
        args.n_jobs = cores
    debug = args.debug or debug_from_env()
    where = []            # what was being done when a failure came: for the one-line message
    try:
        run(args, where)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        _error("interrupted: the figures published before are complete sets, the others are "
               "unchanged; rerun the same command to resume (finished phase-grid cells are "
               "cached unless --no-cache)")
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        cache = _cache_dir(args) if "computing the data" in where else None
        _error(": ".join([*where, describe(exc, cache=cache)]))
        return 1
    return 0


def run(args, where=None):
    """Compute (unless ``--redraw``), draw and publish the figures ``args`` asks for."""
    where = [] if where is None else where
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FigureError(f"--out {out} is a file, not a folder: choose another --out")
    names = GROUPS.get(args.figure, [args.figure])
    redraw = {name: args.redraw or (is_deep(FIGURES[name]) and args.deep == "redraw")
              for name in names}
    cache = None if all(redraw.values()) else _cache_dir(args)
    options = figure_options(args, cache)
    t_all = time.perf_counter()
    with ExitStack() as stack:
        stack.enter_context(locked_folder(out))
        _recover(out)
        if cache is not None and cache.is_dir() and not _same(cache, out):
            try:    # runs may share a cache (atomic per cell): clean it only when no one uses it
                stack.enter_context(locked_folder(cache))
                _recover(cache)
            except FigureError:
                pass
        missing = [n for n in names if redraw[n] and not (out / FIGURES[n].DATA_FILE).is_file()]
        if missing:
            files = ", ".join(str(out / FIGURES[n].DATA_FILE) for n in missing)
            if args.redraw:
                raise FigureError(f"no data file {files} to redraw from: run without --redraw "
                                  "to compute it")
            raise FigureError(f"no data file {', '.join(FIGURES[n].DATA_FILE for n in missing)} in {out} to redraw from (deep figures are "
                              "redrawn by default): run with --deep compute --data-dir DIR to "
                              "train their networks and compute them (hours on a CPU)")
        if args.dask and not all(redraw.values()):
            from distributed import Client

            stack.enter_context(Client(args.dask))
            options["backend"] = "dask"
        for name in names:
            where[:] = [name]
            t0 = time.perf_counter()
            paths = make_figure(FIGURES[name], out, redraw=redraw[name], where=where, **options)
            _log(f"{name}: {time.perf_counter() - t0:.1f} s -> " + ", ".join(map(str, paths)))
    where.clear()
    _log(f"{PROG} {args.figure}: {time.perf_counter() - t_all:.1f} s total")


def figure_options(args, cache_dir):
    """Every option the command line gives the figures (each figure takes those it declares)."""
    return dict(quick=args.quick, solver=args.solver, method=args.method,
                n_jobs=args.n_jobs if args.n_jobs is not None else (os.cpu_count() or 1),
                cache_dir=cache_dir, progress=not args.no_progress, backend=None,
                data_dir=args.data_dir, runs_dir=args.runs_dir, out_folder=str(Path(args.out)))


def options_for(compute, options):
    """The ``options`` that ``compute`` declares as keyword parameters (all of them when it takes
    ``**options``)."""
    params = inspect.signature(compute).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items()
            if k in params and params[k].kind is not inspect.Parameter.POSITIONAL_ONLY}


def make_figure(figure, out_dir, *, redraw=False, where=None, **options):
    """Compute (unless ``redraw``) and draw one figure module, then publish its files as a set.

    A computed data file that agrees with the one already in ``out_dir`` to round-off
    (:func:`figures.output.data_agree`) is replaced by a copy of it before drawing, so a rerun on
    another machine leaves the published bytes as they were.  The published png and pdf are kept
    too when they carry the stamp of this drawing (:func:`figures.output.keep_pictures`: the same
    data and drawing code), as another matplotlib would draw other bytes.  The caller holds the
    lock on ``out_dir``.  Returns the published paths (data file first; without it when ``redraw``).
    """
    where = [] if where is None else where
    out_dir = Path(out_dir)
    with staging_folder(out_dir, figure.NAME) as stage:
        if redraw:
            data_path, files = out_dir / figure.DATA_FILE, []
        else:
            where.append("computing the data")
            data_path, files = stage / figure.DATA_FILE, [figure.DATA_FILE]
            figure.compute(data_path, **options_for(figure.compute, options))
            where.pop()
            published = out_dir / figure.DATA_FILE
            if published.is_file() and data_agree(data_path, published):
                # the same data to round-off (another machine's BLAS): keep the published bytes
                # and draw from them, so data, png and pdf come back unchanged
                shutil.copyfile(published, data_path)
                _log(f"{figure.NAME}: the data agree with {published} to rtol {RTOL:g}, "
                     f"atol {ATOL:g}: kept it")
        where.append(f"drawing from {data_path}")
        stamp = drawing_stamp(figure, data_path)
        kept = keep_pictures(figure, out_dir, stage, stamp)
        if kept:
            _log(f"{figure.NAME}: data and drawing code unchanged: kept {', '.join(kept)}")
        with stamped(stamp):
            files += kept or [Path(p).name for p in figure.plot(data_path, stage)]
        where[-1] = "publishing"
        paths = publish(stage, out_dir, files)
        where.pop()
    return paths


def describe(exc, *, cache=None):
    """One line naming the failure ``exc`` and what to do about it."""
    if isinstance(exc, FigureError):
        return one_line(str(exc))
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return one_line(f"no space left on device writing {exc.filename or 'the output'}: "
                        "free some space or choose another --out")
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return one_line(f"cannot write {exc.filename}: {exc.strerror}; choose a writable --out")
    if isinstance(exc, OSError) and exc.filename is not None:
        return one_line(f"{exc.strerror or type(exc).__name__}: {exc.filename}; check the path")
    if isinstance(exc, ModuleNotFoundError):
        extra = " '.[dask]'" if exc.name in ("dask", "distributed") else f" {exc.name}"
        return one_line(f"the module {exc.name!r} is not installed: python -m pip install{extra}")
    hint = "--debug shows the traceback"
    if cache is not None:
        hint = (f"if the cell cache {cache} is damaged, delete it or rerun with --no-cache; "
                + hint)
    if isinstance(exc, DataFileError):
        return one_line(f"{exc} ({hint})")  # the message names the file: no class name mid-sentence
    return one_line(f"{type(exc).__name__}: {exc} ({hint})")


def _cache_dir(args):
    if args.no_cache:
        return None
    return Path(args.cache) if args.cache else Path(args.out) / ".cache"


def _recover(folder):
    for line in recover(folder):
        _log(f"{folder}: {line} (left by a killed run)")


def _same(a, b):
    return Path(a).resolve() == Path(b).resolve()


def _log(line):
    print(line, file=sys.stderr)


def _error(message):
    fail(PROG, message, limit=800)


if __name__ == "__main__":
    raise SystemExit(main())
