"""``flask apikeys ...``: the ``apikeys`` command on the app's own manager.

Registered on ``app.cli`` by :meth:`apikeys.flask.APIKeys.init_app`. Every
subcommand, option, output and exit status is the ``apikeys`` command's (see
``docs/cli.md``); only the manager and the settings come from the app (its
``APIKEYS_*`` config), so ``--database-url`` and ``--prefix`` are refused.
A manager on a :class:`~apikeys.storage.MemoryStore` refuses to issue keys
(they would vanish with the command's process).
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from apikeys._manager import KeyManager


def _manager() -> KeyManager:
    from apikeys.flask import _app_state

    manager: KeyManager = _app_state().manager
    return manager


@click.command(
    "apikeys",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
    help="Manage API keys with the app's manager: the apikeys command (see --help).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@with_appcontext
def apikeys_cli(args: tuple[str, ...]) -> None:
    """Run the ``apikeys`` command with ``args`` on the current app's manager."""
    from apikeys._cli import main
    from apikeys.flask import _app_state

    settings = _app_state().settings.settings
    status = main(list(args), prog="flask apikeys", settings=settings, manager=_manager)
    click.get_current_context().exit(status)
