"""``python -m apikeys``: the same as the ``apikeys`` command."""

from __future__ import annotations

import sys

from apikeys._cli import main

if __name__ == "__main__":
    sys.exit(main())
