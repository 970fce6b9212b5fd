"""Issue 34's two negative results, measured where CE memorises (the grid's ``memorisation`` preset).

At the fast recipe's 25 epochs on all 50,000 CIFAR-10 images, SOP trails CE at 80 % symmetric noise
and SOP+ trails SOP at 40 % (``experiments/results/cifar10_full_scale``), the opposite of the paper's
Tables 1-2. There CE never fits its wrong labels (its train accuracy on the given labels stays at the
clean fraction), so there is nothing for SOP to prevent. The paper trains 120-300 epochs, long enough
for CE to interpolate the noisy labels. This script measures the same comparisons in a regime this
CPU can afford where CE does memorise: ``sop-grid memorisation`` (``sopdeep.grid.MEMORISATION_RECIPE``:
3,000 CIFAR-10 images, 300 per class, 40 epochs, batch 256, a width-32 fast net with 166
parameters per image).

SOP's α_u = α_v is **chosen on a held-out split of the noisy labels**, never on the test set: each α
of ``rule × --alpha-factors`` trains on the 3,000 images, and its final network is scored on the
other 47,000 training images against their noisy labels (the same noise draw; under symmetric noise
at rate η < (K - 1)/K that accuracy increases with the clean accuracy, so its argmax is the α a clean
split would pick). ``rule`` is the effective-α rule at batch 256 (``sopdeep.presets.effective_alpha``).
SOP+ runs at the rule's α, beside SOP at the same α.

Cells run in this order, each a resumable run folder of the grid (a rerun reuses finished ones):
CE and SOP at 40 % then 80 %, SOP+ at 40 %, then the other α at 40 % and 80 %. After every cell
``results.csv`` / ``results.md`` and ``curves_<setting>.png`` are rewritten in ``--results``.
Reported per run: final and best test accuracy (read every 5th epoch), the fraction of the wrong
labels the final network predicts (memorised) and of the right ones, held-out accuracies (SOP).

Example (about 8 minutes per CE or SOP run, 20 per SOP+ run, on a 2-core AVX2 CPU in fp32)::

    python experiments/memorisation_regime.py --data-dir ../shared/data --out runs/memorisation \\
        --cache-dir runs/cache --results experiments/results/memorisation_regime
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sopcommon import atomic_write_bytes  # noqa: E402
from cifar10_alpha_heldout import heldout_accuracies  # noqa: E402
from cifar10_full_scale import _fmt, run_guarded, write_csv  # noqa: E402

#: the run folder's file caching its held-out accuracies
HELDOUT_FILE = "heldout.json"
ROW_KEYS = ("setting", "seed", "method", "alpha", "final_test_acc", "best_test_acc", "best_epoch",
            "final_train_acc_noisy", "memorised", "clean_fit", "heldout_acc_noisy", "heldout_acc_clean", "chosen",
            "epochs", "wall_time_s", "folder")


def plan(args) -> list[tuple[str, object, Path]]:
    """(label, grid cell, grid folder) of every run, in the order they train."""
    from sopdeep import grid

    def cells(methods, factor):
        found = grid.grid_cells("memorisation", data_dir=args.data_dir, cache_dir=args.cache_dir,
                                settings=args.settings, methods=methods, seeds=args.seeds)
        if factor == 1.0:
            return [(c, Path(args.out) / "grid") for c in found]
        return [(grid.Cell(c.dataset, c.setting, c.method, c.seed,
                           {**c.overrides, "alpha_u": factor * c.overrides["alpha_u"],
                            "alpha_v": factor * c.overrides["alpha_v"]}), Path(args.out) / f"alpha-x{factor:.3g}")
                for c in found]

    methods = args.methods.split(",")
    first = args.settings.split(",")[0]
    order = {s: i for i, s in enumerate(args.settings.split(","))}
    every = cells(",".join(m for m in methods if m != "sop+"), 1.0)
    every += cells("sop+", 1.0) if "sop+" in methods else []
    every += [co for f in args.alpha_factors if f != 1.0 for co in cells("sop", f)] if "sop" in methods else []

    def tier(cell, out) -> int:
        """CE and SOP at the rule's α, SOP+ in the first setting, the other α, SOP+ elsewhere."""
        if cell.method == "sop+":
            return 1 if cell.setting == first else 3
        return 2 if out.name.startswith("alpha-") else 0

    every.sort(key=lambda co: (co[0].seed, tier(*co), order[co[0].setting], co[0].method != "ce", str(co[1])))
    return [(f"{c.setting} {c.method} seed {c.seed}" + (f" alpha {c.overrides['alpha_u']:.4g}"
                                                         if "alpha_u" in c.overrides else ""), c, out)
            for c, out in every]


def fit_fractions(folder: Path) -> dict[str, float]:
    """Of the training images, the fraction with a wrong given label that the final network
    predicts as that label (``memorised``) and of those with a right one (``clean_fit``)."""
    import numpy as np

    with np.load(folder / "samples.npz") as s:
        hit = s["corrected_label"] == s["given_label"]
        noisy = s["is_noisy"].astype(bool)
    return {"memorised": float(hit[noisy].mean()), "clean_fit": float(hit[~noisy].mean())}


def heldout(config) -> dict[str, float]:
    """:func:`heldout_accuracies` of a finished SOP run, cached in its folder."""
    path = Path(config.out) / HELDOUT_FILE
    if path.is_file():
        return json.loads(path.read_text())
    found = heldout_accuracies(config)
    atomic_write_bytes(path, json.dumps(found, indent=2).encode())
    return found


def row_of(cell, config) -> dict:
    summary = json.loads((Path(config.out) / "summary.json").read_text())
    row = dict.fromkeys(ROW_KEYS)
    row.update(setting=cell.setting, seed=cell.seed, method=cell.method, alpha=getattr(config.options, "alpha_u", None),
               final_test_acc=summary["final_test_acc"], best_test_acc=summary["best_test_acc"],
               best_epoch=summary["best_epoch"], final_train_acc_noisy=summary["final_train_acc_noisy"],
               epochs=config.epochs, wall_time_s=summary.get("wall_time_s"), folder=str(config.out), chosen="",
               **fit_fractions(Path(config.out)))
    if cell.method == "sop":
        row.update({k: v for k, v in heldout(config).items() if k.startswith("heldout_")})
    return row


def mark_chosen(rows: list[dict]) -> None:
    """Per setting and seed, the SOP α with the best held-out accuracy on the noisy labels: ``chosen``
    = ``"held-out"`` (of the α done so far)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["method"] == "sop" and r["heldout_acc_noisy"] is not None:
            groups.setdefault((r["setting"], r["seed"]), []).append(r)
    for r in rows:
        r["chosen"] = ""
    for group in groups.values():
        max(group, key=lambda r: r["heldout_acc_noisy"])["chosen"] = "held-out"


def signs(rows: list[dict]) -> list[str]:
    """The comparisons of the issue, ours (final and best test accuracy, points) beside the paper's."""
    from sopdeep.paper_numbers import paper_number

    def find(setting, seed, method, chosen=False, alpha=None):
        return next((r for r in rows if (r["setting"], r["seed"], r["method"]) == (setting, seed, method)
                     and (not chosen or r["chosen"]) and (alpha is None or abs(r["alpha"] - alpha) < 1e-9)), None)

    def paper(setting, a, b):
        pa, pb = paper_number("cifar10", setting, a), paper_number("cifar10", setting, b)
        return f"{pa.mean - pb.mean:+.2f} ({pa.table}, {pa.mean} vs {pb.mean})" if pa and pb else "n/a"

    def diff(x, y, key):
        return f"{100 * (x[key] - y[key]):+.2f}"

    lines = ["| comparison | setting | seed | ours: final | ours: best | paper |", "|---|---|---|---|---|---|"]
    for setting in sorted({r["setting"] for r in rows}):
        for seed in sorted({r["seed"] for r in rows if r["setting"] == setting}):
            ce, chosen = find(setting, seed, "ce"), find(setting, seed, "sop", chosen=True)
            rule = next((r for r in rows if (r["setting"], r["seed"], r["method"]) == (setting, seed, "sop+")), None)
            same = find(setting, seed, "sop", alpha=rule["alpha"]) if rule else None
            if ce and chosen:
                lines.append(f"| SOP (held-out α {chosen['alpha']:.4g}) − CE | {setting} | {seed} | "
                             f"{diff(chosen, ce, 'final_test_acc')} | {diff(chosen, ce, 'best_test_acc')} | "
                             f"{paper(setting, 'sop', 'ce')} |")
            if rule and same:
                lines.append(f"| SOP+ − SOP (both α {rule['alpha']:.4g}) | {setting} | {seed} | "
                             f"{diff(rule, same, 'final_test_acc')} | {diff(rule, same, 'best_test_acc')} | "
                             f"{paper(setting, 'sop+', 'sop')} |")
    return lines


def write_results(rows: list[dict], results: Path, command: str) -> None:
    """``results.csv``, ``results.md`` and one ``curves_<setting>.png`` per setting, atomically."""
    from sopdeep.curves import plot_runs
    from sopdeep.runs import read_history
    from sopdeep.grid import MEMORISATION_RECIPE as R

    results.mkdir(parents=True, exist_ok=True)
    write_csv(results / "results.csv", rows, ROW_KEYS)
    lines = [
        "# Where CE memorises: CIFAR-10, 3,000 images, 40 epochs (issue 34, part 6)", "",
        f"`sop-grid memorisation` (sopdeep.grid.MEMORISATION_RECIPE): {R['train_subset']} training images "
        f"({R['train_subset'] // 10} per class, seeded), the fast recipe at batch {R['batch_size']} (lr "
        f"{R['lr']}, scaled with the batch), a width-{R['width']} fast net, {R['epochs']} epochs, the full "
        f"test set every {R['eval_every']}th epoch without TTA; label noise drawn on all 50,000 images. "
        "memorised: fraction of the wrongly labelled training images whose final prediction is the wrong "
        "label; clean fit: of the rightly labelled ones, the right label. SOP's α (α_u = α_v) is chosen on "
        "the 47,000 held-out training images against their noisy labels (held-out noisy); the clean "
        "held-out and test accuracies choose nothing.", "",
        "| setting | seed | method | α | final test | best test (epoch) | train acc (given labels) | memorised | "
        "clean fit | held-out noisy | held-out clean | chosen | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        alpha = "" if r["alpha"] is None else f"{r['alpha']:.4g}"
        lines.append(f"| {r['setting']} | {r['seed']} | {r['method']} | {alpha} | {_fmt(r['final_test_acc'])} | "
                     f"{_fmt(r['best_test_acc'])} ({r['best_epoch']}) | {_fmt(r['final_train_acc_noisy'])} | "
                     f"{_fmt(r['memorised'], 3)} | {_fmt(r['clean_fit'], 3)} | {_fmt(r['heldout_acc_noisy'])} | "
                     f"{_fmt(r['heldout_acc_clean'])} | {r['chosen']} | {_fmt(r['wall_time_s'], 0)} |")
    lines += ["", "## The signs (test accuracy difference, points)", "", *signs(rows), "",
              f"Command (finished runs are reused, a killed one resumes): `{command}`", ""]
    atomic_write_bytes(results / "results.md", "\n".join(lines).encode())
    for setting in sorted({r["setting"] for r in rows}):
        shown = {f"{r['method']} seed {r['seed']}" + (f" α {r['alpha']:.3g}" if r["alpha"] is not None else ""):
                 read_history(r["folder"]) for r in rows if r["setting"] == setting}
        fig = plot_runs(shown, title=f"CIFAR-10 {setting}, {R['train_subset']} images (memorisation regime)")
        with io.BytesIO() as png:
            fig.savefig(png, format="png", dpi=110, metadata={"Software": None})
            atomic_write_bytes(results / f"curves_{setting}.png", png.getvalue())


def parse_factors(text: str) -> list[float]:
    """``--alpha-factors``: comma-separated numbers or fractions, exact (``1/3`` is 1/3, not 0.333333).

    >>> parse_factors("1/3,1,3") == [1 / 3, 1.0, 3.0]
    True
    """
    return [float(Fraction(item.strip())) for item in text.split(",")]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="CE, SOP (alpha on a held-out split) and SOP+ on CIFAR-10 where CE "
                                            "memorises: the grid's memorisation preset")
    p.add_argument("--data-dir", required=True, help="folder holding cifar10-jpeg/")
    p.add_argument("--out", required=True, help="folder of the grid folders")
    p.add_argument("--cache-dir", default="runs/cache", help="where the decoded CIFAR-10 npz is kept")
    p.add_argument("--results", default=None, help="folder of results.csv / results.md (default: OUT)")
    p.add_argument("--settings", default="sym40,sym80", help="comma-separated: sym40, sym80")
    p.add_argument("--methods", default="ce,sop,sop+", help="ce,sop and optionally sop+ (at sym40 and sym80)")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--alpha-factors", default="1/3,1,3",
                   help="SOP's alpha as multiples of the effective-alpha rule's (comma-separated numbers or "
                        "fractions, > 0, 1 among them)")
    p.add_argument("--dry-run", action="store_true", help="list the runs in order and exit")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.alpha_factors = parse_factors(args.alpha_factors)
    except (ValueError, ZeroDivisionError):
        parser.error(f"--alpha-factors must be comma-separated numbers, got {args.alpha_factors!r}")
    if not all(0 < f < float("inf") for f in args.alpha_factors) or 1.0 not in args.alpha_factors:
        parser.error("--alpha-factors must be positive and finite, and include 1 (the rule's alpha)")
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if set(args.settings.split(",")) - {"sym40", "sym80"} or set(args.methods.split(",")) - {"ce", "sop", "sop+"}:
        parser.error("--settings must be of sym40,sym80 and --methods of ce,sop,sop+")
    results = Path(args.results or args.out)
    command = " ".join(["python experiments/memorisation_regime.py", *(argv if argv is not None else sys.argv[1:])])

    def body() -> int:
        from sopdeep import grid

        runs = [(label, cell, grid.cell_config(cell, out)) for label, cell, out in plan(args)]
        if args.dry_run:
            for label, _, config in runs:
                print(f"{label}: {grid.cell_status(config)} -> {config.out}")
            return 0
        rows = []
        for i, (label, cell, config) in enumerate(runs, 1):
            print(f"[{i}/{len(runs)}] {label} -> {config.out}", file=sys.stderr, flush=True)
            grid.run_cell(config.to_dict())
            rows.append(row_of(cell, config))
            mark_chosen(rows)
            write_results(rows, results, command)
        return 0

    return run_guarded("memorisation_regime.py", body)


if __name__ == "__main__":
    sys.exit(main())
