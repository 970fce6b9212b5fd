"""The experiments/ scripts of full CIFAR-10: their tables, configs and held-out scoring.

``cifar10_full_scale.py``: a ``--settings`` subset adds its rows to the committed table;
``fast_recipe_ablation.py``: the same for ``--variants``; ``cifar10_alpha_heldout.py``: the held-out
split's configs and the held-out accuracy (on a tiny synthetic run). No CIFAR training: the runs
themselves take 20 minutes each.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_script(name):
    """An experiments/ script as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exp():
    return _load_script("cifar10_full_scale")


def _row(exp, setting, seed, method, acc, epochs=25):
    row = dict.fromkeys(exp.ROW_KEYS)
    row.update(setting=setting, seed=seed, method=method, realised_noise_rate=0.4, best_test_acc=acc, best_epoch=3,
               final_test_acc=acc, final_train_acc_noisy=0.5, clean_fraction=0.6, epochs=epochs, wall_time_s=10.0)
    return row


def _args(exp, settings):
    return exp.build_parser().parse_args(["--data-dir", "d", "--out", "o", "--epochs", "25", "--settings", settings])


def test_a_subset_adds_its_rows_and_replaces_only_its_own(exp, tmp_path):
    first = [_row(exp, "sym40", 0, "ce", 0.81), _row(exp, "sym40", 0, "sop", 0.85), _row(exp, "sym40", 1, "ce", 0.80)]
    exp.write_results(first, tmp_path, _args(exp, "sym40"), 0.8333)
    # a later invocation of other settings, and a rerun of one sym40 run: the rest is kept, in the grid's order
    second = [_row(exp, "aggre", 0, "sop", 0.88), _row(exp, "sym40", 0, "ce", 0.82)]
    exp.write_results(second, tmp_path, _args(exp, "aggre,sym40"), 0.8333)
    with open(tmp_path / "results.csv", newline="") as f:
        table = [(r["setting"], int(r["seed"]), r["method"], float(r["final_test_acc"])) for r in csv.DictReader(f)]
    assert table == [("sym40", 0, "ce", 0.82), ("sym40", 0, "sop", 0.85), ("aggre", 0, "sop", 0.88),
                     ("sym40", 1, "ce", 0.80)]
    md = (tmp_path / "results.md").read_text()
    assert "| aggre | 0 | sop |" in md and "| sym40 | 1 | ce |" in md
    # the commands of exactly these rows: CE on sym40 seeds 0-1, SOP on sym40 and aggre seed 0
    commands = md.split("`")[-4::2]
    assert [c.split("--epochs 25 ")[1] for c in commands] == ["--settings sym40 --methods ce",
                                                              "--seeds 1 --settings sym40,aggre --methods sop"]


def test_the_table_names_one_command_per_group_of_methods(exp, tmp_path):
    grid = [_row(exp, setting, seed, method, 0.8) for setting, seed in exp.GRID for method in ("ce", "sop")]
    exp.write_results(grid + [_row(exp, "sym40", 0, "sop+", 0.86)], tmp_path, _args(exp, "sym40"), 0.8333)
    md = (tmp_path / "results.md").read_text()
    commands = [line.strip("`") for line in md.splitlines() if line.startswith("`python")]
    # the CE/SOP grid in the defaults (no --settings, --seeds, --methods), SOP+ on its one cell
    assert commands == ["python experiments/cifar10_full_scale.py --data-dir d --out o --cache-dir runs/cache --epochs 25",
                        "python experiments/cifar10_full_scale.py --data-dir d --out o --cache-dir runs/cache --epochs 25 "
                        "--seeds 1 --settings sym40 --methods sop+"]
    assert "SOP+ (the same alpha and recipe" in md and "| sym40 | 0 | sop+ |" in md


def test_sop_plus_runs_get_sops_alpha_and_appendix_a3s_weights(exp):
    args = exp.build_parser().parse_args(["--data-dir", "d", "--out", "o", "--settings", "sym40", "--seeds", "1",
                                          "--methods", "sop,sop+"])
    (_, _, _, sop), (_, _, _, sop_plus) = exp.run_configs(args)
    assert sop_plus.method == "sop+" and sop_plus.options.alpha_u == sop.options.alpha_u == exp.alpha_for(1024, 0.85)
    assert (sop_plus.options.lambda_c, sop_plus.options.lambda_b, sop_plus.options.strong_backend) == \
        (0.9, 0.1, "torchvision")
    assert sop_plus.options.recipe == sop.options.recipe == "paper"
    assert {k: v for k, v in sop_plus.to_dict().items() if k not in ("method", "out", "lambda_c", "lambda_b",
                                                                      "strong_policy", "strong_stats",
                                                                      "strong_backend", "cutout")} == \
        {k: v for k, v in sop.to_dict().items() if k not in ("method", "out")}


def test_rows_of_another_epoch_count_are_not_mixed_in(exp, tmp_path):
    exp.write_results([_row(exp, "sym40", 0, "ce", 0.81, epochs=10)], tmp_path, _args(exp, "sym40"), 0.8333)
    rows = exp.merged_rows([_row(exp, "worst", 0, "ce", 0.78)], tmp_path / "results.csv", 25)
    assert [(r["setting"], r["epochs"]) for r in rows] == [("worst", 25)]


@pytest.fixture(scope="module")
def ablation():
    return _load_script("fast_recipe_ablation")


def _variant_row(ablation, variant, acc):
    row = dict.fromkeys(ablation.ROW_KEYS)
    row.update(variant=variant, change=ablation.VARIANTS[variant][0], epochs=10, final_test_acc=acc,
               best_test_acc=acc, tta="flip_translate", train_time_s=500.0, wall_time_s=520.0)
    return row


def test_an_ablation_subset_adds_its_variants_in_the_table_order(ablation, tmp_path):
    ablation.write_results([_variant_row(ablation, "all_e10", 0.905), _variant_row(ablation, "no_lookahead", 0.902)],
                           tmp_path, "cmd")
    # a later run of one new variant and one rerun: the other variant is kept, VARIANTS' order
    ablation.write_results([_variant_row(ablation, "amp_off", 0.907), _variant_row(ablation, "all_e10", 0.906)],
                           tmp_path, "cmd")
    with open(tmp_path / "results.csv", newline="") as f:
        table = [(r["variant"], float(r["final_test_acc"])) for r in csv.DictReader(f)]
    order = list(ablation.VARIANTS)
    assert table == sorted([("all_e10", 0.906), ("no_lookahead", 0.902), ("amp_off", 0.907)],
                           key=lambda r: order.index(r[0]))
    assert "| amp_off | fp32 throughout" in (tmp_path / "results.md").read_text()


@pytest.fixture(scope="module")
def heldout():
    return _load_script("cifar10_alpha_heldout")


def test_the_alpha_grid_trains_on_45000_with_the_full_scale_noise_and_the_final_on_all(heldout, exp):
    args = heldout.build_parser().parse_args(["--data-dir", "d", "--out", "o", "--setting", "worst", "--seed", "1"])
    grid = heldout.sop_config(args, 0.3, full=False)
    final = heldout.sop_config(args, 0.3, full=True)
    table = next(c for s, seed, m, c in exp.run_configs(exp.build_parser().parse_args(
        ["--data-dir", "d", "--out", "o", "--epochs", "25", "--settings", "worst"])) if seed == 1 and m == "sop")
    assert (grid.train_subset, grid.subset_split, final.train_subset) == (45000, "per_class", 0)
    assert grid.options.alpha_u == grid.options.alpha_v == final.options.alpha_u == 0.3
    # the same run as the full-scale table's but for alpha, the split and the folder
    differs = {k for k, v in grid.to_dict().items() if table.to_dict()[k] != v}
    assert differs <= {"alpha_u", "alpha_v", "train_subset", "subset_split", "out", "options"}
    assert grid.out != final.out and Path(grid.out).parent == Path("o")


def test_heldout_accuracy_scores_the_images_the_run_left_out(heldout, tmp_path):
    import numpy as np
    import torch

    from sopdeep.config import TrainConfig
    from sopdeep.runs import load_model
    from sopdeep.training import load_data, train

    config = TrainConfig(dataset="synthetic", arch="mlp", width=32, epochs=2, batch_size=32, lr=0.05,
                         schedule="constant", noise="sym", noise_rate=0.4, train_subset=120, subset_split="per_class",
                         seed=2, device="cpu", amp="off", progress=False, out=str(tmp_path / "run"))
    train(config)
    got = heldout.heldout_accuracies(config)
    # independently: the held-out rows are those whose images the run did not train on
    full, noisy = load_data(config.replace(train_subset=0))
    kept_images, _ = load_data(config)
    kept = {x.tobytes() for x in kept_images.x_train}
    held = np.array([i for i, x in enumerate(full.x_train) if x.tobytes() not in kept])
    with torch.no_grad():
        pred = load_model(tmp_path / "run", pixels=True)(torch.from_numpy(full.x_train[held]).permute(0, 3, 1, 2)).argmax(1)
    assert got["train_images"] == 120 and len(held) == full.n_train - 120
    assert got["heldout_acc_noisy"] == pytest.approx(float((pred.numpy() == noisy.noisy_labels[held]).mean()))
    assert got["heldout_acc_clean"] == pytest.approx(float((pred.numpy() == full.y_train[held]).mean()))
    assert got["heldout_acc_noisy"] != got["heldout_acc_clean"]  # 40 % noise: the two label sets differ


def test_the_alpha_table_lists_each_alpha_and_marks_the_chosen(heldout, tmp_path):
    args = heldout.build_parser().parse_args(["--data-dir", "d", "--out", "o", "--epochs", "25"])
    rows = []
    for alpha, acc in ((0.28, 0.44), (0.83, 0.47)):
        row = dict.fromkeys(heldout.ROW_KEYS)
        row.update(setting="sym40", seed=0, alpha=alpha, train_images=45000, heldout_acc_noisy=acc,
                   heldout_acc_clean=acc + 0.4, final_test_acc=0.84, best_test_acc=0.85, chosen="", epochs=25)
        rows.append(row)
    rows[1]["chosen"] = "yes"
    heldout.write_results(rows, tmp_path, args)
    md = (tmp_path / "results.md").read_text()
    assert "| 0.28 | 45000 | 0.4400 | 0.8400 |" in md and "| yes |" in md
    with open(tmp_path / "results.csv", newline="") as f:
        assert [r["chosen"] for r in csv.DictReader(f)] == ["", "yes"]


def test_the_rule_alphas_final_row_is_the_full_scale_tables(heldout, exp, tmp_path):
    rows = [_row(exp, "sym40", 0, "ce", 0.81), _row(exp, "sym40", 0, "sop", 0.85), _row(exp, "sym40", 0, "sop", 0.7, 10)]
    exp.write_results(rows[:2], tmp_path, _args(exp, "sym40"), 0.8333)
    args = heldout.build_parser().parse_args(["--data-dir", "d", "--out", "o", "--epochs", "25"])
    row = heldout.full_scale_row(args, tmp_path / "results.csv")
    assert (row["final_test_acc"], row["train_images"], row["chosen"]) == (0.85, 50000, "final (full-scale table)")
    assert row["alpha"] == pytest.approx(0.8333, abs=1e-4)
    other = heldout.build_parser().parse_args(["--data-dir", "d", "--out", "o", "--epochs", "40"])
    assert heldout.full_scale_row(other, tmp_path / "results.csv") is None  # no row at 40 epochs


def test_the_scripts_end_an_interrupt_or_an_error_with_one_line(exp, capsys):
    def interrupted():
        raise KeyboardInterrupt

    def failing():
        raise ValueError("bad\nsecond line")

    assert exp.run_guarded("s", lambda: 0) == 0
    assert exp.run_guarded("s", interrupted) == 130
    assert "s: interrupted; finished runs are kept" in capsys.readouterr().err
    assert exp.run_guarded("s", failing) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("s: ") and "bad" in err and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("tta", ["flip", "flip_translate"])
def test_the_ablations_re_evaluation_matches_the_runs_own_final_accuracy(ablation, tmp_path, tta):
    """tta_accuracies (experiments' predicted_labels on the reloaded network) against the trainer's
    own last evaluation with the same test-time augmentation: an fp32 run, so equal exactly."""
    import types

    import numpy as np

    from sopdeep.config import TrainConfig
    from sopdeep.training import load_data, train

    config = TrainConfig(dataset="synthetic", arch="cnn", width=4, epochs=2, batch_size=32, lr=0.05,
                         schedule="constant", noise="sym", noise_rate=0.4, seed=3, device="cpu", amp="off",
                         tta=tta, progress=False, out=str(tmp_path / "run"))
    result = train(config)
    ds, _ = load_data(config)
    np.savez(tmp_path / "test.npz", x_test=ds.x_test, y_test=ds.y_test)
    got = ablation.tta_accuracies(types.SimpleNamespace(out=config.out, cache_path=str(tmp_path / "test.npz")))
    assert set(got) == set(ablation.TTA_LEVELS)
    assert got[tta] == pytest.approx(result.history[-1]["test_acc"], abs=0.5 / len(ds.y_test))
