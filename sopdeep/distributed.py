"""Multi-process data parallelism (``torchrun`` + DistributedDataParallel) with per-sample u, v.

Launch (one process per GPU; ``--nproc_per_node 2`` with gloo also works on a CPU)::

    torchrun --standalone --nproc_per_node 4 -m sopdeep --preset table2-cifar10-sym50 \\
        --data-root /data/cifar10 --out runs/c10-sym50

How a step works with W processes (θ gradients, u, v rows, checkpoints): ``docs/deep.md``.

Backends: ``nccl`` on CUDA, ``gloo`` on CPU (tested with 2 processes on CPU).
"""

from __future__ import annotations

import math

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistEnv", "init_from_env", "shard", "sync_rows", "sync_buffers", "all_reduce_sum_", "wrap_model",
           "cleanup", "batch_bounds"]


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job: ``world_size == 1`` means single-process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""
    owns_group: bool = False  # this process created the process group (cleanup destroys it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device_type: str = "cpu") -> DistEnv:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK).

    Without those variables (or with WORLD_SIZE=1) returns the single-process :class:`DistEnv`
    and initialises nothing. On CUDA selects ``cuda:LOCAL_RANK`` and the ``nccl`` backend, else
    ``gloo``.

    Parameters
    ----------
    device_type : {"cpu", "cuda"}
    """
    if device_type not in ("cpu", "cuda"):
        raise ValueError(f"device_type must be 'cpu' or 'cuda', got {device_type!r}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend=backend)
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, backend=backend, owns_group=owns)


def batch_bounds(n: int, batch_size: int, world_size: int = 1) -> list[int]:
    """Boundaries of an epoch's global batches in its order: every batch splits into ``world_size``
    equal, non-empty shards of at least two samples where possible.

    The global batch must be a multiple of ``world_size`` (each rank ``batch_size / world_size``
    samples). The last ``n % world_size`` samples of the epoch's order are left out of that epoch
    (the order is reshuffled every epoch, so each sample misses at most a few epochs' steps, as
    ``DistributedSampler(drop_last=True)``); a last batch with fewer than two samples per rank is
    merged into the one before it (BatchNorm needs two; single process: a last batch of one).

    >>> batch_bounds(20, 6, 3)
    [0, 6, 12, 18]
    >>> batch_bounds(22, 6, 3)
    [0, 6, 12, 21]
    >>> batch_bounds(5, 2)
    [0, 2, 5]
    """
    if int(world_size) != world_size or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    if int(batch_size) != batch_size or batch_size < 1 or batch_size % world_size:
        raise ValueError(f"batch_size must be a positive multiple of the world size ({world_size}), got {batch_size!r}")
    usable = n - n % world_size
    if usable < world_size:
        raise ValueError(f"the training set must hold at least world_size ({world_size}) samples, got {n}")
    bounds = list(range(0, usable, batch_size)) + [usable]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2 * world_size:
        del bounds[-2]  # fewer than two samples per rank: merged into the batch before
    return bounds


def shard(indices: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """This rank's contiguous slice of a global batch of indices.

    ``torch.tensor_split`` into ``world_size`` parts: sizes differ by at most one (only in the
    last, short batch of an epoch), every index lands in exactly one slice.
    """
    if not env.enabled:
        return indices
    return torch.tensor_split(indices, env.world_size)[env.rank]


def sync_rows(state: dict[str, torch.Tensor], indices: torch.Tensor, env: DistEnv,
              keys: tuple[str, ...] | None = None, *, batch: torch.Tensor | None = None) -> None:
    """Make every rank's per-sample tables agree after a step that updated ``indices`` locally.

    For each tensor ``T`` in ``state`` (rows indexed by sample), gathers ``(indices, T[indices])``
    from all ranks and writes ``T[idx_r] = rows_r`` for every rank r. Slices may differ in size
    by one; they are padded to the largest and the padding dropped.

    Parameters
    ----------
    state : dict of str to Tensor of shape (N, ...)
        Per-sample tables (SOP's ``u``, ``v``), modified in place.
    indices : LongTensor of shape (b,)
        The rows this rank updated in this step.
    env : DistEnv
    keys : tuple of str, optional
        The tables to synchronise; default all of ``state``.
    batch : LongTensor of shape (B,), optional
        The global batch ``indices`` is this rank's :func:`shard` of, the same on every rank (the
        trainer's: every rank knows the epoch's order). Then no rank needs another's sizes or
        indices, and all tables travel in one packed collective (one per dtype) instead of two
        index gathers and one gather per table.
    """
    keys = tuple(sorted(state)) if keys is None else tuple(keys)
    if not env.enabled or not keys:
        return
    if batch is not None:
        _sync_rows_packed(state, keys, batch, env)
        return
    device = state[keys[0]].device
    idx = indices.to(device)
    n_local = torch.tensor([idx.numel()], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(n_local) for _ in range(env.world_size)]
    dist.all_gather(sizes, n_local)
    sizes = [int(s.item()) for s in sizes]
    m = max(sizes)
    pad = m - idx.numel()
    idx_p = torch.cat([idx, idx.new_zeros(pad)]) if pad else idx
    gathered_idx = [torch.empty_like(idx_p) for _ in range(env.world_size)]
    dist.all_gather(gathered_idx, idx_p.contiguous())
    all_idx = torch.cat([g[:s] for g, s in zip(gathered_idx, sizes)])
    for key in keys:
        table = state[key]
        rows = table.index_select(0, idx)
        if pad:
            rows = torch.cat([rows, rows.new_zeros((pad,) + tuple(rows.shape[1:]))])
        gathered = [torch.empty_like(rows) for _ in range(env.world_size)]
        dist.all_gather(gathered, rows.contiguous())
        table.index_copy_(0, all_idx, torch.cat([g[:s] for g, s in zip(gathered, sizes)]))


def _sync_rows_packed(state, keys, batch, env) -> None:
    """:func:`sync_rows` for a known global batch: rank r owns ``tensor_split(batch, W)[r]``."""
    device = state[keys[0]].device
    batch = batch.to(device)
    sizes = [part.numel() for part in torch.tensor_split(batch, env.world_size)]  # known to every rank
    mine, m = torch.tensor_split(batch, env.world_size)[env.rank], max(sizes)
    by_dtype: dict[torch.dtype, list[str]] = {}
    for key in keys:
        by_dtype.setdefault(state[key].dtype, []).append(key)
    for dtype, group in by_dtype.items():
        # this rank's rows of every table of the group side by side: (b, sum of row sizes)
        rows = torch.cat([state[key].index_select(0, mine).reshape(mine.numel(), -1) for key in group], dim=1)
        if rows.shape[0] < m:
            rows = torch.cat([rows, rows.new_zeros((m - rows.shape[0], rows.shape[1]))])
        gathered = [torch.empty_like(rows) for _ in range(env.world_size)]
        dist.all_gather(gathered, rows.contiguous())
        every = torch.cat([g[:s] for g, s in zip(gathered, sizes)])  # rows of batch, in its order
        start = 0
        for key in group:
            table = state[key]
            width = math.prod(table.shape[1:])  # 1 for a table of scalars (N,)
            table.index_copy_(0, batch, every[:, start:start + width].reshape((batch.numel(),) + table.shape[1:]))
            start += width


def wrap_model(model: torch.nn.Module, env: DistEnv, *, device: torch.device, sync_bn: bool = False):
    """DistributedDataParallel around ``model`` (unchanged when single-process).

    DDP broadcasts rank 0's parameters and buffers at construction, so all ranks start equal.
    """
    if not env.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if sync_bn:
        if device.type != "cuda":  # torch's SyncBatchNorm runs on accelerators only
            raise ValueError(f"sync_bn needs CUDA devices, got device {device.type!r}; set sync_bn=False")
        # replaces the BatchNorm children in place (same parameters and buffers): the caller's model
        # and optimiser stay valid; statistics are then reduced over all ranks' shards
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if device.type == "cuda":
        return DDP(model, device_ids=[device.index if device.index is not None else env.local_rank])
    return DDP(model)


def cleanup(env: DistEnv) -> None:
    """Destroy the process group this process created (nothing when single-process, or when the
    caller had created the group before the run: it is the caller's to destroy)."""
    if env.enabled and env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def sync_buffers(model: torch.nn.Module, env: DistEnv) -> None:
    """Broadcast rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each training forward, but the last forward of an
    epoch updates each rank's running statistics from its own slice; calling this before
    evaluation and checkpointing makes the model state identical on every rank.
    """
    if not env.enabled:
        return
    module = model.module if hasattr(model, "module") else model
    for buf in module.buffers():
        dist.broadcast(buf, src=0)


def all_reduce_sum_(tensors, env: DistEnv) -> None:
    """In-place sum over ranks of each tensor in ``tensors`` (per-epoch metric sums)."""
    if not env.enabled:
        return
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
