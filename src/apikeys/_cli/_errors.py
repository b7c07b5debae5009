"""Exit codes and the two exceptions a command raises to end with one of them."""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    """The exit statuses of the ``apikeys`` command (documented in ``docs/cli.md``)."""

    OK = 0
    FAILED = 1
    """A verification failed, a key was found by a scan, or an operation was refused."""
    USAGE = 2
    """Bad arguments or configuration."""
    STORE_UNAVAILABLE = 3
    """The key store could not be reached or failed."""
    INTERRUPTED = 130


class CommandError(Exception):
    """End the command with one line on stderr and an exit status.

    The message must never contain a secret.
    """

    def __init__(self, message: str, status: Exit = Exit.FAILED) -> None:
        super().__init__(message)
        self.status = status


class UsageError(CommandError):
    """Bad arguments or configuration (exit status 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, Exit.USAGE)
