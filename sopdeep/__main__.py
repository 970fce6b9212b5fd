"""``python -m sopdeep`` = ``sop-train`` (exit status and failure lines: :mod:`sopdeep.cli`)."""

import sys

from sopdeep.cli import main

if __name__ == "__main__":
    sys.exit(main())
