"""`python -m streams ...` is the `fallwatch` command (see streams.cli)."""

from __future__ import annotations

import sys

from streams.cli import main

if __name__ == "__main__":
    sys.exit(main())
