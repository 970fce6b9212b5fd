"""Presets: every one builds a valid TrainConfig; the Table A.1 structure is respected."""

from __future__ import annotations

import pytest

from sopdeep.config import TrainConfig
from sopdeep.presets import PRESETS, REFERENCE_ONLY, list_presets


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_a_valid_config(name):
    cfg = TrainConfig().replace(**PRESETS[name])
    for key, value in PRESETS[name].items():
        assert cfg.to_dict()[key] == value
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
            assert "lambda_c" not in p and "lambda_b" not in p
            assert p["arch"] == ("fast" if name.startswith("fast-") else "resnet34")


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


def test_authors_presets_run_fp32_and_cifar100_asym_uses_their_readme_lr_u():
    # their training has no autocast: every authors-* preset pins amp="off" instead of inheriting "auto"
    authors = {n: p for n, p in PRESETS.items() if p.get("recipe") == "authors"}
    assert authors and all(p["amp"] == "off" for p in authors.values())
    # their README runs CIFAR-100 asymmetric with --lr_u 0.1 --lr_v 100 (Table A.1 says alpha_u = 1.0)
    assert (authors["authors-table2-cifar100-asym40"]["lr_u"], authors["authors-table2-cifar100-asym40"]["lr_v"]) \
        == (0.1, 100.0)
    assert PRESETS["table2-cifar100-asym40"]["alpha_u"] == 1.0  # the paper recipe keeps Table A.1's value
    assert authors["authors-table2-cifar10-asym40"]["lr_u"] == 10.0  # CIFAR-10's cell is unchanged


def test_listing_is_a_table_with_recipe_and_table2_architecture_note():
    from sopdeep.presets import PUBLISHED_BY, preset_rows

    rows = {r["name"]: r for r in preset_rows()}
    assert set(rows) == set(PRESETS)
    text = list_presets()
    assert text.splitlines()[0].split() == ["name", "method", "dataset", "noise", "rate", "recipe", "note"]
    assert PUBLISHED_BY in text and "authors' code" in PUBLISHED_BY
    for name, r in rows.items():
        assert (r["method"], r["dataset"], r["recipe"]) == (PRESETS[name]["method"], PRESETS[name]["dataset"],
                                                            "fast" if name.startswith("fast-") else
                                                            PRESETS[name]["recipe"])
        # every Table 2 preset says its caption's ResNet34 is not what it runs
        assert ("ResNet34" in r["note"]) == name.startswith(("table2-", "authors-table2-"))
    assert "update=epoch" in rows["table1-cifar10-sym40"]["note"]
    assert rows["table2-cifar10-asym40"]["rate"] == 0.4 and rows["table4-cifar10n-worst"]["rate"] is None


def test_cli_list_presets_prints_the_table_and_json_the_same_rows(capsys):
    import json

    from sopdeep.cli import main

    assert main(["--list-presets"]) == 0
    assert capsys.readouterr().out.strip() == list_presets().strip()
    assert main(["--list-presets", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in doc["presets"]] == sorted(PRESETS) and set(doc["reference_only"]) == set(REFERENCE_ONLY)
    assert doc["presets"][0]["overrides"] == PRESETS[doc["presets"][0]["name"]]


def test_fast_presets_share_one_recipe_and_sop_uses_the_effective_alpha():
    from sopdeep.presets import FAST_AIRBENCH_SWITCHES, FAST_SOP_ALPHA

    fast = {name: p for name, p in PRESETS.items() if name.startswith(("fast-cifar10-", "fast-cifar10n-"))}
    fast["fast-cifar10"] = PRESETS["fast-cifar10"]
    assert len(fast) == 9  # clean + {ce, sop} x {sym40, sym80, worst, aggregate}
    for name, p in fast.items():
        assert (p["arch"], p["batch_size"], p["schedule"]) == ("fast", 1024, "triangle")
        # the clean preset adds airbench's other switches; the noisy ones keep the full-scale table's recipe
        switches = {key: p.get(key) for key in FAST_AIRBENCH_SWITCHES}
        if name == "fast-cifar10":
            assert switches == FAST_AIRBENCH_SWITCHES
        else:
            assert p["tta"] == "flip" and p["epochs"] == 10 and all(
                switches[key] is None for key in ("flip", "lookahead", "stem_bias_epochs", "tta_on")), name
        if p["method"] == "sop":  # Table A.1's alpha * B * (1 - beta) = 10 * 128 * 0.1 at B = 1024, beta = 0.85
            assert p["alpha_u"] == p["alpha_v"] == FAST_SOP_ALPHA
            assert FAST_SOP_ALPHA * 1024 * (1 - 0.85) == pytest.approx(128.0, rel=1e-12)
    assert fast["fast-cifar10"]["label_smoothing"] == 0.2 and fast["fast-cifar10"]["noise"] == "none"
    assert all("label_smoothing" not in p for n, p in fast.items() if n != "fast-cifar10")


def test_fast_cifar100_presets_are_cifar10s_recipe_on_the_png_export_with_table_a1s_cifar100_alpha():
    from sopdeep.presets import FAST_SOP_ALPHA_CIFAR100

    c100 = {name: p for name, p in PRESETS.items() if name.startswith(("fast-cifar100-", "fast-cifar100n-"))}
    assert set(c100) == {f"fast-cifar100-{m}-sym{p}" for m in ("ce", "sop") for p in (20, 40, 60, 80)} | {
        "fast-cifar100n-ce", "fast-cifar100n-sop"}
    # the clean preset: fast-cifar10's settings, on the export
    assert PRESETS["fast-cifar100"] == {**PRESETS["fast-cifar10"], "dataset": "cifar100-png"}
    # Table A.1's CIFAR-100 symmetric rates (alpha_u 1, alpha_v 10 at B = 128, beta = 0.9) keep
    # alpha * B * (1 - beta) at B = 1024, beta = 0.85
    a1 = PRESETS["a1-cifar100-sop-sym"]
    for rate, paper in zip(FAST_SOP_ALPHA_CIFAR100, (a1["alpha_u"], a1["alpha_v"])):
        assert rate * 1024 * (1 - 0.85) == pytest.approx(paper * 128 * (1 - 0.9), rel=1e-12)
    for name, p in c100.items():
        # everything but the data, the noise and u, v's rates is the CIFAR-10 sym40 preset of the method
        ref = PRESETS[f"fast-cifar10-{p['method']}-sym40"]
        skip = ("dataset", "noise", "noise_rate", "cifar_n_label", "alpha_u", "alpha_v")
        assert {k: v for k, v in p.items() if k not in skip} == {k: v for k, v in ref.items() if k not in skip}, name
        assert p["dataset"] == "cifar100-png"
        assert p["noise"] == ("cifar100n" if name.startswith("fast-cifar100n-") else "sym")
        if p["method"] == "sop":
            assert (p["alpha_u"], p["alpha_v"]) == FAST_SOP_ALPHA_CIFAR100
    assert PRESETS["fast-cifar100-sop-sym60"]["noise_rate"] == 0.6


def test_authors_table1_cells_are_the_paper_cells_under_the_authors_update_rules():
    for ds in ("cifar10", "cifar100"):
        for pct in (20, 40, 60, 80):
            paper, authors = PRESETS[f"table1-{ds}-sym{pct}"], PRESETS[f"authors-table1-{ds}-sym{pct}"]
            config = TrainConfig().replace(**authors)
            assert (config.method, config.arch, config.options.recipe, config.noise, config.amp) == (
                "sop", "resnet34", "authors", "sym-authors", "off")
            # Table A.1's u, v rates become the authors' constant lr_u, lr_v
            assert (config.options.lr_u, config.options.lr_v) == (paper["alpha_u"], paper["alpha_v"])
            for key in ("epochs", "schedule", "milestones", "batch_size", "lr", "weight_decay"):
                assert authors[key] == paper[key], key
            # their train_val_split keeps all 50,000 images for training; Table A.1 says 45,000
            assert (paper["train_subset"], config.train_subset) == (45000, 0)


def test_unknown_preset_is_one_line_with_close_names(capsys, tmp_path):
    from sopdeep.cli import main

    with pytest.raises(SystemExit) as exit_info:  # argparse's error: exit status 2, usage + one line
        main(["--preset", "fast-cifar", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("sop-train: error: unknown preset") and "did you mean fast-cifar10" in last
    assert "--list-presets" in last
