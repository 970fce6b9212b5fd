"""``python -m sopdeep.grid``: the command line of :mod:`sopdeep.grid.cli` (``sop-grid``)."""

import sys

from sopdeep.grid.cli import main

sys.exit(main())
