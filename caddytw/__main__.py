"""``python -m caddytw`` and the ``caddytw`` console script: see :mod:`caddytw.cli`."""

from __future__ import annotations

import sys

from caddytw.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
