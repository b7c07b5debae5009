"""What the management commands share: argument parsing and output of records."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser

from apikeys import _display as display
from apikeys._models import APIKey
from apikeys.django.conf import parse_duration
from apikeys.errors import ConfigurationError


def duration(text: str) -> timedelta:
    """An argparse type: ``90d``, ``12h``, ``2w``, ``P90D``..."""
    try:
        return parse_duration(text)
    except ConfigurationError as exc:
        raise CommandError(str(exc)) from exc


def add_json_flag(parser: CommandParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="Print JSON (one object per key) instead of text."
    )


def key_json(key: APIKey, now: Any, plaintext: str | None = None) -> str:
    data = display.key_json(key, now)
    if plaintext is not None:
        data["key"] = plaintext
    return json.dumps(data, sort_keys=True)


def describe(key: APIKey, now: Any) -> str:
    expires = display.iso_utc(key.expires_at) if key.expires_at else "never"
    scopes = " ".join(key.scopes) or "-"
    return (
        f"id={key.id} owner={key.owner} state={display.state_label(key.state(now))} "
        f"scopes={scopes} expires={expires}"
    )
