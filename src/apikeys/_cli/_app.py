"""The ``apikeys`` command: argument parsing, command registration, error handling.

Each command group is one module of this package with a ``register(commands)``
function; adding a group is one module plus its name in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final, NoReturn

from apikeys._cli._context import (
    DEFAULT_DATABASE_URL,
    ENV_DATABASE_URL,
    ENV_HASHER,
    ENV_PREFIX,
    Context,
)
from apikeys._cli._errors import CommandError, Exit, UsageError
from apikeys._cli.output import Output, redact
from apikeys._manager import KeyManager
from apikeys._settings import Settings
from apikeys.errors import (
    APIKeyError,
    ConfigurationError,
    ConflictError,
    InvalidArgument,
    StorageError,
)

COMMAND_MODULES: Final[tuple[str, ...]] = (
    "keys",
    "scan",
    "rules",
    "monitoring",
)
"""The command groups, in help order: each is ``apikeys._cli.<name>``."""

Handler = Callable[[argparse.Namespace, Context], int]

_EPILOG = f"""\
environment:
  {ENV_DATABASE_URL}   store URL (default: {DEFAULT_DATABASE_URL}, a file in the
                         working directory)
  {ENV_PREFIX}         key prefixes, comma-separated; the first issues new keys
  {ENV_HASHER}         argon2 (default) or hmac (with APIKEYS_HMAC_PEPPERS)
  and every other option of docs/configuration.md (APIKEYS_DEFAULT_EXPIRY,
  APIKEYS_ROTATION_GRACE, APIKEYS_MONITORING, APIKEYS_RATE_LIMITS...)

exit status:
  0 ok, 1 verification failed / key found / operation refused, 2 usage error,
  3 store unavailable
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (raised, not printed + exit)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


class Commands:
    """Where command modules add their subcommands.

    Every subcommand gets the common options (``--database-url``, ``--prefix``,
    ``--json``, ``--no-progress``), accepted before or after its name.
    """

    def __init__(self, subparsers: Any, common: argparse.ArgumentParser) -> None:
        self._subparsers = subparsers
        self._common = common

    def add(
        self, name: str, handler: Handler, *, help: str, description: str | None = None
    ) -> argparse.ArgumentParser:
        """Add the subcommand ``name`` run by ``handler(args, context) -> exit status``.

        Returns:
            Its parser, for the command's own arguments.
        """
        parser: argparse.ArgumentParser = self._subparsers.add_parser(
            name,
            help=help,
            description=description or help,
            parents=[self._common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(handler=handler)
        return parser


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--database-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"key store URL (env {ENV_DATABASE_URL}; default {DEFAULT_DATABASE_URL})",
    )
    group.add_argument(
        "--prefix",
        metavar="PREFIXES",
        default=argparse.SUPPRESS,
        help=f"key prefixes, comma-separated; the first issues new keys (env {ENV_PREFIX})",
    )
    group.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="results as JSON"
    )
    group.add_argument(
        "--no-progress",
        action="store_true",
        default=argparse.SUPPRESS,
        help="never show progress (it is shown only when stderr is a terminal)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apikeys")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def build_parser(prog: str = "apikeys") -> argparse.ArgumentParser:
    """The full ``apikeys`` parser, with every registered command group.

    Args:
        prog: The command's name in help and errors (``flask apikeys``...).
    """
    common = _Parser(add_help=False)
    _add_common_options(common)
    parser = _Parser(
        prog=prog,
        description="Manage API keys and find leaked ones.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"apikeys {_version()}")
    _add_common_options(parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    commands = Commands(subparsers, common)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"apikeys._cli.{name}")
        module.register(commands)
    return parser


def _status_of(error: APIKeyError) -> Exit:
    if isinstance(error, ConflictError):
        return Exit.FAILED
    if isinstance(error, StorageError):
        return Exit.STORE_UNAVAILABLE
    if isinstance(error, InvalidArgument | ConfigurationError):
        return Exit.USAGE
    return Exit.FAILED


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"apikeys: error: {redact(message)}\n")
    sys.stderr.flush()
    return status


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "apikeys",
    settings: Settings | None = None,
    manager: Callable[[], KeyManager] | None = None,
) -> int:
    """Run the ``apikeys`` command.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
        prog: The command's name (``flask apikeys``, ``manage.py apikeys``).
        settings: A framework's settings (default: environment and flags).
        manager: Returns a framework's manager (then ``--database-url`` and
            ``--prefix`` are refused: the app's configuration decides).

    Returns:
        The exit status: 0 ok; 1 verification failed, a key was found, or an
        operation was refused; 2 usage error; 3 store unavailable.
    """
    try:
        parser = build_parser(prog)
        args = parser.parse_args(argv)
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return Exit.USAGE
        out = Output(
            sys.stdout,
            sys.stderr,
            json_mode=getattr(args, "json", False),
            progress=not getattr(args, "no_progress", False),
        )
        supplied = None
        if manager is not None:
            for flag in ("database_url", "prefix"):
                if hasattr(args, flag):
                    option = "--" + flag.replace("_", "-")
                    raise UsageError(f"{option}: {prog} uses the app's configuration")
            supplied = manager()
        context = Context(args, out, settings=settings, manager=supplied)
        try:
            return handler(args, context)
        finally:
            context.close()
    except CommandError as exc:
        return _fail(str(exc), exc.status)
    except StorageError as exc:
        if isinstance(exc, ConflictError):
            return _fail(f"{exc.message} (a concurrent change; try again)", Exit.FAILED)
        return _fail(f"key store unavailable: {exc.message}", Exit.STORE_UNAVAILABLE)
    except APIKeyError as exc:
        return _fail(exc.message, _status_of(exc))
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else Exit.OK
    except KeyboardInterrupt:
        return _fail("interrupted", Exit.INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (``apikeys list | head``): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}", Exit.FAILED)
    except Exception as exc:
        return _fail(f"internal error ({type(exc).__name__}): {exc}", 70)
