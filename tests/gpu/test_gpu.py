"""The trainer on a GPU (issue 33, part 5): every method two epochs in bf16 and fp16, resume on the
GPU, checkpoints across devices, torch.compile with a bounded number of recompilations, DDP over
NCCL. Skipped with the reason where CUDA is absent (tests/gpu/conftest.py); run on a lent GPU with
``python -m pytest tests/gpu -q`` or through ``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sopdeep.config import TrainConfig
from sopdeep.methods import METHODS
from sopdeep.training import train

ROOT = Path(__file__).resolve().parents[2]
#: options a method needs to run two epochs (forward's estimated T needs warm-up epochs)
_RUNNABLE = {"forward": {"forward_matrix": "known"}}


def _config(tmp_path, method="sop", **kw):
    base = dict(dataset="synthetic", arch="cnn", width=8, epochs=2, batch_size=64, lr=0.05, method=method,
                device="cuda", progress=False, seed=0, out=str(tmp_path / f"{method}-{kw.get('amp', 'auto')}"))
    base.update(_RUNNABLE.get(method, {}))
    base.update(kw)
    return TrainConfig(**base)


def _bf16_native():
    major, _ = torch.cuda.get_device_capability()
    return major >= 8


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_two_epochs(tmp_path, method, amp):
    if amp == "bf16" and not _bf16_native():
        pytest.skip("bf16 is emulated on this GPU (compute capability < 8.0)")
    res = train(_config(tmp_path, method, amp=amp))
    assert res.summary["precision"] == amp
    assert len(res.history) == 2 and all(math.isfinite(r["train_loss"]) for r in res.history)
    assert 0.0 <= res.history[-1]["test_acc"] <= 1.0


def test_auto_precision_is_native(tmp_path):
    res = train(_config(tmp_path, "ce", epochs=1))
    assert res.summary["precision"] == ("bf16" if _bf16_native() else "fp16")


@pytest.mark.parametrize("method", ["sop", "sop+"])
def test_resume_on_the_gpu(tmp_path, method):
    """Two epochs then two more from the checkpoint: the same number of epochs and the per-sample
    state close to an uninterrupted run (GPU kernels are not bit-reproducible: cuDNN autotuning,
    atomics; 1e-3 covers their float noise over four epochs of a small net)."""
    cfg = _config(tmp_path, method, epochs=4, amp="bf16" if _bf16_native() else "fp16")
    whole = train(cfg.replace(out=str(tmp_path / "whole")))
    part = cfg.replace(out=str(tmp_path / "part"))
    train(part.replace(epochs=2))
    resumed = train(part, resume=True)
    assert len(resumed.history) == 4
    for key in whole.state:
        torch.testing.assert_close(resumed.state[key], whole.state[key], atol=1e-3, rtol=1e-3)


def test_checkpoints_cross_devices(tmp_path):
    """A GPU run resumed on the CPU and a CPU run resumed on the GPU."""
    gpu = _config(tmp_path, "sop", epochs=1, amp="off", out=str(tmp_path / "gpu"))
    train(gpu)
    res = train(gpu.replace(device="cpu", epochs=2), resume=True)
    assert len(res.history) == 2 and res.state["u"].device.type == "cpu"
    cpu = _config(tmp_path, "sop", epochs=1, amp="off", device="cpu", out=str(tmp_path / "cpu"))
    train(cpu)
    res = train(cpu.replace(device="cuda", epochs=2), resume=True)
    assert len(res.history) == 2 and math.isfinite(res.history[-1]["train_loss"])


def test_compile_recompiles_boundedly(tmp_path):
    """torch.compile of the network: the last, short batch and evaluation may each compile once
    more; more than 4 graphs would mean a recompilation per step (a shape or guard that changes)."""
    import torch._dynamo as dynamo

    dynamo.reset()
    counters = dynamo.utils.counters
    counters.clear()
    res = train(_config(tmp_path, "sop+", compile=True, epochs=2))
    assert math.isfinite(res.history[-1]["train_loss"])
    assert counters["stats"]["unique_graphs"] <= 4, dict(counters["stats"])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP over NCCL needs two or more GPUs")
def test_ddp_over_nccl(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MASTER_PORT": str(port)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "sopdeep",
           "--dataset", "synthetic", "--arch", "cnn", "--epochs", "2", "--batch-size", "64", "--method", "sop+",
           "--device", "cuda", "--no-progress", "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "ddp" / "summary.json").exists()
