"""``manage.py revokeapikey <key id> [--reason leaked]``: revoke a key, at once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.django._runtime import get_manager
from apikeys.django.management._common import add_json_flag, describe, key_json
from apikeys.errors import APIKeyError


class Command(BaseCommand):
    help = "Revoke an API key, at once and for good."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_id", help="The key id (the 16 characters after the prefix).")
        parser.add_argument("--reason", help="Why, kept in the audit trail (e.g. 'leaked').")
        add_json_flag(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        manager = get_manager()
        try:
            key = manager.revoke(options["key_id"], reason=options["reason"])
        except APIKeyError as exc:
            raise CommandError(exc.message) from exc
        now = manager.now()
        if options["json"]:
            self.stdout.write(key_json(key, now))
        else:
            self.stdout.write(f"Revoked {describe(key, now)}")
