"""experiments/cifar10_full_scale.py: a ``--settings`` subset adds its rows to the committed table.

No training: the table writer on made-up rows (the runs themselves take 20 minutes each).
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
    assert "--settings" not in md.split("`")[-2]  # the whole table's command


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
