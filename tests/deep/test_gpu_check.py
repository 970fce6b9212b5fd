"""benchmarks/gpu_check.py runs end to end at toy size on the CPU (``--tiny --device cpu``) and writes
its JSON and Markdown report, so the script prepared for a lent GPU never rots."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_tiny_cpu_report(tmp_path):
    report = _module().main(["--tiny", "--device", "cpu", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["facts"]["device"] == "cpu" and saved["tiny"] is True
    row = saved["throughput"]["cnn"]
    assert set(row["img_per_s"]) == {"ce", "sop", "sop+"} and all(v > 0 for v in row["img_per_s"].values())
    assert math.isclose(row["sop/ce"], row["img_per_s"]["sop"] / row["img_per_s"]["ce"])
    cell = saved["paper_cell"]
    assert cell["epochs_total"] == 120 and 1 <= cell["epochs_run"] < 120  # stopped by its budget
    assert len(cell["test_acc"]) == cell["epochs_run"] and all(0 <= a <= 1 for a in cell["test_acc"])
    assert math.isclose(cell["projected_total_s"], sum(cell["epoch_time_s"]) / cell["epochs_run"] * 120)
    md = (tmp_path / "report.md").read_text()
    assert "| cnn |" in md and "projected time of all 120 epochs" in md
    assert report["wall_s"] > 0


def test_refuses_without_data_or_cuda(tmp_path):
    mod = _module()
    with pytest.raises(SystemExit, match="data-root"):
        mod.main(["--device", "cpu", "--out", str(tmp_path)])
