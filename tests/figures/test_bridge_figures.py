"""Every bridge figure computes and draws at its quick size (synthetic data, no real files)."""

import importlib

import numpy as np
import pytest

MODULES = ["figures.fig_memorisation", "figures.fig_bridge_jacobian", "figures.fig_bridge_linearized",
           "figures.fig_bridge_alpha"]


@pytest.mark.parametrize("name", MODULES)
def test_quick_compute_and_plot_write_their_files(name, tmp_path):
    mod = importlib.import_module(name)
    assert mod.__doc__ and mod.NAME and mod.DATA_FILE.startswith(mod.NAME)
    data = tmp_path / mod.DATA_FILE
    with pytest.raises(TypeError, match="unknown_option"):   # an option it does not declare is refused
        mod.compute(data, quick=True, runs_dir=str(tmp_path / "runs"), progress=False, unknown_option=1)
    mod.compute(data, quick=True, runs_dir=str(tmp_path / "runs"), progress=False)
    assert data.stat().st_size > 0
    paths = mod.plot(data, tmp_path / "out")
    assert sorted(p.name for p in paths) == sorted([f"{mod.NAME}.png", f"{mod.NAME}.pdf"])
    assert all(p.stat().st_size > 1000 for p in paths)
    # cached: a second compute reads the run folders instead of training again
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("summary.json")}
    mod.compute(data, quick=True, runs_dir=str(tmp_path / "runs"), progress=False)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("summary.json")} == before


def test_jacobian_table_is_consistent(tmp_path):
    from figures import fig_bridge_jacobian as fj

    data = tmp_path / fj.DATA_FILE
    fj.compute(data, quick=True, runs_dir=str(tmp_path / "runs"), progress=False, settings=("fashion-mnist",))
    table, spectra, _ = fj.read(data)
    for _, row in table.iterrows():
        sv = spectra[f"{row.setting}|{row.network}"]
        assert row["rank"] == int(np.sum(sv > row.rtol * sv[0]))
        assert 1.0 - 1e-9 <= row.mu <= row.N / row["rank"] + 1e-9  # 1 <= mu <= N / r (Definition 3.4)
        assert row.condition27 == (row.k ** 2 * row["rank"] < row.N / (4 * row.mu))


def test_bridge_alpha_reads_gamma_from_the_config_default(tmp_path, monkeypatch):
    # γ of λ = −log γ/(2α) is the deep runs' init_std: change TrainConfig's default and the data
    # file must follow it (it was a hard-coded copy, 1e-8). Runs and Gram are stand-ins: only γ matters.
    import sopdeep.config
    import figures._bridge
    from figures import fig_bridge_alpha as fa

    class OtherDefault(sopdeep.config.TrainConfig):
        init_std = property(lambda self: 1e-4, lambda self, value: None)

    rng = np.random.default_rng(0)
    F = rng.standard_normal((40, 8))
    gram = {"K": F @ F.T, "y": np.sign(rng.standard_normal(40)), "f": np.zeros(40),
            "is_noisy": np.arange(40) % 4 == 0}
    monkeypatch.setattr(sopdeep.config, "TrainConfig", OtherDefault)
    monkeypatch.setattr(fa, "ensure_runs", lambda configs, **kw: [None] * len(configs))
    for module in (figures._bridge, fa):
        monkeypatch.setattr(module, "subset_gram", lambda *a, **kw: gram, raising=False)
    data = tmp_path / fa.DATA_FILE
    fa.compute(data, quick=True, runs_dir=str(tmp_path / "runs"), progress=False)
    _, _, summary = fa.read(data)
    assert summary["gamma"] == 1e-4
    assert np.isclose(summary["alpha_pred_synthetic"], -np.log(1e-4) / (2 * summary["lambda_best_synthetic"]))


def test_bridge_alpha_effective_factor_reads_the_runs_batch_size_and_momentum():
    # α_eff = α·B·(1 − β) (docs/bridge.md); the records hold only non-default fields
    import json

    from figures import fig_bridge_alpha as fa
    from sopdeep.config import TrainConfig

    d = TrainConfig()
    ce = {"mode": "ce", "config": json.dumps({"batch_size": 7})}  # CE has no u, v: ignored
    runs = [ce, {"mode": "both", "config": "{}"}, {"mode": "u only", "config": "{}"}]
    assert fa.effective_factor(runs) == d.batch_size * (1.0 - d.momentum)
    assert fa.effective_factor([{"mode": "both", "config": '{"batch_size": 32, "momentum": 0.0}'}]) == 32.0
    with pytest.raises(ValueError, match="one B"):  # mixed settings: no single α_eff axis
        fa.effective_factor([{"mode": "both", "config": "{}"}, {"mode": "both", "config": '{"batch_size": 3}'}])
