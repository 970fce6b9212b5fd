"""The paper's published test accuracies (ICML 2022 version, Tables 1, 2 and 4), the one copy.

Each table is transcribed as its rows appear in the paper's text: a row is the method's label in the
paper and its numbers left to right, ``mean std`` pairs where the table reports a standard
deviation (Tables 1 and 4: mean and standard deviation over 5 runs) and means alone where it does
not (Table 2). :data:`PAPER` holds them all, keyed by ``(table, dataset, setting, method)``:

* ``table``: ``"table1"``, ``"table2"``, ``"table4"``;
* ``dataset``: ``"cifar10"`` / ``"cifar100"`` (Tables 1, 2), ``"cifar10n"`` / ``"cifar100n"`` (Table 4);
* ``setting``: ``"sym20"`` ... ``"sym80"``, ``"asym40"``; Table 4's ``"clean"``, ``"random1"``,
  ``"random2"``, ``"random3"``, ``"aggregate"``, ``"worst"`` (CIFAR-10N) and ``"clean"``,
  ``"noisy"`` (CIFAR-100N);
* ``method``: the registry's name (:data:`sopdeep.methods.METHODS`) where the package has the method
  (``ce``, ``forward``, ``gce``, ``sl``, ``elr``, ``sop``, ``sop+``), else the paper's label in lower
  case (``mixup``, ``dividemix``, ``elr+``, ``co-teaching``, ``cores``).

Values are accuracies in percent, as printed; ``std`` is None where the table gives none. Table 1's
baselines use ResNet34, Table 4's baselines are quoted from Wei et al. (2022), ResNet34; SOP+ uses
PreActResNet18 (Table A.1).

>>> PAPER[("table1", "cifar10", "sym40", "sop")]
PaperNumber(mean=90.09, std=0.27, table='table1', row='SOP (OURS)')
>>> paper_number("cifar100n", "noisy", "sop+", tables=("table4",)).mean
67.81
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["PAPER", "PaperNumber", "TABLE_ROWS", "TABLE_COLUMNS", "paper_number"]


class PaperNumber(NamedTuple):
    """One published cell: ``mean`` (and ``std`` or None) test accuracy in percent, from ``table``'s
    row labelled ``row`` in the paper."""

    mean: float
    std: float | None
    table: str
    row: str


#: Each table's columns, left to right: (dataset, setting).
TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "table1": tuple((ds, f"sym{p}") for ds in ("cifar10", "cifar100") for p in (20, 40, 60, 80)),
    "table2": tuple((ds, s) for ds in ("cifar10", "cifar100") for s in ("sym20", "sym50", "sym80", "asym40")),
    "table4": (*(("cifar10n", s) for s in ("clean", "random1", "random2", "random3", "aggregate", "worst")),
               ("cifar100n", "clean"), ("cifar100n", "noisy")),
}

#: Each table's rows as printed: (method key, row label in the paper, the numbers left to right;
#: "-" where the paper prints none).
TABLE_ROWS: dict[str, tuple[tuple[str, str, str], ...]] = {
    # Table 1: synthetic symmetric noise, ResNet34, mean and std over 5 runs
    "table1": (
        ("ce", "CE", "86.32 0.18 82.65 0.16 76.15 0.32 59.28 0.97 51.43 0.58 45.23 0.53 36.31 0.39 20.23 0.82"),
        ("forward", "FORWARD", "87.99 0.36 83.25 0.38 74.96 0.65 54.64 0.44 39.19 2.61 31.05 1.44 19.12 1.95 8.99 0.58"),
        ("gce", "GCE", "89.83 0.20 87.13 0.22 82.54 0.23 64.07 1.38 66.81 0.42 61.77 0.24 53.16 0.78 29.16 0.74"),
        ("sl", "SL", "89.83 0.32 87.13 0.26 82.81 0.61 68.12 0.81 70.38 0.13 62.27 0.22 54.82 0.57 25.91 0.44"),
        ("elr", "ELR", "91.16 0.08 89.15 0.17 86.12 0.49 73.86 0.61 74.21 0.22 68.28 0.31 59.28 0.67 29.78 0.56"),
        ("sop", "SOP (OURS)", "93.18 0.57 90.09 0.27 86.76 0.22 68.32 0.77 74.67 0.30 70.12 0.57 60.26 0.41 30.20 0.63"),
    ),
    # Table 2: against ensembles and semi-supervised methods; means only
    "table2": (
        ("ce", "CE", "87.2 80.7 65.8 82.2 58.1 47.1 23.8 43.3"),
        ("mixup", "MIXUP", "93.5 87.9 72.3 - 69.9 57.3 33.6 -"),
        ("dividemix", "DIVIDEMIX", "96.1 94.6 93.2 93.4 77.1 74.6 60.2 72.1"),
        ("elr+", "ELR+", "95.8 94.8 93.3 93.0 77.7 73.8 60.8 77.5"),
        ("sop+", "SOP+ (OURS)", "96.3 95.5 94.0 93.8 78.8 75.9 63.3 78.0"),
    ),
    # Table 4: CIFAR-10N / CIFAR-100N human labels, mean and std over 5 runs
    "table4": (
        ("ce", "CE", "92.92 0.11 85.02 0.65 86.46 1.79 85.16 0.61 87.77 0.38 77.69 1.55 76.70 0.74 55.50 0.66"),
        ("forward", "FORWARD", "93.02 0.12 86.88 0.50 86.14 0.24 87.04 0.35 88.24 0.22 79.79 0.46 76.18 0.37 57.01 1.03"),
        ("co-teaching", "CO-TEACHING",
         "93.35 0.14 90.33 0.13 90.30 0.17 90.15 0.18 91.20 0.13 83.83 0.13 73.46 0.09 60.37 0.27"),
        ("elr+", "ELR+", "95.39 0.05 94.43 0.41 94.20 0.24 94.34 0.22 94.83 0.10 91.09 1.60 78.57 0.12 66.72 0.07"),
        ("cores", "CORES", "94.16 0.11 94.45 0.14 94.88 0.31 94.74 0.03 95.25 0.09 91.66 0.09 73.87 0.16 55.72 0.42"),
        ("sop+", "SOP+(OURS)", "96.38 0.31 95.28 0.13 95.31 0.10 95.39 0.11 95.61 0.13 93.24 0.21 78.91 0.43 67.81 0.23"),
    ),
}

#: Tables whose cells are ``mean std`` pairs (the others print means alone).
_WITH_STD = ("table1", "table4")


def _parse(table: str) -> dict[tuple[str, str, str, str], PaperNumber]:
    """The cells of one table of :data:`TABLE_ROWS`, keyed (table, dataset, setting, method)."""
    columns = TABLE_COLUMNS[table]
    width = 2 if table in _WITH_STD else 1  # numbers per cell
    cells = {}
    for method, label, numbers in TABLE_ROWS[table]:
        values = numbers.split()
        if len(values) != width * len(columns):   # a transcription slip must not shift the columns
            raise ValueError(f"{table} row {label!r} has {len(values)} numbers, expected {width * len(columns)}")
        for (dataset, setting), i in zip(columns, range(0, len(values), width)):
            if values[i] == "-":
                continue
            std = float(values[i + 1]) if width == 2 else None
            cells[(table, dataset, setting, method)] = PaperNumber(float(values[i]), std, table, label)
    return cells


#: Every published cell, (table, dataset, setting, method) -> :class:`PaperNumber`.
PAPER: dict[tuple[str, str, str, str], PaperNumber] = {key: value for table in TABLE_ROWS
                                                       for key, value in _parse(table).items()}


def paper_number(dataset: str, setting: str, method: str, *, tables=("table1", "table2", "table4")):
    """The published number of a cell from the first of ``tables`` that has one, else None.

    Parameters
    ----------
    dataset, setting, method : str
        Keys as in :data:`PAPER` (e.g. ``"cifar10"``, ``"sym40"``, ``"sop"``).
    tables : sequence of str
        The tables to look in, in order of preference (Table 1 and Table 2 both report CE at
        symmetric 20 %, with different networks).

    Returns
    -------
    PaperNumber or None
    """
    return next((PAPER[(t, dataset, setting, method)] for t in tables if (t, dataset, setting, method) in PAPER),
                None)
