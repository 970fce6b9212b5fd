"""The fast recipe on clean CIFAR-10, switch by switch: what each of airbench's ideas buys here.

Every run is the ``fast-cifar10`` preset (``sopdeep.presets``) on the CIFAR-10 JPEG export, all
50,000 / 10,000 images, with one change (``VARIANTS``): at 10 epochs the full recipe, the recipe
with one switch left out (lookahead, the alternating flip, the stem-bias freeze), and the recipe
without any of them (``v1``: the noisy presets' recipe, label smoothing on); and the preset itself
(16 epochs). The test-time augmentation is not a training switch: the final network of each run is
evaluated again with no views, the flip and the six views (``tta_rows``), from its run folder.

Each run is a cached, resumable run folder ``OUT/<variant>/``; ``results.csv`` / ``results.md``
are rewritten after every run. Wall times are those of this project's 2-core CPU, which other jobs
shared during some runs: the accuracy columns are the result, the times a guide.

Example (from the repository root; about 9 minutes a 10-epoch run)::

    python experiments/fast_recipe_ablation.py --data-dir ../shared/data --out runs/ablate \\
        --cache-dir runs/cache --results experiments/results/fast_recipe_ablation
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sopcommon import atomic_write_bytes  # noqa: E402
from cifar10_full_scale import (  # noqa: E402
    _fmt, add_device_arguments, add_folder_arguments, earlier_rows, predicted_labels, run_guarded, run_one)

#: variant -> (what it changes, overrides of the fast-cifar10 preset)
VARIANTS = {
    "all_e16": ("the preset: every switch, 16 epochs", {}),
    "all_e10": ("every switch, 10 epochs", {"epochs": 10}),
    "no_lookahead": ("lookahead off", {"epochs": 10, "lookahead": 0}),
    "flip_random": ("random flips instead of alternating", {"epochs": 10, "flip": "random"}),
    "stem_bias_trained": ("stem bias trained throughout", {"epochs": 10, "stem_bias_epochs": 0}),
    "amp_off": ("fp32 throughout (amp=off) instead of bf16 autocast", {"epochs": 10, "amp": "off"}),
    "v1_e10": ("none of the four (test-time flip only)",
               {"epochs": 10, "flip": "random", "lookahead": 0, "stem_bias_epochs": 0, "tta": "flip",
                "tta_on": "every_evaluation"}),
}
TTA_LEVELS = ("none", "flip", "flip_translate")
ROW_KEYS = ("variant", "change", "epochs", "final_test_acc", "best_test_acc", "tta", "test_acc_tta_none",
            "test_acc_tta_flip", "test_acc_tta_flip_translate", "train_time_s", "wall_time_s")


def variant_config(name: str, args):
    """The TrainConfig of one variant."""
    from sopdeep.config import TrainConfig
    from sopdeep.presets import PRESETS

    data_dir = Path(args.data_dir).expanduser().resolve()
    settings = {**PRESETS["fast-cifar10"], **VARIANTS[name][1]}
    settings.update(dataset="cifar10-jpeg", data_root=str(data_dir / "cifar10-jpeg"),
                    cache_path=str(Path(args.cache_dir).expanduser() / "cifar10_jpeg.npz"),
                    out=str(Path(args.out) / name), device=args.device, progress=not args.no_progress)
    return TrainConfig(**settings)


def tta_accuracies(config) -> dict[str, float]:
    """Test accuracy of the run's final network with each test-time augmentation (eval mode, the
    run's precision on the CPU: bf16 autocast when the run used it)."""
    import json

    import numpy as np

    from sopcommon.cli import one_line
    from sopdeep.runs import load_model

    folder = Path(config.out)
    summary = json.loads((folder / "summary.json").read_text())
    try:
        net = load_model(folder, pixels=True)
    except ValueError as err:  # e.g. a run folder of an older sopdeep: its own final accuracy still stands
        print(f"  no re-evaluation of {folder}: {one_line(err)}", file=sys.stderr)
        return {}
    data = np.load(config.cache_path)
    bf16 = summary.get("precision") == "bf16"
    return {tta: float(np.mean(predicted_labels(net, data["x_test"], tta, bf16=bf16) == data["y_test"]))
            for tta in TTA_LEVELS}


def merged_rows(rows: list[dict], results_csv: Path) -> list[dict]:
    """``rows`` with the rows of an earlier ``results.csv`` of the other variants, in the order of
    :data:`VARIANTS`: a ``--variants`` subset adds to the table instead of overwriting it."""
    new = {r["variant"] for r in rows}
    kept = [old for old in earlier_rows(results_csv, ROW_KEYS) if old["variant"] not in new and old["variant"] in VARIANTS]
    for r in kept:  # the description as VARIANTS gives it now (a csv cell is parsed as a number where it can be)
        r["change"] = VARIANTS[r["variant"]][0]
    order = list(VARIANTS)
    return sorted(kept + rows, key=lambda r: order.index(r["variant"]))


def write_results(rows: list[dict], results: Path, command: str) -> None:
    """``results.csv`` and ``results.md`` (the table), atomically: this invocation's runs merged
    with the earlier table's other variants (:func:`merged_rows`)."""
    results.mkdir(parents=True, exist_ok=True)
    rows = merged_rows(rows, results / "results.csv")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_KEYS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if r.get(k) is None else r[k]) for k in ROW_KEYS} for r in rows)
    atomic_write_bytes(results / "results.csv", buf.getvalue().encode())
    lines = [
        "The fast recipe on clean CIFAR-10 (JPEG export, 50,000 / 10,000), one switch at a time. "
        "final test acc: the run's own last evaluation (with its `tta`); the three tta columns: its final "
        "network re-evaluated with no views, the flip, and the six views.",
        "",
        "| variant | change | epochs | final test acc (run's tta) | tta none | tta flip | tta six views | "
        "train (s) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['change']} | {r['epochs']} | {_fmt(r['final_test_acc'])} ({r['tta']}) | "
            f"{_fmt(r['test_acc_tta_none'])} | {_fmt(r['test_acc_tta_flip'])} | "
            f"{_fmt(r['test_acc_tta_flip_translate'])} | {_fmt(r['train_time_s'], 0)} | {_fmt(r['wall_time_s'], 0)} |")
    lines += ["", f"Command: `{command}`"]
    atomic_write_bytes(results / "results.md", ("\n".join(lines) + "\n").encode())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="The fast recipe on clean CIFAR-10, one airbench switch at a time")
    add_folder_arguments(p, data_help="folder holding cifar10-jpeg/")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    add_device_arguments(p)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = args.variants.split(",")
    if not set(names) <= set(VARIANTS):
        parser.error(f"--variants must be a subset of {','.join(VARIANTS)}, got {args.variants!r}")
    command = (f"python experiments/fast_recipe_ablation.py --data-dir {args.data_dir} --out {args.out} "
               f"--cache-dir {args.cache_dir}" + (f" --results {args.results}" if args.results else ""))

    def body() -> int:
        rows = []
        for i, name in enumerate(names):
            config = variant_config(name, args)
            t0 = time.perf_counter()
            print(f"[{i + 1}/{len(names)}] {name} -> {config.out}", file=sys.stderr, flush=True)
            summary = run_one(config)
            tta = tta_accuracies(config)
            rows.append({**{f"test_acc_tta_{k}": None for k in TTA_LEVELS},"variant": name, "change": VARIANTS[name][0], "epochs": config.epochs,
                         "final_test_acc": summary["final_test_acc"], "best_test_acc": summary["best_test_acc"],
                         "tta": config.tta, **{f"test_acc_tta_{k}": v for k, v in tta.items()},
                         "train_time_s": summary.get("train_time_s"), "wall_time_s": summary.get("wall_time_s")})
            print(f"[{i + 1}/{len(names)}] done in {time.perf_counter() - t0:.0f} s: final test acc "
                  f"{_fmt(summary['final_test_acc'])}", file=sys.stderr, flush=True)
            write_results(rows, Path(args.results or args.out), command)
        return 0

    return run_guarded("fast_recipe_ablation", body)


if __name__ == "__main__":
    sys.exit(main())
