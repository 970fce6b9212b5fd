"""The paper's Figures 2-4 (long version, Sec. 3.2-3.3), one module per figure.

Each module has ``compute(...)`` (the expensive part, saved to a data file), ``plot(data, out)``
(reads only the data) and ``make(out, ...)`` (both); :mod:`soptheory.figures.cli` runs them.
"""

FIGURES = ("fig2", "fig3", "fig4")
