"""Parsing command-line values: durations, instants, JSON objects, key ids, prefixes."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from apikeys import _keyformat
from apikeys._cli._errors import UsageError
from apikeys.errors import InvalidArgument

_DURATION_PART = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str, *, allow_zero: bool = False) -> timedelta:
    """Parse ``90d``, ``24h``, ``1d12h``, ``30m``, ``45s`` or ``2w``.

    Raises:
        UsageError: not such a duration (or zero, unless ``allow_zero``).
    """
    value = text.strip().lower()
    parts = _DURATION_PART.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise UsageError(
            f"invalid duration {text!r}: use a number and a unit (w, d, h, m, s), e.g. 90d or 1d12h"
        )
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: int(number)})
    if total <= timedelta(0) and not allow_zero:
        raise UsageError(f"invalid duration {text!r}: must be more than zero")
    return total


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time; one without a zone is taken as UTC.

    Raises:
        UsageError: not an ISO 8601 date or date-time.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"invalid date {text!r}: use ISO 8601, e.g. 2026-12-31 or 2026-12-31T18:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def parse_json_object(text: str) -> dict[str, Any]:
    """Parse a JSON object (for ``--metadata``).

    Raises:
        UsageError: not valid JSON, or not an object.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"invalid JSON for --metadata: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError('--metadata must be a JSON object, e.g. \'{"team": "billing"}\'')
    return value


def key_id_of(value: str) -> str:
    """The key id named by ``value``: a key id, or a whole key (its id is taken).

    A whole key is accepted so that an operator can paste what they have; its secret
    is dropped here and never echoed, not even in the error.

    Raises:
        UsageError: neither a key id nor a well-formed key.
    """
    text = value.strip()
    if _keyformat.is_key_id(text):
        return text
    prefix = text.rpartition("_")[0]
    parsed = _keyformat.parse_or_none(text, frozenset({prefix}))
    if parsed is None:
        raise UsageError("not a key id (16 letters and digits) nor a well-formed key")
    return parsed.key_id


def parse_prefixes(text: str) -> tuple[str, ...]:
    """Parse a comma-separated list of key prefixes (the first one issues new keys).

    Raises:
        UsageError: an invalid prefix.
    """
    prefixes = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    try:
        for prefix in prefixes:
            _keyformat.validate_prefix(prefix)
    except InvalidArgument as exc:
        raise UsageError(str(exc)) from None
    return prefixes
