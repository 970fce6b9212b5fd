"""Multi-process data parallel on CPU with gloo: row synchronisation of u, v and a full run."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from sopdeep.distributed import DistEnv, shard, sync_rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sync_worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    from sopdeep.distributed import cleanup, init_from_env

    env = init_from_env("cpu")
    n, k = 11, 3
    state = {"u": torch.zeros(n, 1), "v": torch.zeros(n, k)}
    # two steps; the second global batch is short and splits unevenly (sizes 2 and 1)
    for step, batch in enumerate([torch.tensor([7, 2, 9, 0, 4]), torch.tensor([1, 10, 3])]):
        mine = shard(batch, env)
        # the local update: a value identifying (rank, step, row), written only to my rows
        state["u"].index_copy_(0, mine, (100 * rank + 10 * step + mine).float()[:, None])
        state["v"].index_copy_(0, mine, (100 * rank + 10 * step + mine).float()[:, None].repeat(1, k) + 0.5)
        sync_rows(state, mine, env)
    torch.save(state, os.path.join(out_dir, f"state{rank}.pt"))
    cleanup(env)


def test_sync_rows_each_row_written_once_by_its_owner(tmp_path):
    world, port = 2, _free_port()
    mp.start_processes(_sync_worker, args=(world, port, str(tmp_path)), nprocs=world, start_method="spawn")
    s0 = torch.load(tmp_path / "state0.pt", weights_only=True)
    s1 = torch.load(tmp_path / "state1.pt", weights_only=True)
    for key in ("u", "v"):
        assert torch.equal(s0[key], s1[key])
    # independent expectation: tensor_split of [7,2,9,0,4] -> rank0 [7,2,9], rank1 [0,4];
    # of [1,10,3] -> rank0 [1,10], rank1 [3]
    expected = torch.zeros(11)
    for rank, step, rows in [(0, 0, [7, 2, 9]), (1, 0, [0, 4]), (0, 1, [1, 10]), (1, 1, [3])]:
        for r in rows:
            expected[r] = 100 * rank + 10 * step + r
    assert torch.equal(s0["u"][:, 0], expected)
    assert torch.equal(s0["v"], expected[:, None].repeat(1, 3) + torch.where(expected[:, None] > 0, 0.5, 0.0))


def test_shard_partitions_the_batch():
    b = torch.arange(7)
    parts = [shard(b, DistEnv(rank=r, world_size=3)) for r in range(3)]
    assert torch.equal(torch.cat(parts), b)
    assert sorted(p.numel() for p in parts) == [2, 2, 3]
    assert torch.equal(shard(b, DistEnv()), b)
