"""Command line: ``sop-figures {fig2,fig3,fig4,all} [--quick] [--out DIR] [--jobs N] ...``.

Regenerates the paper's Figures 2-4 (png and pdf) with the data file of each figure
(``fig2_data.npz``, ``fig3_data.csv``, ``fig4_data.csv``) into ``--out``.  Phase grids are cached
per cell under ``--cache`` (default ``<out>/.cache``), so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]


def build_parser():
    """The argument parser of ``sop-figures``."""
    ap = argparse.ArgumentParser(
        prog="sop-figures",
        description="Regenerate Figures 2-4 of Liu et al. (ICML 2022), long version Sec. 3.2-3.3.")
    ap.add_argument("figure", choices=["fig2", "fig3", "fig4", "all"])
    ap.add_argument("--quick", action="store_true", help="small grids (seconds), for tests")
    ap.add_argument("--out", default="figures", help="output folder (default: figures)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="joblib workers for the phase grids (default: all cores)")
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
    return ap


def main(argv=None):
    """Entry point of ``sop-figures`` and ``python -m soptheory.figures``; returns 0 on success."""
    args = build_parser().parse_args(argv)
    if args.jobs is not None and (args.jobs == 0 or args.jobs < -1):
        raise SystemExit("--jobs must be a positive integer or -1")
    n_jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = None if args.no_cache else Path(args.cache) if args.cache else out / ".cache"
    from . import fig2, fig3, fig4

    backend, client = None, None
    if args.dask:
        from distributed import Client

        client = Client(args.dask)
        backend = "dask"
    todo = ["fig2", "fig3", "fig4"] if args.figure == "all" else [args.figure]
    progress = not args.no_progress
    t_all = time.perf_counter()
    for name in todo:
        t0 = time.perf_counter()
        if name == "fig2":
            paths = fig2.make(out, quick=args.quick, method=args.method, solver=args.solver,
                              progress=progress)
        else:
            mod = fig3 if name == "fig3" else fig4
            paths = mod.make(out, quick=args.quick, solver=args.solver, n_jobs=n_jobs,
                             cache_dir=cache, progress=progress, backend=backend)
        print(f"{name}: {time.perf_counter() - t0:.1f} s -> " + ", ".join(str(p) for p in paths),
              file=sys.stderr)
    print(f"sop-figures {args.figure}: {time.perf_counter() - t_all:.1f} s total", file=sys.stderr)
    if client is not None:
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
