"""The one list of figures that ``python -m figures`` runs: CLI name -> figure module.

Every figure module has the same interface:

* ``NAME`` - the output stem (``<NAME>.png``, ``<NAME>.pdf``);
* ``DATA_FILE`` - the name of its data file (``NAME + "_data.csv"`` or ``".npz"``);
* ``compute(data_path, *, quick=False, **options) -> None`` - computes and writes the data file
  atomically; it receives every option of the command line (``solver``, ``method``, ``n_jobs``,
  ``cache_dir``, ``progress``, ``backend``, ...) and ignores those it does not use;
* ``plot(data_path, out_dir) -> list[Path]`` - reads only the data file, writes png and pdf.

A new figure needs a module with this interface and one line here.
"""

from __future__ import annotations

from . import fig_implicit_bias, fig_phase_transition, fig_recovery_error

__all__ = ["FIGURES"]

FIGURES = {module.NAME: module
           for module in (fig_implicit_bias, fig_recovery_error, fig_phase_transition)}
