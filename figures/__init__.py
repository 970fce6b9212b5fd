"""The paper's figures, one script per figure (run from the repository root: ``python -m figures``).

``fig_implicit_bias`` (Figure 2), ``fig_recovery_error`` (Figure 3), ``fig_phase_transition``
(Figure 4) of the long version; :mod:`figures.registry` lists them, :mod:`figures.style` is their
shared style, :mod:`figures.output` publishes each figure's files as one set and
:mod:`figures.cli` is the command line.  This package is the repository's figure scripts and is
not installed with ``sop`` (it imports ``soptheory`` and, later, ``sopdeep``).
"""
