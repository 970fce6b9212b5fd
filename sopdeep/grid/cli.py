"""Command line of the grid runner (:mod:`sopdeep.grid`): ``sop-grid`` / ``python -m sopdeep.grid``.

Examples::

    sop-grid table1 --scale fast --dry-run                     # every cell, its config and status
    sop-grid table1 --scale fast --methods ce,sop --settings sym40 --datasets cifar100 \\
        --data-dir ../shared/data --cache-dir runs/cache --out runs/grid/table1-fast
    sop-grid table4 --scale paper --data-dir /data --dask tcp://scheduler:8786 --gpus-per-cell 1

Exit status: 0 done; 1 a cell or the grid failed (one line); 2 the command line was refused (one
line); 130 interrupted (finished cells and the table are kept; the same command resumes).
Failures print one line; ``--debug`` (or ``SOP_DEBUG=1``) shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from sopcommon.cli import debug_from_env, fail, one_line, quiet_broken_pipe
from sopdeep import grid

__all__ = ["main", "build_parser"]

PROG = "sop-grid"
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    presets = "; ".join(f"{name}: {spec['about']}" for name, spec in grid.GRID_PRESETS.items())
    p = argparse.ArgumentParser(prog=PROG, description="Run a table of the paper as a resumable grid of run folders "
                                                       "and write it beside the paper's numbers.",
                                epilog=f"presets: {presets}")
    p.add_argument("preset", nargs="?", help="grid preset (--list shows them)")
    p.add_argument("--scale", default="fast", help="fast (the CPU fast recipe, %d epochs) or paper (Table A.1; a GPU)"
                   % grid.FAST_EPOCHS)
    p.add_argument("--data-dir", default="", help="folder holding cifar10-jpeg/, cifar100-png/, cifar-n/ "
                                                  "(paper scale with --images original: the CIFAR pickles' root)")
    p.add_argument("--cache-dir", default="runs/cache", help="decoded npz caches of the exports")
    p.add_argument("--out", default=None, help="the grid's folder (default runs/grid/PRESET-SCALE)")
    p.add_argument("--datasets", default=None, help="comma-separated subset of the preset's datasets")
    p.add_argument("--settings", default=None, help="comma-separated subset of the noise settings")
    p.add_argument("--methods", default=None, help="comma-separated methods (the preset's, or any registered)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (each also the label noise's seed)")
    p.add_argument("--epochs", type=int, default=None, help="override every cell's epochs (recorded)")
    p.add_argument("--images", default=None, help="export (default at fast scale) or original (paper scale)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda for every cell")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a TrainConfig setting of every cell, value as JSON or a string (repeatable)")
    p.add_argument("--jobs", type=int, default=1, help="local processes, one cell each (default 1: in this process)")
    p.add_argument("--dask", default=None, metavar="ADDRESS", help="a Dask scheduler (tcp://host:8786): a task per cell")
    p.add_argument("--gpus-per-cell", type=int, default=0, help="with --dask: the GPU resource each cell takes")
    p.add_argument("--runs", action="append", default=[], metavar="DIR",
                   help="folder of runs started elsewhere: a finished run with a cell's config is adopted (repeatable)")
    p.add_argument("--import-rows", action="append", default=[], metavar="CSV",
                   help="a results.csv of experiments/cifar10_full_scale.py: its rows stand in for cells not done")
    p.add_argument("--dry-run", action="store_true", help="print every cell, its status and config; train nothing")
    p.add_argument("--table-only", action="store_true",
                   help="write the table of the cells done (adopting --runs) and train nothing")
    p.add_argument("--list", action="store_true", help="print the grid presets and exit")
    p.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    return p


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise grid.GridError(f"--set must look like KEY=VALUE, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _cells(args):
    overrides = _overrides(args.overrides)
    if args.device is not None:
        overrides["device"] = args.device
    return grid.grid_cells(args.preset, scale=args.scale, data_dir=args.data_dir, cache_dir=args.cache_dir,
                           datasets=args.datasets, settings=args.settings, methods=args.methods, seeds=args.seeds,
                           epochs=args.epochs, images=args.images, overrides=overrides)


def _dry_run(cells, out, runs) -> int:
    adoptable = grid.find_runs(runs) if runs else {}
    counts: dict[str, int] = {}
    for i, cell in enumerate(cells, 1):
        entry = dict(cell=i, dataset=cell.dataset, setting=cell.setting, method=cell.method, seed=cell.seed,
                     paper=cell.paper.mean if cell.paper else None)
        if cell.missing:
            status, folder, config = f"unavailable ({cell.missing})", None, dict(cell.overrides)
        else:
            cfg = grid.cell_config(cell, out)
            folder, config = cfg.out, cfg.to_dict()
            try:
                status = grid.cell_status(cfg)
            except grid.GridError as exc:
                status = f"conflict ({one_line(exc, limit=200)})"
            if status == "new" and grid.config_key(cfg) in adoptable:
                status = f"new, adopts {adoptable[grid.config_key(cfg)]}"
        counts[status.split(" (")[0].split(",")[0]] = counts.get(status.split(" (")[0].split(",")[0], 0) + 1
        print(json.dumps({**entry, "status": status, "folder": folder, "config": config}, sort_keys=False))
    print(f"{PROG}: {len(cells)} cells: " + ", ".join(f"{n} {s}" for s, n in counts.items()), file=sys.stderr)
    return 0


@quiet_broken_pipe
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or debug_from_env()
    if args.list:
        for name, spec in grid.GRID_PRESETS.items():
            print(f"{name}: {spec['about']} (scales: {', '.join(spec['scales'])}; methods: {', '.join(spec['methods'])})")
        return 0
    if args.preset is None:
        parser.error("name a grid preset (--list shows them)")
    out = Path(args.out or f"runs/grid/{args.preset}-{args.scale}")
    try:
        if args.jobs < 1:
            raise grid.GridError(f"--jobs must be >= 1, got {args.jobs}")
        if args.gpus_per_cell < 0 or (args.gpus_per_cell and not args.dask):
            raise grid.GridError(f"--gpus-per-cell must be >= 0 and goes with --dask, got {args.gpus_per_cell}")
        cells = _cells(args)
        if args.dry_run:
            return _dry_run(cells, out, args.runs)
        needs_data = any(c.overrides.get("dataset") != "synthetic" for c in cells)
        if needs_data and not args.data_dir:
            raise grid.GridError("--data-dir is needed: the folder holding cifar10-jpeg/, cifar100-png/ and cifar-n/ "
                                 "(nothing is downloaded)")
        imported = [row for path in args.import_rows for row in grid.import_full_scale_rows(path)]
    except (grid.GridError, ValueError) as exc:
        if debug:
            raise
        fail(PROG, one_line(exc))
        return EXIT_USAGE
    title = f"{args.preset} at {args.scale} scale: {grid.GRID_PRESETS[args.preset]['about']}"
    try:
        grid.run_grid(cells, out, jobs=args.jobs, dask=args.dask, gpus_per_cell=args.gpus_per_cell, runs=args.runs,
                      imported=imported, title=title, command=shlex.join([PROG, *argv]), train=not args.table_only)
    except KeyboardInterrupt:
        if debug:
            raise
        fail(PROG, f"finished cells and the table are kept in {out}; the same command resumes the rest",
             kind="interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001  (one line, not a traceback)
        if debug:
            raise
        fail(PROG, one_line(exc, limit=600))
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
