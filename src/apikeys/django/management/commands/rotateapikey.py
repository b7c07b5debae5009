"""``manage.py rotateapikey <key id> [--grace 24h]``: issue a successor.

The successor's plaintext is printed once, alone on standard output; the old key
keeps working for the grace period (default ``APIKEYS['ROTATION_GRACE']``).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.django._runtime import get_manager, get_settings
from apikeys.django.management._common import add_json_flag, describe, duration, key_json
from apikeys.errors import APIKeyError


class Command(BaseCommand):
    help = "Rotate an API key: print its successor (shown once); the old one ends after --grace."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_id", help="The key id to replace.")
        parser.add_argument(
            "--grace",
            type=duration,
            help="How long the old key keeps working, e.g. 0s, 24h "
            "(default: APIKEYS['ROTATION_GRACE']).",
        )
        parser.add_argument(
            "--expires-in",
            type=duration,
            help="The successor's lifetime (default: the old key's lifetime).",
        )
        add_json_flag(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        manager = get_manager()
        grace = options["grace"]
        if grace is None:
            grace = get_settings().rotation_grace
        try:
            issued = manager.rotate(
                options["key_id"], grace=grace, expires_in=options["expires_in"]
            )
        except APIKeyError as exc:
            raise CommandError(exc.message) from exc
        now = manager.now()
        if options["json"]:
            self.stdout.write(key_json(issued.key, now, issued.plaintext))
            return
        self.stderr.write(
            f"Rotated {options['key_id']} (it works for {grace} more); successor "
            f"{describe(issued.key, now)}. The new key (shown once):"
        )
        self.stdout.write(issued.plaintext)
