"""TrainConfig validation, overrides, presets and the command line parser."""

from __future__ import annotations

import json

import pytest

from sopdeep.cli import build_parser, config_from_args, main
from sopdeep.config import TrainConfig
from sopdeep.presets import PRESETS


def test_defaults_are_valid_and_round_trip_through_json():
    c = TrainConfig()
    assert TrainConfig.from_dict(json.loads(c.to_json())) == c


@pytest.mark.parametrize("overrides, match", [
    ({"epochs": "3"}, "epochs must be of type int"),
    ({"epochs": 2.5}, "epochs must be of type int"),
    ({"epochs": True}, "epochs must be of type int"),
    ({"lr": "fast"}, "lr must be of type float"),
    ({"compile": 1}, "compile must be of type bool"),
    ({"milestones": [40, "80"]}, "milestones must be of type list"),
    ({"update": "step"}, "update must be one of"),
    ({"u_shape": "matrix"}, "u_shape must be one of"),
    ({"noise": "pair"}, "noise must be one of"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"lr": float("nan")}, "lr must be a finite number > 0"),
    ({"alpha_u": -1.0}, "alpha_u must be a finite number >= 0"),
    ({"momentum": 1.0}, r"momentum must be a finite number in \[0.0, 1.0\)"),
    ({"noise_rate": 1.5}, r"noise_rate must be a finite number in \[0.0, 1.0\]"),
    ({"seed": -1}, r"seed must be an integer in \[0, 4294967295\]"),
    ({"seed": 2**64}, "seed must be an integer in"),
    ({"method": "mixup"}, "method must be one of"),
    ({"dataset": "imagenet"}, "dataset must be one of"),
    ({"arch": "vgg"}, "arch must be one of"),
    ({"alpha_u": 1.0, "method": "ce"}, r"option\(s\) \['alpha_u'\] do not apply to method 'ce'"),
    ({"lambda_c": 0.3}, r"lambda_c belongs to sop\+"),
    ({"gce_q": 0.0, "method": "gce"}, r"gce_q must be a finite number in \(0.0, 1.0\]"),
    ({"elr_beta": 1.0, "method": "elr"}, r"elr_beta must be a finite number in \[0.0, 1.0\)"),
    ({"milestones": [80, 40]}, "milestones must be increasing"),
    ({"learning_rate": 0.1}, "unknown config key"),
    ({"gamma": 0.1}, "unknown config key"),  # renamed lr_decay
])
def test_bad_overrides_raise_value_error_naming_the_key(overrides, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig().replace(**overrides)


def test_int_is_accepted_for_float_fields():
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)


def test_from_overrides_parses_json_and_falls_back_to_strings():
    c = TrainConfig.from_overrides(["epochs=7", "milestones=[2,5]", "method=ce", "compile=true",
                                    "data_root=/a=b"])
    assert (c.epochs, c.milestones, c.method, c.compile, c.data_root) == (7, [2, 5], "ce", True, "/a=b")
    with pytest.raises(ValueError, match="key=value"):
        TrainConfig.from_overrides(["epochs"])


def test_cli_precedence_preset_then_flags_then_set():
    args = build_parser().parse_args(["--preset", "cifar10-asym", "--epochs", "5", "--set", "epochs=6",
                                      "--set", "alpha_u=2", "--out", "runs/q"])
    c = config_from_args(args)
    assert c.options.alpha_v == PRESETS["cifar10-asym"]["alpha_v"] and c.noise == "asym"
    assert (c.epochs, c.options.alpha_u, c.out) == (6, 2.0, "runs/q")


def test_cli_rejects_unknown_keys_and_presets(capsys):
    with pytest.raises(SystemExit):
        main(["--set", "nope=1", "--print-config"])
    assert "unknown config key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--preset", "nope", "--print-config"])
    assert main(["--print-config", "--method", "ce"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "ce"


def test_saved_configs_with_the_old_name_gamma_still_load():
    assert TrainConfig.from_dict({"gamma": 0.5}).lr_decay == 0.5


def test_building_a_config_imports_no_data_or_training_code():
    import subprocess
    import sys

    # the method registry (and so torch) and the dataset registry (numpy-only loaders) are needed to
    # check names and options (and the models module, for arch); the training loop and run folders are not
    code = ("import sys; from sopdeep.config import TrainConfig; TrainConfig(); "
            "print(sorted(m for m in sys.modules if m.startswith('sopdeep.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(eval(out))
    assert not loaded & {"sopdeep.training", "sopdeep.runs", "sopdeep.cli"}, loaded


def test_options_belong_to_their_method():
    # explicit options of another method are refused, even at their default value
    with pytest.raises(ValueError, match=r"\['alpha_u', 'lambda_c'\] do not apply to method 'ce'"):
        TrainConfig(method="ce", alpha_u=5, lambda_c=0.3)
    with pytest.raises(ValueError, match="do not apply to method 'ce'"):
        TrainConfig(method="ce", alpha_u=10.0)
    # options are read from config.options, never forwarded: a config has no attribute alpha_u
    assert not hasattr(TrainConfig(method="sop"), "alpha_u") and not hasattr(TrainConfig(method="ce").options, "alpha_u")
    # a config holds, and saves, its method's options only
    assert "lambda_c" not in TrainConfig(method="sop").to_dict()
    assert TrainConfig(method="sop+").to_dict()["lambda_c"] == 0.9
    assert set(TrainConfig(method="gce").to_dict()) - set(TrainConfig(method="ce").to_dict()) == {"gce_q"}
    # changing the method keeps the options both share and resets the others
    sop = TrainConfig(alpha_u=3.0)
    assert sop.replace(method="sop+").options.alpha_u == 3.0
    assert sop.replace(method="ce") == TrainConfig(method="ce")
    with pytest.raises(ValueError, match="do not apply"):
        sop.replace(method="ce", alpha_v=1.0)


def test_old_saved_configs_with_every_methods_options_still_load():
    # files written before options belonged to their method held all of them
    old = {**TrainConfig(method="ce").to_dict(), "alpha_u": 10.0, "lambda_c": 0.0, "strong_policy": "autoaugment",
           "gamma": 0.2}
    c = TrainConfig.from_dict(old)
    assert c.method == "ce" and c.lr_decay == 0.2 and c == TrainConfig(method="ce", lr_decay=0.2)
    with pytest.raises(ValueError, match="unknown config key"):
        TrainConfig.from_dict({"nonsense": 1})


def test_every_setting_is_declared_and_shown_by_help(capsys):
    from sopdeep.config import common_fields
    from sopdeep.methods import METHODS, option_fields

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for f in common_fields():
        assert f.metadata["doc"] and f"  {f.name}: " in text
    for name in METHODS:
        assert f"method {name}: " in text
        for f in option_fields(name):
            assert f.metadata["doc"] and f"  {f.name}: " in text
    assert "  alpha_u: float >= 0.0; default 10.0" in text
