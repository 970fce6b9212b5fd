"""Per-epoch cost of SOP and SOP+ relative to CE, measured side by side in one run.

The three methods run through the same trainer (:func:`sopdeep.training.train`) on the same data,
model and batch size, in interleaved rounds (CE, SOP, SOP+, CE, SOP, ...) so that drifts of the
machine (clock, cache, other load) hit all three alike. Each step is timed through the trainer's
``"step"`` callback: on CUDA with CUDA events recorded in the callback (no synchronisation in the
loop; elapsed times read after the run), on the CPU with ``time.perf_counter``. The first
``--warmup-steps`` intervals of every run (compilation, allocator warm-up) are dropped; a
step's time is the interval between consecutive callbacks inside an epoch, so evaluation and
checkpointing are excluded. Per-epoch time = median step time x steps per epoch; the 10th
percentile is reported too, as the estimate robust to other processes on a shared machine (on
this project's shared 2-core CPU machine step times jump between ~0.1 s and ~1 s with the load
of other jobs, whatever the method).

Prints the per-epoch times and the ratios SOP/CE and SOP+/CE (no assertion: a benchmark reports).

Examples
--------
CPU, synthetic CIFAR-shaped data, small CNN (a few minutes on 2 cores)::

    python benchmarks/bench_sop_overhead.py --arch cnn --n-train 2048 --epochs 2 --rounds 2

SOP+'s strong view before and after issue 33, side by side in the same rounds (per-sample torchvision
reference against the batched tensor ops)::

    python benchmarks/bench_sop_overhead.py --arch cnn --n-train 1024 --epochs 1 --rounds 2 --threads 1 \\
        --device cpu --amp off --strong-backends batched,torchvision

Measured on this project's shared 2-core CPU with load average 7-14 from other jobs (one thread; so
only the ratios within the run mean anything): SOP+/SOP 2.07 (median; 1.84 at the 10th percentile)
with the batched view against 2.14 (2.11) with the per-sample reference; two views through the
network make about 2x inherent.

GPU, PreActResNet18 on real CIFAR-10 (the paper's Table 5 setting is ResNet34/PreActResNet18)::

    python benchmarks/bench_sop_overhead.py --arch preact18 --dataset cifar10 \\
        --data-root /data/cifar10 --epochs 2 --rounds 3 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sopdeep.config import TrainConfig  # noqa: E402
from sopdeep.training import train  # noqa: E402

METHODS = ("ce", "sop", "sop+")


def _synthetic_npz(path: Path, n_train: int, n_test: int, seed: int) -> Path:
    """Random CIFAR-shaped uint8 images (N, 32, 32, 3) with 10 balanced classes."""
    rng = np.random.default_rng(seed)
    y = lambda n: rng.permutation(np.arange(n) % 10).astype(np.int64)  # noqa: E731
    np.savez(path, x_train=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8), y_train=y(n_train),
             x_test=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8), y_test=y(n_test))
    return path


class _StepTimer:
    """Collects per-step durations from the trainer's ``"step"`` callback."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list[tuple[int, object]] = []

    def __call__(self, epoch: int, step: int) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.marks.append((epoch, ev))
        else:
            self.marks.append((epoch, time.perf_counter()))

    def durations(self, warmup: int) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
        out = []
        for (e0, a), (e1, b) in zip(self.marks, self.marks[1:]):
            if e0 != e1:  # interval spans evaluation / checkpoint: not a training step
                continue
            out.append(a.elapsed_time(b) / 1e3 if self.cuda else b - a)
        return out[warmup:]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="synthetic-cifar",
                   help="'synthetic-cifar' (random 32x32x3, generated here) or a TrainConfig dataset")
    p.add_argument("--data-root", default="")
    p.add_argument("--arch", default="cnn")
    p.add_argument("--width", type=int, default=0, help="cnn/mlp width (0 = the architecture's default)")
    p.add_argument("--n-train", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--warmup-steps", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--strong-backends", default="batched",
                   help="SOP+'s strong-view backends, each timed as its own variant 'sop+[backend]' in the same "
                        "interleaved rounds (e.g. batched,torchvision: after and before issue 33)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = leave as is)")
    p.add_argument("--json", default="", help="also write the results to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = tuple(m for m in args.methods.split(",") if m)
    backends = tuple(b for b in args.strong_backends.split(",") if b)
    # variants: SOP+ once per strong-view backend (a single backend keeps the plain name "sop+")
    variants = {}
    for m in methods:
        if m == "sop+" and len(backends) > 1:
            variants.update({f"sop+[{b}]": ("sop+", {"strong_backend": b}) for b in backends})
        else:
            variants[m] = (m, {"strong_backend": backends[0]} if m == "sop+" else {})

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.dataset == "synthetic-cifar":
            data = dict(dataset="npz", data_root=str(_synthetic_npz(tmp / "bench.npz", args.n_train, 256, 0)))
        else:
            data = dict(dataset=args.dataset, data_root=args.data_root, train_subset=args.n_train)
        base = TrainConfig().replace(
            **data, arch=args.arch, width=args.width, epochs=args.epochs, batch_size=args.batch_size, noise="sym",
            noise_rate=0.5, schedule="constant", device=args.device, amp=args.amp, compile=args.compile,
            progress=False, checkpoint=False, seed=0)
        steps: dict[str, list[float]] = {m: [] for m in variants}
        steps_per_epoch = None
        device = None
        for r in range(args.rounds):
            for m, (method, extra) in variants.items():
                cfg = base.replace(method=method, out=str(tmp / f"{m}-{r}"), **extra)
                device = torch.device("cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")
                timer = _StepTimer(device)
                res = train(cfg, callbacks={"step": timer})
                steps[m] += timer.durations(args.warmup_steps)
                steps_per_epoch = -(-min(args.n_train, len(res.samples["given_label"])) // args.batch_size)
    per_epoch = {m: statistics.median(v) * steps_per_epoch for m, v in steps.items()}
    # robust to other load on a shared machine: the 10th percentile of the step times
    per_epoch_p10 = {m: float(np.percentile(v, 10)) * steps_per_epoch for m, v in steps.items()}
    result = {
        "device": str(device) + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else
                                 f" ({torch.get_num_threads()} threads)"),
        "arch": args.arch, "width": args.width, "batch_size": args.batch_size, "steps_per_epoch": steps_per_epoch,
        "n_steps_timed": {m: len(v) for m, v in steps.items()},
        "epoch_time_s": per_epoch,
        "ratios": {f"{m}/ce": per_epoch[m] / per_epoch["ce"] for m in variants if m != "ce" and "ce" in per_epoch},
        "ratios_sop": {f"{m}/sop": per_epoch[m] / per_epoch["sop"] for m in variants
                       if m.startswith("sop+") and "sop" in per_epoch},
        "epoch_time_p10_s": per_epoch_p10,
        "ratios_p10": {f"{m}/ce": per_epoch_p10[m] / per_epoch_p10["ce"]
                       for m in variants if m != "ce" and "ce" in per_epoch_p10},
        "ratios_sop_p10": {f"{m}/sop": per_epoch_p10[m] / per_epoch_p10["sop"] for m in variants
                           if m.startswith("sop+") and "sop" in per_epoch_p10},
    }
    print(f"device: {result['device']}, arch {args.arch}, batch {args.batch_size}, "
          f"{steps_per_epoch} steps/epoch, {args.rounds} interleaved rounds")
    for m in variants:
        print(f"  {m:5s} per-epoch {per_epoch[m]:.3f} s from the median step, {per_epoch_p10[m]:.3f} s from "
              f"the 10th percentile ({len(steps[m])} steps)")
    for k, v in result["ratios"].items():
        print(f"  {k}: {v:.3f} (median)  {result['ratios_p10'][k]:.3f} (10th percentile)")
    for k, v in result["ratios_sop"].items():
        print(f"  {k}: {v:.3f} (median)  {result['ratios_sop_p10'][k]:.3f} (10th percentile)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
