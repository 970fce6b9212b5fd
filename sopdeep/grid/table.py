"""The table of a grid (:mod:`sopdeep.grid`): ``table.csv``, ``table.md`` and ``table.png``.

``table.csv`` has one row per run (:func:`table_row`: the run's summary, host, the paper's number);
``table.md`` one table per dataset, noise settings × methods, each cell the mean ± sample standard
deviation over seeds of the final test accuracy in %, the paper's number and the difference, then
wall time, hosts and the command; ``table.png`` the same as grouped bars. Every file is written
atomically (:mod:`sopcommon.files`). Rows of the earlier full-CIFAR-10 table
(``experiments/results/cifar10_full_scale/results.csv``) can stand in for cells not run
(:func:`import_full_scale_rows`).

>>> _cell_md(dict(n=2, mean=84.7, std=0.1, paper=90.09, diff=-5.39))
'84.70 ± 0.10 (n=2); paper 90.09, Δ -5.39'
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from sopcommon import atomic_path, atomic_write_bytes
from sopcommon.cli import one_line
from sopcommon.files import DataFileError

__all__ = ["ROW_KEYS", "TABLE_CSV", "TABLE_MD", "TABLE_PNG", "table_row", "summarise", "write_table", "table_figure",
           "import_full_scale_rows"]

TABLE_CSV, TABLE_MD, TABLE_PNG = "table.csv", "table.md", "table.png"




ROW_KEYS = ("dataset", "setting", "noise", "rate", "method", "seed", "final_test_acc", "best_test_acc", "best_epoch",
            "issues_auroc", "issues_precision", "issues_recall", "corrected_label_acc", "epochs", "wall_time_s",
            "host", "paper", "paper_std", "paper_table", "source", "folder")


def table_row(cell, config, summary: dict[str, Any], *, host: str = "", source: str = "") -> dict[str, Any]:
    """One row of ``table.csv`` from a run's summary (detection: the run's ``final_issues_*``)."""
    rate = summary.get("realised_noise_rate")
    return dict(dataset=cell.dataset, setting=cell.setting, noise=summary.get("noise"),
                rate=summary.get("noise_rate") if rate is None else rate, method=cell.method, seed=cell.seed,
                final_test_acc=summary.get("final_test_acc"), best_test_acc=summary.get("best_test_acc"),
                best_epoch=summary.get("best_epoch"),
                **{f"issues_{k}": summary.get(f"final_issues_{k}", summary.get(f"issues_{k}"))
                   for k in ("auroc", "precision", "recall")},
                corrected_label_acc=summary.get("corrected_label_acc"), epochs=config.epochs,
                wall_time_s=summary.get("wall_time_s"), host=host,
                paper=cell.paper.mean if cell.paper else None, paper_std=cell.paper.std if cell.paper else None,
                paper_table=cell.paper.table if cell.paper else None, source=source, folder=str(config.out))


#: Settings of experiments/cifar10_full_scale.py's results.csv -> (table dataset, setting).
_FULL_SCALE_SETTINGS = {"sym40": ("cifar10", "sym40"), "sym80": ("cifar10", "sym80"),
                        "worst": ("cifar10n", "worst"), "aggre": ("cifar10n", "aggregate")}


def import_full_scale_rows(path) -> list[dict[str, Any]]:
    """The rows of a ``results.csv`` of ``experiments/cifar10_full_scale.py`` as grid rows
    (``source`` names the file): its runs are the ``cifar10-full-scale`` cells of the same epochs.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "results.csv"
    >>> _ = p.write_text("setting,seed,method,final_test_acc,epochs\\naggre,1,sop,0.88,25\\n")
    >>> r = import_full_scale_rows(p)[0]
    >>> r["dataset"], r["setting"], r["seed"], r["final_test_acc"], r["epochs"]
    ('cifar10n', 'aggregate', 1, 0.88, 25)
    """
    path = Path(path)
    try:
        with open(path, newline="") as f:
            old = list(csv.DictReader(f))
    except OSError as exc:
        raise DataFileError(path, f"cannot read the earlier table ({exc.strerror})") from None
    rows = []
    for number, r in enumerate(old, 2):
        try:
            dataset, setting = _FULL_SCALE_SETTINGS[r["setting"]]
            row = dict.fromkeys(ROW_KEYS)
            row.update(dataset=dataset, setting=setting, method=r["method"], seed=int(r["seed"]),
                       epochs=int(r["epochs"]), source=f"imported: {path}")
            for key in ("final_test_acc", "best_test_acc", "best_epoch", "issues_auroc", "issues_precision",
                        "issues_recall", "wall_time_s"):
                row[key] = _number(r.get(key, ""))
            row["rate"] = _number(r.get("realised_noise_rate", ""))
        except (KeyError, ValueError, TypeError) as exc:
            raise DataFileError(path, f"line {number} is not a row of the full-scale table ({one_line(exc)})") from None
        rows.append(row)
    return rows


def _number(text: str):
    if text in ("", None):
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _num(value, digits=2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _table_rows(cells, rows, imported):
    """Rows of the cells done, then imported rows standing in for cells not done (same epochs)."""
    out = []
    for cell in cells:
        if cell in rows:
            out.append(rows[cell])
            continue
        epochs = cell.overrides.get("epochs")
        match = next((r for r in imported if (r["dataset"], r["setting"], r["method"], r["seed"], r["epochs"]) ==
                      (cell.dataset, cell.setting, cell.method, cell.seed, epochs)), None)
        if match is not None:
            paper = cell.paper
            out.append({**match, "paper": paper.mean if paper else None, "paper_std": paper.std if paper else None,
                        "paper_table": paper.table if paper else None})
    return out


def _mean_std(values):
    n = len(values)
    mean = sum(values) / n
    # sample standard deviation (ddof 1), as the paper's "mean and standard deviation over 5 runs"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return mean, std


def summarise(cells, table_rows) -> list[dict[str, Any]]:
    """Per (dataset, setting, method) of ``cells``: ``n`` runs, ``mean`` / ``std`` of the final test
    accuracy in percent (std None for one run), ``paper``, ``diff`` = mean - paper, ``epochs``."""
    groups: dict[tuple, list] = {}
    for r in table_rows:
        groups.setdefault((r["dataset"], r["setting"], r["method"]), []).append(r)
    out = []
    for cell in dict.fromkeys((c.dataset, c.setting, c.method) for c in cells):
        found = [r for r in groups.get(cell, []) if r["final_test_acc"] is not None]
        paper = next((c.paper for c in cells if (c.dataset, c.setting, c.method) == cell), None)
        mean, std = _mean_std([100 * r["final_test_acc"] for r in found]) if found else (None, None)
        out.append(dict(dataset=cell[0], setting=cell[1], method=cell[2], n=len(found), mean=mean, std=std,
                        paper=paper.mean if paper else None,
                        diff=None if mean is None or paper is None else mean - paper.mean,
                        epochs=sorted({r["epochs"] for r in found})))
    return out


def write_table(out, cells, rows, *, imported=(), title: str = "", command: str = "") -> list[Path]:
    """Write ``table.csv`` (one row per run), ``table.md`` (per dataset: noise settings × methods,
    mean ± std of the final test accuracy in % over seeds, the paper's number and the difference;
    wall time and hosts; the command) and ``table.png`` into ``out``, each atomically.

    Returns the paths written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = _table_rows(cells, rows, imported)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=(*ROW_KEYS, "command"), lineterminator="\n")
    writer.writeheader()
    for r in table:
        writer.writerow({**{k: "" if r.get(k) is None else r[k] for k in ROW_KEYS}, "command": command})
    atomic_write_bytes(out / TABLE_CSV, buf.getvalue().encode())
    stats = summarise(cells, table)
    atomic_write_bytes(out / TABLE_MD, _markdown(cells, stats, table, title, command).encode())
    _figure(stats, out / TABLE_PNG, title)
    return [out / TABLE_CSV, out / TABLE_MD, out / TABLE_PNG]


def _markdown(cells, stats, table, title, command) -> str:
    seeds = 1 + max((c.seed for c in cells), default=0)
    lines = [f"# {title or 'sop-grid table'}", "",
             f"Final test accuracy (%), mean ± sample std over the seeds done (n of {seeds}); "
             "`paper`: the published number (table), `Δ`: ours − paper. "
             f"{len(table)} of {len(cells)} runs done.", ""]
    methods = list(dict.fromkeys(c.method for c in cells))
    for ds in dict.fromkeys(c.dataset for c in cells):
        mine = [s for s in stats if s["dataset"] == ds]
        epochs = sorted({e for s in mine for e in s["epochs"]}) or \
            sorted({c.overrides.get("epochs") for c in cells if c.dataset == ds})
        names = sorted({c.overrides.get("dataset") for c in cells if c.dataset == ds})
        lines += [f"## {ds} ({', '.join(names)}; {', '.join(map(str, epochs))} epochs)", "",
                  "| setting | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
        for setting in dict.fromkeys(s["setting"] for s in mine):
            cells_md = []
            for m in methods:
                s = next((x for x in mine if x["setting"] == setting and x["method"] == m), None)
                cells_md.append("" if s is None else _cell_md(s))
            lines.append(f"| {setting} | " + " | ".join(cells_md) + " |")
        lines.append("")
    wall = [r["wall_time_s"] for r in table if r.get("wall_time_s") is not None]
    hosts: dict[str, int] = {}
    for r in table:
        hosts[r.get("host") or "unknown"] = hosts.get(r.get("host") or "unknown", 0) + 1
    papers = sorted({c.paper.table for c in cells if c.paper})
    lines += [f"Wall time: {sum(wall) / 3600:.2f} h over {len(wall)} runs; hosts: "
              + (", ".join(f"{h} ({n} runs)" for h, n in hosts.items()) or "none") + ".",
              f"Paper numbers: {', '.join(papers) or 'none'} of Liu et al. (ICML 2022), sopdeep.paper_numbers.",
              "", "Command (finished cells are reused, killed ones resumed):", "", f"`{command}`" if command else "", ""]
    return "\n".join(lines)


def _cell_md(s) -> str:
    if s["n"] == 0:
        ours = "—"
    else:
        ours = _num(s["mean"]) + (f" ± {_num(s['std'])}" if s["std"] is not None else "") + f" (n={s['n']})"
    if s["paper"] is None:
        return ours
    diff = "" if s["diff"] is None else f", Δ {s['diff']:+.2f}"
    return f"{ours}; paper {s['paper']:.2f}{diff}"


def _figure(stats, path: Path, title: str) -> None:
    """:func:`table_figure` written to ``path`` (png)."""
    import matplotlib.pyplot as plt

    fig = table_figure(stats, title)
    with atomic_path(path, suffix=".png") as tmp:   # the suffix tells matplotlib the format
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def table_figure(stats, title: str = ""):
    """Grouped bars per dataset panel: each setting a group, each method a bar (ours, ± std), the
    paper's number a black tick on it; one legend beside the panels. ``stats``: :func:`summarise`'s
    rows. Returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(s["dataset"] for s in stats))
    methods = list(dict.fromkeys(s["method"] for s in stats))
    fig, axes = plt.subplots(1, max(len(datasets), 1), figsize=(4.5 * max(len(datasets), 1), 3.6), squeeze=False)
    width = 0.8 / max(len(methods), 1)
    labelled: set[str] = set()   # each method and the paper once in the legend, wherever first drawn

    def label(name: str) -> str | None:
        if name in labelled:
            return None
        labelled.add(name)
        return name

    for ax, ds in zip(axes[0], datasets):
        settings = list(dict.fromkeys(s["setting"] for s in stats if s["dataset"] == ds))
        for j, m in enumerate(methods):
            for i, setting in enumerate(settings):
                s = next((x for x in stats if (x["dataset"], x["setting"], x["method"]) == (ds, setting, m)), None)
                if s is None:
                    continue
                x = i - 0.4 + width * (j + 0.5)
                if s["mean"] is not None:
                    ax.bar(x, s["mean"], width, color=f"C{j}", yerr=s["std"], capsize=2, label=label(m))
                if s["paper"] is not None:
                    ax.plot([x - width / 2, x + width / 2], [s["paper"]] * 2, color="black", lw=2,
                            label=label("paper"))
        ax.set_xticks(range(len(settings)), settings)
        ax.set_title(ds)
        ax.set_ylabel("final test accuracy (%)")
        ax.set_ylim(0, 100)
    found = dict(kv for ax in axes[0] for kv in zip(*reversed(ax.get_legend_handles_labels())))
    order = [name for name in ("paper", *methods) if name in found]
    handles, labels = [found[name] for name in order], order
    if handles:   # beside the panels, not over them
        fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle((title or "sop-grid").split(":")[0], fontsize=10)   # the heading's first part: grid and scale
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    return fig
