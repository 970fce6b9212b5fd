"""Numerical precision of a run, decided in one place: autocast dtype, GradScaler, TF32, cuDNN autotuning,
and the u, v step that follows GradScaler's decision without a host sync.

* :func:`resolve_amp` — ``amp="auto"``: bf16 only where the hardware computes it natively (CUDA
  compute capability 8.0 and later: A100, H100, RTX 30xx and later; on a CPU, AVX-512 with oneDNN's
  bf16 kernels), else fp16 with a GradScaler on CUDA (V100, T4: sm70 / sm75) and fp32 on a CPU.
  ``torch.cuda.is_bf16_supported()`` alone also says yes to *emulated* bf16 (a T4 would then train
  slower than in fp16): the native test is :func:`cuda_has_native_bf16`.
* :func:`backend_flags` — TF32 is a setting: ``tf32="auto"`` enables it for the fp32 matmuls and
  convolutions of a mixed-precision run and disables it under ``amp="off"`` (fp32 then means fp32
  on Ampere and later too); ``cudnn.benchmark`` (autotuned convolution algorithms) is on unless
  ``deterministic`` is asked for.
* :func:`scaler_signals` and :func:`sopdeep.sop_loss.keep_where_skipped` — with fp16, GradScaler skips θ's step when a
  gradient overflowed. u, v must skip theirs in exactly those steps, yet reading the decision
  (``found_inf``) or the scale (``get_scale()``) on the host would stall the GPU every step: the
  scale and the found-inf flag stay device tensors, the u, v gradients are unscaled by the tensor
  and their new rows are kept only where no overflow was found (``torch.where``).
"""

from __future__ import annotations

import torch

__all__ = ["AMP_MODES", "TF32_MODES", "cuda_has_native_bf16", "cpu_has_native_bf16", "resolve_amp", "backend_flags",
           "apply_backend_flags", "scaler_signals"]

AMP_MODES = ("auto", "bf16", "fp16", "off")
TF32_MODES = ("auto", "on", "off")


def cuda_has_native_bf16(device=None) -> bool:
    """Whether the CUDA device computes bf16 natively: compute capability >= 8.0 (Ampere and later).

    Where this torch's ``torch.cuda.is_bf16_supported`` takes ``including_emulation``, its answer
    with ``including_emulation=False`` must agree too.
    """
    if not torch.cuda.is_available():
        return False
    major, _ = torch.cuda.get_device_capability(device)
    if major < 8:
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # older torch: no such argument; the capability decides
        return True


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 natively: AVX-512 and oneDNN's bf16 kernels (else bf16 is emulated,
    slower than fp32)."""
    if "AVX512" not in torch.backends.cpu.get_cpu_capability():
        return False
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(torch.backends.mkldnn.is_available() and check is not None and check())


def resolve_amp(mode: str, device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a GradScaler is needed) of ``amp=mode`` on ``device``.

    Parameters
    ----------
    mode : {"auto", "bf16", "fp16", "off"}
    device : torch.device or str

    Returns
    -------
    dtype : torch.bfloat16, torch.float16 or None (fp32)
    use_scaler : bool
        True exactly for fp16 on CUDA (bf16 has fp32's exponent range; a CPU run keeps fp32 or bf16).

    Examples
    --------
    >>> resolve_amp("off", "cpu")
    (None, False)
    >>> resolve_amp("fp16", "cpu")
    (torch.float16, False)
    """
    if mode not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {mode!r}")
    device = torch.device(device)
    if mode == "auto":
        if device.type == "cuda":
            mode = "bf16" if cuda_has_native_bf16(device) else "fp16"
        elif device.type == "cpu":
            mode = "bf16" if cpu_has_native_bf16() else "off"
        else:
            mode = "off"
    if mode == "off":
        return None, False
    if mode == "bf16":
        return torch.bfloat16, False
    return torch.float16, device.type == "cuda"


def backend_flags(amp: str, *, tf32: str = "auto", deterministic: bool = False) -> dict[str, bool]:
    """The global backend switches a run sets: ``tf32`` (matmul and cuDNN) and ``cudnn_benchmark``.

    ``tf32="auto"``: on for a mixed-precision run (``amp`` not "off": its fp32 parts are not the
    point of precision there), off under ``amp="off"`` (fp32 is then fp32 on Ampere and later, not
    TF32's 10-bit mantissa). ``cudnn_benchmark``: on (cuDNN picks the fastest algorithm for each
    shape; the shapes of a run are fixed) unless ``deterministic``, which also turns on cuDNN's
    deterministic algorithms.

    >>> backend_flags("off")
    {'tf32': False, 'cudnn_benchmark': True, 'cudnn_deterministic': False}
    >>> backend_flags("bf16", deterministic=True)["cudnn_benchmark"]
    False
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    if tf32 not in TF32_MODES:
        raise ValueError(f"tf32 must be one of {TF32_MODES}, got {tf32!r}")
    use_tf32 = (amp != "off") if tf32 == "auto" else tf32 == "on"
    return {"tf32": use_tf32, "cudnn_benchmark": not deterministic, "cudnn_deterministic": bool(deterministic)}


def apply_backend_flags(flags: dict[str, bool]) -> dict[str, bool]:
    """Set :func:`backend_flags`' switches in torch (process-wide); returns the previous values
    (to restore them: ``apply_backend_flags(previous)``)."""
    previous = {"tf32": torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32,
                "cudnn_benchmark": torch.backends.cudnn.benchmark,
                "cudnn_deterministic": torch.backends.cudnn.deterministic}
    torch.backends.cuda.matmul.allow_tf32 = flags["tf32"]
    torch.backends.cudnn.allow_tf32 = flags["tf32"]
    torch.backends.cudnn.benchmark = flags["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = flags["cudnn_deterministic"]
    return previous


def scaler_signals(scaler, optimizer) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(scale, found_inf) of the step GradScaler just took, as device tensors (no host read).

    Call after ``scaler.step(optimizer)`` and before ``scaler.update()``. ``scale`` is the factor
    the loss was multiplied by (shape (1,)); ``found_inf`` is 1.0 where an inf/NaN gradient made
    the scaler skip θ's step, else 0.0 (summed over devices). ``(None, None)`` when the scaler is
    disabled (bf16 / fp32: nothing is scaled or skipped).
    """
    if not scaler.is_enabled():
        return None, None
    found = scaler._found_inf_per_device(optimizer)  # tensors; the step has unscaled the grads already
    found_inf = torch.zeros_like(scaler._scale)
    for value in found.values():
        found_inf = found_inf + value.to(found_inf.device)
    # a copy: update() rescales _scale in place, after which it is no longer the step's factor
    return scaler._scale.clone(), found_inf


