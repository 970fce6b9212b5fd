"""Every benchmark and experiment script still imports and parses its command line (so none rots
unnoticed: a moved module fails here, not when a reader runs the README's command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.relative_to(ROOT).as_posix() for folder in ("benchmarks", "experiments")
                 for p in (ROOT / folder).glob("*.py"))


def test_the_scripts_are_found():
    assert "benchmarks/bench_label_issues.py" in SCRIPTS and "experiments/fashion_mnist_noise.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help_runs(script):
    proc = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout.lower(), proc.stdout[-500:]
