"""CE vs SOP (paper recipe) vs SOP (authors' recipe) vs SOP+ on real CIFAR-10 images, CPU-sized.

Two label settings on the same images: CIFAR-10N "worst" human labels, and 50% symmetric noise
(``noise="sym"``, the paper's definition: a flipped label moves to another class; the noise seed
is the run seed). A setting where CE memorises: the first ``--n-train`` training images, a small
CNN (``cnn``), no augmentation of the weak view, no weight decay, constant learning rate, batch 16.
Every run is one folder ``OUT/<setting>/<method>/s<seed>``; a finished folder whose saved config
equals the wanted one is reused, so a rerun only tabulates (a half-finished one resumes from its
checkpoint).

Methods (``--methods``):

* ``ce``: cross-entropy;
* ``sop``: Algorithm 1 as the paper writes it (``recipe="paper"``): projected u, v steps of
  α·τ_t per sample, ``--alpha`` for α_u = α_v;
* ``sop-alpha<a>``: the same with α = a (the α sweep);
* ``sop-authors``: the authors' released code (``recipe="authors"``): constant lr_u / B,
  lr_v / B per sample (``--lr-u``, ``--lr-v``: Table A.1's CIFAR-10 values 10, 10), u learns from the
  MSE term too, clamped corrections instead of the projection, φ clamped;
* ``sop+``: SOP+ under the authors' recipe (the paper's SOP+ numbers come from their code):
  λ_C = 0.9, λ_B = 0.1, the strong view per sample with torchvision (AutoAugment CIFAR-10 policy,
  crop, flip, Cutout filled with the mean), class balance on the corrected prediction.

Reported per setting and method, mean ± std over the seeds (sample std): best and final test
accuracy, detection AUROC against the true noisy-label mask (``final_issues_auroc``: of 1 −
``label_quality``, :mod:`sopdeep.label_issues`; run folders made before that summary was the only
one report the noise score's, ``final_det_auroc``: SOP u²_{i,y_i}, CE 1 − p(given label)), final
training accuracy on the noisy labels, wall time. Written to ``OUT/results.csv`` (one row per run) and ``OUT/results.md``.

Example (from the repository root; the documented command of the README)::

    OMP_NUM_THREADS=1 python experiments/cifar10_real_images.py --data-dir /work/shared/data \\
        --cache-dir /work/cache --out runs/c10_real --seeds 0,1,2 --workers 6
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cifar10n_worst import prepare_data  # noqa: E402  (the decoded-image cache, shared with that script)
from sopdeep.config import TrainConfig  # noqa: E402

SETTINGS = ("worst", "sym50")
# keys that may differ between a saved run and the wanted one (paths, display)
_FREE = ("progress", "device", "out", "data_root", "cache_path", "cifar_n_path", "checkpoint")


def method_overrides(method: str, args) -> dict:
    """TrainConfig fields of one method name (module docstring)."""
    authors = dict(recipe="authors", lr_u=args.lr_u, lr_v=args.lr_v)
    if method == "ce":
        return dict(method="ce")
    if method == "sop":
        return dict(method="sop", alpha_u=args.alpha, alpha_v=args.alpha)
    if method.startswith("sop-alpha"):
        alpha = float(method[len("sop-alpha"):])
        return dict(method="sop", alpha_u=alpha, alpha_v=alpha)
    if method == "sop-authors":
        return dict(method="sop", **authors)
    if method == "sop+":
        return dict(method="sop+", lambda_c=0.9, lambda_b=0.1, strong_backend="torchvision", **authors)
    raise ValueError(f"unknown method {method!r}: ce, sop, sop-alpha<a>, sop-authors, sop+")


def run_config(setting: str, method: str, seed: int, args, npz: Path) -> TrainConfig:
    """The config of one run."""
    if setting == "worst":
        noise = dict(noise="cifar10n", cifar_n_label="worst",
                     cifar_n_path=str(Path(args.data_dir).expanduser().resolve() / "cifar-n" / "CIFAR-10_human.pt"))
    elif setting == "sym50":
        noise = dict(noise="sym", noise_rate=0.5, noise_seed=seed)
    else:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    out = Path(args.out) / setting / method.replace("+", "plus") / f"s{seed}"
    return TrainConfig(
        dataset="npz", data_root=str(npz), train_subset=args.n_train, arch="cnn", width=args.width,
        augment="none", epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule="constant",
        weight_decay=0.0, seed=seed, device="cpu", progress=False, out=str(out), **noise,
        **method_overrides(method, args))


def _same(saved: dict, wanted: TrainConfig) -> bool:
    want = wanted.to_dict()
    have = TrainConfig.from_dict(saved).to_dict()
    return all(have[k] == want[k] for k in want if k not in _FREE)


def run_one(config: TrainConfig) -> dict:
    """Train (or reuse / resume) one run; returns its summary."""
    import torch

    torch.set_num_threads(1)
    from sopdeep.training import train

    folder = Path(config.out)
    if (folder / "summary.json").is_file():
        if _same(json.loads((folder / "config.json").read_text()), config):
            return json.loads((folder / "summary.json").read_text())
        raise ValueError(f"{folder} holds a finished run of another config: move it away or change --out")
    resume = (folder / "checkpoint.pt").is_file()
    return train(config, resume=resume).summary


def _mean_std(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def tabulate(rows: list[dict], args) -> str:
    """Markdown table: one line per setting and method, mean ± std over seeds."""
    lines = [
        f"Real CIFAR-10 images (JPEG export): first {args.n_train} training / {args.n_test} test images, "
        f"cnn width {args.width}, no augmentation, SGD lr {args.lr} constant, batch {args.batch_size}, "
        f"no weight decay, {args.epochs} epochs; SOP α = {args.alpha}; authors' recipe lr_u = {args.lr_u}, "
        f"lr_v = {args.lr_v}; mean ± std over seeds {args.seeds}.",
        "",
        "| setting (realised noise) | method | best test acc | final test acc | detection AUROC | "
        "final train acc (noisy labels) | wall time (s) | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setting in args.settings.split(","):
        for method in args.methods.split(","):
            rs = [r for r in rows if r["setting"] == setting and r["method"] == method]
            if not rs:
                continue
            noise = statistics.mean(r["realised_noise_rate"] for r in rs)
            lines.append(
                f"| {setting} ({noise:.3f}) | {method} | {_mean_std([r['best_test_acc'] for r in rs])} | "
                f"{_mean_std([r['final_test_acc'] for r in rs])} | {_mean_std([r['det_auroc'] for r in rs])} | "
                f"{_mean_std([r['final_train_acc_noisy'] for r in rs])} | "
                f"{statistics.mean(r['wall_time_s'] for r in rs):.0f} | {len(rs)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description="CE vs SOP (paper, authors) vs SOP+ on real CIFAR-10 images (CPU)")
    p.add_argument("--data-dir", required=True, help="folder holding cifar10-jpeg/ and cifar-n/")
    p.add_argument("--out", required=True)
    p.add_argument("--cache-dir", default="~/.cache/sopdeep", help="where the decoded CIFAR-10 npz is kept")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--methods", default="ce,sop,sop-authors,sop+")
    p.add_argument("--n-train", type=int, default=500)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--alpha", type=float, default=10.0, help="α_u = α_v of the paper recipe (Table A.1: 10)")
    p.add_argument("--lr-u", type=float, default=10.0, help="authors' recipe (Table A.1, CIFAR-10 sym)")
    p.add_argument("--lr-v", type=float, default=10.0)
    p.add_argument("--workers", type=int, default=1, help="parallel processes, one thread each")
    args = p.parse_args(argv)

    npz = prepare_data(Path(args.data_dir).expanduser(), Path(args.cache_dir).expanduser(), args.n_test)
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(setting, method, seed) for seed in seeds for method in args.methods.split(",")
            for setting in args.settings.split(",")]
    jobs.sort(key=lambda job: job[1] != "sop+")  # SOP+ (about 3x the cost of the others) first: less idle at the end
    configs = [run_config(setting, method, seed, args, npz) for setting, method, seed in jobs]
    t0 = time.perf_counter()
    if args.workers > 1:
        import multiprocessing

        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            summaries = list(pool.map(run_one, configs))
    else:
        summaries = [run_one(c) for c in configs]
    rows = []
    for (setting, method, seed), s in zip(jobs, summaries):
        rows.append({"setting": setting, "method": method, "seed": seed,
                     "realised_noise_rate": s["realised_noise_rate"], "best_test_acc": s["best_test_acc"],
                     "best_epoch": s["best_epoch"], "final_test_acc": s["final_test_acc"],
                     "det_auroc": s.get("final_issues_auroc", s.get("final_det_auroc")), "final_train_acc_noisy": s["final_train_acc_noisy"],
                     "final_train_acc_clean": s["final_train_acc_clean"], "wall_time_s": s["wall_time_s"]})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = tabulate(rows, args)
    (out / "results.md").write_text(table + f"\nTotal wall time of this invocation: {time.perf_counter() - t0:.0f} s\n")
    print(table)
    return rows


if __name__ == "__main__":
    main()
