"""Pictures of training runs: ``curves.png`` in every run folder, the report of several runs side by
side, and the same scalars for TensorBoard.

The metrics drawn are columns of the per-epoch rows (``metrics.jsonl``,
:func:`sopdeep.runs.write_metrics`) against the epoch, declared once in :data:`PANELS`: test
accuracy, train accuracy on the given labels, on the clean labels and the detection AUROC of the
training monitor (both only when the noise is known: the rows then hold ``monitor_auroc``), and the
learning rate. :func:`write_curves` draws one run (:func:`plot_run`: its three accuracies in one
panel, :data:`RUN_PANELS`) into ``curves.png``, rewritten after every epoch;
:func:`write_report` (``sop-train report RUN [RUN ...] --out FILE.png``) puts several runs side by
side, as the paper's Figure 1 does, from their metrics files only (:func:`plot_runs`: one panel per
metric, one line per run).

matplotlib is imported inside the functions (``import sopdeep`` stays light) and used through its
object API on the Agg canvas with a local style (no ``pyplot``, no global backend or rcParams
change: a notebook that trains keeps its own). PNGs are written without the ``Software`` tag, so
the same rows give the same bytes.

TensorBoard (``TrainConfig(tensorboard=True)``, the ``tensorboard`` extra): :func:`log_scalars`
writes the panels' scalars of each epoch under ``<run>/tensorboard/`` with
``torch.utils.tensorboard.SummaryWriter``; :func:`check_tensorboard` refuses the setting at the
start of a run when the package is absent.

>>> rows = [{"epoch": 1, "lr": 0.1, "test_acc": 0.5, "train_acc_noisy": 0.4, "train_acc_clean": 0.45}]
>>> [ax.get_title() for ax in plot_runs({"run": rows}).axes]
['test accuracy', 'train accuracy, given labels', 'learning rate']
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from sopcommon import atomic_path
from sopcommon.files import read_json

__all__ = ["PANELS", "RUN_PANELS", "CURVES", "TENSORBOARD", "REDRAW_AFTER_S", "plot_runs", "plot_run", "update_run", "write_curves", "write_report", "run_label",
           "check_tensorboard", "log_scalars", "close_scalars"]

CURVES = "curves.png"
TENSORBOARD = "tensorboard"  # the event files' folder inside a run folder

#: (column of the metric rows, panel title, y-axis label, TensorBoard tag); a panel is drawn when
#: some run has the column (clean accuracy and AUROC: only with known noise, see :func:`_known`)
#: (training accuracy: the running one of the epoch's augmented batches, as the trainer records it)
PANELS = (
    ("test_acc", "test accuracy", "accuracy", "accuracy/test"),
    ("train_acc_noisy", "train accuracy, given labels", "accuracy", "accuracy/train_given_labels"),
    ("train_acc_clean", "train accuracy, clean labels", "accuracy", "accuracy/train_clean_labels"),
    ("monitor_auroc", "noise detection AUROC", "AUROC", "detection/auroc"),
    ("lr", "learning rate", "lr of θ", "learning_rate"),
)

# a local style (matplotlib.rc_context): sizes of the repository's figures, no global change
_STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
          "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False,
          "axes.titley": 1.02}  # a fixed title height: placing it automatically costs a third of a draw
# the layout in inches, fixed (matplotlib's constrained layout doubles the time of a draw, which
# runs after every epoch): one panel's width and height, the margins around it
_PANEL_INCHES = (2.3, 1.9)
_LEFT, _GAP, _RIGHT, _BOTTOM, _TOP = 0.6, 0.62, 0.15, 0.45, 0.55   # _TOP: panel titles and the figure's
_LEGEND = 0.3  # the line of the legend below the panels (several runs)
_FORMATS = (".png", ".pdf", ".svg")  # what --out may end in (matplotlib's Agg, PDF and SVG writers)


def _known(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    """Whether ``column`` is drawn for a run: present and finite somewhere; the clean-label accuracy
    only when the noise is known (the trainer writes ``monitor_auroc`` then; without noise the
    clean labels are the given ones and the column repeats them)."""
    if column == "train_acc_clean" and not _known(rows, "monitor_auroc"):
        return False
    return any(_finite(row.get(column)) for row in rows)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: ``curves.png`` of one run: its accuracies share a panel (the given-label accuracy rising above
#: the test accuracy is memorisation of the noise); the line labels of that panel
RUN_PANELS = (("accuracy", "accuracy", ("test_acc", "train_acc_noisy", "train_acc_clean")),
              ("noise detection AUROC", "AUROC", ("monitor_auroc",)),
              ("learning rate", "lr of θ", ("lr",)))
_RUN_LINES = {"test_acc": ("test", "-"), "train_acc_noisy": ("train, given labels", "--"),
              "train_acc_clean": ("train, clean labels", ":")}


def plot_runs(runs: Mapping[str, Sequence[Mapping[str, Any]]], *, title: str = "", epochs: int | None = None):
    """Draw the metric rows of several runs side by side: one panel per metric of :data:`PANELS`
    that some run has, one line per run, one legend below the panels.

    Parameters
    ----------
    runs : dict of str to list of dict
        Legend label -> the run's per-epoch rows (``metrics.jsonl``: ``epoch`` and the metrics;
        NaN or None where undefined).
    title : str, default ""
        The figure's title.
    epochs : int, optional
        The x axes run to this epoch at least.

    Returns
    -------
    matplotlib.figure.Figure
        Its ``axes`` are the panels, titled as in :data:`PANELS`; nothing is written.
    """
    if not runs:
        raise ValueError("runs must hold at least one run, got none")
    panels = []
    for column, panel_title, ylabel, _ in PANELS:
        lines = [(label, rows, column, i, "-") for i, (label, rows) in enumerate(runs.items()) if _known(rows, column)]
        if lines:
            panels.append((panel_title, ylabel, lines))
    return _draw(panels, title=title, epochs=epochs)


def plot_run(rows: Sequence[Mapping[str, Any]], *, title: str = "", epochs: int | None = None):
    """Draw one run's rows as ``curves.png`` shows them: the panels of :data:`RUN_PANELS` it has
    (test accuracy and train accuracy on the given and, with known noise, clean labels in one
    panel; the detection AUROC with known noise; the learning rate).

    Returns
    -------
    matplotlib.figure.Figure
        Its ``axes`` are the panels; nothing is written.
    """
    panels = []
    for panel_title, ylabel, columns in RUN_PANELS:
        lines = []
        for k, column in enumerate(columns):
            if _known(rows, column):
                # the accuracies' labels go into the legend; a label starting with "_" stays out of it
                label, style = _RUN_LINES.get(column, ("_" + column, "-"))
                lines.append((label, rows, column, k, style))
        if lines:
            panels.append((panel_title, ylabel, lines))
    return _draw(panels, title=title, epochs=epochs)


def _draw(panels, *, title: str, epochs: int | None):
    """The figure of ``panels``: (title, y label, lines), each line (label, rows, column, colour
    index, line style), in a row of panels of a fixed size; one legend below them of the labels
    that do not start with ``_``."""
    import matplotlib
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError(f"no metric to draw: the rows have none of {[p[0] for p in PANELS]} (with an epoch)")
    n = len(panels)
    legend = _LEGEND  # a legend inside a panel hides points of a short run, whose lines cross it all
    width = _LEFT + n * _PANEL_INCHES[0] + (n - 1) * _GAP + _RIGHT
    height = _BOTTOM + legend + _PANEL_INCHES[1] + _TOP
    every = [row["epoch"] for _, _, lines in panels for _, rows, *_ in lines for row in rows]
    last = max([epochs or 1, *every])
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(width, height))
        axes = fig.subplots(1, n, squeeze=False, gridspec_kw=dict(
            left=_LEFT / width, right=1 - _RIGHT / width, bottom=(_BOTTOM + legend) / height,
            top=1 - _TOP / height, wspace=_GAP / _PANEL_INCHES[0]))[0]
        colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        handles = {}
        for (panel_title, ylabel, lines), ax in zip(panels, axes):
            for label, rows, column, color, style in lines:
                # only the measured points, joined: a metric of every k-th epoch (eval_every) is a
                # line, not isolated dots between gaps
                points = [(row["epoch"], row[column]) for row in rows if _finite(row.get(column))]
                x, y = zip(*points)
                # markers while the points are few: a run of one or two epochs still shows its values
                handles[label] = ax.plot(x, y, style, color=colors[color % len(colors)], label=label,
                                         marker="o" if len(points) <= 20 else None, markersize=3)[0]
            ax.set_title(panel_title)
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.set_xlim(0.5 if last <= 20 else 0, last + (0.5 if last <= 20 else 0))
            ax.xaxis.get_major_locator().set_params(integer=True, nbins=5)  # epochs are whole numbers
            ax.yaxis.get_major_locator().set_params(nbins=5)
            if lines[0][2] != "lr":
                ax.set_ylim(-0.02, 1.02)  # accuracies and AUROC live in [0, 1]: runs compare at a glance
            else:  # from 0: a schedule's shape shows, and a constant lr is a flat line, not noise
                top = max([row["lr"] for _, rows, *_ in lines for row in rows if _finite(row.get("lr"))] or [1.0])
                ax.set_ylim(0, 1.05 * top if top > 0 else 1.0)
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        shown = {label: line for label, line in handles.items() if not label.startswith("_")}
        # one legend for all panels, below them: it never hides a curve
        fig.legend(list(shown.values()), list(shown), loc="lower center", bbox_to_anchor=(0.5, 0.0),
                   ncols=min(len(shown), 4), frameon=False)
        if title:
            fig.suptitle(title, y=1 - 0.08 / height, va="top")
    return fig


def _save(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically, its format from the suffix; no creation time or software
    tag, so the same rows give the same bytes."""
    meta = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None},
            "svg": {"Date": None}}[path.suffix[1:].lower()]
    with atomic_path(path) as tmp:  # format given below: the temporary's name may end in .tmp
        fig.savefig(tmp, format=path.suffix[1:].lower(), dpi=110, metadata=meta)
    return path


def _run_info(folder: Path) -> dict[str, Any]:
    """The run's ``config.json`` as a plain dict (no TrainConfig: only the title needs it); empty
    when the folder has none or it cannot be read (the metrics alone still draw)."""
    try:
        info = read_json(folder / "config.json")
    except Exception:  # noqa: BLE001  (absent, damaged: the picture loses only its title)
        return {}
    return info if isinstance(info, dict) else {}


def _describe(info: Mapping[str, Any]) -> str:
    """``sop on cifar10, sym noise 0.4`` from a run's config (empty when unknown)."""
    if not info.get("method"):
        return ""
    noise = info.get("noise", "")
    if noise == "auto":  # the kind it stands for on this dataset (sym on the benchmarks, none on user data)
        try:
            from sopdeep.config import TrainConfig

            noise = TrainConfig.from_dict(dict(info)).applied_noise
        except Exception:  # noqa: BLE001  (a config of another version: the title says "auto")
            pass
    rate = f" {info['noise_rate']:g}" if noise not in ("none", "cifar10n", "cifar100n", "") and \
        isinstance(info.get("noise_rate"), (int, float)) else ""
    return f"{info['method']} on {info.get('dataset', '?')}" + (f", {noise} noise{rate}" if noise else "")


#: ``curves.png`` is redrawn after an epoch when its drawing is at least this old, and always after
#: the first and the last epoch: a drawing costs about 0.3 s, nothing beside a CPU epoch of minutes
#: but a tenth of a short GPU epoch (and most of the time of a test's tiny runs).
REDRAW_AFTER_S = 30.0


def update_run(folder, history: Sequence[Mapping[str, Any]]) -> None:
    """What a run shows after each epoch: ``curves.png`` (redrawn when :data:`REDRAW_AFTER_S` have
    passed since its drawing, and after the run's first and last epoch), and the epoch's
    TensorBoard scalars when the run's ``config.json`` says ``tensorboard: true``; called by
    :func:`sopdeep.runs.write_metrics`.

    The picture is a by-product of the metrics files written just before: when it cannot be drawn
    (matplotlib missing or broken, any error while drawing or writing it) a ``RuntimeWarning``
    names the file and the cause and the run goes on; ``metrics.csv`` stays the record. TensorBoard
    was asked for and checked at the start of the run (:func:`check_tensorboard`): its errors stop
    the run as any other write error does.
    """
    import warnings

    folder = Path(folder)
    info = _run_info(folder)
    planned = info.get("epochs")
    last = bool(history) and isinstance(planned, int) and history[-1]["epoch"] >= planned
    try:
        if last or not _drawn_within(folder / CURVES, REDRAW_AFTER_S):
            write_curves(folder, history, info=info)
    except Exception as exc:  # noqa: BLE001  (never stop a training run for its picture)
        from sopcommon.cli import one_line

        warnings.warn(f"{folder / CURVES} not drawn ({type(exc).__name__}: {one_line(exc, limit=200)}); "
                      "the metrics are in metrics.csv", RuntimeWarning, stacklevel=3)
    if info.get("tensorboard") and history:
        log_scalars(folder, history[-1], last=last)


def _drawn_within(path: Path, seconds: float) -> bool:
    """Whether the picture ``path`` exists and was written less than ``seconds`` ago."""
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


def write_curves(folder, history: Sequence[Mapping[str, Any]], *, info: Mapping[str, Any] | None = None) -> Path:
    """Draw ``folder/curves.png`` from the run's rows so far (one line per panel).

    The title names the folder and, from ``info`` (default: the folder's ``config.json``), the
    method, data, noise and the epochs done of those planned.
    """
    folder = Path(folder)
    info = _run_info(folder) if info is None else info
    planned = info.get("epochs") if isinstance(info.get("epochs"), int) else None
    done = history[-1].get("epoch", len(history)) if history else 0
    what = _describe(info)
    title = f"{folder.name}: " + (f"{what}, " if what else "") + \
        f"epoch {done}" + (f" of {planned}" if planned else "")
    return _save(plot_run(list(history), title=title, epochs=planned), folder / CURVES)


def run_label(folder, info: Mapping[str, Any] | None = None) -> str:
    """The legend label of a run: ``<method>: <folder name>`` (the folder name alone when its
    config is unknown)."""
    folder = Path(folder)
    info = _run_info(folder) if info is None else info
    return f"{info['method']}: {folder.name}" if info.get("method") else folder.name


def write_report(folders: Sequence, out, *, title: str = ""):
    """Draw several runs side by side into ``out`` (``.png``, ``.pdf`` or ``.svg``) from their
    metrics files only: one panel per metric, one line per run, legend by method and folder name.

    Parameters
    ----------
    folders : sequence of path
        Run folders (finished or still training: each needs its ``metrics.jsonl``).
    out : path
        The picture written (atomically); its folder is created.
    title : str, default ""

    Returns
    -------
    matplotlib.figure.Figure
        The figure written (its ``axes`` are the panels).

    Raises
    ------
    ValueError
        No folder given, a folder that is not a run, or an ``out`` of another kind.
    sopdeep.runs.RunFileError
        A damaged ``metrics.jsonl``.
    OSError
        ``out`` cannot be written.
    """
    from sopdeep.runs import METRICS_JSONL, read_history

    out = Path(out)
    if out.suffix.lower() not in _FORMATS:
        raise ValueError(f"out must end in {', '.join(_FORMATS)}, got {str(out)!r}")
    if not folders:
        raise ValueError("give at least one run folder (a folder of sop-train --out)")
    runs: dict[str, list[dict[str, Any]]] = {}
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a run folder: no such folder")
        if not (folder / METRICS_JSONL).is_file():
            raise ValueError(f"{folder} is not a run folder: it has no {METRICS_JSONL} "
                             "(a run writes it at the end of its first epoch)")
        rows = read_history(folder)
        if not rows:
            raise ValueError(f"{folder} is a run folder with no finished epoch yet ({METRICS_JSONL} is empty)")
        label = run_label(folder)
        # two folders of the same name (runs/a/x, runs/b/x): the path given tells them apart
        runs[label if label not in runs else f"{label} ({folder})"] = rows
    fig = plot_runs(runs, title=title)
    if not out.parent.is_dir():
        out.parent.mkdir(parents=True)
    _save(fig, out)
    return fig


# ------------------------------------------------------------------------------------------------
# TensorBoard

_WRITERS: dict[Path, Any] = {}  # run folder -> its open SummaryWriter (one event file per session)


def check_tensorboard() -> None:
    """ValueError, one line, when TensorBoard logging cannot work here (``tensorboard`` absent or
    broken); called at the start of a run with ``tensorboard=True``."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as exc:  # torch raises ImportError when the tensorboard package is missing
        raise ValueError(f"tensorboard=True needs the tensorboard package ({exc}); install it with "
                         "pip install 'sop[tensorboard]' (or pip install tensorboard), or set "
                         "tensorboard=false") from None


def log_scalars(folder, row: Mapping[str, Any], *, last: bool = False) -> None:
    """Add the scalars of :data:`PANELS` of one epoch's ``row`` to ``folder/tensorboard/`` (step:
    the epoch), flushed at once; ``last`` closes the writer (the run's final epoch).

    One ``SummaryWriter`` per run folder and process: a resumed run adds a new event file, as
    TensorBoard expects, and writes only the epochs it trains.
    """
    from torch.utils.tensorboard import SummaryWriter

    key = Path(folder).resolve()
    writer = _WRITERS.get(key)
    if writer is None:
        writer = _WRITERS[key] = SummaryWriter(log_dir=str(key / TENSORBOARD))
    step = int(row["epoch"])
    for column, _, _, tag in PANELS:
        if column == "train_acc_clean" and not _finite(row.get("monitor_auroc")):
            continue  # noise unknown: the clean labels are the given ones (see _known)
        if _finite(row.get(column)):
            writer.add_scalar(tag, float(row[column]), step)
    writer.flush()  # TensorBoard sees each epoch as it ends, and a killed run keeps them
    if last:
        close_scalars(folder)


def close_scalars(folder) -> None:
    """Close the TensorBoard writer of ``folder`` if one is open."""
    writer = _WRITERS.pop(Path(folder).resolve(), None)
    if writer is not None:
        writer.close()
