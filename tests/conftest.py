"""Shared pytest configuration: hypothesis profiles and the path to the real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# "ci": derandomized so a red CI is reproducible; "dev": random exploration with more examples.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Scripts that tests launch in subprocesses (torchrun workers); they run at import, so pytest must
# not import them while collecting doctests.
collect_ignore = ["deep/ddp_worker.py"]

SHARED_DATA = Path(os.environ.get("SOP_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data():
    """Path to ``../shared/data``; skips (with the reason) when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder not found at {SHARED_DATA} (set SOP_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cifar_decode_cache(shared_data, tmp_path_factory):
    """One folder for the decoded CIFAR-10 JPEG export, shared by the tests that need it (the
    decode of all 60,000 images is paid once per session)."""
    return tmp_path_factory.mktemp("cifar_decode_cache")


@pytest.fixture(autouse=True)
def _cpu_unless_gpu_test(request, monkeypatch):
    """Outside tests/gpu, ``device="auto"`` means the CPU even on a GPU machine: the suite's
    bit-identity checks (resume, seeds, DDP rows) hold on the CPU, and would switch to CUDA + bf16
    there otherwise. tests/gpu sees CUDA as it is."""
    if "/tests/gpu/" not in str(request.node.fspath).replace("\\", "/"):
        import torch

        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
