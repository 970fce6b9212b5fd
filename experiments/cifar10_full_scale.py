"""Full CIFAR-10 (50,000 training / 10,000 test images): CE against SOP on the fast recipe.

The paper's central claim at full scale on a 2-core CPU: symmetric noise 40 % and 80 %, CIFAR-10N
``worst`` and ``aggregate`` human labels; two seeds for sym 40 % and ``worst``. Every run is the
``fast-cifar10`` recipe (``sopdeep.presets``: the ``fast`` network, batch 1024, Nesterov SGD with
the triangle schedule, reflect-padded crops and flips, test-time flip) with plain cross-entropy
(no label smoothing, for CE and inside SOP alike), ``--epochs`` epochs (default 10).

SOP's α is chosen by the effective-α rule of ``docs/bridge.md``, never on the test set: Table A.1
runs CIFAR-10 with α_u = α_v = 10 at batch 128 and momentum 0.9, an effective ratio α·B·(1 − β) =
128; at batch 1024 and momentum 0.85 the same effective ratio is α = 128 / (1024 · 0.15) = 0.833
(``alpha_for``). u, v start at std 1e-8 (Table A.1) and follow the paper's recipe (their rates α·τ_t
on the network's schedule). ``--methods sop+`` adds SOP+ (appendix A.3): SOP's α and recipe plus
λ_C = 0.9, λ_B = 0.1 and a strong view per sample (torchvision's AutoAugment CIFAR-10 policy, crop +
flip, Cutout 16); about 2.5x the cost of a SOP run, so not in the default ``--methods ce,sop``.

Images: the CIFAR-10 JPEG export ``DATA_DIR/cifar10-jpeg`` (decoded once into ``--cache-dir``;
JPEG, so close to but not exactly the original pixels); CIFAR-N labels from
``DATA_DIR/cifar-n/CIFAR-10_human.pt``. Each run is a cached, resumable run folder
``OUT/<setting>-s<seed>-<method>/`` (a finished folder is reused, an interrupted one resumes from
its last epoch); after every run ``OUT/results.csv`` and ``OUT/results.md`` are rewritten with
every finished run, so an interrupted grid keeps what it measured. Reported per run: best and final
test accuracy, final train accuracy on the noisy labels (running, on augmented batches) against the
clean fraction, the realised noise rate, and the label-issue AUROC / precision / recall of
``label_quality`` against the true noisy-label mask; wall time.

The grid runner supersedes this script: its ``cifar10-full-scale`` preset (``sop-grid
cifar10-full-scale``, docs/tables.md) makes the same runs (the same configurations, so ``--runs OUT``
adopts this script's run folders) and reads this script's committed ``results.csv``
(``--import-rows``). The script stays for its committed tables and for the functions the other
full-CIFAR-10 scripts import (``predicted_labels``, ``issue_columns``, ``run_guarded``, ...).

Example (from the repository root; about 10 minutes per run on a 2-core CPU)::

    python experiments/cifar10_full_scale.py --data-dir ../shared/data --out runs/full_scale \\
        --cache-dir runs/cache --results experiments/results/cifar10_full_scale
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sopcommon import atomic_write_bytes  # noqa: E402
from sopdeep.grid import FAST_SOP_PLUS  # noqa: E402

#: (setting name, noise kind, rate, CIFAR-10N label), in the order the grid runs them.
SETTINGS = {
    "sym40": ("sym", 0.4, None),
    "worst": ("cifar10n", None, "worst"),
    "sym80": ("sym", 0.8, None),
    "aggre": ("cifar10n", None, "aggregate"),
}
#: (setting, seed) pairs: the first seed of every setting, then the second seed of sym40 and worst.
GRID = [("sym40", 0), ("worst", 0), ("sym80", 0), ("aggre", 0), ("sym40", 1), ("worst", 1)]
METHODS = ("ce", "sop", "sop+")
#: the methods a run of the script trains unless ``--methods`` says otherwise (a SOP+ step costs 2.5-3x SOP's)
DEFAULT_METHODS = ("ce", "sop")
#: what SOP+ adds to SOP's settings: appendix A.3's weights, the strong view per sample on the CPU
#: (the grid's constant: its cifar10-full-scale preset makes the same SOP+ runs)
SOP_PLUS_OPTIONS = FAST_SOP_PLUS

#: Table A.1's CIFAR-10 u, v rate (set for batch 128, momentum 0.9: sopdeep.presets.effective_alpha).
PAPER_ALPHA = 10.0


def alpha_for(batch_size: int, momentum: float) -> float:
    """The α with the paper's effective ratio α·B·(1 − β) (``docs/bridge.md``) at this optimiser.

    >>> round(alpha_for(1024, 0.85), 4)
    0.8333
    """
    from sopdeep.presets import effective_alpha  # the one rule (presets, grid, experiments)

    return effective_alpha(PAPER_ALPHA, batch_size, momentum)


def run_configs(args) -> list[tuple[str, int, str, "TrainConfig"]]:  # noqa: F821
    """(setting, seed, method, config) of every run, in the order they run."""
    from sopdeep.config import TrainConfig
    from sopdeep.presets import PRESETS

    data_dir = Path(args.data_dir).expanduser().resolve()
    # the noisy presets' recipe (the clean one less its label smoothing and airbench's other switches)
    recipe = {k: v for k, v in PRESETS["fast-cifar10-ce-sym40"].items() if k not in ("noise", "noise_rate", "method")}
    recipe.update(dataset="cifar10-jpeg", data_root=str(data_dir / "cifar10-jpeg"),
                  cache_path=str(Path(args.cache_dir).expanduser() / "cifar10_jpeg.npz"),
                  epochs=args.epochs, device=args.device, progress=not args.no_progress)
    alpha = alpha_for(recipe["batch_size"], recipe["momentum"])
    out = []
    grid = GRID if args.settings is None else [g for g in GRID if g[0] in args.settings.split(",")]
    for setting, seed in grid:
        if seed >= args.seeds:
            continue
        kind, rate, cifar_n = SETTINGS[setting]
        noise = dict(noise=kind, noise_seed=seed, seed=seed)
        if rate is not None:
            noise["noise_rate"] = rate
        if cifar_n is not None:
            noise.update(cifar_n_label=cifar_n, cifar_n_path=str(data_dir / "cifar-n" / "CIFAR-10_human.pt"))
        for method in args.methods.split(","):
            extra = dict(alpha_u=alpha, alpha_v=alpha, init_std=1e-8, recipe="paper") if method != "ce" else {}
            if method == "sop+":
                extra.update(SOP_PLUS_OPTIONS)
            config = TrainConfig(**recipe, **noise, method=method, **extra,
                                 out=str(Path(args.out) / f"{setting}-s{seed}-{method}"))
            out.append((setting, seed, method, config))
    return out


def run_one(config) -> dict:
    """Train ``config`` unless its folder is finished (resume an interrupted one); its summary."""
    from sopdeep.runs import read_run
    from sopdeep.training import train

    folder = Path(config.out)
    if not (folder / "summary.json").exists():
        train(config, resume=(folder / "checkpoint.pt").exists())
    return read_run(folder).summary


ROW_KEYS = ("setting", "seed", "method", "realised_noise_rate", "best_test_acc", "best_epoch", "final_test_acc",
            "final_train_acc_noisy", "clean_fraction", "issues_auroc", "issues_precision", "issues_recall",
            "epochs", "wall_time_s")


def row_of(setting, seed, method, config, summary) -> dict:
    """One table row from a run's summary (the label-issue numbers of ``label_quality``)."""
    rate = summary.get("realised_noise_rate")
    return {"setting": setting, "seed": seed, "method": method, "realised_noise_rate": rate,
            "best_test_acc": summary["best_test_acc"], "best_epoch": summary["best_epoch"],
            "final_test_acc": summary["final_test_acc"], "final_train_acc_noisy": summary["final_train_acc_noisy"],
            "clean_fraction": None if rate is None else 1 - rate, **issue_columns(summary),
            "epochs": config.epochs, "wall_time_s": summary.get("wall_time_s")}


def issue_columns(summary: dict) -> dict:
    """``issues_auroc`` / ``_precision`` / ``_recall`` of a run's summary: its ``final_issues_*``
    (of ``label_quality``), or the ``issues_*`` that run folders of older sopdeep versions wrote."""
    def first(*keys):
        return next((summary[k] for k in keys if summary.get(k) is not None), None)

    return {f"issues_{k}": first(f"final_issues_{k}", f"issues_{k}") for k in ("auroc", "precision", "recall")}


def predicted_labels(net, images, tta: str, *, bf16: bool, batch: int = 1000):
    """Labels a run's final network (``sopdeep.runs.load_model(folder, pixels=True)``) predicts for
    uint8 NHWC ``images``: test-time augmentation ``tta``, bf16 autocast when the run trained in
    it, channels_last, ``batch`` images at a time; an (N,) int64 array."""
    import torch

    from sopdeep.training import tta_logits

    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return torch.cat([tta_logits(net, x[lo:lo + batch].float(), tta).argmax(1)
                          for lo in range(0, len(x), batch)]).numpy()


def write_csv(path: Path, rows: list[dict], keys) -> None:
    """``rows`` as ``path``, a csv of the columns ``keys`` (None written empty), atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if r[k] is None else r[k]) for k in keys} for r in rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def _fmt(v, digits=4):
    if v is None:
        return "n/a"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _parse(value: str):
    """A csv cell back as None, int or float (else the string)."""
    if value == "":
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def earlier_rows(results_csv: Path, row_keys) -> list[dict]:
    """The rows of an earlier ``results.csv`` (none if it is absent), cells parsed by :func:`_parse`."""
    if not results_csv.exists():
        return []
    with open(results_csv, newline="") as f:
        return [{k: _parse(old.get(k, "")) for k in row_keys} for old in csv.DictReader(f)]


def merged_rows(rows: list[dict], results_csv: Path, epochs: int) -> list[dict]:
    """``rows`` with the rows of an earlier ``results.csv`` at the same ``epochs`` that they do not
    replace (same setting, seed, method), in the grid's order: a ``--settings`` subset adds to the
    table instead of overwriting it."""
    new = {(r["setting"], r["seed"], r["method"]) for r in rows}
    kept = [old for old in earlier_rows(results_csv, ROW_KEYS)
            if (old["setting"], old["seed"], old["method"]) not in new and old["epochs"] == epochs]
    order = {g: i for i, g in enumerate(GRID)}
    return sorted(kept + rows, key=lambda r: (order.get((r["setting"], r["seed"]), len(order)),
                                              METHODS.index(r["method"]) if r["method"] in METHODS else 0))


def write_results(rows: list[dict], results: Path, args, alpha: float) -> None:
    """``results.csv`` and ``results.md`` (the table), atomically: the finished runs of this
    invocation merged with the earlier table's other rows (:func:`merged_rows`)."""
    results.mkdir(parents=True, exist_ok=True)
    rows = merged_rows(rows, results / "results.csv", args.epochs)
    write_csv(results / "results.csv", rows, ROW_KEYS)
    sop_plus = any(r["method"] == "sop+" for r in rows)
    lines = [
        f"Full CIFAR-10 (50,000 train from the JPEG export / 10,000 test), fast recipe ({args.epochs} epochs, "
        f"batch 1024, `fast` network), plain CE vs SOP (alpha_u = alpha_v = {alpha:.4f} by the effective-alpha "
        "rule; no held-out or test-set tuning)"
        + (f" and SOP+ (the same alpha and recipe, plus lambda_C = {SOP_PLUS_OPTIONS['lambda_c']}, lambda_B = "
           f"{SOP_PLUS_OPTIONS['lambda_b']} of appendix A.3; strong view: torchvision's AutoAugment CIFAR-10 policy, "
           "crop + flip, Cutout 16, per sample)" if sop_plus else "")
        + ". Train acc: running accuracy on the noisy labels over the last "
        "epoch's augmented batches; clean fraction = 1 - realised noise rate. Label issues: AUROC / precision / "
        "recall of `label_quality` / `is_label_issue` against the true noisy-label mask.",
        "",
        "| setting | seed | method | noise | best test acc (epoch) | final test acc | train acc (noisy) | "
        "clean fraction | issues AUROC | precision | recall | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['seed']} | {r['method']} | {_fmt(r['realised_noise_rate'], 3)} | "
            f"{_fmt(r['best_test_acc'])} ({r['best_epoch']}) | {_fmt(r['final_test_acc'])} | "
            f"{_fmt(r['final_train_acc_noisy'])} | {_fmt(r['clean_fraction'], 3)} | {_fmt(r['issues_auroc'], 3)} | "
            f"{_fmt(r['issues_precision'], 3)} | {_fmt(r['issues_recall'], 3)} | {_fmt(r['wall_time_s'], 0)} |")
    commands = table_commands(rows, args)
    lines += ["", "Commands (cached run folders: a rerun only tabulates; each adds its rows to the table):" if
              len(commands) > 1 else "Command (cached run folders: a rerun only tabulates):"]
    lines += [f"`{c}`" for c in commands]
    atomic_write_bytes(results / "results.md", ("\n".join(lines) + "\n").encode())


def table_commands(rows: list[dict], args) -> list[str]:
    """The command lines that make ``rows``: one per group of methods run on the same (setting,
    seed) cells, ``--settings`` left out where a group covers the whole grid of its seeds.

    >>> import argparse
    >>> args = argparse.Namespace(data_dir="d", out="o", cache_dir="c", results=None, epochs=25)
    >>> rows = [dict(setting=s, seed=0, method=m) for s in SETTINGS for m in ("ce", "sop")]
    >>> table_commands(rows + [dict(setting="sym40", seed=0, method="sop+")], args)[1]
    'python experiments/cifar10_full_scale.py --data-dir d --out o --cache-dir c --epochs 25 --seeds 1 --settings sym40 --methods sop+'
    """
    cells: dict[str, set] = {}
    for r in rows:
        cells.setdefault(r["method"], set()).add((r["setting"], r["seed"]))
    groups: dict[frozenset, list[str]] = {}  # cells -> the methods run on exactly those, in METHODS order
    for method in METHODS:
        if method in cells:
            groups.setdefault(frozenset(cells[method]), []).append(method)
    commands = []
    for group, methods in groups.items():
        seeds = 1 + max(seed for _, seed in group)
        whole = group == {g for g in GRID if g[1] < seeds}
        settings = ",".join(s for s in SETTINGS if any(setting == s for setting, _ in group))
        commands.append(command_of(args, seeds=seeds, settings=None if whole else settings, methods=",".join(methods)))
    return commands


def command_of(args, *, seeds: int, settings: str | None, methods: str) -> str:
    """The command line of ``seeds``, ``settings`` and ``methods`` with this invocation's folders and
    epochs (defaults left out)."""
    command = (f"python experiments/cifar10_full_scale.py --data-dir {args.data_dir} --out {args.out} "
               f"--cache-dir {args.cache_dir}")
    if args.results:
        command += f" --results {args.results}"
    for flag, value, default in (("--epochs", args.epochs, 10), ("--seeds", seeds, 2), ("--settings", settings, None),
                                 ("--methods", methods, ",".join(DEFAULT_METHODS))):
        if value != default:
            command += f" {flag} {value}"
    return command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Full CIFAR-10: CE vs SOP on the fast recipe (sym 40/80 %, CIFAR-10N "
                                            "worst/aggregate), cached, resumable run folders")
    add_folder_arguments(p)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, default=2, help="seeds of the settings that have two (1: first seed only)")
    p.add_argument("--settings", default=None, help="comma-separated subset of " + ",".join(SETTINGS))
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated subset of " + ",".join(METHODS))
    add_device_arguments(p)
    p.add_argument("--dry-run", action="store_true", help="print the runs' configs and exit")
    return p


def add_folder_arguments(p: argparse.ArgumentParser, data_help="folder holding cifar10-jpeg/ and cifar-n/") -> None:
    """``--data-dir``, ``--out``, ``--cache-dir``, ``--results``: the folders of every full-CIFAR-10 script."""
    p.add_argument("--data-dir", required=True, help=data_help)
    p.add_argument("--out", required=True, help="folder of the run folders")
    p.add_argument("--cache-dir", default="runs/cache", help="where the decoded CIFAR-10 npz is kept")
    p.add_argument("--results", default=None, help="folder of results.csv / results.md (default: OUT)")


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    """``--device`` and ``--no-progress``."""
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")


def run_guarded(script: str, body) -> int:
    """``body()``'s exit code, as a command line wants it: Ctrl-C returns 130 with a line saying the
    finished runs are kept; any other error, one line naming ``script`` (no traceback) and 1."""
    from sopcommon.cli import fail, one_line

    try:
        return body()
    except KeyboardInterrupt:
        print(f"{script}: interrupted; finished runs are kept, rerun to resume", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001  (one line, not a traceback, from the command line)
        fail(script, one_line(err))
        return 1


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.settings is not None and not set(args.settings.split(",")) <= set(SETTINGS):
        parser.error(f"--settings must be a subset of {','.join(SETTINGS)}, got {args.settings!r}")
    if not set(args.methods.split(",")) <= set(METHODS):
        parser.error(f"--methods must be a subset of {','.join(METHODS)}, got {args.methods!r}")
    if args.epochs < 1 or args.seeds < 1:
        parser.error("--epochs and --seeds must be >= 1")

    def body() -> int:
        runs = run_configs(args)
        alpha = alpha_for(runs[0][3].batch_size, runs[0][3].momentum) if runs else float("nan")
        if args.dry_run:
            for setting, seed, method, config in runs:
                print(json.dumps({"setting": setting, "seed": seed, "method": method, "config": config.to_dict()}))
            return 0
        results = Path(args.results or args.out)
        rows = []
        for i, (setting, seed, method, config) in enumerate(runs):
            t0 = time.perf_counter()
            print(f"[{i + 1}/{len(runs)}] {setting} seed {seed} {method} -> {config.out}", file=sys.stderr, flush=True)
            rows.append(row_of(setting, seed, method, config, run_one(config)))
            print(f"[{i + 1}/{len(runs)}] done in {time.perf_counter() - t0:.0f} s: final test acc "
                  f"{_fmt(rows[-1]['final_test_acc'])}", file=sys.stderr, flush=True)
            write_results(rows, results, args, alpha)
        return 0

    return run_guarded("cifar10_full_scale", body)


if __name__ == "__main__":
    sys.exit(main())
