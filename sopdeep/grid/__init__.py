"""The paper's tables as one resumable grid of ordinary run folders (``sop-grid``).

A grid is datasets × noise settings × methods × seeds at one scale (recipe): :func:`grid_cells`
builds its cells from a preset of :data:`GRID_PRESETS` (``table1``, ``table2-sop+``, ``table4``,
``cifar10-full-scale``, ``smoke``). Every cell is one :func:`sopdeep.training.train` run in its own
folder ``OUT/<dataset>/<setting>/<method>/seed<k>-<key>``, ``key`` the first 8 hex digits of the
SHA-256 of its resolved configuration without paths, device and progress (:func:`config_key`).
:func:`cell_status` says what a folder holds: ``done`` (its summary is there: reused),
``partial`` (a checkpoint: resumed), ``new``; a folder whose saved configuration differs from
the cell's is refused, never overwritten. :func:`run_grid` trains what is missing in this process,
in ``jobs`` local processes or on a Dask scheduler (one task per cell, ``resources={"GPU": 1}``
per task when asked) and rewrites the table after every finished cell (:func:`~sopdeep.grid.table.write_table`:
``table.csv``, ``table.md`` with the paper's number beside each cell, ``table.png``), atomically.

Recipes. ``scale="paper"``: Table A.1's settings, the presets ``table1-*``, ``table2-*``,
``table4-*`` of :mod:`sopdeep.presets` (the SOP or SOP+ column of each cell; another method keeps
the column's network, optimiser and data and drops the options that are not its own), on the
original CIFAR files (``--images export``: on the shared exports). ``scale="fast"``: the CPU fast
recipe of the ``fast-*`` presets on the exports ``cifar10-jpeg`` / ``cifar100-png``, for
:data:`FAST_EPOCHS` epochs unless told otherwise; SOP's α by the effective-α rule
(:func:`effective_alpha`).

>>> cells = grid_cells("table1", scale="fast", data_dir="data", cache_dir="cache")
>>> len(cells), cells[0].dataset, cells[0].setting, cells[0].method
(48, 'cifar10', 'sym20', 'ce')
>>> cells[0].paper.mean, cells[0].overrides["dataset"], cells[0].overrides["epochs"]
(86.32, 'cifar10-jpeg', 25)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sopcommon import atomic_write_bytes
from sopcommon.cli import one_line
from sopdeep.grid.table import TABLE_CSV, TABLE_MD, TABLE_PNG, import_full_scale_rows, table_row, write_table
from sopdeep.paper_numbers import PaperNumber, paper_number
from sopdeep.presets import PRESETS, effective_alpha

__all__ = ["GRID_PRESETS", "FAST_EPOCHS", "FAST_SOP_PLUS", "IGNORED_KEYS", "Cell", "GridError", "grid_cells",
           "effective_alpha", "cell_config", "config_key", "same_config", "cell_folder", "cell_status",
           "run_cell", "run_grid", "find_runs", "table_row", "write_table", "import_full_scale_rows",
           "GRID_FILE", "TABLE_CSV", "TABLE_MD", "TABLE_PNG"]

#: what the grid adds to a run folder it trained: host, times (the run's own files are untouched)
GRID_FILE = "grid.json"

#: Settings that do not change what a run computes (where it reads and writes, which device, its
#: progress display, CPU threads, whether it checkpoints): left out of a cell's key and comparison.
IGNORED_KEYS = ("out", "data_root", "cache_path", "cifar_n_path", "device", "progress", "threads", "checkpoint")

#: Epochs of the fast scale: those of the committed full-CIFAR-10 table
#: (``experiments/results/cifar10_full_scale``), where the fast recipe's CE has not started to memorise.
FAST_EPOCHS = 25

#: What SOP+ adds to SOP's settings at the fast scale: appendix A.3's weights, the strong view per
#: sample on the CPU (the committed full-scale table's SOP+ row).
FAST_SOP_PLUS = dict(lambda_c=0.9, lambda_b=0.1, strong_backend="torchvision")

#: A tiny grid on the synthetic set (seconds on a CPU): to try the runner or a cluster.
SMOKE_RECIPE = dict(dataset="synthetic", arch="cnn", width=8, epochs=2, batch_size=64, lr=0.05, schedule="constant",
                    amp="off", alpha_u=1.0, alpha_v=1.0)

#: Issue 34's memorising regime at the fast scale: CE on the full set at 25-40 fast-recipe epochs does
#: not fit its wrong labels (train accuracy on the given labels stays at the clean fraction), so it
#: cannot show what the paper's 120-300 epochs do. On 3,000 images (300 per class) each image is
#: seen 40 times in about 470 steps (batch 256; lr, lr_start, lr_min scaled with the batch from the
#: fast recipe's 1024), and a width-32 fast net (0.5 M parameters, ~170 per image) can interpolate
#: them, as ResNet34 does CIFAR-10 in the paper. The test set is read every 5th epoch (eval_every),
#: without TTA: on so few images it would otherwise cost more than the training.
MEMORISATION_RECIPE = dict(train_subset=3000, subset_split="per_class", width=32, batch_size=256, lr=1.5 / 4,
                           lr_start=0.3 / 4, lr_min=0.105 / 4, epochs=40, eval_every=5, tta="none")

_SYM_T1 = ("sym20", "sym40", "sym60", "sym80")
_T2 = ("sym20", "sym50", "sym80", "asym40")
_CIFAR10N = ("clean", "random1", "random2", "random3", "aggregate", "worst")

#: The grids: ``blocks`` (table dataset -> its noise settings), default ``methods``, the paper
#: ``tables`` whose numbers go beside the cells (first match wins), the ``scales`` it runs at.
GRID_PRESETS: dict[str, dict[str, Any]] = {
    "table1": dict(blocks={"cifar10": _SYM_T1, "cifar100": _SYM_T1},
                   methods=("ce", "forward", "gce", "sl", "elr", "sop"), tables=("table1",), scales=("fast", "paper"),
                   about="Table 1: CIFAR-10/100, symmetric 20-80 %, ResNet34 at paper scale"),
    "table2-sop+": dict(blocks={"cifar10": _T2, "cifar100": _T2}, methods=("sop+",), tables=("table2",),
                        scales=("fast", "paper"), about="Table 2's SOP+ cells: symmetric 20/50/80 %, asymmetric 40 %"),
    "table4": dict(blocks={"cifar10n": _CIFAR10N, "cifar100n": ("clean", "noisy")}, methods=("ce", "forward", "sop+"),
                   tables=("table4",), scales=("fast", "paper"),
                   about="Table 4: CIFAR-10N and CIFAR-100N human labels (its rows the package has: CE, Forward, SOP+)"),
    "cifar10-full-scale": dict(blocks={"cifar10": _SYM_T1, "cifar10n": ("worst", "aggregate")},
                               methods=("ce", "sop", "sop+"), tables=("table1", "table2", "table4"), scales=("fast",),
                               about="full CIFAR-10 on the fast recipe (was experiments/cifar10_full_scale.py)"),
    "memorisation": dict(blocks={"cifar10": ("sym40", "sym80")}, methods=("ce", "sop", "sop+"), tables=(),
                         scales=("fast",), fast=MEMORISATION_RECIPE,
                         about="CIFAR-10 where CE memorises: 3,000 images, 40 epochs, width 32 (issue 34's "
                               "negative results; experiments/memorisation_regime.py)"),
    "smoke": dict(blocks={"synthetic": ("sym20", "sym40")}, methods=("ce", "sop"), tables=(), scales=("fast",),
                  recipe=SMOKE_RECIPE, about="a tiny synthetic grid (seconds): to try the runner or a cluster"),
}

#: Table dataset -> (registered dataset at fast scale, at paper scale, Table A.1 family, CIFAR-N file).
_DATASETS = {
    "cifar10": ("cifar10-jpeg", "cifar10", "cifar10", "CIFAR-10_human.pt"),
    "cifar10n": ("cifar10-jpeg", "cifar10", "cifar10", "CIFAR-10_human.pt"),
    "cifar100": ("cifar100-png", "cifar100", "cifar100", "CIFAR-100_human.pt"),
    "cifar100n": ("cifar100-png", "cifar100", "cifar100", "CIFAR-100_human.pt"),
    "synthetic": ("synthetic", "synthetic", None, None),
}
_NOISE_KEYS = ("noise", "noise_rate", "cifar_n_label", "cifar_n_path", "noise_seed")

#: Options a method's authors published per dataset (ELR: Liu et al. 2020, CIFAR-100 beta 0.9, lambda 7;
#: the defaults are their CIFAR-10 values).
_PUBLISHED_OPTIONS = {("elr", "cifar100"): dict(elr_beta=0.9, elr_lambda=7.0)}


class GridError(ValueError):
    """A grid cannot be built or run as asked; the message is one line saying what to do."""


@dataclass(frozen=True)
class Cell:
    """One cell of a grid: a table's ``dataset`` and noise ``setting``, a ``method`` and a ``seed``;
    ``overrides`` are its :class:`~sopdeep.config.TrainConfig` settings (no ``out``), ``paper`` the
    published number beside it (or None), ``missing`` why it cannot run here (a method or dataset
    not registered in this version), else ""."""

    dataset: str
    setting: str
    method: str
    seed: int
    overrides: dict = field(compare=False)
    paper: PaperNumber | None = field(default=None, compare=False)
    missing: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        return f"{self.dataset} {self.setting} {self.method} seed {self.seed}"


# ------------------------------------------------------------------------------------------------
# cells and their configurations


def _choose(name: str, given, allowed) -> tuple:
    """``given`` (a comma-separated string or a sequence) checked against ``allowed``; all when None."""
    if given is None:
        return tuple(allowed)
    items = tuple(s.strip() for s in given.split(",")) if isinstance(given, str) else tuple(given)
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise GridError(f"{name} must be a comma-separated subset of {','.join(allowed)}, got {given!r}")
    return items


def _setting_noise(setting: str, dataset: str, cifar_n_file: str | None, data_dir: str) -> dict[str, Any]:
    """The noise overrides of a setting name: symNN, asymNN, clean, a CIFAR-10N label set, noisy."""
    match = re.fullmatch(r"(a?sym)(\d+)", setting)
    if match:
        return dict(noise=match.group(1), noise_rate=int(match.group(2)) / 100)
    if setting == "clean":
        return dict(noise="none")
    path = str(Path(data_dir) / "cifar-n" / cifar_n_file) if cifar_n_file else ""
    if setting in _CIFAR10N and dataset == "cifar10n":
        return dict(noise="cifar10n", cifar_n_label=setting, cifar_n_path=path)
    if setting == "noisy" and dataset == "cifar100n":
        return dict(noise="cifar100n", cifar_n_path=path)
    raise GridError(f"setting {setting!r} is not a noise setting of dataset {dataset!r} (symNN, asymNN, clean; "
                    f"cifar10n: {', '.join(_CIFAR10N[1:])}; cifar100n: noisy)")


def _first_preset(prefix: str) -> dict[str, Any] | None:
    """The first preset (by name) whose name starts with ``prefix``, or None."""
    name = next((n for n in sorted(PRESETS) if n.startswith(prefix)), None)
    return None if name is None else dict(PRESETS[name])


def _method_options(method: str, source_method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Of a preset's ``options`` (made for ``source_method``), those ``method`` keeps: all of them for
    the same method, else only the common settings and the options the two methods share."""
    from sopdeep.config import common_fields
    from sopdeep.methods import METHODS, option_fields

    if method == source_method:
        return dict(options)
    common = {f.name for f in common_fields()}
    own = {f.name for f in option_fields(method)} if method in METHODS else set()
    return {k: v for k, v in options.items() if k in common or k in own}


def _fast_overrides(dataset: str, setting: str, method: str, changes: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """A fast-scale cell's settings, before data paths: the ``fast-<family>-ce-*`` preset's recipe
    (CIFAR-10's when the family has none) with a grid's ``changes`` to it, the method, its options."""
    family = _DATASETS[dataset][2]
    recipe = _first_preset(f"fast-{family}-ce-") or _first_preset("fast-cifar10-ce-")
    recipe = {k: v for k, v in recipe.items() if k not in (*_NOISE_KEYS, "method", "dataset")}
    recipe["epochs"] = FAST_EPOCHS
    recipe.update(changes or {})
    if method in ("sop", "sop+"):
        kind = "asym" if setting.startswith("asym") else "sym"
        own = _first_preset(f"fast-{family}-sop-") if kind == "sym" else None
        if own is not None and any(own[k] != recipe[k] for k in ("batch_size", "momentum")):
            own = None        # the preset's u, v rates were set for another batch size or momentum
        if own is not None:   # the family's own fast SOP preset decides u, v
            recipe.update({k: own[k] for k in ("alpha_u", "alpha_v", "init_std", "recipe") if k in own})
        else:                 # Table A.1's rates of the family and noise kind, by the effective-alpha rule
            a1 = PRESETS[f"a1-{family}-sop-{kind}"]
            recipe.update(alpha_u=effective_alpha(a1["alpha_u"], recipe["batch_size"], recipe["momentum"]),
                          alpha_v=effective_alpha(a1["alpha_v"], recipe["batch_size"], recipe["momentum"]),
                          init_std=1e-8, recipe="paper")
        if method == "sop+":
            recipe.update(FAST_SOP_PLUS)
    return recipe


def _paper_overrides(table: str, dataset: str, setting: str, method: str) -> dict[str, Any]:
    """A paper-scale cell's settings: the ``<table>-<dataset>-<setting>`` preset (Table A.1's column
    of that cell) with ``method``'s options only."""
    name = f"{table}-{dataset}-{setting}"
    if name not in PRESETS:
        raise GridError(f"no paper-scale preset {name!r} for cell {dataset} {setting}: use --scale fast")
    preset = dict(PRESETS[name])
    base = _method_options(method, preset.pop("method"), {k: v for k, v in preset.items() if k not in _NOISE_KEYS})
    base.pop("cifar_n_label", None)
    return base


def grid_cells(preset, *, scale: str = "fast", data_dir: str = "", cache_dir: str = "", datasets=None,
               settings=None, methods=None, seeds: int = 1, epochs: int | None = None, images: str | None = None,
               overrides: dict[str, Any] | None = None) -> list[Cell]:
    """The cells of a grid, in table order (dataset, setting, method, seed).

    Parameters
    ----------
    preset : str or dict
        A name of :data:`GRID_PRESETS` or a dict of the same form (``blocks``, ``methods``,
        ``tables``, ``scales``, optional ``recipe`` (settings of every cell, e.g. a synthetic set)
        or ``fast`` (changes to the fast recipe; SOP's u, v rates follow its batch size and momentum).
    scale : {"fast", "paper"}
    data_dir : str
        Folder holding ``cifar10-jpeg/``, ``cifar100-png/`` and ``cifar-n/`` (paper scale with the
        original images: the torchvision root holding ``cifar-10-batches-py/`` etc., and ``cifar-n/``).
    cache_dir : str
        Where the exports' decoded npz files are kept.
    datasets, settings, methods : str or sequence, optional
        Restrict the preset (comma-separated); ``methods`` may also name any registered method.
    seeds : int
        Seeds 0 .. seeds-1 (each also the seed of the label noise).
    epochs : int, optional
        Override every cell's epochs (recorded in its configuration).
    images : {"export", "original"}, optional
        The images: the shared exports (default at fast scale) or the original CIFAR pickles
        (default at paper scale).
    overrides : dict, optional
        Settings applied to every cell last (e.g. ``amp``, ``threads``).

    Returns
    -------
    list of Cell
    """
    from sopdeep.datasets import DATASETS
    from sopdeep.methods import METHODS

    if isinstance(preset, str):
        if preset not in GRID_PRESETS:
            raise GridError(f"unknown grid preset {preset!r}; one of {', '.join(GRID_PRESETS)}")
        spec = GRID_PRESETS[preset]
    else:
        spec = preset
    if scale not in spec["scales"]:
        raise GridError(f"scale must be one of {', '.join(spec['scales'])} for this grid, got {scale!r}")
    images = images or ("export" if scale == "fast" else "original")
    if images not in ("export", "original"):
        raise GridError(f"images must be export or original, got {images!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise GridError(f"seeds must be an integer >= 1, got {seeds!r}")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise GridError(f"epochs must be an integer >= 1, got {epochs!r}")
    chosen_datasets = _choose("datasets", datasets, tuple(spec["blocks"]))
    all_settings = tuple(dict.fromkeys(s for ds in chosen_datasets for s in spec["blocks"][ds]))
    chosen_settings = _choose("settings", settings, all_settings)
    # a preset's methods, and any registered one (a new method on the paper's table)
    chosen_methods = _choose("methods", methods, tuple(dict.fromkeys((*spec["methods"], *METHODS)))
                             if methods is not None else spec["methods"])
    cells = []
    for ds in chosen_datasets:
        fast_name, paper_name, _, cifar_n_file = _DATASETS[ds]
        name = fast_name if images == "export" else paper_name
        for setting in (s for s in spec["blocks"][ds] if s in chosen_settings):
            noise = _setting_noise(setting, ds, cifar_n_file, data_dir)
            for method in chosen_methods:
                missing = "" if method in METHODS else f"method {method!r} is not registered"
                if not missing and name not in DATASETS:
                    missing = f"dataset {name!r} is not registered"
                if "recipe" in spec:
                    base = dict(spec["recipe"])
                elif scale == "fast":
                    base = _fast_overrides(ds, setting, method, spec.get("fast"))
                else:
                    base = _paper_overrides(spec["tables"][0], ds, setting, method)
                base = _method_options(method, "sop", base) if not missing else base
                family = _DATASETS[ds][2]
                base.update(_PUBLISHED_OPTIONS.get((method, family), {}))
                base.update(dataset=name, method=method, **noise)
                if name.endswith(("-jpeg", "-png")):   # the shared exports: their folder and decoded cache
                    base.update(data_root=str(Path(data_dir) / name),
                                cache_path=str(Path(cache_dir) / f"{name.replace('-', '_')}.npz"))
                elif name != "synthetic":
                    base.update(data_root=str(data_dir))
                if epochs is not None:
                    base["epochs"] = epochs
                base.update(overrides or {})
                paper = paper_number(ds, setting, method, tables=spec["tables"])
                for seed in range(seeds):
                    cells.append(Cell(ds, setting, method, seed, {**base, "seed": seed, "noise_seed": seed},
                                      paper=paper, missing=missing))
    return cells


def cell_config(cell: Cell, out):
    """The cell's :class:`~sopdeep.config.TrainConfig`, its run folder under ``out`` as ``out``;
    :class:`GridError` when the cell cannot run here (``cell.missing``)."""
    from sopdeep.config import TrainConfig

    if cell.missing:
        raise GridError(f"cell {cell.name}: {cell.missing} in this version of sopdeep")
    config = TrainConfig(**{**cell.overrides, "progress": False, "checkpoint": True, "out": "."})
    folder = cell_folder(out, cell, config)
    if not folder.exists():
        # a run of this cell made by an older sopdeep (whose config lacked a setting added since, so
        # its key differs): a sibling folder whose saved config reads back equal to the cell's
        folder = next((f for f in sorted(folder.parent.glob(f"seed{cell.seed}-*")) if _saved_equal(f, config)),
                      folder)
    return config.replace(out=str(folder))


def _saved_equal(folder: Path, config) -> bool:
    from sopdeep.runs import RunError, saved_config

    try:
        return not same_config(saved_config(folder), config)
    except (RunError, ValueError, OSError):
        return False


def _identity(config) -> dict[str, Any]:
    """The settings that decide what a run computes: the config read back as a saved one would be
    (``TrainConfig.from_dict``: unset and resolved options alike), less :data:`IGNORED_KEYS`."""
    from sopdeep.config import TrainConfig

    d = TrainConfig.from_dict(config.to_dict() if not isinstance(config, dict) else config).to_dict()
    return {k: v for k, v in d.items() if k not in IGNORED_KEYS}


def config_key(config) -> str:
    """First 8 hex digits of the SHA-256 of :func:`_identity` as sorted JSON: the cell's folder key."""
    text = json.dumps(_identity(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def same_config(a, b) -> dict[str, tuple]:
    """The settings in which two configs (TrainConfig or dict) differ, ``{key: (a, b)}``; empty when
    they compute the same run."""
    da, db = _identity(a), _identity(b)
    return {k: (da.get(k), db.get(k)) for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)}


def cell_folder(out, cell: Cell, config) -> Path:
    """``out/<dataset>/<setting>/<method>/seed<k>-<key>``."""
    return Path(out) / cell.dataset / cell.setting / cell.method / f"seed{cell.seed}-{config_key(config)}"


def cell_status(config) -> str:
    """What the cell's folder ``config.out`` holds: ``"done"``, ``"partial"`` (a checkpoint) or
    ``"new"``. :class:`GridError` when it holds a run of another configuration (never overwritten)."""
    from sopdeep.runs import CHECKPOINT, CONFIG, SUMMARY, RunError, saved_config

    folder = Path(config.out)
    if not ((folder / CONFIG).is_file() or (folder / CHECKPOINT).is_file()):
        return "new"
    try:
        diff = same_config(saved_config(folder), config)
    except (RunError, ValueError) as exc:
        raise GridError(f"{folder} holds an unreadable run ({one_line(exc, limit=200)}); nothing was "
                        "overwritten: move it away and rerun") from None
    if diff:
        raise GridError(f"{folder} holds a run of another configuration (differs in {diff}); nothing was "
                        "overwritten: move it away or choose another --out")
    if (folder / SUMMARY).is_file():
        return "done"
    return "partial" if (folder / CHECKPOINT).is_file() else "new"


def find_runs(folders) -> dict[str, Path]:
    """Finished run folders under ``folders`` (searched recursively), config key -> folder: runs
    started elsewhere that a grid adopts. Folders whose config cannot be read are skipped."""
    from sopdeep.runs import CONFIG, SUMMARY, RunError, saved_config

    found: dict[str, Path] = {}
    for root in folders:
        for path in sorted(Path(root).rglob(CONFIG)):
            folder = path.parent
            if not (folder / SUMMARY).is_file():
                continue
            try:
                found.setdefault(config_key(saved_config(folder)), folder)
            except (RunError, ValueError, OSError):
                continue   # not a run of this version: nothing to adopt
    return found


def _adopt(source: Path, folder: Path) -> None:
    """Copy the finished run ``source`` to the cell's ``folder`` (copied beside it, then renamed:
    a kill leaves no half-copied cell)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.adopting"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns(".lock", ".*.tmp"))
    if folder.exists():   # an empty or config-only folder of a cell that never started an epoch
        shutil.rmtree(folder)
    os.replace(staging, folder)


# ------------------------------------------------------------------------------------------------
# running


def run_cell(config: dict[str, Any]) -> dict[str, Any]:
    """Train one cell (in this process, a worker process or a Dask worker) unless it is done.

    Parameters
    ----------
    config : dict
        ``TrainConfig.to_dict()`` of the cell (its folder as ``out``).

    Returns
    -------
    dict
        ``summary`` (the run's ``summary.json``), ``host``, ``status`` the folder had before
        (``done`` / ``partial`` / ``new``), ``elapsed_s`` of this call.
    """
    from sopdeep.config import TrainConfig
    from sopdeep.runs import CHECKPOINT, SUMMARY
    from sopcommon.files import read_json

    t0 = time.perf_counter()
    cfg = TrainConfig.from_dict(config)
    folder = Path(cfg.out)
    status = cell_status(cfg)
    if status != "done":
        from sopdeep.training import train

        started = time.time()
        train(cfg, resume=(folder / CHECKPOINT).is_file())  # a killed cell resumes from its last epoch
        info = dict(host=socket.gethostname(), started=started, finished=time.time(), resumed=status == "partial",
                    elapsed_s=time.perf_counter() - t0)
        atomic_write_bytes(folder / GRID_FILE, json.dumps(info, indent=2, sort_keys=True).encode())
    return dict(summary=read_json(folder / SUMMARY, what="run summary"), host=_host_of(folder), status=status,
                elapsed_s=time.perf_counter() - t0)


def _host_of(folder: Path) -> str:
    try:
        return str(json.loads((folder / GRID_FILE).read_text())["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _row_from_folder(cell, config, *, source):
    from sopcommon.files import read_json
    from sopdeep.runs import SUMMARY

    folder = Path(config.out)
    return table_row(cell, config, read_json(folder / SUMMARY, what="run summary"), host=_host_of(folder),
                     source=source)


def _say(message: str) -> None:
    print(f"sop-grid: {message}", file=sys.stderr, flush=True)


def run_grid(cells: list[Cell], out, *, jobs: int = 1, dask: str | None = None, gpus_per_cell: int = 0,
             runs=(), imported=(), title: str = "", command: str = "", log: Callable[[str], None] = _say,
             train: bool = True) -> dict[Cell, dict[str, Any]]:
    """Train every cell of ``cells`` not done in ``out``; write the table after each one.

    Parameters
    ----------
    cells : list of Cell
    out : str or Path
        The grid's folder: run folders below it, ``table.csv``, ``table.md``, ``table.png`` in it.
    jobs : int, default 1
        1: in this process, one cell after the other; more: that many local processes (spawned).
    dask : str, optional
        Address of a Dask scheduler (``tcp://host:8786``): one task per cell (the run folders must
        be on a file system the workers share with this process).
    gpus_per_cell : int, default 0
        With ``dask``: the ``GPU`` resource each task takes (start workers with ``--resources GPU=1``).
    runs : sequence of path
        Folders of runs started elsewhere: a finished run whose config equals a cell's is copied
        into the grid instead of trained.
    imported : sequence of dict
        Rows of earlier tables (:func:`import_full_scale_rows`): shown for the cells not done yet.
    title, command : str
        The table's heading and the command that reproduces it.
    log : callable
        Receives one line per event (cell started, finished, adopted).
    train : bool, default True
        False: adopt what ``runs`` holds, write the table of the cells done and train nothing (a
        table of a grid still running elsewhere, or of a subset of its cells).

    Returns
    -------
    dict
        Cell -> its table row (:func:`table_row`), for the cells done.
    """
    if jobs < 1:
        raise GridError(f"jobs must be >= 1, got {jobs}")
    if dask and jobs > 1:
        raise GridError("give either --jobs or --dask, not both")
    missing = sorted({c.missing for c in cells if c.missing})
    if missing:
        raise GridError(f"{'; '.join(missing)} in this version of sopdeep: leave those cells out (--methods, "
                        "--datasets)")
    out = Path(out)
    configs = {cell: cell_config(cell, out) for cell in cells}
    status = {cell: cell_status(config) for cell, config in configs.items()}  # refuses a foreign folder first
    adoptable = find_runs(runs) if runs else {}
    rows: dict[Cell, dict[str, Any]] = {}
    for cell, config in configs.items():
        if status[cell] == "new" and config_key(config) in adoptable:
            _adopt(adoptable[config_key(config)], Path(config.out))
            log(f"{cell.name}: adopted {adoptable[config_key(config)]}")
            status[cell] = "adopted"
        if status[cell] in ("done", "adopted"):
            rows[cell] = _row_from_folder(cell, config, source="reused" if status[cell] == "done" else "adopted")
    todo = [cell for cell in cells if cell not in rows]
    log(f"{len(cells)} cells: {len(rows)} done, {sum(status[c] == 'partial' for c in todo)} to resume, "
        f"{sum(status[c] == 'new' for c in todo)} to train -> {out}")

    def table():
        write_table(out, cells, rows, imported=imported, title=title, command=command)

    if rows or imported or not train:
        table()
    if not train:
        log(f"table only: {len(todo)} cells not done were left out of training")
        return rows
    t_grid = time.perf_counter()
    number = {cell: i + 1 for i, cell in enumerate(todo)}

    def started(cell, queued=False):
        verb = "resume" if status[cell] == "partial" else "start"
        log(f"[{number[cell]}/{len(todo)}] {cell.name}: {f'queued ({verb})' if queued else verb} -> {configs[cell].out}")

    def finished(cell, result):
        rows[cell] = table_row(cell, configs[cell], result["summary"], host=result["host"],
                               source="resumed" if result["status"] == "partial" else "trained")
        acc = result["summary"].get("final_test_acc")
        log(f"[{number[cell]}/{len(todo)}] {cell.name}: done in {result['elapsed_s']:.1f} s on {result['host']} "
            f"(grid {time.perf_counter() - t_grid:.0f} s), final test acc {'n/a' if acc is None else f'{acc:.4f}'}")
        table()

    failures = []
    if not todo:
        return rows
    if dask:
        _run_dask(todo, configs, dask, gpus_per_cell, started, finished, failures, log)
    elif jobs > 1:
        _run_processes(todo, configs, jobs, started, finished, failures, log)
    else:
        for cell in todo:
            started(cell)
            try:
                result = run_cell(configs[cell].to_dict())
            except Exception as exc:  # noqa: BLE001  (a failed cell is reported; the others still run)
                failures.append((cell, exc))
                log(f"[{number[cell]}/{len(todo)}] {cell.name}: failed: {one_line(exc, limit=300)}")
                continue
            finished(cell, result)
    if failures:
        cell, exc = failures[0]
        raise GridError(f"{len(failures)} of {len(todo)} cells failed (first: {cell.name}: "
                        f"{one_line(exc, limit=300)}); the others are in {out}, rerun to retry")
    return rows


def _run_processes(todo, configs, jobs, started, finished, failures, log):
    """Each cell in a spawned process (a fresh interpreter: no forked torch threads), ``jobs`` at a time."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {}
        for cell in todo:
            started(cell, queued=True)
            futures[pool.submit(run_cell, configs[cell].to_dict())] = cell
        _collect(as_completed(futures), futures, finished, failures, log)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)   # the running cells keep their last checkpoint
        raise
    pool.shutdown()


def _collect(done, cells, finished, failures, log) -> None:
    """Record each future of ``done`` (in completion order) for its cell: ``finished(cell, result)``,
    or its failure, logged in one line (the other cells go on)."""
    for future in done:
        cell = cells[future]
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001
            failures.append((cell, exc))
            log(f"{cell.name}: failed: {one_line(exc, limit=300)}")
            continue
        finished(cell, result)


def _run_dask(todo, configs, address, gpus_per_cell, started, finished, failures, log=_say):
    """One Dask task per cell on the scheduler at ``address``; results as they complete."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise GridError("--dask needs the package 'distributed': python -m pip install 'sop[dask]'") from None
    resources = {"GPU": gpus_per_cell} if gpus_per_cell else None
    with Client(address) as client:
        futures = {}
        for cell in todo:
            started(cell, queued=True)
            # one key per cell and configuration: a resubmitted grid never reuses another cell's result
            key = f"sop-grid-{cell.dataset}-{cell.setting}-{cell.method}-{cell.seed}-{config_key(configs[cell])}"
            futures[client.submit(run_cell, configs[cell].to_dict(), key=key, pure=False, resources=resources)] = cell
        try:
            _collect(as_completed(list(futures)), futures, finished, failures, log)
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise
