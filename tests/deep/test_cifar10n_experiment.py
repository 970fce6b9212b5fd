"""The CIFAR-10N experiment script runs end to end at toy size on the real files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest


@pytest.mark.data
@pytest.mark.slow
def test_cifar10n_worst_script_small(shared_data, tmp_path, cifar_decode_cache):
    path = Path(__file__).resolve().parents[2] / "experiments" / "cifar10n_worst.py"
    spec = importlib.util.spec_from_file_location("cifar10n_worst", path)
    exp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exp)
    out = tmp_path / "out"
    payload = exp.main(["--data-dir", str(shared_data), "--out", str(out), "--cache-dir", str(cifar_decode_cache),
                        "--n-train", "256", "--n-test", "128", "--epochs", "1", "--width", "4",
                        "--methods", "ce,sop+", "--no-progress"])
    res = payload["results"]
    assert set(res) == {"ce", "sop+"}
    # the first 256 CIFAR-10N "worst" labels: the realised rate is that subset's (40.2 % overall)
    assert 0.25 < res["ce"]["realised_noise_rate"] < 0.55
    assert all(0.0 <= r["det_auroc"] <= 1.0 for r in res.values())
    assert json.loads((out / "results.json").read_text())["results"] == res
    assert (out / "sopplus" / "metrics.csv").exists() and (out / "results.md").exists()
