"""CIFAR-10N "worst" labels (40.2 % human noise), CPU-sized: CE vs SOP vs SOP+.

Images: the CIFAR-10 JPEG export in ``DATA_DIR/cifar10-jpeg`` (decoded once with its
``decode.py`` into ``--cache-dir``, never into the repository; JPEG, so close to but not exactly
the original pixels). Labels: ``worse_label`` of ``DATA_DIR/cifar-n/CIFAR-10_human.pt`` (read with
the restricted unpickler of ``sopdeep.noise.cifar_n``), clean labels for evaluation only.

CPU-sized on purpose (about 10 minutes for all three methods on a 2-core machine, measured; up
to 2-3x more when other jobs share the cores): the first
``--n-train`` training images (default 5,000 of 50,000, CIFAR order; the realised noise rate of
that subset is reported), the first ``--n-test`` test images (default 2,000 of 10,000: a
binomial standard error of about 1 %), a small CNN (``cnn``, width 16) instead of the paper's
PreActResNet18, ``--epochs`` (default 25) of SGD with a cosine schedule, lr 0.05, batch 128. SOP and SOP+ use Table A.1's CIFAR-10 symmetric-noise values α_u = α_v = 10 (as Table
4 gives no CIFAR-N specific ones); SOP+ adds λ_C = 0.9, λ_B = 0.1 with AutoAugment + Cutout.
The paper's Table 4 numbers (93.2 % for SOP+ with PreActResNet18, 300 epochs, 50k images) are
not the target here: the point is the comparison of the three methods under the same budget.

Reported per method: best and final test accuracy, AUROC against the true noisy-label mask
(``final_issues_auroc``: of 1 − ``label_quality``, :mod:`sopdeep.label_issues`; older run folders:
the noise score's, SOP/SOP+ u²_{i,y_i}, CE 1 − p(given label)), wall time.
Results go to ``OUT/results.json`` and ``OUT/results.md``; each run's metrics, per-sample
outputs and checkpoints to ``OUT/<method>/``.

Example (from the repository root)::

    python experiments/cifar10n_worst.py --data-dir ../shared/data --out runs/c10n \\
        --cache-dir ~/.cache/sopdeep
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sopcommon import atomic_write_bytes  # noqa: E402
from sopdeep.config import TrainConfig  # noqa: E402
from sopdeep.training import train  # noqa: E402


def prepare_data(data_dir: Path, cache_dir: Path, n_test: int) -> Path:
    """Decode the JPEG export once (``decode.py``), then keep all 50,000 training images (CIFAR-N
    labels are indexed by them) and the first ``n_test`` test images in one npz in the cache."""
    from sopdeep.datasets import cifar10_jpeg_npz

    return cifar10_jpeg_npz(data_dir, cache_dir, n_test)


def configs(args) -> dict[str, TrainConfig]:
    data_dir = Path(args.data_dir).expanduser().resolve()
    npz = prepare_data(data_dir, Path(args.cache_dir).expanduser(), args.n_test)
    base = TrainConfig(
        dataset="npz", data_root=str(npz), noise="cifar10n", cifar_n_label="worst", cifar_n_path=str(data_dir / "cifar-n" / "CIFAR-10_human.pt"),
        train_subset=args.n_train, arch="cnn", width=args.width, epochs=args.epochs, batch_size=128,
        lr=args.lr, schedule="cosine", weight_decay=5e-4, alpha_u=args.alpha_u, alpha_v=args.alpha_v, seed=args.seed,
        device=args.device, progress=not args.no_progress, out=str(Path(args.out) / "sop"), method="sop",
    )  # SOP's options; replace(method=...) keeps those another method shares and drops the rest
    out = {}
    for m in args.methods.split(","):
        extra = dict(lambda_c=0.9, lambda_b=0.1) if m == "sop+" else {}
        out[m] = base.replace(method=m, out=str(Path(args.out) / m.replace("+", "plus")), **extra)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="CIFAR-10N worst: CE vs SOP vs SOP+ (CPU-sized)")
    p.add_argument("--data-dir", required=True, help="folder holding cifar10-jpeg/ and cifar-n/")
    p.add_argument("--out", required=True)
    p.add_argument("--cache-dir", default="~/.cache/sopdeep", help="where the decoded CIFAR-10 npz is kept")
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--alpha-u", type=float, default=10.0, help="Table A.1, CIFAR-10 symmetric noise")
    p.add_argument("--alpha-v", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--methods", default="ce,sop,sop+")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    results = {}
    for m, cfg in configs(args).items():
        res = train(cfg)
        s = res.summary
        results[m] = {
            "best_test_acc": s["best_test_acc"], "best_epoch": s["best_epoch"], "final_test_acc": s["final_test_acc"],
            "det_auroc": s.get("final_issues_auroc", s.get("final_det_auroc")), "realised_noise_rate": s["realised_noise_rate"],
            "final_train_acc_clean": s["final_train_acc_clean"], "wall_time_s": s["wall_time_s"],
        }
        print(json.dumps({m: results[m]}), flush=True)
    total = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"args": vars(args), "results": results, "total_wall_time_s": total}
    atomic_write_bytes(out / "results.json", json.dumps(payload, indent=2).encode())
    lines = [
        f"CIFAR-10N worst, first {args.n_train} training / {args.n_test} test images (realised noise "
        f"{next(iter(results.values()))['realised_noise_rate']:.3f}), cnn width {args.width}, "
        f"{args.epochs} epochs, alpha_u {args.alpha_u}, alpha_v {args.alpha_v}, seed {args.seed}; one run per method.",
        "",
        "| method | best test acc | final test acc | detection AUROC | wall time (s) |",
        "|---|---|---|---|---|",
    ]
    for m, r in results.items():
        auroc = "n/a" if r["det_auroc"] is None else f"{r['det_auroc']:.3f}"
        lines.append(f"| {m} | {r['best_test_acc']:.4f} (ep {r['best_epoch']}) | {r['final_test_acc']:.4f} | "
                     f"{auroc} | {r['wall_time_s']:.0f} |")
    lines.append(f"\nTotal wall time: {total:.0f} s")
    atomic_write_bytes(out / "results.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return payload


if __name__ == "__main__":
    main()
