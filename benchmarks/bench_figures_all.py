"""Benchmark: wall time of the full regeneration ``python -m figures all`` (paper scale).

Runs ``python -m figures all --out <tmp> --no-cache --no-progress`` in a subprocess
(so imports and worker start-up are included) and prints its wall time with the per-figure
times the command reports, plus the machine's load average before and after (the target, under
60 s on 2 cores, assumes the cores are not shared with other work).

Run from the repository root:  python benchmarks/bench_figures_all.py [--jobs N]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--solver", default="batched")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "figures", "all", "--out", out, "--no-cache",
               "--no-progress", "--solver", args.solver]
        if args.jobs:
            cmd += ["--jobs", str(args.jobs)]
        print("load average before:", os.getloadavg(), "| cores:", os.cpu_count())
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        print(proc.stderr.strip())
        if proc.returncode:
            raise SystemExit(f"python -m figures failed with exit code {proc.returncode}")
        print("load average after:", os.getloadavg())
        size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)
                   if os.path.isfile(os.path.join(out, f)))
        print(f"python -m figures all (solver={args.solver}): {wall:.1f} s wall, "
              f"outputs {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
