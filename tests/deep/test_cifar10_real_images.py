"""experiments/cifar10_real_images.py runs end to end at toy size on the real files, and a rerun
only tabulates (the run folders are reused)."""

from __future__ import annotations

import importlib.util
import csv
from pathlib import Path

import pytest


def _load():
    path = Path(__file__).resolve().parents[2] / "experiments" / "cifar10_real_images.py"
    spec = importlib.util.spec_from_file_location("cifar10_real_images", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.data
@pytest.mark.slow
def test_real_images_script_small_and_rerun_reuses_the_runs(shared_data, tmp_path, cifar_decode_cache):
    exp = _load()
    out = tmp_path / "out"
    argv = ["--data-dir", str(shared_data), "--out", str(out), "--cache-dir", str(cifar_decode_cache),
            "--seeds", "0,1", "--n-train", "48", "--n-test", "32", "--epochs", "1", "--width", "4",
            "--methods", "ce,sop-authors,sop+"]
    rows = exp.main(argv)
    assert len(rows) == 2 * 3 * 2  # settings x methods x seeds
    sym = [r for r in rows if r["setting"] == "sym50"]
    assert all(0.3 < r["realised_noise_rate"] < 0.7 for r in sym)  # 50 % drawn on all 50,000, 48 kept
    summary = out / "worst" / "sopplus" / "s1" / "summary.json"
    stamp = summary.stat().st_mtime_ns
    again = exp.main(argv)
    assert again == rows and summary.stat().st_mtime_ns == stamp  # reused, not retrained
    with open(out / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    table = (out / "results.md").read_text()
    assert "| sym50 (" in table and "± " in table  # mean ± std over the two seeds
    # a folder holding another config is refused, not overwritten
    with pytest.raises(ValueError, match="another config"):
        exp.main([*argv[:-2], "--methods", "ce", "--lr", "0.01"])


def test_method_names_map_to_their_recipes_and_unknown_ones_are_refused():
    import argparse

    exp = _load()
    args = argparse.Namespace(alpha=10.0, lr_u=10.0, lr_v=10.0)
    assert exp.method_overrides("sop-alpha1", args) == dict(method="sop", alpha_u=1.0, alpha_v=1.0)
    assert exp.method_overrides("sop-authors", args)["recipe"] == "authors"
    assert exp.method_overrides("sop+", args)["strong_backend"] == "torchvision"
    with pytest.raises(ValueError, match="unknown method"):
        exp.method_overrides("mixup", args)
