"""Presets: every one builds a valid TrainConfig; the Table A.1 structure is respected."""

from __future__ import annotations

import pytest

from sopdeep.config import TrainConfig
from sopdeep.presets import PRESETS, REFERENCE_ONLY, list_presets


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_a_valid_config(name):
    cfg = TrainConfig().replace(**PRESETS[name])
    for key, value in PRESETS[name].items():
        assert getattr(cfg, key) == value
    # explicit overrides win over the preset
    assert TrainConfig().replace(**{**PRESETS[name], "epochs": 3}).epochs == 3


def test_table_cells_present():
    # Tables 1 (SOP), 2 (SOP+) and 4 (CIFAR-N, SOP+): one preset per cell
    cells = [f"table1-{d}-sym{p}" for d in ("cifar10", "cifar100") for p in (20, 40, 60, 80)]
    cells += [f"table2-{d}-{n}" for d in ("cifar10", "cifar100") for n in ("sym20", "sym50", "sym80", "asym40")]
    cells += [f"table4-cifar10n-{c}" for c in ("clean", "aggregate", "random1", "random2", "random3", "worst")]
    cells += ["table4-cifar100n-clean", "table4-cifar100n-noisy"]
    assert set(cells) <= set(PRESETS)


def test_sop_plus_presets_carry_table_a1_lambdas_and_sop_presets_none():
    for name, p in PRESETS.items():
        if p["method"] == "sop+" and p["recipe"] == "authors":  # their PreActResNet18 and per-epoch cosine
            assert (p["lambda_c"], p["lambda_b"], p["arch"], p["schedule"]) == (0.9, 0.1, "preact18_authors",
                                                                                 "cosine_epoch")
        elif p["method"] == "sop+":
            assert (p["lambda_c"], p["lambda_b"], p["arch"], p["schedule"]) == (0.9, 0.1, "preact18", "cosine")
        else:  # SOP has no regularisers: the SOP+ options are not even accepted for it
            assert "lambda_c" not in p and "lambda_b" not in p and p["arch"] == "resnet34"


def test_asymmetric_presets_use_the_larger_v_rate():
    # Table A.1: alpha_v is 10x larger for asymmetric than symmetric noise, alpha_u unchanged
    for name, p in PRESETS.items():
        if p.get("noise") == "asym":
            sym = PRESETS[name.replace("asym", "sym").replace("sym40", "sym20")]
            assert p["alpha_u"] == sym["alpha_u"] and p["alpha_v"] == 10 * sym["alpha_v"]


def test_readme_short_names_are_the_table_a1_settings():
    # one source of presets: the README's names carry the 45k split and init_std of Table A.1
    assert PRESETS["cifar10-sym"] == PRESETS["a1-cifar10-sop-sym"]
    assert PRESETS["cifar10-asym"] == PRESETS["a1-cifar10-sop-asym"]
    assert PRESETS["cifar10-sym"]["train_subset"] == 45000 and PRESETS["cifar10-sym"]["init_std"] == 1e-8


def test_listing_names_every_preset_and_reference_settings():
    text = list_presets()
    for name in list(PRESETS) + list(REFERENCE_ONLY):
        assert name in text
