"""Training-step throughput of each architecture in fp32 and bf16 (+ channels_last), side by side.

All variants are timed in one process, interleaved round by round, so a noisy shared machine
affects them alike: read the ratios, not the absolute img/s. With ``--fast-recipe ROOT`` it then
trains the ``fast-cifar10`` preset on the CIFAR-10 JPEG export at ``ROOT`` (all 50k/10k images,
``--fast-epochs`` epochs, default the preset's) and prints its test accuracy and wall time. Examples::

    python benchmarks/bench_throughput.py --arch cnn preact18 fast --batch-size 256 --steps 4
    python benchmarks/bench_throughput.py --arch fast --fast-recipe ../shared/data/cifar10-jpeg \
        --cache runs/cache/cifar10_jpeg.npz --out runs/bench_fast
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sopdeep.models import build_model
from sopdeep.training.setup import cpu_supports_bf16

VARIANTS = (("fp32", None, False), ("bf16", torch.bfloat16, False), ("bf16+cl", torch.bfloat16, True))


def _step(model, opt, x, y, dtype):
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        loss = torch.nn.functional.cross_entropy(model(x).float(), y)  # loss in fp32, as train() does
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench(arch: str, batch_size: int, steps: int, rounds: int) -> dict[str, float]:
    """Median img/s per variant for one architecture (CIFAR-shaped input, 10 classes)."""
    torch.manual_seed(0)
    x = torch.randn(batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (batch_size,))
    setups = {}
    for name, dtype, cl in VARIANTS:
        model = build_model(arch, 10, in_channels=3, image_size=(32, 32))
        fmt = torch.channels_last if cl else torch.contiguous_format
        model = model.to(memory_format=fmt)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        xs = x.contiguous(memory_format=fmt)
        _step(model, opt, xs, y, dtype)  # warm-up: oneDNN primitive creation
        setups[name] = (model, opt, xs, dtype)
    times: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(rounds):  # interleaved: each round times every variant once
        for name, (model, opt, xs, dtype) in setups.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                _step(model, opt, xs, y, dtype)
            times[name].append((time.perf_counter() - t0) / steps)
    return {name: batch_size / statistics.median(ts) for name, ts in times.items()}


def fast_recipe(root: str, cache: str, out: str, epochs: int | None) -> dict:
    """Train the ``fast-cifar10`` preset on the JPEG export at ``root``; its summary.json."""
    from sopdeep.config import TrainConfig
    from sopdeep.presets import PRESETS
    from sopdeep.training import train

    preset = PRESETS["fast-cifar10"]
    config = TrainConfig(**{**preset, "dataset": "cifar10-jpeg", "data_root": root, "cache_path": cache,
                            "out": out, "epochs": epochs or preset["epochs"], "progress": False})
    result = train(config)
    return result.summary


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", nargs="+", default=["cnn", "preact18", "fast"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=2, help="steps per timing")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timings per variant (median)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = all cores)")
    p.add_argument("--fast-recipe", metavar="ROOT", default=None,
                   help="also train fast-cifar10 on the CIFAR-10 JPEG export at ROOT (minutes)")
    p.add_argument("--fast-epochs", type=int, default=None, help="epochs of the fast recipe (default: the preset's)")
    p.add_argument("--cache", default="runs/cache/cifar10_jpeg.npz", help="decoded npz of the JPEG export")
    p.add_argument("--out", default="runs/bench_fast", help="run folder of the fast recipe (overwritten)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"cpu: {torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_supports_bf16()}, "
          f"threads: {torch.get_num_threads()}, batch {args.batch_size}")
    print(f"{'arch':<12}" + "".join(f"{n:>12}" for n, _, _ in VARIANTS) + f"{'bf16/fp32':>11}{'+cl/fp32':>10}")
    for arch in args.arch:
        r = bench(arch, args.batch_size, args.steps, args.rounds)
        print(f"{arch:<12}" + "".join(f"{r[n]:>12.0f}" for n, _, _ in VARIANTS)
              + f"{r['bf16'] / r['fp32']:>11.2f}{r['bf16+cl'] / r['fp32']:>10.2f}")
    if args.fast_recipe:
        s = fast_recipe(args.fast_recipe, args.cache, args.out, args.fast_epochs)
        print(f"fast-cifar10, {s['epochs']} epochs, {s['precision']}, {s['threads']} threads: test acc "
              f"{s['final_test_acc']:.4f} (best {s['best_test_acc']:.4f}), wall {s['wall_time_s']:.0f} s "
              f"(training {s['train_time_s']:.0f} s)")


if __name__ == "__main__":
    main()
