"""Finding the mislabelled samples: ONE SOP run against cleanlab's K-fold cross-validation.

Side by side on the same data, noisy labels, network, optimiser settings and seeds:

* **SOP**: one training run (:func:`sopdeep.training.train`, ``method="sop"``) on all N samples;
  scores and mask from its run folder by :func:`sopdeep.label_issues.from_run`.
* **cleanlab 2.9**: K trainings (default K = 4) of the same network with cross-entropy, each on
  the other K-1 folds (``StratifiedKFold`` on the given labels, shuffled with the seed, as
  cleanlab's own ``estimate_cv_predicted_probabilities``), out-of-fold ``pred_probs`` of the
  held-out fold (eval mode, un-augmented), then ``cleanlab.filter.find_label_issues`` (defaults)
  and ``cleanlab.rank.get_label_quality_scores`` (defaults: self-confidence). ``--cl-epochs``
  sets the epochs per fold (default: the same as SOP's); cleanlab's result is sensitive to it (a
  network that memorised its K-1 folds predicts the held-out fold worse), so the benchmark can
  report a short-training cleanlab as well (``--cl-epochs 40,5``).

Also side by side: sopdeep's cleanlab-named API (``find_label_issues(labels, pred_probs)``
without a noise score: self-confidence, ``predicted_neq_given`` count) on exactly the
``pred_probs`` cleanlab gets, and an agreement table of sopdeep's three cleanlab scores,
``filter_by="predicted_neq_given"`` masks and ``return_indices_ranked_by`` orders against
cleanlab's on the same inputs (max |difference|, differing entries). Without cleanlab installed
(``pip install cleanlab``) the benchmark says so and reports sopdeep's rows only.

Reported per row: AUROC of ``1 - label_quality_score`` against the true noisy-label mask,
precision / recall / flagged fraction of the boolean mask, training time (sum of the trainer's
per-epoch times, plus the out-of-fold prediction for cleanlab). Printed as a markdown table and
written to ``OUT/results.csv`` and ``OUT/results.md``; the raw per-sample arrays (SOP run folder,
``cleanlab_e{E}_oof.npz``) stay in ``OUT`` so the scores can be recomputed without training.

Settings (``--setting``):

``synthetic``
    The tests' synthetic problem (256 seeded images, 4 classes, 40 % symmetric noise), MLP
    width 64, 30 epochs, batch 32, lr 0.05 constant; SOP α_u = α_v = 10. Seconds on a CPU: the
    smallest size, a smoke run of the whole benchmark (``--data-root`` not needed).
``fmnist``
    Fashion-MNIST, first 10,000 training images, 40 % symmetric noise, MLP 784-512-512-10, 40
    epochs, batch 128, lr 0.05 constant, momentum 0.9, no weight decay; SOP α_u = α_v = 10,
    per-batch u, v updates (the README's setting).
``cifar10n``
    CIFAR-10 (JPEG export) with CIFAR-10N "worst" labels, first ``--n-train`` images (default
    5,000), ``cnn`` of ``--width`` (default 32), no augmentation, lr 0.05 constant, momentum 0.9,
    weight decay 5e-4, ``--epochs`` (default 40). On this project's shared 2-core CPU machine
    the full size takes hours (measured 68 s per SOP epoch under load: about 45 min for SOP and
    2 h for the 4 folds); ``--n-train`` / ``--width`` / ``--epochs`` shrink it (the printed header
    states the size used). Run it on a GPU (``--device cuda``) for the full size.

A diagnostic row "SOP, u^2 averaged over epochs" uses u² at the label recorded after every
epoch (read from the checkpoint the trainer writes before its ``"epoch"`` callback); it is not
in ``samples.npz`` today, so :func:`~sopdeep.label_issues.from_run` cannot use it yet.

Examples (from the repository root; torch threads 1 by default)::

    python benchmarks/bench_label_issues.py --setting synthetic --out runs/bench_label_issues/synthetic
    python benchmarks/bench_label_issues.py --setting fmnist \\
        --data-root ../shared/data/fashion-mnist --out runs/bench_label_issues/fmnist
    python benchmarks/bench_label_issues.py --setting cifar10n --data-root ../shared/data \\
        --cache-dir /work/cache --n-train 2000 --width 16 --epochs 30 --out runs/bench_label_issues/c10n
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sopdeep.runs import CHECKPOINT as CHECKPOINT_NAME, load_checkpoint  # noqa: E402
from sopdeep.config import TrainConfig  # noqa: E402
from sopdeep.datasets import ArrayDataset, save_npz  # noqa: E402
from sopdeep.detection import detection_metrics  # noqa: E402
from sopdeep.label_issues import (CLEANLAB_SCORE_METHODS, find_label_issues, from_run,  # noqa: E402
                                  get_label_quality_scores)
from sopdeep.training import load_data, train  # noqa: E402


# ------------------------------------------------------------------------------------------------
# settings


def synthetic_config(args) -> TrainConfig:
    return TrainConfig(
        dataset="synthetic", noise="sym", noise_rate=args.noise_rate, noise_seed=args.seed, arch="mlp",
        width=args.width or 64, depth=2, epochs=args.epochs or 30, batch_size=32, lr=0.05, momentum=0.9,
        weight_decay=0.0, schedule="constant", alpha_u=10.0, alpha_v=10.0, seed=args.seed, device=args.device,
        progress=False, augment="none")


def fmnist_config(args) -> TrainConfig:
    return TrainConfig(
        dataset="fashion-mnist", data_root=args.data_root, train_subset=args.n_train or 10000,
        noise="sym", noise_rate=args.noise_rate, noise_seed=args.seed, arch="mlp", width=args.width or 512,
        depth=2, epochs=args.epochs or 40, batch_size=128, lr=0.05, momentum=0.9, weight_decay=0.0,
        schedule="constant", update="batch", alpha_u=10.0, alpha_v=10.0, seed=args.seed,
        device=args.device, progress=False, augment="none")


def cifar10n_config(args) -> TrainConfig:
    data_dir = Path(args.data_root).expanduser().resolve()
    experiments = Path(__file__).resolve().parents[1] / "experiments"
    sys.path.insert(0, str(experiments))
    from cifar10n_worst import prepare_data  # the experiment's decoded-once cache

    npz = prepare_data(data_dir, Path(args.cache_dir).expanduser(), 2000)
    return TrainConfig(
        dataset="npz", data_root=str(npz), noise="cifar10n", cifar_n_label="worst",
        cifar_n_path=str(data_dir / "cifar-n" / "CIFAR-10_human.pt"), train_subset=args.n_train or 5000,
        arch="cnn", width=args.width or 32, epochs=args.epochs or 40, batch_size=128, lr=0.05,
        momentum=0.9, weight_decay=5e-4, schedule="constant", augment="none", update="batch",
        alpha_u=10.0, alpha_v=10.0, seed=args.seed, device=args.device, progress=False)


# ------------------------------------------------------------------------------------------------
# the two detectors


def run_sop(config: TrainConfig, out: Path) -> dict:
    """One SOP run; also records u² at the given label after every epoch (read from the
    checkpoint the trainer writes before its ``"epoch"`` callback) as a diagnostic."""
    run_dir = out / "sop"
    if (run_dir / "samples.npz").exists():
        timing = json.loads((run_dir / "summary.json").read_text())
        return {"run_dir": run_dir, "train_time_s": timing["train_time_s"]}
    trajectory: list[np.ndarray] = []

    def record(epoch, row):
        u = load_checkpoint(run_dir / CHECKPOINT_NAME)["state"]["u"]
        trajectory.append(u[:, 0].square().numpy().copy() if u.shape[1] == 1 else None)

    res = train(config.replace(method="sop", out=str(run_dir)), callbacks={"epoch": record})
    if trajectory and trajectory[0] is not None:
        np.save(out / "sop_u2_trajectory.npy", np.stack(trajectory).astype(np.float32))
    return {"run_dir": run_dir, "train_time_s": res.summary["train_time_s"]}


@torch.no_grad()
def _predict_proba(model, x_uint8: np.ndarray, mean01: np.ndarray, std01: np.ndarray,
                   batch_size: int = 1024) -> np.ndarray:
    """Softmax of ``model`` on (N, H, W, C) uint8 images, standardised as the trainer does."""
    device = next(model.parameters()).device
    mean = torch.tensor(mean01 * 255.0, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(np.maximum(std01 * 255.0, 1.0), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    model.eval()
    out = []
    for lo in range(0, len(x_uint8), batch_size):
        x = torch.from_numpy(np.array(x_uint8[lo:lo + batch_size].transpose(0, 3, 1, 2))).to(device)
        out.append(torch.softmax(model((x.float() - mean) / std).float(), 1).cpu())
    return torch.cat(out).numpy()


def run_cleanlab_cv(config: TrainConfig, out: Path, *, n_folds: int, epochs: int) -> dict:
    """Out-of-fold predicted probabilities of K cross-entropy trainings of ``config``'s network."""
    from sklearn.model_selection import StratifiedKFold

    path = out / f"cleanlab_e{epochs}_oof.npz"
    if path.exists():
        saved = np.load(path)
        return {"pred_probs": saved["pred_probs"], "train_time_s": float(saved["train_time_s"])}
    ds, noisy = load_data(config)
    labels = np.asarray(noisy.noisy_labels, dtype=np.int64)
    pred_probs = np.zeros((ds.n_train, ds.num_classes), dtype=np.float32)
    total = 0.0
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=config.seed)
    for fold, (fit_idx, held_idx) in enumerate(folds.split(np.zeros(len(labels)), labels)):
        fold_dir = out / f"cleanlab_e{epochs}" / f"fold{fold}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        fold_ds = ArrayDataset(ds.x_train[fit_idx], labels[fit_idx], ds.x_train[held_idx], labels[held_idx],
                               ds.num_classes, name=f"fold{fold}")
        npz = save_npz(fold_ds, fold_dir / "data.npz")
        cfg = config.replace(method="ce", dataset="npz", data_root=str(npz), noise="none", train_subset=0,
                             cache_path="", cifar_n_path="", epochs=epochs, out=str(fold_dir / "run"),
                             checkpoint=False)
        res = train(cfg)
        t0 = time.perf_counter()
        mean01, std01 = fold_ds.channel_stats()
        pred_probs[held_idx] = _predict_proba(res.model, fold_ds.x_test, mean01, std01)
        total += res.summary["train_time_s"] + time.perf_counter() - t0
        print(f"  cleanlab fold {fold}: {res.summary['train_time_s']:.0f} s", flush=True)
    np.savez(path, pred_probs=pred_probs, labels=labels, train_time_s=total)
    return {"pred_probs": pred_probs, "train_time_s": total}


# ------------------------------------------------------------------------------------------------
# table


def _cleanlab():
    """cleanlab's module, find_label_issues and get_label_quality_scores, or None when not installed."""
    try:
        import cleanlab
        from cleanlab.filter import find_label_issues as cl_find
        from cleanlab.rank import get_label_quality_scores as cl_scores
    except ImportError:
        return None
    return cleanlab, cl_find, cl_scores


def agreement_rows(name: str, labels: np.ndarray, pred_probs: np.ndarray) -> list[dict]:
    """sopdeep's cleanlab-named scores, mask and orders against cleanlab's on the same inputs."""
    _, cl_find, cl_scores = _cleanlab()
    rows = []
    mask_kw = dict(filter_by="predicted_neq_given")
    ours_mask, theirs_mask = find_label_issues(labels, pred_probs, **mask_kw), cl_find(labels, pred_probs, **mask_kw)
    for method in CLEANLAB_SCORE_METHODS:
        diff = np.abs(get_label_quality_scores(labels, pred_probs, method=method)
                      - cl_scores(labels, pred_probs, method=method))
        ours = find_label_issues(labels, pred_probs, return_indices_ranked_by=method, **mask_kw)
        theirs = cl_find(labels, pred_probs, return_indices_ranked_by=method, **mask_kw)
        rows.append({"inputs": name, "score": method, "max_abs_score_diff": float(diff.max()),
                     "mask_entries_differing": int(np.count_nonzero(ours_mask != theirs_mask)),
                     "ranked_positions_differing": int(np.count_nonzero(ours != theirs)) if ours.size == theirs.size
                     else -1, "flagged": int(ours_mask.sum())})
    return rows


def rows_for(config: TrainConfig, out: Path, args) -> tuple[list[dict], list[dict]]:
    have_cleanlab = _cleanlab() is not None
    if have_cleanlab:
        cleanlab, cl_find, cl_scores = _cleanlab()
    else:
        print("cleanlab is not installed (pip install cleanlab): its rows and the agreement table are skipped; "
              "sopdeep's cleanlab-named API is reported on the same inputs", flush=True)
    sop = run_sop(config, out)
    run = from_run(sop["run_dir"])
    is_noisy = run["is_noisy"]
    rows = []

    def add(name, quality, mask, seconds, runs, epochs=config.epochs):
        m = detection_metrics(1.0 - quality, mask, is_noisy)
        # training compute in passes over the N samples: K trainings on (K-1)/K of them for CV
        passes = epochs if runs == 1 else runs * epochs * (runs - 1) / runs
        rows.append({"method": name, "trainings": runs, "sample_passes": passes, "auroc": m["auroc"], "precision": m["precision"],
                     "recall": m["recall"], "flagged_fraction": m["flagged_fraction"],
                     "train_time_s": seconds})

    add("SOP (label_issues defaults)", run["label_quality"], run["is_label_issue"], sop["train_time_s"], 1)
    labels, probs, u2 = run["given_label"], run["pred_prob"], run["noise_score"]
    add("SOP u^2 > 0.5 (trainer's per-epoch monitor)", 1.0 - u2, u2 > 0.5, sop["train_time_s"], 1)
    trajectory = out / "sop_u2_trajectory.npy"
    if trajectory.exists():  # a trainer change would record this in samples.npz (see the report)
        u2_mean = np.clip(np.load(trajectory).mean(0), 0.0, 1.0)
        add("SOP, u^2 averaged over epochs", get_label_quality_scores(labels, probs, noise_score=u2_mean),
            find_label_issues(labels, probs, u2_mean), sop["train_time_s"], 1)
    agreement = []
    # cleanlab's plain call, answered by sopdeep (no noise score: self-confidence) and by cleanlab
    add("sopdeep find_label_issues(labels, pred_probs) on SOP's pred_prob", get_label_quality_scores(labels, probs),
        find_label_issues(labels, probs), sop["train_time_s"], 1)
    if have_cleanlab:
        add("cleanlab on SOP's in-sample pred_prob", cl_scores(labels, probs), cl_find(labels, probs),
            sop["train_time_s"], 1)
        agreement += agreement_rows("SOP's pred_prob", labels, probs)
    for epochs in args.cl_epochs:
        cv = run_cleanlab_cv(config, out, n_folds=args.folds, epochs=epochs)
        oof = cv["pred_probs"]
        add(f"sopdeep find_label_issues(labels, pred_probs) on {args.folds}-fold CE, {epochs} ep/fold",
            get_label_quality_scores(labels, oof), find_label_issues(labels, oof), cv["train_time_s"], args.folds, epochs)
        if have_cleanlab:
            add(f"cleanlab {cleanlab.__version__}, {args.folds}-fold CE, {epochs} ep/fold",
                cl_scores(labels, oof), cl_find(labels, oof), cv["train_time_s"], args.folds, epochs)
            agreement += agreement_rows(f"{args.folds}-fold CE, {epochs} ep/fold", labels, oof)
    return rows, agreement


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setting", choices=("synthetic", "fmnist", "cifar10n"), required=True)
    p.add_argument("--data-root", default=None,
                   help="fmnist: the Fashion-MNIST folder; cifar10n: the folder holding cifar10-jpeg/ and cifar-n/ "
                        "(synthetic: not used)")
    p.add_argument("--cache-dir", default="~/.cache/sopdeep", help="cifar10n: decoded CIFAR-10 cache")
    p.add_argument("--out", required=True)
    p.add_argument("--n-train", type=int, default=0, help="training images (0 = the setting's default)")
    p.add_argument("--epochs", type=int, default=0, help="epochs of SOP (0 = the setting's default)")
    p.add_argument("--cl-epochs", default="", help="comma-separated epochs per fold for cleanlab "
                   "(default: the same as SOP)")
    p.add_argument("--width", type=int, default=0, help="network width (0 = the setting's default)")
    p.add_argument("--noise-rate", type=float, default=0.4, help="synthetic, fmnist: symmetric noise rate")
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--seed", type=int, default=0, help="noise, initialisation, data order and folds")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    args = p.parse_args(argv)
    if args.setting != "synthetic" and args.data_root is None:
        p.error(f"--data-root is required by --setting {args.setting}")
    if args.threads:
        torch.set_num_threads(args.threads)
    config = {"synthetic": synthetic_config, "fmnist": fmnist_config, "cifar10n": cifar10n_config}[args.setting](args)
    args.cl_epochs = [int(e) for e in args.cl_epochs.split(",")] if args.cl_epochs else [config.epochs]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, agreement = rows_for(config, out, args)

    is_noisy = from_run(out / "sop")["is_noisy"]
    realised = float(is_noisy.mean())
    head = (f"{args.setting}: {is_noisy.size} training images, realised noise {realised:.3f}, "
            f"{config.arch} width {config.width}, {config.epochs} epochs (SOP), lr {config.lr} "
            f"{config.schedule}, weight decay {config.weight_decay}, seed {args.seed}, torch threads "
            f"{torch.get_num_threads()}")
    lines = [head, "", "| detector | trainings | passes over N | AUROC | precision | recall | flagged | "
             "training time (s) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['trainings']} | {r['sample_passes']:g} | {r['auroc']:.4f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['flagged_fraction']:.3f} | {r['train_time_s']:.1f} |")
    if agreement:
        lines += ["", "sopdeep against cleanlab on the same inputs (filter_by=\"predicted_neq_given\" masks, "
                  "return_indices_ranked_by orders):", "",
                  "| inputs | score | max abs score diff | mask entries differing | ranked positions differing | "
                  "flagged |", "|---|---|---|---|---|---|"]
        lines += [f"| {a['inputs']} | {a['score']} | {a['max_abs_score_diff']:.2e} | {a['mask_entries_differing']} | "
                  f"{a['ranked_positions_differing']} | {a['flagged']} |" for a in agreement]
        with open(out / "agreement.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(agreement[0]))
            w.writeheader()
            w.writerows(agreement)
    else:
        (out / "agreement.csv").unlink(missing_ok=True)  # no cleanlab this time: no stale table
    text = "\n".join(lines)
    print(text)
    (out / "results.md").write_text(text + "\n")
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["setting", "seed", *rows[0]])
        w.writeheader()
        w.writerows({"setting": args.setting, "seed": args.seed, **r} for r in rows)
    return rows


if __name__ == "__main__":
    main()
