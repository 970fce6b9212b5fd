"""Benchmark: the batched solver vs CVXPY + ECOS per instance on the Figure 4 workload.

Workload: the 8,000 instances of Figure 4 (N=100, p=150, λ=0.1, r, k ∈ {5,…,100}, 20 trials; the
seeds of ``figures.fig_phase_transition``).  Measured side by side in one run, one process, BLAS limited
to one thread for both:

* batched: :func:`soptheory.solve_convex_batched` on all 8,000 instances, one stack per r (the
  data generation is not timed);
* ECOS: :func:`soptheory.solve_convex` (CVXPY, λ a Parameter, the problem compiled per (J, y),
  ECOS default tolerances: the paper's method) on a random subset of ``--subset`` instances,
  extrapolated to 8,000 (the printout says so);
* accuracy on the same subset against a tight reference (CLARABEL at 1e-12): max relative
  deviation in θ and s of each solver, with an absolute floor 1e-6‖y‖ for s ≈ 0;
* success labels (ε < 1e-3 for θ and for s) of both solvers on the subset, and on all 8,000
  instances when ``--labels-from CSV`` names a table of the full grid solved with ECOS
  (``run_phase(..., solver="ecos")``, e.g. ``python -m figures fig4 --solver ecos``'s fig4_data.csv).

Run from the repository root:  python benchmarks/bench_batched_convex.py [--subset 200]
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from soptheory import kkt_residuals, solve_convex, solve_convex_batched  # noqa: E402
from soptheory.batched_convex import single_threaded_blas  # noqa: E402
from soptheory.convex import SolverInaccurateWarning  # noqa: E402
from figures import fig_phase_transition as fig4  # noqa: E402
from soptheory.phase import CLARABEL_TIGHT, draw_instances, instance_seed, load_table  # noqa: E402


def rel(a, b, floor):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), floor)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--subset", type=int, default=200, help="ECOS / reference subset size")
    ap.add_argument("--seed", type=int, default=0, help="seed of the subset choice")
    ap.add_argument("--labels-from", default=None, help="CSV of the full grid solved with ECOS")
    args = ap.parse_args(argv)
    cfg = fig4.SETUP["full"]
    N, p, lam, trials = cfg["N"], cfg["p"], cfg["lam"], cfg["trials"]
    vals = cfg["values"]
    groups = []
    for r in vals:
        ds = [draw_instances(N, p, r, k, [instance_seed(fig4.BASE_SEED, N, p, r, k, t)
                                         for t in range(trials)]) for k in vals]
        groups.append({name: np.concatenate([d[name] for d in ds]) for name in ds[0]})
    M = sum(len(g["y"]) for g in groups)
    rk = [(r, k, t) for r in vals for k in vals for t in range(trials)]

    with single_threaded_blas():
        t0 = time.perf_counter()
        results = [solve_convex_batched(g["J"], g["y"], lam, factor=g["factor"]) for g in groups]
        t_batched = time.perf_counter() - t0
    theta = np.concatenate([res.theta for res in results])
    s = np.concatenate([res.s for res in results])
    cert = np.concatenate([res.certified for res in results])
    nus = np.concatenate([res.nu for res in results])
    J = np.concatenate([g["J"] for g in groups])
    y = np.concatenate([g["y"] for g in groups])
    th_star = np.concatenate([g["theta_star"] for g in groups])
    s_star = np.concatenate([g["s_star"] for g in groups])

    def labels(th, sv, idx):
        et = np.linalg.norm(th - th_star[idx], axis=-1) / np.linalg.norm(th_star[idx], axis=-1)
        es = np.linalg.norm(sv - s_star[idx], axis=-1) / np.linalg.norm(s_star[idx], axis=-1)
        return et, es

    rng = np.random.default_rng(args.seed)
    sub = np.sort(rng.choice(M, size=min(args.subset, M), replace=False))
    th_e, s_e = np.empty((len(sub), p)), np.empty((len(sub), N))
    with single_threaded_blas(), warnings.catch_warnings():
        warnings.simplefilter("ignore", SolverInaccurateWarning)
        t0 = time.perf_counter()
        for j, i in enumerate(sub):
            sol = solve_convex(J[i], y[i], lam, solver="ECOS")
            th_e[j], s_e[j] = sol.theta, sol.s
        t_ecos_sub = time.perf_counter() - t0
        refs = [solve_convex(J[i], y[i], lam, solver="CLARABEL", **CLARABEL_TIGHT) for i in sub]
    t_ecos = t_ecos_sub / len(sub) * M
    print(f"Figure 4 workload: {M} instances (N={N}, p={p}, lambda={lam}), BLAS 1 thread")
    print(f"batched solver, all {M}: {t_batched:.2f} s ({1e3 * t_batched / M:.3f} ms/instance); "
          f"certified {cert.sum()}/{M}")
    print(f"CVXPY+ECOS per instance, random subset of {len(sub)}: {t_ecos_sub:.2f} s "
          f"({1e3 * t_ecos_sub / len(sub):.2f} ms/instance) -> extrapolated to {M}: {t_ecos:.1f} s")
    print(f"speed-up (ECOS extrapolated / batched measured): {t_ecos / t_batched:.1f}x")

    dev = {"batched": ([], []), "ecos": ([], [])}
    for j, i in enumerate(sub):
        floor = 1e-6 * np.linalg.norm(y[i])
        for name, th_i, s_i in (("batched", theta[i], s[i]), ("ecos", th_e[j], s_e[j])):
            dev[name][0].append(rel(th_i, refs[j].theta, floor))
            dev[name][1].append(rel(s_i, refs[j].s, floor))
    for name, (dt, ds_) in dev.items():
        print(f"max deviation from tight CLARABEL (subset of {len(sub)}), {name:>7}: "
              f"theta {max(dt):.2e}, s {max(ds_):.2e}")
    # Where the batched s differs from CLARABEL's by more than 1e-7, which one is off?  Compare the
    # KKT residuals of both (Lemma B.2, soptheory.kkt_residuals) and a second tight reference.
    over = [j for j, d in enumerate(dev["batched"][1]) if d > 1e-7]
    print(f"instances with s deviation > 1e-7 from CLARABEL: {len(over)}/{len(sub)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in over:
            i = sub[j]
            ecos_t = solve_convex(J[i], y[i], lam, solver="ECOS", abstol=1e-11, reltol=1e-11,
                                  feastol=1e-11, max_iters=500)
            kb = kkt_residuals(J[i], y[i], lam, theta[i], s[i], nus[i])
            kc = kkt_residuals(J[i], y[i], lam, refs[j].theta, refs[j].s, refs[j].nu)
            floor = 1e-6 * np.linalg.norm(y[i])
            print(f"  r={rk[i][0]} k={rk[i][1]} trial={rk[i][2]}: |s|={np.linalg.norm(s[i]):.2f} "
                  f"|y|={np.linalg.norm(y[i]):.0f}; s dev batched-CLARABEL "
                  f"{dev['batched'][1][j]:.1e}, CLARABEL-ECOS(1e-11) "
                  f"{rel(refs[j].s, ecos_t.s, floor):.1e}; KKT complementarity / stationarity "
                  f"batched {kb.complementarity:.0e} / {kb.stationarity:.0e}, CLARABEL "
                  f"{kc.complementarity:.0e} / {kc.stationarity:.0e}")

    et_b, es_b = labels(theta[sub], s[sub], sub)
    et_e, es_e = labels(th_e, s_e, sub)
    agree_t = np.sum((et_b < 1e-3) == (et_e < 1e-3))
    agree_s = np.sum((es_b < 1e-3) == (es_e < 1e-3))
    print(f"labels on the subset: theta agree {agree_t}/{len(sub)}, s agree {agree_s}/{len(sub)}")
    if args.labels_from:
        t_e = load_table(args.labels_from)
        et_all, es_all = labels(theta, s, np.arange(M))
        order = {key: n for n, key in enumerate(rk)}
        idx = np.array([order[(int(r), int(k), int(t))] for r, k, t in
                        zip(t_e["r"], t_e["k"], t_e["trial"])])
        lt_b, ls_b = et_all[idx] < 1e-3, es_all[idx] < 1e-3
        dis_t = np.flatnonzero(lt_b != t_e["success_theta"])
        dis_s = np.flatnonzero(ls_b != t_e["success_s"])
        print(f"labels on all {len(idx)} (ECOS table {args.labels_from}): theta disagree "
              f"{len(dis_t)}, s disagree {len(dis_s)}")
        for j in np.union1d(dis_t, dis_s):
            i = idx[j]
            print(f"  r={rk[i][0]} k={rk[i][1]} trial={rk[i][2]}: batched eps_theta="
                  f"{et_all[i]:.3e} eps_s={es_all[i]:.3e} (certified {cert[i]}); ECOS eps_theta="
                  f"{t_e['eps_theta'][j]:.3e} eps_s={t_e['eps_s'][j]:.3e} gap={t_e['gap'][j]:.1e}")


if __name__ == "__main__":
    main()
