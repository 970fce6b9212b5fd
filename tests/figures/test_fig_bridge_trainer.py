"""fig_bridge_trainer: Figure 2's ρ grid with the deep trainer; its valley follows α_eff, not α.

One quick compute (one row, α_eff = 500, 1,500 epochs: a few seconds) serves every test.
"""

import numpy as np
import pytest

from figures import fig_bridge_trainer as fbt
from sopcommon.files import DataFileError


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    data = tmp_path_factory.mktemp("fig_bridge_trainer") / fbt.DATA_FILE
    fbt.compute(data, quick=True, progress=False)
    return data


def test_it_is_figure_2s_problem_and_lambda_grid():
    # both figures read the instance from figures.settings: the bridge figure must stay Figure 2's
    from figures import fig_implicit_bias as f2

    full = f2.SETUP["full"]
    assert fbt.PROBLEM == {k: full[k] for k in ("N", "p", "r", "k", "seed")}
    assert fbt.GAMMA == full["gamma"] and fbt.LAM_RANGE == f2.LAM_RANGE and fbt.N_LAM == full["n_lam"]


def test_quick_compute_and_plot_write_their_files(quick, tmp_path):
    assert fbt.DEEP and fbt.DATA_FILE.startswith(fbt.NAME)
    with pytest.raises(TypeError, match="unknown_option"):  # an option it does not declare is refused
        fbt.compute(tmp_path / "never.npz", quick=True, progress=False, unknown_option=1)
    paths = fbt.plot(quick, tmp_path / "out")
    assert sorted(p.name for p in paths) == sorted([f"{fbt.NAME}.png", f"{fbt.NAME}.pdf"])
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"


def test_data_file_round_trips_settings_and_rho(quick):
    from soptheory import make_problem, relative_difference, solve_convex_batched

    d = fbt.read(quick)
    assert int(d["batch_size"]) == fbt.BATCH_SIZE and float(d["momentum"]) == fbt.MOMENTUM
    np.testing.assert_array_equal(d["alpha_eff"], fbt.SETUP["quick"]["alpha_eff"])
    # nominal α = α_eff / (B(1 − β)) and the recorded peak τ is PEAK_STEP / α (to round-off)
    np.testing.assert_allclose(d["alpha"] * d["batch_size"] * (1 - d["momentum"]), d["alpha_eff"], rtol=1e-12)
    np.testing.assert_allclose(d["lr"] * d["alpha"], fbt.PEAK_STEP, rtol=1e-12)
    assert int(d["steps"][0]) == int(d["epochs"]) * fbt.PROBLEM["N"] // fbt.BATCH_SIZE
    # the heat map is recomputable from the stored θ, s: Figure 2's grid and (25) solved afresh
    np.testing.assert_allclose(d["lam"], np.geomspace(*fbt.LAM_RANGE, fbt.N_LAM), rtol=1e-12)
    prob = make_problem(*(fbt.PROBLEM[k] for k in ("N", "p", "r", "k")), random_state=fbt.PROBLEM["seed"])
    convex = solve_convex_batched(prob.J, prob.y, d["lam"])
    assert convex.certified.all() and d["convex_certified"].all()
    # 1e-9, the solver's own tolerance: a certified solution has its active set verified and is exact
    # to ~1e-13, whichever batch of λ it was solved in; ρ itself is of order 1e-2..1 here
    np.testing.assert_allclose(d["rho_s"], relative_difference(d["s"][:, None], convex.s[None]), atol=1e-9)
    np.testing.assert_allclose(d["rho_theta"], relative_difference(d["theta"][:, None], convex.theta[None]), atol=1e-9)


def test_trainer_valley_follows_alpha_eff_not_the_nominal_alpha(quick):
    d = fbt.read(quick)
    factor = float(d["batch_size"]) * (1.0 - float(d["momentum"]))   # B(1 − β) = 0.5: the rules differ 2x in λ
    lam_valley = fbt.valley_lambda(d["lam_fine"], d["rho_s_fine"])[0]
    assert np.isfinite(lam_valley)  # α_eff = 500 lies past exact recovery: ρ(s) has a minimum in λ
    dist_eff = abs(np.log(lam_valley / fbt.predicted_lambda(d["alpha_eff"][0], d["gamma"])))
    dist_naive = abs(np.log(lam_valley / fbt.predicted_lambda(d["alpha_eff"][0], d["gamma"], factor)))
    # the rules lie log 2 = 0.69 apart; 0.3 allows Figure 2's own finite-γ gap (its GD valley lies up to
    # 0.18 in log λ off the curve for α in [480, 4000]), one step of the fine grid (0.06) and the quick
    # run's lag behind the flow (ρ(s, flow) ≈ 0.1 at α_eff = 500 ≈ a 5 % error in α: 0.05 in log λ)
    assert dist_eff < 0.3 < dist_naive, (lam_valley, dist_eff, dist_naive)


def test_valley_is_nan_on_a_plateau_and_bad_input_is_refused():
    lams = np.geomspace(1e-3, 1.0, 5)
    flat_right = np.array([[1.0, 0.5, 1e-4, 1e-4, 1e-4]])   # exact recovery from λ = 3e-2 on: no minimiser
    assert np.isnan(fbt.valley_lambda(lams, flat_right)).all()
    assert fbt.valley_lambda(lams, np.array([[1.0, 0.5, 1e-3, 0.5, 1.0]]))[0] == lams[2]
    with pytest.raises(ValueError, match="columns"):
        fbt.valley_lambda(lams, np.ones((2, 4)))
    with pytest.raises(ValueError, match="alpha_eff must be > 0"):
        fbt.trainer_config(0.0, epochs=1)


def test_damaged_data_file_is_one_named_error(quick, tmp_path):
    d = dict(np.load(quick))
    d["rho_s"] = d["rho_s"][:, :-1]          # one λ short: no longer Figure 2's grid
    bad = tmp_path / fbt.DATA_FILE
    np.savez(bad, **d)
    with pytest.raises(DataFileError, match="rho_s"):
        fbt.plot(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
