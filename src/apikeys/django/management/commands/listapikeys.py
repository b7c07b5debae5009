"""``manage.py listapikeys [--owner team-42] [--state active]``: list keys (no secrets)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys._cli.output import render_table
from apikeys._display import KEY_HEADERS, key_row
from apikeys._models import KeyState
from apikeys.django._runtime import get_manager
from apikeys.django.management._common import add_json_flag, key_json
from apikeys.errors import APIKeyError


class Command(BaseCommand):
    help = "List API keys ordered by id (never their secrets or hashes)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", help="Only this owner's keys.")
        parser.add_argument(
            "--state", choices=[s.value for s in KeyState], help="Only keys in this state now."
        )
        parser.add_argument("--limit", type=int, default=100, help="At most this many (1-10000).")
        parser.add_argument("--after", help="Start after this key id (paging).")
        add_json_flag(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        manager = get_manager()
        try:
            keys = manager.list(
                owner=options["owner"],
                state=options["state"],
                limit=options["limit"],
                after=options["after"],
            )
        except APIKeyError as exc:
            raise CommandError(exc.message) from exc
        now = manager.now()
        if options["json"]:
            for key in keys:
                self.stdout.write(key_json(key, now))
            return
        if keys:
            self.stdout.write(render_table(KEY_HEADERS, (key_row(key, now) for key in keys)))
        if not keys:
            self.stderr.write("No keys.")
