"""Every figure at --quick size through the command line: files written, data sane."""

import numpy as np
import pytest

from soptheory.figures.cli import main
from soptheory.phase import load_table


@pytest.fixture(scope="module")
def quick_all(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    assert main(["all", "--quick", "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    return out


@pytest.mark.parametrize("name", ["fig2", "fig3", "fig4"])
def test_png_and_pdf_are_written(quick_all, name):
    for ext in ("png", "pdf"):
        f = quick_all / f"{name}.{ext}"
        assert f.stat().st_size > 1000
    assert (quick_all / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (quick_all / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"


def test_fig2_data_low_rho_along_the_curve(quick_all):
    d = np.load(quick_all / "fig2_data.npz")
    for key in ("rho_theta", "rho_s"):
        assert d[key].shape == (len(d["alpha"]), len(d["lam"]))
        assert np.all((d[key] >= 0) & (d[key] <= 1 + 1e-12))   # ρ is a relative difference
    assert d["gd_converged"].all() and d["convex_certified"].all()
    # Proposition 3.3: at the grid point nearest to α = -log γ / (2λ), for λ in the recovery
    # range (λ >= 0.02 here), GD and (25) agree far better than elsewhere on the grid.
    gamma = float(d["gamma"])
    on_curve = []
    for j, lam in enumerate(d["lam"]):
        i = np.argmin(np.abs(np.log(d["alpha"]) - np.log(-np.log(gamma) / (2 * lam))))
        on_curve.append(d["rho_theta"][i, j])
    assert np.median(on_curve) < np.median(d["rho_theta"])


def test_fig3_and_fig4_tables_are_sane(quick_all):
    t3 = load_table(quick_all / "fig3_data.csv")
    assert set(np.unique(t3["panel"])) == {"a", "b"}
    assert np.all(t3["eps_theta"] >= 0) and t3["certified"].all()
    # the largest λ recovers the truth for the easiest (r, k) = (20, 10) and (10, 20) cells
    big = t3["lam"] == t3["lam"].max()
    easy = big & (((t3["r"] == 20) & (t3["k"] == 10)) | ((t3["r"] == 10) & (t3["k"] == 20)))
    assert t3["success"][easy].all()
    small = t3["lam"] == t3["lam"].min()
    assert not t3["success"][small].any()                  # λ = 1e-4: s absorbs y, no recovery
    t4 = load_table(quick_all / "fig4_data.csv")
    assert t4["certified"].all()
    assert t4["success"][(t4["r"] == 5) & (t4["k"] == 5)].all()
    assert not t4["success"][(t4["r"] == 45) & (t4["k"] == 45)].any()
    assert not t4["prop35"].any()        # the sufficient condition never holds on this grid


def test_flow_and_ecos_options_run(tmp_path):
    assert main(["fig2", "--quick", "--flow", "--solver", "ecos", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    d = np.load(tmp_path / "fig2_data.npz")
    assert str(d["method"]) == "flow" and str(d["solver"]) == "ecos"


def test_cli_runs_a_figure_on_a_dask_scheduler(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        assert main(["fig4", "--quick", "--out", str(tmp_path), "--dask", cluster.scheduler_address,
                     "--no-progress", "--no-cache"]) == 0
    t4 = load_table(tmp_path / "fig4_data.csv")
    assert t4["certified"].all() and len(t4["r"]) == 3 * 3 * 3
