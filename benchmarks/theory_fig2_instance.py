"""Measurements on the Figure 2 instance: make_problem(20, 40, 3, 3, random_state=0), gamma = e^-8.

Prints (a) the wall time of flow_limit for 30 log-spaced alpha in [4, 4000] (best of 5, after
a warm-up call), (b) for gradient_descent with the automatic (adaptive) step, per alpha: the
converged flag, iterations, final step, final ||r||, and the relative difference
||a - b|| / max(||a||, ||b||) of theta and s to the flow limit, plus its total wall time; (c) a
summary of the same on random_state 1-5.

Run from the repository root:  python benchmarks/theory_fig2_instance.py
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from soptheory import flow_limit, gradient_descent, make_problem, relative_difference  # noqa: E402


def main():
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options; --help works
    prob = make_problem(20, 40, 3, 3, random_state=0)
    gamma = np.exp(-8.0)
    alphas = np.logspace(np.log10(4.0), np.log10(4000.0), 30)

    flow_limit(prob.J, prob.y, alphas, gamma)  # warm-up
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        fl = flow_limit(prob.J, prob.y, alphas, gamma)
        times.append(time.perf_counter() - t0)
    print(f"(a) flow_limit, 30 alpha in [4, 4000], batched: best {min(times):.4f} s, "
          f"median {np.median(times):.4f} s over 5 runs")
    print(f"    all converged: {bool(np.all(fl.converged))}; Newton iterations "
          f"{fl.n_iter.min()}-{fl.n_iter.max()}; max ||r_inf||_inf = {fl.grad_norm.max():.2e}")

    t0 = time.perf_counter()
    gd = gradient_descent(prob.J, prob.y, alphas, gamma)
    elapsed = time.perf_counter() - t0
    rt = relative_difference(gd.theta, fl.theta)
    rs = relative_difference(gd.s, fl.s)
    print(f"(b) gradient_descent, automatic step, batched: {elapsed:.2f} s total; "
          f"all converged: {bool(np.all(gd.converged))}")
    print(f"{'alpha':>9} {'conv':>5} {'iters':>8} {'tau_last':>9} {'||r||':>8} "
          f"{'rho_theta':>9} {'rho_s':>9}")
    for i, a in enumerate(alphas):
        print(f"{a:9.2f} {bool(gd.converged[i])!s:>5} {gd.n_iter[i]:8d} {gd.tau[i]:9.2e} "
              f"{np.linalg.norm(gd.residual[i]):8.1e} {rt[i]:9.2e} {rs[i]:9.2e}")
    print(f"max rho_theta = {rt.max():.2e}, max rho_s = {rs.max():.2e}")

    print("(c) the same on other draws of the Figure 2 set-up (random_state 1-5):")
    for seed in range(1, 6):
        p = make_problem(20, 40, 3, 3, random_state=seed)
        t0 = time.perf_counter()
        f = flow_limit(p.J, p.y, alphas, gamma)
        tf = time.perf_counter() - t0
        t0 = time.perf_counter()
        g = gradient_descent(p.J, p.y, alphas, gamma)
        tg = time.perf_counter() - t0
        print(f"    seed {seed}: flow {tf:.3f} s (converged {bool(np.all(f.converged))}); GD {tg:.2f} s, "
              f"converged {int(np.sum(g.converged))}/30, iterations {g.n_iter.min()}-{g.n_iter.max()}, "
              f"max rho_theta {relative_difference(g.theta, f.theta).max():.2e}, "
              f"max rho_s {relative_difference(g.s, f.s).max():.2e}")


if __name__ == "__main__":
    main()
