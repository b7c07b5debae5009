"""The ``apikeys`` command line (``apikeys --help``; see ``docs/cli.md``).

Dependency-free (argparse). One module per command group; see
:data:`apikeys._cli._app.COMMAND_MODULES` to add one.
"""

from __future__ import annotations

from apikeys._cli._app import main

__all__ = ["main"]
