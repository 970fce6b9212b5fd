"""Precision decisions (sopdeep.training.precision), checked on the CPU with the CUDA queries monkeypatched,
and the u, v step that skips exactly when GradScaler skips θ's, without a host read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from sopdeep.training import precision
from sopdeep.sop_loss import keep_where_skipped
from sopdeep.training.precision import apply_backend_flags, backend_flags, resolve_amp, scaler_signals

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_counter import StepCounter  # noqa: E402


def _fake_gpu(monkeypatch, capability, native=None, has_argument=True):
    """A CUDA device of ``capability`` whose is_bf16_supported(including_emulation=False) says ``native``
    (default: capability >= 8.0); ``has_argument=False``: an older torch without the argument."""
    native = capability >= (8, 0) if native is None else native
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    if has_argument:
        # the emulation-counting answer is True on every one of these (the trap the issue names)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                            lambda including_emulation=True: True if including_emulation else native)
    else:
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)


@pytest.mark.parametrize("capability, expected", [
    ((7, 0), (torch.float16, True)),   # V100: fp16 + GradScaler
    ((7, 5), (torch.float16, True)),   # T4: bf16 only emulated -> fp16 + GradScaler
    ((8, 0), (torch.bfloat16, False)),  # A100
    ((8, 6), (torch.bfloat16, False)),  # RTX 30xx
    ((9, 0), (torch.bfloat16, False)),  # H100
])
def test_auto_is_native_bf16_else_fp16_with_scaler(monkeypatch, capability, expected):
    _fake_gpu(monkeypatch, capability)
    assert resolve_amp("auto", "cuda") == expected


def test_auto_trusts_the_no_emulation_answer_and_old_torch(monkeypatch):
    _fake_gpu(monkeypatch, (8, 0), native=False)  # a capability-8 device torch says emulates bf16
    assert resolve_amp("auto", "cuda") == (torch.float16, True)
    _fake_gpu(monkeypatch, (8, 0), has_argument=False)  # a torch without including_emulation
    assert resolve_amp("auto", "cuda") == (torch.bfloat16, False)
    _fake_gpu(monkeypatch, (7, 5), has_argument=False)
    assert resolve_amp("auto", "cuda") == (torch.float16, True)


def test_explicit_modes_and_cpu(monkeypatch):
    assert resolve_amp("off", "cuda") == (None, False)
    assert resolve_amp("bf16", "cuda") == (torch.bfloat16, False)
    assert resolve_amp("fp16", "cuda") == (torch.float16, True)
    assert resolve_amp("fp16", "cpu") == (torch.float16, False)  # no CUDA GradScaler on a CPU run
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_amp("auto", "cpu") == (None, False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_amp("auto", "cpu") == (torch.bfloat16, False)
    with pytest.raises(ValueError, match="amp must be one of"):
        resolve_amp("fp8", "cuda")


def test_tf32_follows_amp_and_benchmark_follows_determinism():
    assert backend_flags("off")["tf32"] is False  # fp32 means fp32
    assert backend_flags("bf16")["tf32"] is True and backend_flags("fp16")["tf32"] is True
    assert backend_flags("off", tf32="on")["tf32"] is True and backend_flags("bf16", tf32="off")["tf32"] is False
    assert backend_flags("auto")["cudnn_benchmark"] is True
    det = backend_flags("off", deterministic=True)
    assert det["cudnn_benchmark"] is False and det["cudnn_deterministic"] is True
    with pytest.raises(ValueError, match="tf32 must be one of"):
        backend_flags("off", tf32="yes")
    previous = apply_backend_flags(det)
    try:
        assert torch.backends.cudnn.benchmark is False and torch.backends.cudnn.deterministic is True
        assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is False
    finally:
        apply_backend_flags(previous)


def _sop_like_step(overflow: bool, init_scale=2.0 ** 10):
    """One θ step through a CPU GradScaler and the u rows' step through scaler_signals, as the trainer
    does it: returns (θ before, θ after, u before, u after, u's expected update without scaling)."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    u = torch.full((5, 1), 0.3, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(net(x) + u * torch.eye(3)[y], y)  # u at the label, as SOP
    # the independent reference: u's gradient of the unscaled fp32 loss
    (gu_ref,) = torch.autograd.grad(loss, u, retain_graph=True)
    scaler.scale(loss).backward()
    if overflow:  # an fp16 overflow in one θ gradient: GradScaler must skip θ's step
        net.weight.grad[0, 0] = float("inf")
    theta0 = net.weight.detach().clone()
    scaler.step(opt)
    with StepCounter() as counter:
        scale, found_inf = scaler_signals(scaler, opt)
        new_u = u.detach() - 0.5 * (u.grad / scale)  # u's step on the unscaled gradient
        u_after = keep_where_skipped(new_u, u.detach(), found_inf)
    scaler.update()
    assert counter.snapshot()[0]["syncs"] == 0  # neither the scale nor the decision read on the host
    return theta0, net.weight.detach(), u.detach(), u_after, u.detach() - 0.5 * gu_ref


def test_uv_step_with_theta_when_finite():
    theta0, theta1, u0, u1, expected = _sop_like_step(overflow=False)
    assert not torch.equal(theta0, theta1)  # θ stepped
    # unscaling by a power of two is exact: only the float rounding of the two gradients differs
    torch.testing.assert_close(u1, expected, rtol=0, atol=1e-7)
    assert not torch.equal(u1, u0)


def test_uv_skip_exactly_when_theta_skips():
    theta0, theta1, u0, u1, _ = _sop_like_step(overflow=True)
    assert torch.equal(theta0, theta1)  # GradScaler skipped θ
    assert torch.equal(u1, u0)  # and u skipped with it


def test_signals_absent_without_scaler():
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    assert scaler_signals(scaler, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)) == (None, None)
    assert torch.equal(keep_where_skipped(torch.ones(2), torch.zeros(2), None), torch.ones(2))
