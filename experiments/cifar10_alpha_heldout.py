"""SOP's α chosen on a held-out split of the CIFAR-10 training set (never the test set).

The full-scale table (``cifar10_full_scale.py``) sets α_u = α_v by the effective-α rule
(``alpha_for``: 0.833 on the fast recipe). This script checks that choice the other way the issue
allows: for each α of a grid, SOP trains on 45,000 of the 50,000 training images (stratified per
class, seeded: ``train_subset=45000, subset_split="per_class"``, the split Table A.1 uses) with the
label noise of the full-scale run (drawn on all 50,000 first), and its final network is scored on the
5,000 held-out images **against their noisy labels**, the only labels a user has. Under symmetric
noise at rate η < (K − 1)/K the noisy-label accuracy is (1 − η)·a + η·(1 − a)/(K − 1), increasing in
the clean accuracy a, so its argmax is the α a clean held-out set would pick. The α with the best
held-out noisy accuracy is then trained on all 50,000 images (unless ``--no-final``) and that
run's test accuracy is the result; when that is the rule's α, the full-set run is the full-scale
table's (the same config), and its row is taken from the committed table instead. The held-out
accuracy on the clean labels and every run's test accuracy are reported beside it but choose
nothing.

Every run is a cached, resumable run folder ``OUT/<setting>-s<seed>-sop-a<α>[-full]/``; after each
run ``results.csv`` / ``results.md`` are rewritten with what is finished.

Example (from the repository root; about 20 minutes per run on a 2-core CPU at 25 epochs)::

    python experiments/cifar10_alpha_heldout.py --data-dir ../shared/data --out runs/alpha_heldout \\
        --cache-dir runs/cache --results experiments/results/cifar10_alpha_heldout --epochs 25
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sopcommon import atomic_write_bytes  # noqa: E402
from cifar10_full_scale import ROW_KEYS as FULL_SCALE_KEYS  # noqa: E402
from cifar10_full_scale import (  # noqa: E402
    SETTINGS, _fmt, add_device_arguments, add_folder_arguments, alpha_for, earlier_rows, issue_columns, write_csv,
    predicted_labels, run_configs, run_guarded, run_one)

#: the effective-α rule's α at the fast recipe's batch 1024 and momentum 0.85 (sopdeep.presets)
RULE_ALPHA = alpha_for(1024, 0.85)
#: the grid's α as multiples of the effective-α rule's, in factors of 3 (1/9 added after 1/3 won
#: the first grid of three)
ALPHA_FACTORS = (1 / 9, 1 / 3, 1.0, 3.0)
#: CIFAR-10's training images, and how many of them the grid's runs hold out (Table A.1's split)
N_TRAIN, HELD_OUT = 50000, 5000
#: the committed full-scale table, whose run is the final one when the grid picks the rule's alpha
FULL_SCALE_TABLE = Path(__file__).resolve().parent / "results" / "cifar10_full_scale" / "results.csv"

ROW_KEYS = ("setting", "seed", "alpha", "train_images", "heldout_acc_noisy", "heldout_acc_clean", "final_test_acc",
            "best_test_acc", "final_train_acc_noisy", "issues_auroc", "issues_precision", "issues_recall", "chosen",
            "epochs", "wall_time_s")


def sop_config(args, alpha: float, *, full: bool):
    """The full-scale SOP config of ``args.setting`` / ``args.seed`` with α_u = α_v = ``alpha``,
    on the 45,000 kept images (``full=False``) or on all 50,000 (``full=True``)."""
    base = next(config for setting, seed, method, config in run_configs(_grid_args(args))
                if setting == args.setting and seed == args.seed and method == "sop")
    name = f"{args.setting}-s{args.seed}-sop-a{alpha:.4g}" + ("-full" if full else "")
    split = {} if full else dict(train_subset=N_TRAIN - HELD_OUT, subset_split="per_class")
    return base.replace(alpha_u=alpha, alpha_v=alpha, out=str(Path(args.out) / name), **split)


def _grid_args(args):
    """The namespace ``run_configs`` of the full-scale script reads."""
    return argparse.Namespace(data_dir=args.data_dir, cache_dir=args.cache_dir, epochs=args.epochs, out=args.out,
                              device=args.device, no_progress=args.no_progress,
                              settings=args.setting, seeds=args.seed + 1, methods="sop")


def full_scale_row(args, table: Path | None = None) -> dict | None:
    """The full-scale table's SOP row of ``args.setting`` / ``args.seed`` at ``args.epochs`` as a row of
    this table (``chosen="final (full-scale table)"``), or None when the table has none."""
    table = FULL_SCALE_TABLE if table is None else table
    for old in earlier_rows(table, FULL_SCALE_KEYS):
        if (old["setting"], old["seed"], old["method"], old["epochs"]) == (args.setting, args.seed, "sop", args.epochs):
            row = dict.fromkeys(ROW_KEYS)
            row.update({k: old[k] for k in ROW_KEYS if k in old}, alpha=RULE_ALPHA, train_images=N_TRAIN,
                       chosen="final (full-scale table)")
            return row
    return None


def heldout_accuracies(config) -> dict[str, float]:
    """Accuracy of the run's final network on the images its ``train_subset`` left out, against their
    noisy labels (the run's noise) and their clean labels; the run's tta and precision."""
    import json

    import numpy as np

    from sopdeep.runs import load_model
    from sopdeep.training import load_data, subset_indices

    folder = Path(config.out)
    summary = json.loads((folder / "summary.json").read_text())
    full, noisy = load_data(config.replace(train_subset=0))  # the noise is drawn on the full set
    kept, held = subset_indices(config, full.y_train)
    pred = predicted_labels(load_model(folder, pixels=True), np.asarray(full.x_train)[held], config.tta,
                            bf16=summary.get("precision") == "bf16")
    return {"heldout_acc_noisy": float(np.mean(pred == noisy.noisy_labels[held])),
            "heldout_acc_clean": float(np.mean(pred == np.asarray(full.y_train)[held])),
            "train_images": int(len(kept))}


def row_of(config, summary, alpha, heldout) -> dict:
    """One table row."""
    return {"setting": None, "seed": config.seed, "alpha": alpha, **heldout,
            "final_test_acc": summary["final_test_acc"], "best_test_acc": summary["best_test_acc"],
            "final_train_acc_noisy": summary["final_train_acc_noisy"], **issue_columns(summary), "chosen": "",
            "epochs": config.epochs, "wall_time_s": summary.get("wall_time_s")}


def write_results(rows: list[dict], results: Path, args) -> None:
    """``results.csv`` and ``results.md``, atomically."""
    results.mkdir(parents=True, exist_ok=True)
    write_csv(results / "results.csv", rows, ROW_KEYS)
    lines = [
        f"SOP's alpha_u = alpha_v chosen on a held-out split of the training set: {args.setting}, seed {args.seed}, "
        f"fast recipe, {args.epochs} epochs. Each alpha trains on 45,000 training images (stratified per class) and is "
        f"scored on the other 5,000 against their noisy labels (the selection); the clean-label held-out accuracy and "
        f"the test accuracy are reported only. The effective-alpha rule's alpha is {RULE_ALPHA:.4f}. The chosen alpha is then "
        "trained on all 50,000 images (train images 50000; for the rule's alpha that run is the full-scale table's). "
        "chosen: yes = the held-out choice, final = its full-set run, full set = the full-set run of an alpha an "
        "earlier, smaller grid chose.",
        "",
        "| alpha | train images | held-out acc (noisy labels) | held-out acc (clean) | final test acc | best test acc | "
        "train acc (noisy) | issues AUROC | precision | recall | chosen | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['alpha']:.4g} | {r['train_images']} | {_fmt(r['heldout_acc_noisy'])} | {_fmt(r['heldout_acc_clean'])} | "
            f"{_fmt(r['final_test_acc'])} | {_fmt(r['best_test_acc'])} | {_fmt(r['final_train_acc_noisy'])} | "
            f"{_fmt(r['issues_auroc'], 3)} | {_fmt(r['issues_precision'], 3)} | {_fmt(r['issues_recall'], 3)} | "
            f"{r['chosen']} | {_fmt(r['wall_time_s'], 0)} |")
    command = (f"python experiments/cifar10_alpha_heldout.py --data-dir {args.data_dir} --out {args.out} "
               f"--cache-dir {args.cache_dir} --results {results} --epochs {args.epochs}")
    if args.setting != "sym40" or args.seed != 0:
        command += f" --setting {args.setting} --seed {args.seed}"
    if args.alphas:
        command += f" --alphas {args.alphas}"
    lines += ["", f"Command: `{command}`"]
    atomic_write_bytes(results / "results.md", ("\n".join(lines) + "\n").encode())


def parse_alphas(text: str | None) -> list[float]:
    """The grid: ``--alphas`` (comma-separated, each > 0) or the rule's α times :data:`ALPHA_FACTORS`.

    >>> [round(a, 4) for a in parse_alphas(None)]
    [0.0926, 0.2778, 0.8333, 2.5]
    >>> parse_alphas("0.5,1")
    [0.5, 1.0]
    """
    if text is None:
        return [RULE_ALPHA * f for f in ALPHA_FACTORS]
    try:
        alphas = [float(a) for a in text.split(",")]
    except ValueError:
        raise ValueError(f"--alphas must be comma-separated numbers, got {text!r}") from None
    if not alphas or not all(a > 0 and a < float("inf") for a in alphas):
        raise ValueError(f"--alphas must be positive and finite, got {text!r}")
    return alphas


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="SOP's alpha chosen on a held-out split of the CIFAR-10 training set "
                                            "(noisy labels), then trained on the full set")
    add_folder_arguments(p)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--setting", default="sym40", choices=sorted(SETTINGS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alphas", default=None, help="comma-separated grid (default: the rule's alpha x 1/9, 1/3, 1, 3)")
    p.add_argument("--no-final", action="store_true",
                   help="do not train the chosen alpha on the full set (finished full-set runs are still reported)")
    add_device_arguments(p)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.seed < 0:
        parser.error("--epochs must be >= 1 and --seed >= 0")
    try:
        alphas = parse_alphas(args.alphas)
    except ValueError as err:
        parser.error(str(err))
    results = Path(args.results or args.out)
    rows: list[dict] = []

    def body() -> int:
        for i, alpha in enumerate(alphas):
            config = sop_config(args, alpha, full=False)
            t0 = time.perf_counter()
            print(f"[{i + 1}/{len(alphas)}] alpha {alpha:.4g} on 45,000 -> {config.out}", file=sys.stderr, flush=True)
            summary = run_one(config)
            rows.append(row_of(config, summary, alpha, heldout_accuracies(config)) | {"setting": args.setting})
            print(f"[{i + 1}/{len(alphas)}] done in {time.perf_counter() - t0:.0f} s: held-out acc (noisy labels) "
                  f"{_fmt(rows[-1]['heldout_acc_noisy'])}", file=sys.stderr, flush=True)
            write_results(rows, results, args)
        best = max(rows, key=lambda r: r["heldout_acc_noisy"])
        best["chosen"] = "yes"
        write_results(rows, results, args)
        print(f"chosen alpha {best['alpha']:.4g} (held-out acc on noisy labels {_fmt(best['heldout_acc_noisy'])})",
              file=sys.stderr, flush=True)
        table_row = full_scale_row(args) if math.isclose(best["alpha"], RULE_ALPHA) else None
        if table_row is not None:  # the very run of the full-scale table (same config but its folder)
            print(f"[final] the rule's alpha: its run on all 50,000 is the full-scale table's row "
                  f"({FULL_SCALE_TABLE})", file=sys.stderr, flush=True)
            rows.append(table_row)
            write_results(rows, results, args)
            return 0
        chosen = sop_config(args, best["alpha"], full=True)
        if not args.no_final and not (Path(chosen.out) / "summary.json").exists():
            print(f"[final] alpha {best['alpha']:.4g} on all 50,000 -> {chosen.out}", file=sys.stderr, flush=True)
            run_one(chosen)
        # every finished full-set run of the grid (an earlier, smaller grid may have chosen another alpha)
        for alpha in alphas:
            config = sop_config(args, alpha, full=True)
            if (Path(config.out) / "summary.json").exists():
                full = {"heldout_acc_noisy": None, "heldout_acc_clean": None, "train_images": N_TRAIN}
                rows.append(row_of(config, run_one(config), alpha, full) | {
                    "setting": args.setting, "chosen": "final" if config.out == chosen.out else "full set"})
        write_results(rows, results, args)
        return 0

    return run_guarded("cifar10_alpha_heldout", body)


if __name__ == "__main__":
    sys.exit(main())
