"""GPU-readiness of a training step, checked on the CPU on every run (issue 33, part 4).

A ``TorchDispatchMode`` (:mod:`step_counter`) counts, inside one training step of
:func:`sopdeep.training.train` (between two ``"step"`` callbacks), the ops that would make a GPU wait
for the host (reads of a tensor's value, data-dependent shapes), tensors built from host data,
random draws, and all dispatched ops (about one kernel launch each). For every method, recipe and
SOP+ strong-view backend meant for a GPU, at batch 32 and 64 on the synthetic set (cnn width 8,
256 images), a step must hold no host sync, no host-built tensor and no random draw (the trainer
and SOP+ draw a pass's randomness once per epoch), and its op count must not depend on the batch
size (equal at 32 and 64: no per-image Python work). SOP+'s step may cost at most 2.5 times
SOP's ops (two views through the network, the strong view's ops, the regularisers).

The per-sample reference backends are checked to be caught by the same counter (their ops grow
with the batch, they read values on the host): the counter can fail.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from step_counter import StepCounter, count_steps  # noqa: E402

from sopdeep.config import TrainConfig  # noqa: E402
from sopdeep.methods import METHODS  # noqa: E402

BATCHES = (32, 64)
#: SOP+'s ops per step over SOP's, at most (issue 33: two views make about 2x inherent)
MAX_SOP_PLUS_RATIO = 2.5


#: options a method needs to run one epoch (forward: its estimated T needs warm-up epochs; the
#: synthetic noise's own T has the same step)
_RUNNABLE = {"forward": {"forward_matrix": "known"}}


def _config(method, batch_size, tmp_path, **options):
    options = {**_RUNNABLE.get(method, {}), **options}
    if options.get("recipe") == "authors":
        options.update(lr_u=1.0, lr_v=10.0)  # the authors' constant u, v rates need values
    return TrainConfig(dataset="synthetic", arch="cnn", width=8, epochs=1, batch_size=batch_size, method=method,
                       device="cpu", amp="off", progress=False, checkpoint=False, seed=0,
                       out=str(tmp_path / f"{method}-{batch_size}-{len(list(tmp_path.iterdir()))}"), **options)


def _gpu_cases():
    """(method, options) of every method x recipe x SOP+ backend meant for a GPU."""
    cases = []
    for method in METHODS:
        recipes = ("paper", "authors") if "recipe" in _fields(method) else (None,)
        for recipe in recipes:
            opts = {} if recipe is None else {"recipe": recipe}
            if "strong_backend" in _fields(method):
                opts = {**opts, "strong_backend": "batched"}
            cases.append((method, opts))
    return cases


def _fields(method):
    from sopdeep.methods import option_fields

    return {f.name for f in option_fields(method)}


_COUNTS: dict = {}


def _counts(method, opts, tmp_path_factory):
    """count_steps at both batch sizes, cached per case (SOP's counts serve SOP+'s ratio)."""
    key = (method, tuple(sorted(opts.items())))
    if key not in _COUNTS:
        tmp = tmp_path_factory.mktemp("steps")
        _COUNTS[key] = {b: count_steps(_config(method, b, tmp, **opts)) for b in BATCHES}
    return _COUNTS[key]


@pytest.mark.slow
@pytest.mark.parametrize("method, opts", _gpu_cases(), ids=lambda v: v if isinstance(v, str) else
                         "-".join(str(x) for x in v.values()) or "default")
def test_step_has_no_host_sync_and_flat_op_count(method, opts, tmp_path_factory):
    counts = _counts(method, opts, tmp_path_factory)
    for b, c in counts.items():
        # a read of a device value, a host-built tensor or a per-step draw: named in the message
        assert c["syncs"] == 0 and c["host_tensors"] == 0 and c["random"] == 0, (b, c["names"])
    # kernels per step independent of the batch size: no per-image Python loop anywhere in the step
    assert counts[32]["ops"] == counts[64]["ops"], {b: c["ops"] for b, c in counts.items()}
    if method == "sop+":
        sop = _counts("sop", {k: v for k, v in opts.items() if k == "recipe"}, tmp_path_factory)
        ratio = counts[64]["ops"] / sop[64]["ops"]
        assert ratio <= MAX_SOP_PLUS_RATIO, (counts[64]["ops"], sop[64]["ops"])


@pytest.mark.slow
def test_counter_catches_the_per_sample_reference(tmp_path_factory):
    """The torchvision reference (one draw and one op chain per image) reads values on the host and
    its ops grow with the batch: the readiness test would fail on it."""
    counts = _counts("sop+", {"strong_backend": "torchvision"}, tmp_path_factory)
    assert counts[32]["syncs"] > 0 and counts[64]["syncs"] > counts[32]["syncs"]
    assert counts[64]["ops"] > counts[32]["ops"] + 32  # at least one more op per extra image


def test_counter_classifies_syncs_host_tensors_and_draws():
    x = torch.arange(6.0)
    gen = torch.Generator().manual_seed(0)
    with StepCounter() as counter:
        float(x.sum())  # one value read
        bool((x > 2).any())  # another
        x[x > 2]  # a boolean index: data-dependent shape
        torch.tensor([1.0, 2.0])  # built from host data
        torch.rand(3, generator=gen)  # a random draw
        torch.nn.functional.one_hot(torch.tensor([0, 2]), 3)  # its CPU range check is left out
    totals, names = counter.snapshot()
    assert totals["random"] == 1 and names["random:rand"] == 1
    assert names["sync:_local_scalar_dense"] == 2
    assert totals["syncs"] >= 3  # + nonzero (or its equivalent) of the boolean index
    assert totals["host_tensors"] == 2  # the two torch.tensor calls (one_hot's labels included)
