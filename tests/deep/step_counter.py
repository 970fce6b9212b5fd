"""Counting, on the CPU, what one training step would make a GPU do: host syncs and dispatched ops.

:class:`StepCounter` is a ``TorchDispatchMode``: every ATen op dispatched while it is active is
counted and classified. :func:`count_steps` runs :func:`sopdeep.training.train` under it and reads the
counters at the trainer's ``"step"`` callback, so one interval between two callbacks of the same
epoch is exactly one training step (learning rate, batch gather, weak view, the method's loss,
backward, optimiser, the method's u, v step, running sums).

Classes of ops (each a count per step):

* ``syncs`` — reads of a tensor's value on the host (on a GPU: the host waits for the device):
  ``_local_scalar_dense`` (``.item()``, ``bool(t)``, ``float(t)``, ``int(t)``), ``equal``, and the
  ops whose output size depends on the data (``nonzero``, ``masked_select``, ``unique*``,
  ``bincount``, ``repeat_interleave`` without ``output_size``, indexing with a boolean mask).
* ``host_tensors`` — tensors built from host data inside the step (``torch.tensor``,
  ``as_tensor`` of Python data: ``lift_fresh``): on a GPU, a host-to-device copy.
* ``random`` — random draws inside the step (any op taking a ``generator``): the trainer draws
  every random number of a pass once per epoch, so a draw inside the step is a per-step CPU draw
  copied to the device (or a kernel the design does not expect).
* ``ops`` — every dispatched op (roughly one kernel launch each on a GPU).

``F.one_hot``'s range check (``aminmax`` and its two reads) is left out of every count: PyTorch
runs it on CPU tensors only (on CUDA the check is skipped), so it is not a GPU sync.
"""

from __future__ import annotations

import linecache
import sys
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["StepCounter", "count_steps", "SYNC_OPS"]

_ROOT = str(Path(__file__).resolve().parents[2])
_TORCH = str(Path(torch.__file__).resolve().parent)

#: Overload packets whose call reads device data on the host (or has a data-dependent shape).
SYNC_OPS = frozenset({
    "_local_scalar_dense", "equal", "nonzero", "masked_select", "unique", "_unique", "_unique2",
    "unique_dim", "unique_consecutive", "bincount",
})


def _project_line() -> str:
    """The source line of the innermost caller frame that is this project's code (not torch's)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_ROOT) and not name.startswith(_TORCH) and ".venv" not in name \
                and not name.endswith("step_counter.py"):
            return linecache.getline(name, frame.f_lineno)
        frame = frame.f_back
    return ""


def _bool_index(packet: str, args) -> bool:
    """Indexing with a boolean mask (``x[mask]``, ``x[mask] = v``): the result's size is the number
    of True values, read on the host (on CUDA a nonzero and a sync)."""
    if packet not in ("index", "index_put", "index_put_", "_index_put_impl_", "_unsafe_index") or len(args) < 2:
        return False
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in (args[1] or ()))


class StepCounter(TorchDispatchMode):
    """Counts dispatched ops by class (module docstring); ``snapshot()`` returns the running totals."""

    def __init__(self) -> None:
        super().__init__()
        self.totals: Counter = Counter()
        self.names: Counter = Counter()  # sync / host / random ops by name, for the failure message

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket.__name__
        if packet in ("aminmax", "_local_scalar_dense") and "one_hot" in _project_line():
            return func(*args, **kwargs)  # F.one_hot's CPU-only range check (module docstring)
        self.totals["ops"] += 1
        if packet in SYNC_OPS or _bool_index(packet, args) or (
                packet == "repeat_interleave" and kwargs.get("output_size") is None
                and not any(isinstance(a, int) for a in args[1:2])):
            self.totals["syncs"] += 1
            self.names[f"sync:{packet}"] += 1
        elif packet in ("lift_fresh", "lift_fresh_copy"):
            self.totals["host_tensors"] += 1
            self.names[f"host:{packet}"] += 1
        if any(arg.name == "generator" for arg in func._schema.arguments):
            self.totals["random"] += 1
            self.names[f"random:{packet}"] += 1
        return func(*args, **kwargs)

    def snapshot(self) -> tuple[Counter, Counter]:
        return Counter(self.totals), Counter(self.names)


def count_steps(config, *, skip: int = 0) -> dict:
    """Per-step counts of one :func:`sopdeep.training.train` run of ``config`` (one epoch is enough).

    Returns ``{"syncs", "host_tensors", "random", "ops"}``: the largest count of each over the
    steps of the first epoch after the first ``skip`` intervals (lazy one-time set-up, e.g. the
    Cutout fill read once per run, happens in the first step), and ``"names"``: the flagged ops
    of the worst step by name. Intervals are taken between consecutive ``"step"`` callbacks of
    the same epoch, i.e. whole steps.
    """
    from sopdeep.training import train

    counter = StepCounter()
    marks: list[tuple[int, Counter, Counter]] = []

    def on_step(epoch, step):
        marks.append((epoch, *counter.snapshot()))

    with counter:
        train(config, callbacks={"step": on_step})
    steps = []
    for (e0, t0, n0), (e1, t1, n1) in zip(marks, marks[1:]):
        if e0 == e1:
            steps.append((t1 - t0, n1 - n0))
    steps = steps[skip:]
    if not steps:
        raise ValueError(f"config must give more than {skip + 1} steps per epoch")
    worst = max(steps, key=lambda s: (s[0]["syncs"] + s[0]["host_tensors"] + s[0]["random"], s[0]["ops"]))
    result = {key: max(s[0][key] for s in steps) for key in ("syncs", "host_tensors", "random", "ops")}
    result["names"] = dict(worst[1])
    return result
