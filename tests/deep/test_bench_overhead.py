"""The overhead benchmark runs end to end at toy size and reports the two ratios (no timing asserted)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest


@pytest.mark.slow
def test_benchmark_reports_ratios(tmp_path):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sop_overhead.py"
    spec = importlib.util.spec_from_file_location("bench_sop_overhead", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res = bench.main(["--arch", "mlp", "--n-train", "256", "--batch-size", "64", "--epochs", "1", "--rounds", "1",
                      "--warmup-steps", "0", "--device", "cpu", "--json", str(tmp_path / "r.json")])
    assert set(res["ratios"]) == {"sop/ce", "sop+/ce"}
    assert all(math.isfinite(v) and v > 0 for v in res["ratios"].values())
    assert res["n_steps_timed"] == {"ce": 3, "sop": 3, "sop+": 3}  # 4 steps -> 3 intervals per run
    assert (tmp_path / "r.json").exists()
