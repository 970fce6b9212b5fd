"""Phase-transition grids for the sparse-corruption model (long version, Sec. 3.2-3.3, Figs. 3-4).

A grid is the product of lists of values for the data parameters ``(N, p, r, k)`` and the solver
parameters (``lam`` for the convex program (25); ``alpha`` and ``gamma`` for gradient descent (15)
or its flow limit), times ``trials`` independent instances.  Every instance is one row of a tidy
table: its parameters, its seed, the recovery errors

.. math:: \\varepsilon_\\theta = \\frac{\\|\\hat\\theta - \\theta^\\star\\|_2}{\\|\\theta^\\star\\|_2},\\qquad
          \\varepsilon_s = \\frac{\\|\\hat s - s^\\star\\|_2}{\\|s^\\star\\|_2},

success flags (``eps < threshold``, 1e-3 in the paper), the coherence μ(J) of Definition 3.4 with
the sufficient condition ``k² r < N / (4 μ)`` of Proposition 3.5, the solver used and its certificate.

Seeds: trial ``t`` of cell ``(N, p, r, k)`` is ``make_problem(N, p, r, k,
random_state=instance_seed(base_seed, N, p, r, k, t))``, whatever the order, chunking or solver
parameters. Cells sharing ``(N, p, r)`` are solved in one batched call through joblib (any
backend, e.g. dask). With ``cache_dir`` each cell is saved atomically as soon as it is solved, so a
killed run resumes; a damaged cache file is recomputed with a warning (``docs/theory.md``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import warnings
from pathlib import Path

import numpy as np

from sopcommon import atomic_savez, atomic_write_bytes
from sopcommon.files import DataFileError, check_table
from ._validation import check_int, check_jobs, check_positive
from .batched_convex import convex_certificate, single_threaded_blas, solve_convex_batched
from .coherence import coherence_of_basis, recovery_condition
from .convex import SolverInaccurateWarning, solve_convex
from .flow_limit import flow_limit
from .gradient_descent import gradient_descent
from .metrics import recovery_error
from .problem import draw_factors

__all__ = [
    "instance_seed",
    "draw_instances",
    "coherence_of_basis",
    "run_phase",
    "solve_cvxpy",
    "single_threaded_blas",
    "CLARABEL_TIGHT",
    "save_table",
    "load_table",
    "CACHE_VERSION",
]

# Part of every cache key, with the package version: bump it when a change alters results.
CACHE_VERSION = 1
_DATA_AXES = ("N", "p", "r", "k")
_METHODS = {"convex": ("lam",), "gd": ("alpha", "gamma"), "flow": ("alpha", "gamma")}
_SOLVERS = ("batched", "ecos", "clarabel")


def instance_seed(base_seed, N, p, r, k, trial):
    """The :class:`numpy.random.SeedSequence` of one instance (see the module docstring)."""
    return np.random.SeedSequence(int(base_seed), spawn_key=(int(N), int(p), int(r), int(k), int(trial)))


def draw_instances(N, p, r, k, seeds):
    """Draw a stack of instances exactly as :func:`soptheory.make_problem` does, plus a Gram factor.

    The draws are :func:`soptheory.problem.draw_factors`, so ``J`` and ``s*`` are bit-identical to
    ``make_problem``'s; θ* (a projection on the row space), ``F`` (``F Fᵀ = J Jᵀ``) and μ(J) come
    from Cholesky factors of the Gram matrices, equal to ``make_problem``'s to rounding.

    Examples
    --------
    >>> d = draw_instances(6, 8, 2, 1, [instance_seed(0, 6, 8, 2, 1, t) for t in range(3)])
    >>> d["J"].shape, d["factor"].shape, d["mu"].shape
    ((3, 6, 8), (3, 6, 2), (3,))

    Returns
    -------
    dict with ``J`` (M, N, p), ``y`` (M, N), ``theta_star`` (M, p), ``s_star`` (M, N),
    ``factor`` (M, N, r), ``mu`` (M,)
    """
    M = len(seeds)
    A = np.empty((M, N, r))
    B = np.empty((M, r, p))
    s_star = np.empty((M, N))
    theta0 = np.empty((M, p))
    for i, seed in enumerate(seeds):
        A[i], B[i], _, s_star[i], theta0[i] = draw_factors(N, p, r, k, np.random.default_rng(seed))
    J = A @ B
    y = np.einsum("mnp,mp->mn", J, theta0) + s_star
    # Gram matrices and Cholesky factors instead of QR (3-4x cheaper in batch; the condition
    # numbers of Gaussian r x p and N x r factors are small, so squaring them is harmless):
    # B Bᵀ = L Lᵀ gives F = A L (F Fᵀ = A B Bᵀ Aᵀ = J Jᵀ) and θ* = Bᵀ (B Bᵀ)⁻¹ B θ0, the projection
    # of θ0 on the row space of J; AᵀA = La Laᵀ gives the leverage scores of range(J) = range(A).
    Bt = np.swapaxes(B, 1, 2)
    L = np.linalg.cholesky(B @ Bt)
    theta_star = (Bt @ np.linalg.solve(B @ Bt, (B @ theta0[..., None])))[..., 0]
    factor = A @ L
    La = np.linalg.cholesky(np.swapaxes(A, 1, 2) @ A)
    W = np.swapaxes(np.linalg.solve(La, np.swapaxes(A, 1, 2)), 1, 2)   # A La^{-T}: orthonormal
    return {"J": J, "y": y, "theta_star": theta_star, "s_star": s_star, "factor": factor,
            "mu": coherence_of_basis(W)}


# --------------------------------------------------------------------------------------------
# table I/O


def save_table(table, path):
    """Write a column table (dict name -> 1-D array) to CSV atomically (temp file + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(table)
    n = len(table[names[0]]) if names else 0
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(names)
    cols = [np.asarray(table[c]) for c in names]
    for i in range(n):
        w.writerow([_fmt(col[i]) for col in cols])
    atomic_write_bytes(path, buf.getvalue().encode())
    return path


def load_table(path, columns=None, *, what="phase table"):
    """Read a CSV written by :func:`save_table` back into a dict of numpy arrays.

    ``columns`` (name -> ``"number"`` / ``"int"`` / ``"str"``), when given, are the columns the
    reader needs (see :func:`sopcommon.files.check_table`). A missing, non-UTF-8, empty or ragged file,
    or one without those columns, raises :class:`sopcommon.files.DataFileError` naming the file.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError as exc:
        raise DataFileError(path, f"no such {what}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataFileError(path, f"damaged {what}: not a CSV text file ({exc})") from exc
    if not rows or not rows[0]:
        raise DataFileError(path, f"empty {what}: no header; recompute it")
    names, body = rows[0], [r for r in rows[1:] if r]
    if not body:   # a header alone would publish an empty figure
        raise DataFileError(path, f"empty {what}: a header and no rows; recompute it")
    bad = next((i for i, r in enumerate(body) if len(r) != len(names)), None)
    if bad is not None:   # a truncated last row or a garbage line
        raise DataFileError(path, f"damaged {what}: row {bad + 2} has {len(body[bad])} fields, "
                                  f"the header {len(names)}")
    out = {}
    for j, name in enumerate(names):
        vals = [r[j] for r in body]
        for conv in (int, float):
            try:
                out[name] = np.array([conv(v) for v in vals])
                break
            except ValueError:
                continue
        else:
            if all(v in ("True", "False") for v in vals):
                out[name] = np.array([v == "True" for v in vals])
            else:
                out[name] = np.array(vals)
    if columns is not None:
        check_table(path, out, columns, what=what)
    return out


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


# --------------------------------------------------------------------------------------------
# the engine


def _package_version():
    from . import __version__

    return __version__


def _cell_key(cell, solver_values, trials, base_seed, method, solver, threshold):
    spec = {
        "version": CACHE_VERSION, "package": _package_version(),
        "cell": {a: int(cell[a]) for a in _DATA_AXES},
        "solver_values": {k: [float(x) for x in v] for k, v in solver_values.items()},
        "trials": int(trials), "base_seed": int(base_seed), "method": method, "solver": solver,
        "threshold": float(threshold),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def _solver_combos(method, solver_values):
    axes = _METHODS[method]
    return list(itertools.product(*(solver_values[a] for a in axes)))


def _solve_cells(*args):
    """Solve a list of cells sharing (N, p, r) in one batch; write each cell's cache file."""
    with single_threaded_blas():
        return _solve_cells_impl(*args)


def _solve_cells_impl(cells, solver_values, trials, base_seed, method, solver, threshold,
                      cache_dir, keys):
    N, p, r = (int(cells[0][a]) for a in ("N", "p", "r"))
    combos = _solver_combos(method, solver_values)
    per_cell = []
    for cell in cells:
        k = int(cell["k"])
        seeds = [instance_seed(base_seed, N, p, r, k, t) for t in range(trials)]
        per_cell.append((cell, draw_instances(N, p, r, k, seeds), seeds))
    # one row per (cell, trial, combo); the data arrays are indexed by (cell, trial)
    idx_cell, idx_trial, idx_combo = (np.array(v, dtype=int) for v in zip(*itertools.product(
        range(len(cells)), range(trials), range(len(combos)))))
    data = {name: np.concatenate([d[name] for _, d, _ in per_cell]) for name in
            ("J", "y", "theta_star", "s_star", "factor", "mu")}
    inst = idx_cell * trials + idx_trial
    combo_arr = np.array(combos, dtype=float).reshape(len(combos), -1)[idx_combo]
    if method == "convex":
        lam = combo_arr[:, 0]
        est_theta, est_s, info = _solve_convex_stack(
            data["J"], data["y"], lam, data["factor"], inst, solver)
    else:
        est_theta, est_s, info = _solve_gd_stack(data["J"], data["y"], combo_arr, inst, method)
    eps_theta = recovery_error(est_theta, data["theta_star"][inst], axis=1)
    eps_s = recovery_error(est_s, data["s_star"][inst], axis=1)   # s* != 0: run_phase needs k >= 1
    mu = data["mu"][inst]
    Ns = np.full(len(inst), N)
    rows = {
        "N": Ns, "p": np.full(len(inst), p), "r": np.full(len(inst), r),
        "k": np.array([int(cells[c]["k"]) for c in idx_cell]),
        "lam": combo_arr[:, 0] if method == "convex" else np.full(len(inst), np.nan),
        "alpha": combo_arr[:, 0] if method != "convex" else np.full(len(inst), np.nan),
        "gamma": combo_arr[:, 1] if method != "convex" else np.full(len(inst), np.nan),
        "trial": idx_trial, "base_seed": np.full(len(inst), int(base_seed)),
        "eps_theta": eps_theta, "eps_s": eps_s,
        "success_theta": eps_theta < threshold, "success_s": eps_s < threshold,
        "mu": mu,
    }
    rows["success"] = rows["success_theta"] & rows["success_s"]
    rows["prop35"] = recovery_condition(rows["k"], r, Ns, mu)
    rows.update(info)
    out = []
    for c, cell in enumerate(cells):
        sel = idx_cell == c
        part = {name: np.asarray(v)[sel] for name, v in rows.items()}
        if cache_dir is not None:
            atomic_savez(Path(cache_dir) / f"{keys[c]}.npz", part)
        out.append(part)
    return out


def _solve_convex_stack(J, y, lam, factor, inst, solver):
    M = len(inst)
    if solver == "batched":
        res = solve_convex_batched(J[inst], y[inst], lam, factor=factor[inst])
        theta, s, nus = res.theta.copy(), res.s.copy(), res.nu.copy()
        used = np.array(["batched"] * M, dtype=object)
        certified = res.certified.copy()
        bad = np.flatnonzero(~res.certified)
        for i in bad:          # rare: fall back to a tight CLARABEL solve, and say so
            theta[i], s[i], nus[i] = solve_cvxpy(J[inst[i]], y[inst[i]], lam[i], "CLARABEL",
                                                  tight=True, dual=True)
            used[i] = "clarabel-fallback"
        cert = convex_certificate(J[inst], y[inst], lam, theta, s, nus)
    else:
        theta = np.empty((M, J.shape[2]))
        s = np.empty((M, J.shape[1]))
        nus = np.empty((M, J.shape[1]))
        for i in range(M):
            theta[i], s[i], nus[i] = solve_cvxpy(J[inst[i]], y[inst[i]], lam[i], solver.upper(),
                                                 tight=False, dual=True)
        used = np.array([solver] * M, dtype=object)
        cert = convex_certificate(J[inst], y[inst], lam, theta, s, nus)
        certified = np.zeros(M, dtype=bool)
    info = {"solver": used.astype(str), "certified": certified, **cert}
    return theta, s, info


def _solve_gd_stack(J, y, combo, inst, method):
    M = len(inst)
    theta = np.empty((M, J.shape[2]))
    s = np.empty((M, J.shape[1]))
    conv = np.zeros(M, dtype=bool)
    for i0 in np.unique(inst):
        sel = np.flatnonzero(inst == i0)
        for g in np.unique(combo[sel, 1]):
            sg = sel[combo[sel, 1] == g]
            if method == "gd":
                out = gradient_descent(J[i0], y[i0], combo[sg, 0], gamma=g)
                conv[sg] = np.asarray(out.converged)
            else:
                out = flow_limit(J[i0], y[i0], combo[sg, 0], g)
                conv[sg] = np.asarray(out.converged)  # Newton's stopping test met
            theta[sg], s[sg] = out.theta, out.s
    return theta, s, {"solver": np.array([method] * M), "certified": conv}


# Tight CLARABEL options of the fallback (and of the tests' reference): gaps and feasibility at
# 1e-12, well below the 1e-7 agreement the batched solver is certified to.
CLARABEL_TIGHT = dict(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, tol_ktratio=1e-10)


def solve_cvxpy(J, y, lam, solver="ECOS", *, tight=False, dual=False):
    """One CVXPY solve of eq. (25) by :func:`soptheory.solve_convex`, inaccuracy warnings muted.

    Parameters
    ----------
    J : array_like of shape (N, p)
    y : array_like of shape (N,)
    lam : float
    solver : str, default="ECOS"
    tight : bool, default=False
        With ``solver="CLARABEL"``, use :data:`CLARABEL_TIGHT`.
    dual : bool, default=False
        Also return the multiplier ``nu``.

    Returns
    -------
    (theta, s) or (theta, s, nu)

    Examples
    --------
    >>> from soptheory import make_problem
    >>> prob = make_problem(10, 20, 2, 2, random_state=0)
    >>> theta, s = solve_cvxpy(prob.J, prob.y, 0.1, "CLARABEL", tight=True)
    >>> theta.shape, s.shape
    ((20,), (10,))
    """
    opts = CLARABEL_TIGHT if (tight and solver == "CLARABEL") else {}
    with warnings.catch_warnings():
        # ECOS at its default tolerances (the paper's method) often reports optimal_inaccurate;
        # the certificate columns of the table record how inaccurate instead.
        warnings.simplefilter("ignore", SolverInaccurateWarning)
        sol = solve_convex(J, y, float(lam), solver=solver, **opts)
    if dual:
        return sol.theta, sol.s, sol.nu
    return sol.theta, sol.s




def run_phase(grid, *, trials, method="convex", solver="batched", base_seed=0, threshold=1e-3,
              cache_dir=None, n_jobs=1, backend=None, batch_size=400, progress=True):
    """Run a phase-transition grid and return its tidy table (one row per instance).

    Parameters
    ----------
    grid : dict
        Lists of values for ``N``, ``p``, ``r``, ``k`` (each required) and for the solver
        parameters of ``method``: ``lam`` (convex) or ``alpha`` and ``gamma`` (gd, flow).
    trials : int
        Independent instances per data cell, ``>= 1``.
    method : {"convex", "gd", "flow"}, default="convex"
        Eq. (25); gradient descent (15); or the exact flow limit.
    solver : {"batched", "ecos", "clarabel"}, default="batched"
        For ``method="convex"``: :func:`solve_convex_batched` (uncertified instances are re-solved
        with tight CLARABEL and labelled ``clarabel-fallback``), or CVXPY per instance at the
        solver's default tolerances (ECOS is the paper's method).
    base_seed : int, default=0
    threshold : float, default=1e-3
        Success means ``eps < threshold``.
    cache_dir : path, optional
        Per-cell cache (see the module docstring); ``None`` disables caching.
    n_jobs : int, default=1
        joblib workers; -1 means every core. Capped at the cores (without ``backend``) and at the
        number of tasks; 0 is refused.
    backend : str, optional
        joblib backend name (e.g. ``"dask"`` with a running ``distributed.Client``).
    batch_size : int, default=400
        Instances per batched solve (cells sharing (N, p, r) are grouped up to this size).
    progress : bool, default=True
        tqdm progress bar over cells.

    Returns
    -------
    dict of ndarray
        Columns ``N p r k lam alpha gamma trial base_seed eps_theta eps_s success_theta success_s
        success mu prop35 solver certified primal_residual stationarity dual_infeasibility gap``
        (the last four only for the convex method), rows sorted by cell then trial.
        ``certified`` is the optimality certificate (convex), or the convergence flag that
        :func:`gradient_descent` or :func:`flow_limit` reports (gd, flow).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    if method == "convex" and solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {_SOLVERS}, got {solver!r}")
    trials = check_int(trials, "trials", low=1)
    base_seed = check_int(base_seed, "base_seed", low=0)
    # -1: every core; more than the cores here is capped there (a remote backend, e.g. dask, has
    # its own cores: there only the tasks cap it, in _execute)
    n_jobs = check_jobs(n_jobs, "n_jobs", cores=None if backend is None else 2**31 - 1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    threshold = check_positive(threshold, "threshold")
    if not isinstance(grid, dict):
        raise ValueError(f"grid must be a dict of lists, got {type(grid).__name__}")
    for a in _DATA_AXES + _METHODS[method]:
        if a not in grid or len(np.atleast_1d(grid[a])) == 0:
            raise ValueError(f"grid must give at least one value for {a!r}")
    extra = set(grid) - set(_DATA_AXES) - set(_METHODS[method])
    if extra:
        raise ValueError(f"grid has keys {sorted(extra)} that method={method!r} does not use")
    values = {a: [v for v in np.atleast_1d(grid[a]).tolist()] for a in grid}
    for a in _DATA_AXES:
        for v in values[a]:
            check_int(v, a, low=0 if a == "k" else 1)
    for a in _METHODS[method]:
        check_positive(values[a], a)
    solver_values = {a: values[a] for a in _METHODS[method]}
    solver_tag = solver if method == "convex" else method
    cells = []
    for N, p, r, k in itertools.product(*(values[a] for a in _DATA_AXES)):
        if r > min(N, p):
            raise ValueError(f"grid cell has r={r} > min(N, p)={min(N, p)}")
        if k > N or k == 0:
            raise ValueError(f"grid cell has k={k}: need 1 <= k <= N={N} (eps_s needs s* != 0)")
        cells.append({"N": int(N), "p": int(p), "r": int(r), "k": int(k)})
    keys = [_cell_key(c, solver_values, trials, base_seed, method, solver_tag, threshold)
            for c in cells]
    results = [None] * len(cells)
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        n_rows = trials * len(_solver_combos(method, solver_values))
        for i, key in enumerate(keys):
            results[i] = _load_cached_cell(Path(cache_dir) / f"{key}.npz", method, n_rows)
    todo = [i for i in range(len(cells)) if results[i] is None]
    per_cell = trials * len(_solver_combos(method, solver_values))
    jobs, cur = [], []
    for i in sorted(todo, key=lambda i: (cells[i]["N"], cells[i]["p"], cells[i]["r"], i)):
        if cur and (any(cells[i][a] != cells[cur[0]][a] for a in ("N", "p", "r"))
                    or (len(cur) + 1) * per_cell > batch_size):
            jobs.append(cur)
            cur = []
        cur.append(i)
    if cur:
        jobs.append(cur)
    # largest first (cost grows like N r^2 per instance): the workers finish together
    jobs.sort(key=lambda job: -len(job) * cells[job[0]]["N"] * cells[job[0]]["r"] ** 2)
    if jobs:
        _execute(jobs, cells, keys, solver_values, trials, base_seed, method, solver_tag, threshold,
                 cache_dir, n_jobs, backend, progress, results)
    table = {name: np.concatenate([res[name] for res in results]) for name in results[0]}
    return table


def _table_columns(method):
    """The columns of a table of ``method`` (see :func:`run_phase`)."""
    columns = ("N", "p", "r", "k", "lam", "alpha", "gamma", "trial", "base_seed", "eps_theta",
               "eps_s", "success_theta", "success_s", "mu", "success", "prop35", "solver",
               "certified")
    if method == "convex":
        columns += ("primal_residual", "stationarity", "dual_infeasibility", "gap")
    return columns


def _load_cached_cell(path, method, n_rows):
    """The rows of one cached cell, or ``None`` (recompute) when absent or damaged (with a warning)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            part = {name: z[name] for name in z.files}
        missing = set(_table_columns(method)) - set(part)
        if missing:
            raise ValueError(f"columns {sorted(missing)} are missing")
        bad = [name for name, col in part.items() if col.shape != (n_rows,)]
        if bad:
            raise ValueError(f"columns {bad} do not have {n_rows} rows")
    except Exception as exc:  # noqa: BLE001  (any unreadable file is recomputed; say why)
        warnings.warn(f"phase-grid cache file {path} is damaged ({type(exc).__name__}: {exc}); "
                      "recomputing that cell", RuntimeWarning, stacklevel=3)
        return None
    return part


def _execute(jobs, cells, keys, solver_values, trials, base_seed, method, solver, threshold,
             cache_dir, n_jobs, backend, progress, results):
    from joblib import Parallel, delayed, parallel_config
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(len(j) for j in jobs), desc=f"phase grid ({method}, {solver})",
               unit="cell", disable=not progress)
    cfg = {"backend": backend} if backend is not None else {}
    with parallel_config(**cfg):
        # no more workers than tasks: each idle one would be a process (or thread) for nothing
        par = Parallel(n_jobs=max(1, min(n_jobs, len(jobs))), return_as="generator")
        for job, parts in zip(jobs, par(delayed(_solve_cells)(
                [cells[i] for i in job], solver_values, trials, base_seed, method, solver,
                threshold, cache_dir, [keys[i] for i in job]) for job in jobs)):
            for i, part in zip(job, parts):
                results[i] = part
            bar.update(len(job))
    bar.close()
