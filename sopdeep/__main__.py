"""``python -m sopdeep`` = ``sop-train``."""

import sys

from sopdeep.cli import main

sys.exit(main())
