"""``import sopdeep`` is the one door: every public name resolves, none is shadowed by a subpackage,
and the trainer's loop knows no recipe's network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sopdeep

ROOT = Path(__file__).resolve().parents[2]


def test_every_public_name_resolves_and_train_is_the_function_even_after_its_package_is_imported():
    import sopdeep.training  # noqa: F401  (the package that holds train(): importing it must not shadow it)
    import sopdeep.training.loop  # noqa: F401

    for name in sopdeep.__all__:
        assert getattr(sopdeep, name) is not None, name
    assert callable(sopdeep.train) and sopdeep.train.__module__ == "sopdeep.training.loop"
    assert sopdeep.TrainConfig.__name__ == "TrainConfig" and sopdeep.SOPLoss.__name__ == "SOPLoss"
    assert set(sopdeep.METHODS) >= {"ce", "sop", "sop+", "gce", "elr", "forward", "sl"}


def test_the_issue_s_one_liner_and_a_light_import():
    code = ("import sys, sopdeep as s; s.train, s.TrainConfig, s.SOPLoss, s.read_run, s.find_label_issues; "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    light = subprocess.run([sys.executable, "-c", "import sys, sopdeep; print('torch' in sys.modules)"],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert light.stdout.strip() == "False"  # torch comes with the first name that needs it


def test_the_trainer_package_knows_no_recipe_network():
    for path in (ROOT / "sopdeep" / "training").rglob("*.py"):
        text = path.read_text()
        assert "FastNet" not in text and "whiten" not in text, path
