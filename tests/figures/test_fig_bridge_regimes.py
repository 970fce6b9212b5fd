"""fig_bridge_regimes: the linear theory against deep SOP as its assumptions are dropped one at a time.

One quick compute (synthetic data, N = 40, one batch; (a), (b) trained to convergence, the networks
a few steps) serves every test.
"""

import numpy as np
import pytest

from figures import fig_bridge_regimes as fbr

GRID_STEP = np.log(fbr.RATIOS[1] / fbr.RATIOS[0])  # one step of the λ grid, in log λ (10 per decade)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fig_bridge_regimes")
    data = folder / fbr.DATA_FILE
    fbr.compute(data, quick=True, runs_dir=str(folder / "runs"), progress=False)
    return data


def _rows(quick):
    rows, arrays = fbr.read(quick)
    return {(r["regime"], r["model"], r["width"]): (i, r) for i, r in enumerate(rows)}, arrays


def test_quick_compute_and_plot_write_their_files(quick, tmp_path):
    assert fbr.DEEP and fbr.DATA_FILE.startswith(fbr.NAME) and fbr.__doc__
    with pytest.raises(TypeError, match="unknown_option"):  # an option it does not declare is refused
        fbr.compute(tmp_path / "never.npz", quick=True, progress=False, unknown_option=1)
    paths = fbr.plot(quick, tmp_path / "out")
    assert sorted(p.name for p in paths) == sorted([f"{fbr.NAME}.png", f"{fbr.NAME}.pdf"])
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"


def test_data_file_round_trips_regimes_and_scores(quick):
    from sopdeep.detection import auroc

    by_key, arrays = _rows(quick)
    assert list(by_key) == list(fbr.QUICK["regimes"])
    mask = arrays["mask"].astype(bool)
    np.testing.assert_array_equal(arrays["ratios"], fbr.RATIOS)
    for i, row in by_key.values():
        s = arrays[f"{i}|s"]
        assert s.shape == mask.shape == (row["N"],) and int(mask.sum()) == row["k"]
        assert row["auroc_trained"] == auroc(np.abs(s), mask)  # the stored s is the scored s
        assert arrays[f"{i}|rel_init"].shape == arrays[f"{i}|rho_end"].shape == fbr.RATIOS.shape
        assert row["certified_init"] and row["certified_end"]  # every (25) solution certified
        if row["model"] != "deep sop":
            # the nominal α is α_eff / (B(1 − β)) and λ_pred = −log γ / (2 α_eff)
            assert np.isclose(row["alpha"] * row["batch_size"] * (1 - fbr.MOMENTUM), fbr.ALPHA_EFF, rtol=1e-12)
            assert np.isclose(row["lambda_pred"], -np.log(row["gamma"]) / (2 * fbr.ALPHA_EFF), rtol=1e-12)
            assert row["steps"] == row["epochs"] * -(-row["N"] // row["batch_size"])


@pytest.mark.parametrize("regime", [("a", "linear", 0), ("b", "random features", 64)])
def test_linear_models_land_on_program_25_at_the_predicted_lambda(quick, regime):
    # In (a) and (b) f is linear in θ and J is known exactly, so the theory holds: the trainer runs the
    # flow (16) at α_eff = α·B·(1 − β) (docs/bridge.md), whose limit is (25) at λ = −log γ/(2 α_eff)
    # up to the finite-γ gap of that limit.
    by_key, _ = _rows(quick)
    _, row = by_key[regime]
    assert row["residual_max"] < 1e-2  # trained to interpolation (measured 1e-3 .. 3e-3)
    assert row["kernel_change"] == 0.0  # J does not depend on θ
    # step-size drift O(ατ r) of the trainer from the exact flow limit at (α_eff, γ): measured 0.026 and
    # 0.030 at ατ = 0.2; docs/bridge.md's check gives 2.5e-2 at a comparable step
    assert row["rel_flow_limit_init"] < 0.05
    # against (25) at λ_pred the finite-γ gap adds (recorded: flow limit vs (25), 0.8 % and 1.6 % here)
    assert row["rel_pred_init"] < 0.05 + row["rel_flow_vs_program_init"]
    # and λ_pred is where (25) agrees best, to one step of the grid (10 per decade); a wrong ratio
    # (α instead of α_eff: 12.8x, or α·B: 10x) would put the best λ a decade away
    assert abs(np.log(row["lambda_best_init"] / row["lambda_pred"])) <= GRID_STEP * (1 + 1e-9)


def test_the_nominal_alpha_predicts_a_far_worse_lambda(quick):
    # the same trained s against (25) at λ = −log γ/(2α) with the trainer's nominal α (not α_eff):
    # the relative difference is read off the stored curve over λ / λ_pred
    by_key, arrays = _rows(quick)
    i, row = by_key[("a", "linear", 0)]
    ratio = fbr.ALPHA_EFF / row["alpha"]  # λ(α) / λ(α_eff) = B·(1 − β) = 4 at B = 40
    j = int(np.argmin(np.abs(np.log(fbr.RATIOS / ratio))))
    assert abs(np.log(fbr.RATIOS[j] / ratio)) < GRID_STEP  # that λ lies on the grid, to one step
    assert arrays[f"{i}|rel_init"][j] > 3 * row["rel_pred_init"]  # measured 11x (0.30 vs 0.026)


def test_linearised_twin_of_a_linear_model_is_the_model():
    # the trainer's function-space steps depend on J only through K = JJᵀ: a factor F of K replays the
    # run of f = Jθ (same seed, same batches) to rounding (float64, 300 steps: 3e-16 measured)
    import torch

    from sopdeep.squared_sop import train_squared_sop

    rng = np.random.default_rng(0)
    J, y = rng.standard_normal((8, 20)) / np.sqrt(20), np.sign(rng.standard_normal(8))
    config = fbr.squared_config(4)
    net = torch.nn.Linear(20, 1, bias=False).double()
    torch.nn.init.zeros_(net.weight)
    direct = train_squared_sop(net, torch.tensor(J), torch.tensor(y), config, gamma=1e-3, epochs=150, seed=3).s
    twin = fbr.linearised_twin(J @ J.T, y, config, gamma=1e-3, epochs=150, seed=3)
    np.testing.assert_allclose(twin, direct, rtol=1e-8, atol=1e-10)  # rounding only


def test_networks_start_at_zero_and_gram_scale_is_one():
    import torch

    x = fbr.pixel_inputs(torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    for kind in ("ntk", "sp"):
        model, inputs = fbr._regime_model(kind, 16, x, seed=0)
        assert float(model(inputs).detach().abs().max()) < 1e-12  # antisymmetric copy: f(θ₀) = 0
        # K₀'s mean diagonal is 1 after the input rescaling (K is 2-homogeneous in the input)
        assert np.isclose(np.mean(np.diag(fbr._gram(model, inputs))), 1.0, rtol=1e-10)


def test_bad_input_is_refused_in_one_line(tmp_path):
    import torch

    with pytest.raises(ValueError, match="images must have shape"):
        fbr.pixel_inputs(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="parametrisation must be"):
        fbr.two_layer_relu(3, 4, "mup")
    with pytest.raises(ValueError, match="width must be"):
        fbr.random_features(torch.zeros(2, 3, dtype=torch.float64), 0)
    with pytest.raises(ValueError, match="n_samples must be <= 128 or a multiple"):
        fbr.compute(tmp_path / "never.npz", n_samples=200, progress=False)


def test_cached_cells_are_reused_only_under_the_same_settings(quick, tmp_path, monkeypatch):
    from sopdeep.config import TrainConfig

    cache = quick.parent / "runs" / "quick_regimes"
    cells = sorted(p.name for p in cache.glob("*.npz"))
    assert len(cells) == len(fbr.QUICK["regimes"])
    again = tmp_path / fbr.DATA_FILE  # a second compute on the same runs folder reads every cell back
    fbr.compute(again, quick=True, runs_dir=str(quick.parent / "runs"), progress=False)
    assert sorted(p.name for p in cache.glob("*.npz")) == cells
    assert fbr.read(again)[0] == fbr.read(quick)[0]
    # any setting a cell depends on changes its key, so a stale cell is never read back
    key = fbr._cell_key("linear", 0, 40, 1500, 1e-8, TrainConfig())
    assert key == fbr._cell_key("linear", 0, 40, 1500, 1e-8, TrainConfig())
    assert key != fbr._cell_key("linear", 0, 40, 1500, 1e-6, TrainConfig())
    for name, value in (("ALPHA_EFF", 2 * fbr.ALPHA_EFF), ("UV_STEP", fbr.UV_STEP / 2)):
        with monkeypatch.context() as m:
            m.setattr(fbr, name, value)
            assert fbr._cell_key("linear", 0, 40, 1500, 1e-8, TrainConfig()) != key
    deep = fbr._cell_key("deep sop", 0, 40, 1500, 1e-8, TrainConfig(alpha_u=1.0))
    assert deep != fbr._cell_key("deep sop", 0, 40, 1500, 1e-8, TrainConfig(alpha_u=2.0))
