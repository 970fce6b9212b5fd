"""Method "sop+": the loss is SOP's plus λ_C·L_C + λ_B·L_B, u/v steps are SOP's, runs resume exactly."""

from __future__ import annotations

import pytest
import torch

from sopdeep.config import TrainConfig
from sopdeep.methods import SOP, Batch
from sopdeep.regularizers import class_balance_loss, consistency_loss
from sopdeep.methods import SOPPlus
from sopdeep.training import train


class _Linear(torch.nn.Module):
    """No BatchNorm: a forward of the concatenated views equals separate forwards."""

    def __init__(self, d, k):
        super().__init__()
        self.fc = torch.nn.Linear(d, k)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(k, d, generator=torch.Generator().manual_seed(0)) * 0.05)
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(x.flatten(1))


def _batch(n=8, k=4, side=16):
    g = torch.Generator().manual_seed(5)
    raw = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g)
    normalize = lambda x: (x.float() - 128.0) / 64.0  # noqa: E731
    return Batch(indices=torch.arange(n) * 2, images=normalize(raw), labels=torch.randint(0, k, (n,), generator=g),
                 raw=raw, normalize=normalize), k


def test_loss_is_sop_plus_weighted_regularisers_and_uv_steps_match_sop():
    batch, k = _batch()
    cfg = TrainConfig(dataset="synthetic", method="sop+", lambda_c=0.9, lambda_b=0.1, alpha_u=3.0, alpha_v=3.0,
                      init_std=1e-2)
    plus, sop = SOPPlus(cfg), SOP(cfg.replace(method="sop"))
    n_all = 16
    st_plus = plus.init_state(n_all, k, torch.Generator().manual_seed(1), torch.device("cpu"))
    st_sop = sop.init_state(n_all, k, torch.Generator().manual_seed(1), torch.device("cpu"))
    model = _Linear(3 * 16 * 16, k)

    # the strong view the method will draw, reproduced from the same generator state
    probe = SOPPlus(cfg)
    probe.init_state(n_all, k, torch.Generator().manual_seed(1), torch.device("cpu"))  # a pass's draws cover n_all
    probe.load_state_dict(plus.state_dict())
    strong = probe.strong_view(batch)

    out_plus = plus.batch_loss(model, batch, st_plus)
    out_sop = sop.batch_loss(model, batch, st_sop)
    with torch.no_grad():
        zw, zs = model(batch.images), model(strong)
    expected = out_sop.loss + 0.9 * consistency_loss(zw, zs) + 0.1 * class_balance_loss(zw)
    # same float32 ops in a different association order: a few ulps of a loss of size ~5
    torch.testing.assert_close(out_plus.loss.detach(), expected.detach(), rtol=1e-5, atol=1e-6)
    assert torch.equal(plus.generator.get_state(), probe.generator.get_state())  # the stream was consumed once
    assert set(st_plus) == {"u", "v"}  # no RNG state among the per-sample tables

    # u, v gradients (and hence steps) are SOP's: the regularisers do not involve u, v
    out_plus.loss.backward()
    out_sop.loss.backward()
    plus.after_backward(batch, out_plus, st_plus, lr=0.1)
    sop.after_backward(batch, out_sop, st_sop, lr=0.1)
    # SOP+ computes the weak logits inside one forward of 2B rows, SOP of B rows: the matmul
    # blocking differs, so logits (and u, v steps) agree to float32 rounding (~1e-6 relative)
    for key in ("u", "v"):
        torch.testing.assert_close(st_plus[key], st_sop[key], rtol=1e-5, atol=1e-8)
    assert not torch.equal(st_plus["v"][batch.indices], torch.zeros_like(st_plus["v"][batch.indices]))


def test_lambda_zero_reduces_to_sop():
    batch, k = _batch()
    cfg = TrainConfig(dataset="synthetic", method="sop+", lambda_c=0.0, lambda_b=0.0)
    plus, sop = SOPPlus(cfg), SOP(cfg.replace(method="sop"))
    model = _Linear(3 * 16 * 16, k)
    sp = plus.init_state(16, k, torch.Generator().manual_seed(1), torch.device("cpu"))
    ss = sop.init_state(16, k, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert torch.equal(plus.batch_loss(model, batch, sp).loss, sop.batch_loss(model, batch, ss).loss)


def _cfg(tmp_path, name, **kw):
    return TrainConfig(dataset="synthetic", arch="cnn", width=4, epochs=2, batch_size=128, method="sop+",
                       progress=False, out=str(tmp_path / name), seed=3, **kw)


def test_sop_plus_run_resumes_bit_identically(tmp_path):
    full = train(_cfg(tmp_path, "full"))

    class Stop(Exception):
        pass

    def stop_after_first(epoch, row):
        if epoch == 0:
            raise Stop

    with pytest.raises(Stop):
        train(_cfg(tmp_path, "cut"), callbacks={"epoch": stop_after_first})
    resumed = train(_cfg(tmp_path, "cut"), resume=True)
    for key in ("u", "v"):
        assert torch.equal(full.state[key], resumed.state[key]), key
    assert torch.equal(full.method_state["generator"], resumed.method_state["generator"])
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert full.history[-1]["train_loss"] == resumed.history[-1]["train_loss"]
    assert "train_consistency" in full.history[-1] and "train_balance" in full.history[-1]


def test_strong_view_stream_depends_on_the_rank_given_not_on_the_environment(monkeypatch):
    # the DDP rank comes from the DistEnv the trainer passes, never from os.environ
    cfg = TrainConfig(dataset="synthetic", method="sop+")
    monkeypatch.setenv("RANK", "5")
    rank0, rank1 = SOPPlus(cfg).state_dict()["generator"], SOPPlus(cfg, rank=1).state_dict()["generator"]
    monkeypatch.delenv("RANK")
    assert torch.equal(SOPPlus(cfg).state_dict()["generator"], rank0)
    assert not torch.equal(rank0, rank1)
