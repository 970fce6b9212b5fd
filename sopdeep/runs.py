"""Run folders: every file :func:`sopdeep.trainer.train` writes, and :func:`read_run` to read them back.

A run folder holds ``config.json`` (the :class:`~sopdeep.config.TrainConfig`), ``metrics.csv`` and
``metrics.jsonl`` (one row per epoch), ``checkpoint.pt`` (everything a resume needs),
``samples.npz`` (per-sample outputs) and ``summary.json``. Every file is written atomically
(:func:`sopcommon.atomic_path`): a kill leaves the previous version or the new one, never a
truncated file. JSON files are strict: undefined metrics (NaN) are written as ``null``.

Checkpoints are loaded with ``torch.load(weights_only=True)`` only: a checkpoint is a flat dict
of tensors, state dicts, numbers and strings, so no code in a file can run.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> write_summary(folder, {"best_test_acc": 0.9, "det_precision": float("nan")})
>>> json.loads((folder / SUMMARY).read_text())
{'best_test_acc': 0.9, 'det_precision': None}
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sopcommon import atomic_path, atomic_savez, atomic_write_bytes
from sopdeep.config import TrainConfig

__all__ = ["RunRecord", "read_run", "start_run", "write_config", "write_metrics", "write_samples",
           "write_summary", "write_checkpoint", "load_checkpoint", "restore_checkpoint",
           "CONFIG", "METRICS_CSV", "METRICS_JSONL", "CHECKPOINT", "SAMPLES", "SUMMARY"]

CONFIG, METRICS_CSV, METRICS_JSONL = "config.json", "metrics.csv", "metrics.jsonl"
CHECKPOINT, SAMPLES, SUMMARY = "checkpoint.pt", "samples.npz", "summary.json"

# keys that may differ between the saved config and the one passed with resume=True
_RESUME_FREE_KEYS = ("progress", "device", "out", "data_root", "cache_path", "cifar_n_path")


@dataclass
class RunRecord:
    """A finished run read back from its folder by :func:`read_run`.

    Attributes
    ----------
    config : TrainConfig
    history : list of dict
        One row per epoch (``metrics.jsonl``); undefined metrics are ``nan``.
    samples : dict of ndarray
        Per-sample outputs (``samples.npz``), e.g. ``noise_score`` of shape (N,).
    summary : dict
        ``summary.json``; undefined values are None.
    """

    config: TrainConfig
    history: list[dict[str, Any]]
    samples: dict[str, np.ndarray]
    summary: dict[str, Any]


def read_run(folder) -> RunRecord:
    """Read the config, metric history, per-sample outputs and summary of a finished run."""
    folder = Path(folder)
    missing = [name for name in (CONFIG, METRICS_JSONL, SAMPLES, SUMMARY) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a finished run folder: {', '.join(missing)} missing")
    config = TrainConfig.from_dict(json.loads((folder / CONFIG).read_text()))
    history = [{k: float("nan") if v is None else v for k, v in json.loads(line).items()}
               for line in (folder / METRICS_JSONL).read_text().splitlines() if line.strip()]
    with np.load(folder / SAMPLES, allow_pickle=False) as npz:
        samples = {key: npz[key] for key in npz.files}
    return RunRecord(config=config, history=history, samples=samples,
                     summary=json.loads((folder / SUMMARY).read_text()))


def start_run(folder, config: TrainConfig, *, resume: bool, is_main: bool = True) -> dict[str, Any] | None:
    """Open ``folder`` for ``config``; return the checkpoint to resume from, or None.

    Without ``resume`` an existing checkpoint raises ``FileExistsError`` (never overwritten); with
    it, a checkpoint whose config differs outside paths, device and progress raises ``ValueError``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CHECKPOINT
    if not resume and path.exists():
        raise FileExistsError(f"{path} exists: pass resume=True (--resume) to continue that run, "
                              "or choose another out folder (nothing was overwritten)")
    ckpt = load_checkpoint(path) if resume and path.exists() else None
    if ckpt is not None:
        saved = TrainConfig.from_dict(json.loads(ckpt["config"]))
        diff = {k: (v, getattr(config, k)) for k, v in saved.to_dict().items()
                if k not in _RESUME_FREE_KEYS and getattr(config, k) != v}
        if diff:
            raise ValueError(f"config differs from the checkpoint's in {diff} (saved, given); "
                             "start a new run in another out folder instead")
    if is_main:
        write_config(folder, config)
    return ckpt


def _strict_json(obj: Any) -> Any:
    """Non-finite floats to None (JSON ``null``), recursively: Python would write ``NaN``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict_json(v) for v in obj]
    return obj


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(_strict_json(obj), indent=2, sort_keys=True, allow_nan=False).encode())


def write_config(folder, config: TrainConfig) -> None:
    """``config.json``: the run's TrainConfig."""
    atomic_write_bytes(Path(folder) / CONFIG, config.to_json().encode())


def write_metrics(folder, history: list[dict[str, Any]]) -> None:
    """``metrics.csv`` and ``metrics.jsonl`` rewritten from the whole history (a resumed run never
    duplicates rows)."""
    if not history:
        return
    keys = list(history[0])
    for row in history[1:]:
        keys += [k for k in row if k not in keys]
    with atomic_path(Path(folder) / METRICS_CSV) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    lines = [json.dumps(_strict_json(row), allow_nan=False) + "\n" for row in history]
    atomic_write_bytes(Path(folder) / METRICS_JSONL, "".join(lines).encode())


def write_samples(folder, samples: dict[str, np.ndarray]) -> None:
    """``samples.npz``: the per-sample outputs (uncompressed)."""
    atomic_savez(Path(folder) / SAMPLES, samples)


def write_summary(folder, summary: dict[str, Any]) -> None:
    """``summary.json``, strict JSON."""
    _write_json(Path(folder) / SUMMARY, summary)


def write_checkpoint(folder, *, epoch: int, config: TrainConfig, history, model, optimizer, scaler,
                     state: dict[str, torch.Tensor], method_state: dict[str, torch.Tensor],
                     device: torch.device) -> None:
    """``checkpoint.pt``: model, optimiser, scaler, per-sample and method state, RNG states, config,
    history and the number of epochs done."""
    payload = {
        "epoch": epoch,
        "config": config.to_json(),
        "history": json.dumps(history),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "state": {key: val.detach().cpu() for key, val in state.items()},
        "method": method_state,
        "rng_cpu": torch.get_rng_state(),
    }
    if device.type == "cuda":
        payload["rng_cuda"] = torch.cuda.get_rng_state(device)
    with atomic_path(Path(folder) / CHECKPOINT) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path) -> dict[str, Any]:
    """Load a checkpoint file with ``weights_only=True`` (tensors and plain containers only)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def restore_checkpoint(ckpt: dict[str, Any], *, model, optimizer, scaler, state, method,
                       device: torch.device) -> tuple[list[dict[str, Any]], int]:
    """Load ``ckpt`` into the run's objects (in place); return (history, epochs done)."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scaler.is_enabled() and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    for key in state:
        state[key].copy_(ckpt["state"][key].to(device))
    if ckpt.get("method"):
        method.load_state_dict(ckpt["method"])
    torch.set_rng_state(ckpt["rng_cpu"])
    if device.type == "cuda" and "rng_cuda" in ckpt:
        torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
    return json.loads(ckpt["history"]), int(ckpt["epoch"])
