"""``python -m figures ...`` from the repository root: see :mod:`figures.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
