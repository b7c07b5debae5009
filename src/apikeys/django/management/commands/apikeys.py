"""``manage.py apikeys ...``: the ``apikeys`` command on the project's manager.

Every subcommand, option, output and exit status is the ``apikeys`` command's
(see ``docs/cli.md``); the manager and the settings come from ``settings.APIKEYS``
(so ``--database-url`` and ``--prefix`` are refused). The older commands
(``createapikey``, ``listapikeys``, ``revokeapikey``, ``rotateapikey``) stay.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apikeys.errors import ConfigurationError


def run(argv: list[str]) -> int:
    """Run the ``apikeys`` command with ``argv`` on the project's manager.

    Returns:
        The exit status (as the ``apikeys`` command's).
    """
    from apikeys._cli import main
    from apikeys.django._runtime import database_url, get_manager, get_settings

    try:
        conf = get_settings()
    except ConfigurationError:  # get_manager() raises it again: one line, exit status 2
        return main(argv, prog="manage.py apikeys", manager=get_manager)
    settings = conf.settings
    if not conf.database_url_set:
        # The keys are in the Django database; so are usage and the audit trail.
        settings = settings.model_copy(update={"database_url": database_url(conf.database)})
    return main(argv, prog="manage.py apikeys", settings=settings, manager=get_manager)


class Command(BaseCommand):
    help = "Manage API keys: the apikeys command (list, create, usage, audit...; see --help)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "argv", nargs=argparse.REMAINDER, help="the apikeys command and its arguments"
        )

    def run_from_argv(self, argv: list[str]) -> None:
        """``manage.py apikeys ARGS``: every argument goes to the ``apikeys`` command."""
        sys.exit(run(argv[2:]))

    def handle(self, *args: Any, **options: Any) -> None:
        """``call_command("apikeys", "list", "--json")``; a failure raises ``SystemExit``."""
        status = run([*args, *options.get("argv", ())])
        if status:
            raise SystemExit(status)
