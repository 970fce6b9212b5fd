"""DDP without edges (issue 33, part 3), with gloo on the CPU: equal, non-empty shards for any N, batch
size and world size; the process group destroyed at the end of a run and when it fails; sync_bn."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from sopdeep.distributed import DistEnv, batch_bounds, shard, wrap_model


@pytest.mark.parametrize("world", [1, 2, 3, 4, 8])
def test_bounds_give_equal_nonempty_shards_for_every_n_and_batch(world):
    for batch_size in range(world, 8 * world + 1, world):
        for n in range(world, 70):
            bounds = batch_bounds(n, batch_size, world)
            sizes = [b - a for a, b in zip(bounds, bounds[1:])]
            assert bounds[0] == 0 and bounds[-1] == n - n % world  # only the n mod W tail left out
            assert all(s % world == 0 and s >= world for s in sizes)  # equal, non-empty shards
            assert all(s == batch_size for s in sizes[:-1])  # full batches, then the last
            if len(sizes) > 1:  # a short last batch holds two per rank (or a full batch's share)
                assert sizes[-1] >= min(2 * world, batch_size)
            for rank in range(world):  # the trainer's shard of every batch: the same size on every rank
                env = DistEnv(rank=rank, world_size=world)
                parts = [shard(torch.arange(a, b), env).numel() for a, b in zip(bounds, bounds[1:])]
                assert parts == [s // world for s in sizes]


def test_bounds_reject_what_cannot_split():
    with pytest.raises(ValueError, match="batch_size must be a positive multiple of the world size"):
        batch_bounds(100, 10, 3)
    with pytest.raises(ValueError, match="at least world_size"):
        batch_bounds(2, 3, 3)
    assert batch_bounds(5, 2) == [0, 2, 5]  # single process: the old rule (a last batch of one merged)


def test_sync_bn_needs_cuda():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    with pytest.raises(ValueError, match="sync_bn needs CUDA"):
        wrap_model(model, DistEnv(rank=0, world_size=2), device=torch.device("cpu"), sync_bn=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, ports, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    import math

    import torch.distributed as dist

    from sopdeep.config import TrainConfig
    from sopdeep.training import train

    torch.set_num_threads(1)
    report = {}
    # 22 samples, batch 6, 3 ranks: the old split gave a last batch of 4 -> shards 2, 1, 1 (and with
    # 20 samples a last batch of 2 -> an empty shard); now batches of 6, 6 and 9 (2, 2, 3 per rank)
    for i, method in enumerate(("ce", "sop", "sop+")):
        # each run creates its own group (train destroys it at the end): a fresh rendezvous port each
        os.environ["MASTER_PORT"] = str(ports[i])
        cfg = TrainConfig(dataset="synthetic", arch="cnn", width=4, epochs=2, batch_size=6, lr=0.05, method=method,
                          train_subset=22, device="cpu", progress=False, checkpoint=False, seed=0,
                          out=os.path.join(out_dir, method))
        res = train(cfg)
        report[method] = {"finite": all(math.isfinite(r["train_loss"]) for r in res.history),
                          "epochs": len(res.history), "group_left": dist.is_initialized(),
                          "state": {k: v.clone() for k, v in res.state.items()}}
    # a failing run destroys the group too
    def boom(epoch, step, loss):
        raise RuntimeError("injected")

    os.environ["MASTER_PORT"] = str(ports[3])
    try:
        train(cfg.replace(out=os.path.join(out_dir, "fail")), callbacks={"loss": boom})
    except RuntimeError:
        report["fail_group_left"] = dist.is_initialized()
    torch.save(report, os.path.join(out_dir, f"report{rank}.pt"))


@pytest.mark.slow
def test_uneven_tail_trains_every_method_and_destroys_the_group(tmp_path):
    world = 3
    ports = [_free_port() for _ in range(4)]
    mp.start_processes(_worker, args=(world, ports, str(tmp_path)), nprocs=world, start_method="spawn")
    reports = [torch.load(tmp_path / f"report{r}.pt", weights_only=False) for r in range(world)]
    for method in ("ce", "sop", "sop+"):
        for rep in reports:
            assert rep[method]["finite"] and rep[method]["epochs"] == 2, method  # no NaN, no stop after epoch 1
            assert rep[method]["group_left"] is False  # destroyed at the end of the run
        for key, value in reports[0][method]["state"].items():  # every rank holds the same u, v
            for rep in reports[1:]:
                assert torch.equal(rep[method]["state"][key], value), (method, key)
    assert all(rep["fail_group_left"] is False for rep in reports)  # and when it fails
