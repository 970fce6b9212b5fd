"""Every bridge figure computes and draws at its quick size (synthetic data, no real files)."""

import dataclasses
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
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            if hasattr(self.options, "init_std"):  # SOP's options: another default γ
                self.options = dataclasses.replace(self.options, init_std=1e-4)

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
    assert np.isclose(summary["alpha_eff_pred_synthetic"], -np.log(1e-4) / (2 * summary["lambda_best_synthetic"]))


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


def test_bridge_alpha_records_every_seed_and_its_effective_alpha(tmp_path):
    # every (mode, α) is run once per seed; α_eff = α·B·(1 − β) of each record's own optimiser;
    # the summary's best α_eff is the argmax of the seed mean, recomputed here from the records
    import json

    from figures import fig_bridge_alpha as fa
    from sopdeep.config import TrainConfig

    data = tmp_path / fa.DATA_FILE
    fa.compute(data, quick=True, runs_dir=str(tmp_path / "runs"), progress=False)
    _, deep, summary = fa.read(data)
    seeds = sorted({r["seed"] for r in deep})
    assert len(seeds) >= 2 and summary["seeds"] == seeds
    by_cell = {}
    for r in deep:
        by_cell.setdefault((r["mode"], r["alpha"] if r["mode"] != "ce" else "ce"), []).append(r["seed"])
    assert all(sorted(v) == seeds for v in by_cell.values())
    d = TrainConfig()
    for r in deep:
        cfg = json.loads(r["config"])
        assert cfg.get("seed", d.seed) == cfg.get("noise_seed", d.noise_seed) == r["seed"]
        assert (r["batch_size"], r["momentum"]) == (cfg.get("batch_size", d.batch_size), cfg.get("momentum", d.momentum))
        if r["mode"] != "ce":
            assert r["alpha_eff"] == r["alpha"] * r["batch_size"] * (1.0 - r["momentum"])
    both = [r for r in deep if r["mode"] == "both"]
    alphas = sorted({r["alpha"] for r in both})
    means = [np.mean([r["det_auroc"] for r in both if r["alpha"] == a]) for a in alphas]
    best = summary["deep_best_auroc"]
    assert best["alpha"] == alphas[int(np.argmax(means))]
    assert np.isclose(best["mean"], max(means), rtol=1e-12)  # the same mean, summed in another order
    assert np.isclose(best["alpha_eff"], best["alpha"] * fa.effective_factor(deep), rtol=1e-12)


def test_linearized_uses_the_effective_alpha_of_the_run(tmp_path):
    # λ_theory = −log γ/(2 α_eff) and the flow limit at α_eff, with α_eff = α·B·(1 − β) read from the
    # SOP run's own configuration (not the nominal α: here B(1 − β) = 12.8, so the two differ)
    import json

    from figures import fig_bridge_linearized as fl
    from figures._bridge import subset_gram
    from figures.settings import CLASSES, fmnist_config
    from soptheory import flow_limit
    from sopdeep.config import TrainConfig
    from sopdeep.jacobian import gram_factor_from_gram

    data = tmp_path / fl.DATA_FILE
    runs = str(tmp_path / "runs")
    fl.compute(data, quick=True, runs_dir=runs, progress=False)
    _, rows, arrays = fl.read(data)
    d = TrainConfig()
    for row in rows:
        cfg = json.loads(row["config_sop"])
        B, beta = cfg.get("batch_size", d.batch_size), cfg.get("momentum", d.momentum)
        alpha = cfg.get("alpha_u", d.options.alpha_u)
        assert (row["batch_size"], row["momentum"], row["alpha"]) == (B, beta, alpha)
        alpha_eff = alpha * B * (1.0 - beta)
        assert row["alpha_eff"] == alpha_eff and abs(alpha_eff - row["alpha"]) > 1.0
        assert np.isclose(row["lambda_theory"], -np.log(row["gamma"]) / (2.0 * alpha_eff), rtol=1e-12)
        # the stored flow limit is the one at α_eff: recompute it from the cached Gram matrix
        g = subset_gram(fmnist_config(runs, "", method="ce", seed=0, quick=True), row["N"], CLASSES, trained=False)
        F = gram_factor_from_gram(g["K"], rtol=1e-6)
        s_eff = flow_limit(F, g["y"] - g["f"], alpha_eff, row["gamma"]).s
        s_nominal = flow_limit(F, g["y"] - g["f"], row["alpha"], row["gamma"]).s
        # same computation on the same inputs: agreement to round-off; the nominal α's limit is far off
        assert np.allclose(arrays[f"{row['setting']}|s_flow"], s_eff, rtol=1e-9, atol=1e-12)
        assert not np.allclose(arrays[f"{row['setting']}|s_flow"], s_nominal, rtol=1e-3, atol=1e-6)


def _cifar_experiment():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "experiments" / "cifar10_full_scale.py"
    spec = importlib.util.spec_from_file_location("cifar10_full_scale", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fast_cifar_config_rebuilds_the_full_scale_experiments_runs(tmp_path):
    # the figure finds (or trains) exactly the run folders of experiments/cifar10_full_scale.py
    from figures.settings import FAST_SETTINGS, cache_folder, effective_alpha, fast_cifar_config

    exp = _cifar_experiment()
    runs = tmp_path / "runs"
    args = exp.build_parser().parse_args(["--data-dir", str(tmp_path / "data"), "--out", str(runs / "full_scale_e25"),
                                          "--cache-dir", str(cache_folder(runs)), "--epochs", "25", "--no-progress"])
    configs = [(s, seed, m, c) for s, seed, m, c in exp.run_configs(args) if s in FAST_SETTINGS]
    assert {s for s, *_ in configs} == set(FAST_SETTINGS)
    for setting, seed, method, config in configs:
        mine = fast_cifar_config(runs, tmp_path / "data", setting=setting, method=method, seed=seed)
        assert mine.to_dict() == config.to_dict()
        if method == "sop":  # the effective-α rule of the experiment: Table A.1's 10·128·0.1
            assert np.isclose(effective_alpha(mine), exp.PAPER_ALPHA * 128 * (1 - 0.9), rtol=1e-12)
    with pytest.raises(ValueError, match="setting must be"):
        fast_cifar_config(runs, tmp_path, setting="sym80x")


def _tiny_fast_run(tmp_path, n=48):
    """A TrainConfig of the fast network (narrow: a fast test) on a small seeded npz of 32 x 32 colour images."""
    from sopdeep.config import TrainConfig
    from sopdeep.datasets.arrays import ArrayDataset
    from sopdeep.datasets.npz import save_npz

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    ds = ArrayDataset(x_train=x, y_train=np.arange(n) % 10, x_test=x[:8], y_test=np.arange(8) % 10, num_classes=10,
                      classes=tuple(str(i) for i in range(10)))
    path = save_npz(ds, tmp_path / "tiny.npz")
    (tmp_path / "run").mkdir()
    return TrainConfig(dataset="npz", data_root=str(path), arch="fast", width=8, noise="sym", noise_rate=0.4, seed=3,
                       batch_size=16, method="sop", device="cpu", out=str(tmp_path / "run"))


def test_initial_network_is_the_trainers_theta0(tmp_path):
    # θ₀ of the figure (seeded network + whitening stem) is bit-for-bit the trainer's (build_run)
    import torch

    from figures._bridge import initial_network
    from sopdeep.distributed import DistEnv
    from sopdeep.training import training_data
    from sopdeep.training.setup import build_run

    config = _tiny_fast_run(tmp_path)
    data = training_data(config)
    mine = initial_network(config, data).state_dict()
    with torch.random.fork_rng(devices=[]):
        theirs = build_run(config, data, DistEnv(), torch.device("cpu")).model.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    from sopdeep.training import make_model

    plain = make_model(config, data.num_classes, 3, (32, 32)).state_dict()  # the seeded network before the stem is set
    assert not torch.equal(plain["whiten.weight"], mine["whiten.weight"])
    assert all(torch.equal(plain[k], mine[k]) for k in mine if k != "whiten.weight")


def test_network_gram_is_the_gram_of_per_sample_gradients(tmp_path):
    # K[i, j] = <∇θ f_i, ∇θ f_j> of the BatchNorm-recalibrated θ₀, by plain autograd sample by sample
    import torch

    from figures._bridge import BN_IMAGES, initial_network, network_gram, recalibrate_batchnorm, two_class_subset
    from sopdeep.training import training_data

    config = _tiny_fast_run(tmp_path)
    g = network_gram(config, 5, (0, 1), trained=False)
    data = training_data(config)
    model = recalibrate_batchnorm(initial_network(config, data), data.normalize(data.x_train[:BN_IMAGES]).float(),
                                  config.batch_size).double()
    x = two_class_subset(config, 5, (0, 1), data=data)["x"].double()
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(x.shape[0]):
        logits = model(x[i:i + 1])[0]
        rows.append(torch.cat([q.reshape(-1) for q in torch.autograd.grad(logits[0] - logits[1], params)]))
    J = torch.stack(rows).numpy()
    # float64 both ways, summed in another order: agreement to ~1e-13 relative, 1e-9 leaves room
    assert np.allclose(g["K"], J @ J.T, rtol=1e-9, atol=1e-9 * np.abs(g["K"]).max())
    assert np.array_equal(network_gram(config, 5, (0, 1), trained=False)["K"], g["K"])  # read from the cache
