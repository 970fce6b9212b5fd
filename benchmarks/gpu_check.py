"""One prepared check of the trainer on a lent GPU, in at most about 8 minutes on one H100 (issue 33, part 6).

Writes ``report.json`` and ``report.md`` into ``--out``:

1. facts: torch, CUDA, cuDNN, the device (name, compute capability, memory, native bf16);
2. ``pytest tests/gpu`` (its summary line and outcome);
3. throughput in images per second of CE, SOP and SOP+ on ``preact18`` and ``resnet34`` at batch 128
   (the paper's), with the ratios SOP/CE and SOP+/CE, each from the median step time after a
   warm-up (steps timed with CUDA events through the trainer's ``"step"`` callback);
4. one paper cell: Table 1, CIFAR-10 with 40 % symmetric noise, SOP, ResNet-34, the Table A.1 recipe
   (preset ``table1-cifar10-sym40``, 120 epochs), run for as many epochs as the remaining budget
   allows on the full 120-epoch schedule: the test-accuracy curve so far and the projected time of
   all 120 epochs (mean epoch time x 120).

Usage on the GPU machine (CIFAR-10's python pickles, ``cifar-10-batches-py``, in a folder)::

    python benchmarks/gpu_check.py --data-root /path/to/cifar10 --out results/gpu_check

``--tiny --device cpu`` runs every part at toy size on synthetic data in a few seconds (the test
suite runs it: ``tests/deep/test_gpu_check.py``), so the script never rots.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sopdeep.config import TrainConfig  # noqa: E402
from sopdeep.presets import PRESETS  # noqa: E402
from sopdeep.training import train  # noqa: E402
from sopdeep.training.precision import cuda_has_native_bf16  # noqa: E402

PAPER_CELL = "table1-cifar10-sym40"
METHODS = ("ce", "sop", "sop+")


class _Budget(Exception):
    """Raised from the epoch callback when the next epoch would not fit in the budget."""


def facts(device: torch.device) -> dict:
    """torch / CUDA / device facts of this machine."""
    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(name=props.name, capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / 2**30, 1),
                   native_bf16=cuda_has_native_bf16(device), device_count=torch.cuda.device_count())
    else:
        out.update(name=platform.processor() or "cpu", threads=torch.get_num_threads())
    return out


def run_gpu_tests(tiny: bool, timeout: float) -> dict:
    """``pytest tests/gpu`` in a subprocess: its return code and last summary line."""
    if tiny:
        return {"skipped": "--tiny: the GPU tests are not run"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/gpu", "-q", "-rs", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return {"returncode": proc.returncode, "summary": lines[-1] if lines else "", "tail": "\n".join(lines[-15:])}


class _Timer:
    """Step intervals from the trainer's step callback (CUDA events on a GPU: no sync in the loop)."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.marks = []

    def __call__(self, epoch, step):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.marks.append(ev)
        else:
            self.marks.append(time.perf_counter())

    def median_step_s(self, warmup: int) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            d = [a.elapsed_time(b) / 1e3 for a, b in zip(self.marks, self.marks[1:])]
        else:
            d = [b - a for a, b in zip(self.marks, self.marks[1:])]
        d = d[warmup:] or d
        return statistics.median(d)


def throughput(base: TrainConfig, archs, batch: int, steps: int, warmup: int, device, tmp: Path) -> dict:
    """img/s of each method on each architecture, one short run each (``steps`` steps)."""
    rows = {}
    for arch in archs:
        per = {}
        for method in METHODS:
            cfg = base.replace(arch=arch, method=method, batch_size=batch, train_subset=batch * steps, epochs=1,
                               out=str(tmp / f"tp-{arch}-{method}"), checkpoint=False, eval_batch_size=1024)
            timer = _Timer(device)
            train(cfg, callbacks={"step": timer})
            per[method] = batch / timer.median_step_s(warmup)
        rows[arch] = {"img_per_s": per, "sop/ce": per["sop"] / per["ce"], "sop+/ce": per["sop+"] / per["ce"]}
    return rows


def paper_cell(cfg: TrainConfig, budget_s: float) -> dict:
    """Epochs of the paper cell until the budget is spent: the test-accuracy curve and the projection."""
    curve, times, t0 = [], [], time.perf_counter()

    def on_epoch(epoch, row):
        curve.append(row["test_acc"])
        times.append(row["epoch_time"])
        spent = time.perf_counter() - t0
        if spent + statistics.mean(times) * 1.1 > budget_s:  # the next epoch would overrun (10 % margin)
            raise _Budget

    try:
        train(cfg, callbacks={"epoch": on_epoch})
    except _Budget:
        pass
    mean = statistics.mean(times) if times else math.nan
    return {"preset": PAPER_CELL, "epochs_run": len(curve), "epochs_total": cfg.epochs, "test_acc": curve,
            "epoch_time_s": times, "projected_total_s": mean * cfg.epochs,
            "projected_total_h": mean * cfg.epochs / 3600}


def markdown(report: dict) -> str:
    f = report["facts"]
    lines = [f"# GPU check — {f.get('name')} ({f['device']})", "",
             f"torch {f['torch']}, CUDA {f['cuda']}, cuDNN {f['cudnn']}"
             + (f", compute capability {f['capability']}, {f['memory_gib']} GiB, native bf16: {f['native_bf16']}"
                if "capability" in f else ""), "",
             "## tests/gpu", "", "```", report["tests"].get("tail") or report["tests"].get("skipped", ""), "```", "",
             f"## Throughput (img/s, batch {report['batch']})", "",
             "| arch | CE | SOP | SOP+ | SOP/CE | SOP+/CE |", "|---|---|---|---|---|---|"]
    for arch, row in report["throughput"].items():
        ips = row["img_per_s"]
        lines.append(f"| {arch} | {ips['ce']:.0f} | {ips['sop']:.0f} | {ips['sop+']:.0f} | {row['sop/ce']:.3f} | "
                     f"{row['sop+/ce']:.3f} |")
    cell = report["paper_cell"]
    lines += ["", f"## Paper cell {cell['preset']} ({cell['epochs_run']} of {cell['epochs_total']} epochs)", "",
              "test accuracy by epoch: " + ", ".join(f"{a:.4f}" for a in cell["test_acc"]), "",
              f"projected time of all {cell['epochs_total']} epochs: {cell['projected_total_s']:.0f} s "
              f"({cell['projected_total_h']:.2f} h)", "", f"wall time of this check: {report['wall_s']:.0f} s", ""]
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default="", help="folder holding CIFAR-10 (cifar-10-batches-py); not needed with --tiny")
    p.add_argument("--out", default="results/gpu_check", help="folder of report.json and report.md")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--tiny", action="store_true", help="toy sizes on synthetic data (seconds; the suite's check)")
    p.add_argument("--budget-s", type=float, default=480.0, help="total time budget in seconds (default 8 minutes)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: --device cuda but CUDA is not available (use --tiny --device cpu to try it)")
    if not args.tiny and not args.data_root:
        raise SystemExit("gpu_check: --data-root must name the folder holding CIFAR-10 (or pass --tiny)")
    t0 = time.perf_counter()
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"facts": facts(device), "tiny": args.tiny}
    report["tests"] = run_gpu_tests(args.tiny, timeout=0.35 * args.budget_s)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.tiny:
            base = TrainConfig(dataset="synthetic", arch="cnn", width=8, device=args.device, amp="off", progress=False,
                               seed=0, out=str(tmp / "x"))
            archs, batch, steps, warmup = ("cnn",), 32, 4, 1
            cell = TrainConfig(**{**PRESETS[PAPER_CELL], "dataset": "synthetic", "arch": "cnn", "width": 8,
                                  "train_subset": 0, "batch_size": 64, "subset_split": "first"}).replace(
                device=args.device, amp="off", progress=False, checkpoint=False, out=str(tmp / "cell"))
            cell_budget = 3.0
        else:
            base = TrainConfig(dataset="cifar10", data_root=args.data_root, noise="sym", noise_rate=0.4,
                               device=args.device, progress=False, seed=0, out=str(tmp / "x"))
            archs, batch, steps, warmup = ("preact18", "resnet34"), 128, 30, 8
            cell = TrainConfig(**PRESETS[PAPER_CELL]).replace(data_root=args.data_root, device=args.device,
                                                              progress=False, checkpoint=False, out=str(tmp / "cell"))
            cell_budget = None
        report["batch"] = batch
        report["throughput"] = throughput(base, archs, batch, steps, warmup, device, tmp)
        left = args.budget_s - (time.perf_counter() - t0)
        report["paper_cell"] = paper_cell(cell, cell_budget if cell_budget is not None else max(left - 20.0, 30.0))
    report["wall_s"] = time.perf_counter() - t0
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
