"""``python -m soptheory.figures ...``: see :mod:`soptheory.figures.cli`."""

from .cli import main

raise SystemExit(main())
