"""Atomic checkpoint files, loaded with ``torch.load(weights_only=True)`` only.

A checkpoint is a flat dict of tensors, state dicts, numbers and strings (the config and the
metric history as JSON strings), so the restricted unpickler of ``weights_only=True`` accepts it
and no code in a checkpoint can run.
"""

from __future__ import annotations

import os
from pathlib import Path

from sopcommon import atomic_path
from typing import Any

import torch

__all__ = ["CHECKPOINT_NAME", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, flushed and
    fsync'ed, then ``os.replace`` (atomic on POSIX), so a crash leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain containers only)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)
