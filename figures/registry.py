"""The one list of figures that ``python -m figures`` runs: CLI name -> figure module, and groups.

Every figure module has the same interface:

* ``NAME`` - the output stem (``<NAME>.png``, ``<NAME>.pdf``);
* ``DATA_FILE`` - the name of its data file (``NAME + "_data.csv"`` or ``".npz"``);
* ``DEEP`` - True for a figure that trains networks (hours on a CPU): the command line redraws it
  from its data file unless ``--deep compute``; absent or False otherwise;
* ``compute(data_path, *, quick=False, **options) -> None`` - computes and writes the data file
  atomically; its keyword parameters name the options of the command line it uses (``solver``,
  ``method``, ``n_jobs``, ``cache_dir``, ``progress``, ``backend``, ``data_dir``, ``runs_dir``,
  ``out_folder``: :func:`figures.cli.figure_options`), and it receives only those (no
  ``**kwargs``: an unknown option is a ``TypeError``);
* ``plot(data_path, out_dir) -> list[Path]`` - reads only the data file, writes png and pdf.

A new figure needs a module with this interface and one line here.
"""

from __future__ import annotations

from . import (fig_bridge_alpha, fig_bridge_jacobian, fig_bridge_linearized, fig_bridge_regimes, fig_bridge_trainer,
               fig_implicit_bias, fig_memorisation, fig_phase_transition, fig_recovery_error)

__all__ = ["FIGURES", "GROUPS", "is_deep"]

FIGURES = {module.NAME: module
           for module in (fig_implicit_bias, fig_recovery_error, fig_phase_transition,
                          fig_memorisation, fig_bridge_jacobian, fig_bridge_linearized,
                          fig_bridge_alpha, fig_bridge_trainer, fig_bridge_regimes)}


def is_deep(figure):
    """True when the figure module trains networks (its ``DEEP`` constant)."""
    return bool(getattr(figure, "DEEP", False))


GROUPS = {
    "paper": [name for name, figure in FIGURES.items() if not is_deep(figure)],   # Figures 2-4
    "bridge": [name for name, figure in FIGURES.items() if is_deep(figure)],     # theory vs practice
    "all": list(FIGURES),
}
