"""Parsing of values every front end reads from text (configuration, environment,
command lines): durations, instants, key ids and prefixes.

Each parser raises :class:`~apikeys.errors.InvalidArgument`; a front end turns
that into its own error (the CLI's usage error, a ``ConfigurationError`` naming
the option), so the rules and the messages are the same everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone

from apikeys import _keyformat
from apikeys.errors import InvalidArgument

_DURATION_PART = re.compile(r"(\d+)(ms|[wdhms])")
_UNITS = {
    "w": "weeks",
    "d": "days",
    "h": "hours",
    "m": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
}
_MAX_DURATION_TEXT = 64


def parse_duration(text: str, *, allow_zero: bool = False) -> timedelta:
    """Parse ``90d``, ``24h``, ``1d12h``, ``30m``, ``45s``, ``2w`` or ``100ms``.

    Args:
        text: The duration.
        allow_zero: Whether ``0s`` (and the like) is accepted.

    Returns:
        The duration.

    Raises:
        InvalidArgument: not such a duration (or zero, unless ``allow_zero``).
    """
    value = text.strip().lower()
    parts = _DURATION_PART.findall(value) if len(value) <= _MAX_DURATION_TEXT else []
    if not value or "".join(n + u for n, u in parts) != value:
        raise InvalidArgument(
            f"invalid duration {text[:_MAX_DURATION_TEXT]!r}: use a number and a unit "
            "(w, d, h, m, s, ms), e.g. 90d or 1d12h"
        )
    total = timedelta()
    try:
        for number, unit in parts:
            total += timedelta(**{_UNITS[unit]: int(number)})
    except OverflowError:
        raise InvalidArgument(f"invalid duration {text!r}: too long") from None
    if total <= timedelta(0) and not allow_zero:
        raise InvalidArgument(f"invalid duration {text!r}: must be more than zero")
    return total


def is_compact_duration(text: str) -> bool:
    """Whether ``text`` looks like a duration :func:`parse_duration` reads (``90d``)."""
    value = text.strip().lower()
    return bool(value) and bool(re.fullmatch(r"(?:\d+(?:ms|[wdhms]))+", value))


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time; one without a zone is taken as UTC.

    Returns:
        The instant, in UTC.

    Raises:
        InvalidArgument: not an ISO 8601 date or date-time.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"invalid date {text[:40]!r}: use ISO 8601, e.g. 2026-12-31 or 2026-12-31T18:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def key_id_of(value: str) -> str:
    """The key id named by ``value``: a key id, or a whole key (its id is taken).

    A whole key is accepted so that an operator can paste what they have; its
    secret is dropped here and never echoed, not even in the error.

    Raises:
        InvalidArgument: neither a key id nor a well-formed key.
    """
    text = value.strip()
    if _keyformat.is_key_id(text):
        return text
    prefix = text.rpartition("_")[0]
    parsed = _keyformat.parse_or_none(text, frozenset({prefix}))
    if parsed is None:
        raise InvalidArgument("not a key id (16 letters and digits) nor a well-formed key")
    return parsed.key_id


def split_list(value: str | Iterable[str]) -> tuple[str, ...]:
    """A list given as one comma-separated string or as strings: stripped, blanks
    dropped, duplicates dropped (first kept).

    Raises:
        InvalidArgument: neither a string nor an iterable of strings.
    """
    if isinstance(value, str):
        items: Iterable[object] = value.split(",")
    elif isinstance(value, Iterable):
        items = value
    else:
        raise InvalidArgument("must be a list of strings or a comma-separated string")
    result: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgument("must be a list of strings or a comma-separated string")
        if item.strip():
            result.append(item.strip())
    return tuple(dict.fromkeys(result))


def parse_prefixes(value: str | Iterable[str]) -> tuple[str, ...]:
    """Parse key prefixes, comma-separated or a list (the first one issues new keys).

    Raises:
        InvalidArgument: an invalid prefix.
    """
    prefixes = split_list(value)
    for prefix in prefixes:
        _keyformat.validate_prefix(prefix)
    return prefixes
