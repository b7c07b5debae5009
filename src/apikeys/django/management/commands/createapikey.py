"""``manage.py createapikey --owner team-42 --scope orders:read``: issue a key.

The plaintext is printed once, alone on standard output (so
``KEY=$(manage.py createapikey …)`` captures it); a summary goes to standard error.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.django._runtime import get_manager, get_settings
from apikeys.django.management._common import add_json_flag, describe, duration, key_json
from apikeys.errors import APIKeyError


class Command(BaseCommand):
    help = "Issue an API key and print it (shown once; only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", required=True, help="Who the key belongs to.")
        parser.add_argument("--name", help="A human label, e.g. 'CI'.")
        parser.add_argument(
            "--scope",
            "-s",
            action="append",
            default=[],
            dest="scopes",
            help="A granted scope (repeat for several), e.g. orders:read.",
        )
        expiry = parser.add_mutually_exclusive_group()
        expiry.add_argument(
            "--expires-in",
            type=duration,
            help="Lifetime, e.g. 90d, 12h, 2w (default: APIKEYS['DEFAULT_EXPIRY']).",
        )
        expiry.add_argument("--no-expiry", action="store_true", help="The key never expires.")
        parser.add_argument(
            "--allowed-ip",
            action="append",
            default=[],
            dest="allowed_ips",
            help="An address or CIDR network the key may be used from (repeatable).",
        )
        parser.add_argument(
            "--rate-limit",
            action="append",
            default=[],
            dest="rate_limits",
            help="A per-key limit such as 100/minute (repeatable).",
        )
        parser.add_argument("--quota", help="Uses allowed, e.g. 1000 or 1000/month.")
        parser.add_argument("--prefix", help="One of APIKEYS['PREFIX'] (default: the first).")
        add_json_flag(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        manager = get_manager()
        expires_in = options["expires_in"]
        if expires_in is None and not options["no_expiry"]:
            expires_in = get_settings().default_expiry
        try:
            issued = manager.create(
                owner=options["owner"],
                name=options["name"],
                scopes=options["scopes"],
                expires_in=expires_in,
                allowed_ips=options["allowed_ips"],
                rate_limits=options["rate_limits"],
                quota=options["quota"],
                prefix=options["prefix"],
            )
        except APIKeyError as exc:
            raise CommandError(exc.message) from exc
        now = manager.now()
        if options["json"]:
            self.stdout.write(key_json(issued.key, now, issued.plaintext))
            return
        self.stderr.write(f"Issued {describe(issued.key, now)}. The key (shown once):")
        self.stdout.write(issued.plaintext)
