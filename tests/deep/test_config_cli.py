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
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"lr": float("nan")}, "lr must be a finite number > 0"),
    ({"alpha_u": -1.0}, "alpha_u must be a finite number >= 0"),
    ({"momentum": 1.0}, "momentum must be < 1"),
    ({"noise_rate": 1.5}, "noise_rate must be in"),
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
    assert c.alpha_v == PRESETS["cifar10-asym"]["alpha_v"] and c.noise == "asym"
    assert (c.epochs, c.alpha_u, c.out) == (6, 2.0, "runs/q")


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


def test_building_a_config_imports_no_data_model_or_method_code():
    import subprocess
    import sys

    code = ("import sys; from sopdeep.config import TrainConfig; TrainConfig(); "
            "print(sorted(m for m in sys.modules if m.startswith('sopdeep') or m == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['sopdeep', 'sopdeep.config']"


@pytest.mark.parametrize("overrides, match", [
    ({"method": "mixup"}, "method must be one of"),
    ({"dataset": "imagenet"}, "dataset must be one of"),
    ({"arch": "vgg"}, "arch must be one of"),
])
def test_unknown_names_are_refused_when_the_run_starts(tmp_path, overrides, match):
    from sopdeep.trainer import train

    config = TrainConfig(**{"dataset": "synthetic", "arch": "mlp", "out": str(tmp_path / "run"), **overrides})
    with pytest.raises(ValueError, match=match):
        train(config)
    assert not (tmp_path / "run").exists()  # refused before the run folder was touched
