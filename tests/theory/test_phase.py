"""The phase-transition engine: reproducible seeds, tidy table, resume after SIGKILL, dask."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from soptheory import coherence, make_problem
from soptheory.phase import (
    draw_instances,
    instance_seed,
    load_table,
    run_phase,
    save_table,
)

REPO = Path(__file__).resolve().parents[2]
GRID = {"N": [40], "p": [60], "r": [3, 8], "k": [4, 12, 20], "lam": [0.05, 0.5]}


def assert_tables_equal(a, b):
    assert set(a) == set(b)
    for name in a:
        if a[name].dtype.kind == "f":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # bit-identical
        else:
            assert np.array_equal(a[name], b[name]), name


def test_draw_instances_is_make_problem_with_the_cell_seed():
    seeds = [instance_seed(5, 30, 50, 4, 6, t) for t in range(3)]
    d = draw_instances(30, 50, 4, 6, seeds)
    for i, seed in enumerate(seeds):
        prob = make_problem(30, 50, 4, 6, random_state=instance_seed(5, 30, 50, 4, 6, i))
        np.testing.assert_array_equal(d["J"][i], prob.J)
        np.testing.assert_array_equal(d["s_star"][i], prob.s_star)
        # y and θ* are computed differently (batched product; projection instead of lstsq):
        # equal to round-off, 1e-12 relative
        np.testing.assert_allclose(d["y"][i], prob.y, rtol=1e-12, atol=1e-12 * np.abs(prob.y).max())
        np.testing.assert_allclose(d["theta_star"][i], prob.theta_star, rtol=0,
                                   atol=1e-12 * np.abs(prob.theta_star).max())
        np.testing.assert_allclose(d["factor"][i] @ d["factor"][i].T, prob.J @ prob.J.T,
                                   rtol=0, atol=1e-10 * np.abs(prob.J @ prob.J.T).max())
        # μ from the basis of A equals coherence(J) of Definition 3.4 (1e-10: two SVD/QR routes)
        assert abs(d["mu"][i] - coherence(prob.J)) <= 1e-10 * d["mu"][i]


def test_table_is_tidy_and_independent_of_order_and_batching(tmp_path):
    t1 = run_phase(GRID, trials=3, progress=False)
    # reversed axis values and one cell per batch: same rows once sorted the same way
    rev = {a: list(reversed(v)) for a, v in GRID.items()}
    t2 = run_phase(rev, trials=3, batch_size=1, progress=False)
    n = 2 * 3 * 2 * 3
    assert all(len(col) == n for col in t1.values())
    key1 = np.lexsort((t1["lam"], t1["trial"], t1["k"], t1["r"]))
    key2 = np.lexsort((t2["lam"], t2["trial"], t2["k"], t2["r"]))
    for name in ("eps_theta", "eps_s", "mu", "success"):
        # different batch compositions change BLAS summation order: round-off only
        np.testing.assert_allclose(t1[name][key1].astype(float), t2[name][key2].astype(float),
                                   rtol=1e-6, atol=1e-12)
    assert t1["certified"].all()
    assert np.all(t1["success"] == (t1["success_theta"] & t1["success_s"]))
    # round trip through the CSV data file
    path = save_table(t1, tmp_path / "t.csv")
    back = load_table(path)
    for name in t1:
        if t1[name].dtype.kind == "f":
            np.testing.assert_array_equal(back[name], t1[name])
        else:
            assert np.array_equal(back[name], t1[name]), name


def test_easy_cells_recover_and_hard_cells_fail():
    t = run_phase({"N": [100], "p": [150], "r": [5, 90], "k": [5, 90], "lam": [0.1]}, trials=3,
                  progress=False)
    easy = (t["r"] == 5) & (t["k"] == 5)
    hard = (t["r"] == 90) & (t["k"] == 90)
    assert t["success"][easy].all()
    assert not t["success"][hard].any()


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    import soptheory.phase as ph
    orig = ph._solve_cells
    def slow(*a, **k):
        out = orig(*a, **k)
        time.sleep(0.3)          # leave time to be killed between cells
        return out
    ph._solve_cells = slow
    ph.run_phase({grid!r}, trials=3, cache_dir={cache!r}, batch_size=1, progress=False)
    """
)


def test_killed_run_resumes_from_saved_cells(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(repo=str(REPO), grid=GRID, cache=str(cache)))
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.monotonic() + 60
    while len(list(cache.glob("*.npz"))) < 3:
        assert proc.poll() is None, "the run finished or died before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = sorted(p.name for p in cache.glob("*.npz"))
    n_cells = 2 * 3
    assert 3 <= len(saved) < n_cells                      # really interrupted midway
    assert not list(cache.glob(".*.tmp"))                  # no half-written cache file left visible
    mtimes = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npz")}
    resumed = run_phase(GRID, trials=3, cache_dir=cache, batch_size=1, progress=False)
    # saved cells were read back, not recomputed
    assert all((cache / name).stat().st_mtime_ns == t for name, t in mtimes.items())
    assert len(list(cache.glob("*.npz"))) == n_cells
    fresh = run_phase(GRID, trials=3, batch_size=1, progress=False)
    assert_tables_equal(resumed, fresh)


def test_same_grid_on_a_dask_local_cluster_matches_joblib():
    distributed = pytest.importorskip("distributed")
    grid = {"N": [30], "p": [45], "r": [2, 4], "k": [3, 6], "lam": [0.1]}
    local = run_phase(grid, trials=2, batch_size=2, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        remote = run_phase(grid, trials=2, batch_size=2, backend="dask", n_jobs=2, progress=False)
    assert_tables_equal(local, remote)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(trials=0), "trials"),
        (dict(method="sgd"), "method"),
        (dict(solver="mosek"), "solver"),
        (dict(grid={"N": [10], "p": [20], "r": [2], "k": [3]}), "lam"),
        (dict(grid={"N": [10], "p": [20], "r": [12], "k": [3], "lam": [0.1]}), "r"),
        (dict(grid={"N": [10], "p": [20], "r": [2], "k": [11], "lam": [0.1]}), "k"),
        (dict(grid={"N": [10], "p": [20], "r": [2], "k": [3], "lam": [-1.0]}), "lam"),
        (dict(grid={"N": [10], "p": [20], "r": [2], "k": [3], "lam": [0.1], "alpha": [1.0]}),
         "alpha"),
    ],
)
def test_bad_grid_raises_value_error_naming_the_argument(kwargs, match):
    args = dict(grid={"N": [10], "p": [20], "r": [2], "k": [3], "lam": [0.1]}, trials=1,
                progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        run_phase(**args)


def test_gd_and_flow_methods_recover_where_the_matching_convex_program_does():
    # Proposition 3.3: the flow from scale γ behaves like (25) at λ = -log γ / (2α); in an easy
    # cell (r = 3, k = 4, N = 40) the convex program recovers (θ*, s*) at those λ, so GD and the
    # flow limit must reach the paper's success threshold 1e-3 (their finite-γ bias is ~1e-6 here).
    gamma = float(np.exp(-8.0))
    cell = {"N": [40], "p": [60], "r": [3], "k": [4]}
    alphas = [4.0, 40.0]
    cvx = run_phase({**cell, "lam": [-np.log(gamma) / (2 * a) for a in alphas]}, trials=2,
                    progress=False)
    assert cvx["success"].all()
    for method in ("flow", "gd"):
        t = run_phase({**cell, "alpha": alphas, "gamma": [gamma]}, trials=2, method=method,
                      progress=False)
        assert t["certified"].all()                      # GD converged / flow limit solved
        assert np.array_equal(np.unique(t["alpha"]), alphas) and np.all(t["gamma"] == gamma)
        assert t["success"].all(), method


def test_ecos_solver_path_gives_the_same_labels_and_is_flagged_uncertified():
    grid = {"N": [40], "p": [60], "r": [3, 12], "k": [4, 16], "lam": [0.1]}
    b = run_phase(grid, trials=2, progress=False)
    e = run_phase(grid, trials=2, solver="ecos", progress=False)
    assert set(e["solver"]) == {"ecos"} and not e["certified"].any()
    assert np.array_equal(b["success"], e["success"])
    # ECOS at default tolerances: its own duality gap is small but far above round-off
    assert np.all(e["gap"] < 1e-5)


def test_uncertified_batched_instances_fall_back_to_tight_clarabel(monkeypatch):
    import dataclasses

    import soptheory.phase as ph

    real = ph.solve_convex_batched

    def flaky(*args, **kwargs):
        res = real(*args, **kwargs)
        cert = res.certified.copy()
        cert[0] = False                          # pretend the first instance failed to verify
        return dataclasses.replace(res, certified=cert)

    monkeypatch.setattr(ph, "solve_convex_batched", flaky)
    grid = {"N": [40], "p": [60], "r": [3], "k": [4], "lam": [0.1]}
    t = run_phase(grid, trials=3, progress=False)
    assert list(t["solver"]) == ["clarabel-fallback", "batched", "batched"]
    assert not t["certified"][0] and t["certified"][1:].all()
    monkeypatch.setattr(ph, "solve_convex_batched", real)
    ref = run_phase(grid, trials=3, progress=False)
    # the fallback answer is CLARABEL's at 1e-12 tolerances: same errors to ~1e-6 absolute in ε
    np.testing.assert_allclose(t["eps_theta"], ref["eps_theta"], atol=1e-6)
    assert np.array_equal(t["success"], ref["success"])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing_column", "empty"])
def test_damaged_cache_file_is_named_and_recomputed(tmp_path, damage):
    # issue 11: a damaged cache file gave BadZipFile / KeyError: 'N'
    grid = {"N": [30], "p": [45], "r": [2], "k": [3, 6], "lam": [0.1]}
    cache = tmp_path / "cache"
    fresh = run_phase(grid, trials=2, cache_dir=cache, progress=False)
    victim = sorted(cache.glob("*.npz"))[0]
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:200])
    elif damage == "garbage":
        victim.write_bytes(b"not a zip file at all")
    elif damage == "empty":
        victim.write_bytes(b"")
    else:
        with np.load(victim) as z:
            part = {name: z[name] for name in z.files if name != "N"}
        with open(victim, "wb") as fh:
            np.savez(fh, **part)
    with pytest.warns(RuntimeWarning, match=f"{victim.name}.*damaged.*recomputing"):
        again = run_phase(grid, trials=2, cache_dir=cache, progress=False)
    assert_tables_equal(again, fresh)
    # the recomputed cell was written back: a third run reads the cache without warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        third = run_phase(grid, trials=2, cache_dir=cache, progress=False)
    assert_tables_equal(third, fresh)


def test_flow_rows_record_whether_the_flow_limit_converged(monkeypatch):
    # the "certified" column of a flow row is flow_limit's own convergence flag, not True by fiat:
    # a flow_limit whose Newton iteration stopped short for the second α must show in the table
    import dataclasses

    import soptheory.phase as phase

    real = phase.flow_limit

    def stops_short_at_the_second_alpha(J, y, alpha, gamma, **kw):
        out = real(J, y, alpha, gamma, **kw)
        converged = np.asarray(out.converged).copy()
        converged[np.asarray(alpha) == 40.0] = False
        return dataclasses.replace(out, converged=converged)

    monkeypatch.setattr(phase, "flow_limit", stops_short_at_the_second_alpha)
    t = run_phase({"N": [40], "p": [60], "r": [3], "k": [4], "alpha": [4.0, 40.0], "gamma": [np.exp(-8.0)]},
                  trials=2, method="flow", progress=False)
    assert np.array_equal(t["certified"], t["alpha"] != 40.0)
