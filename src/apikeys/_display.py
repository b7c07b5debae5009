"""How every front end (CLI, Flask and Django commands, Django admin, dashboard)
writes instants and key states, so all tools print the same thing.

- Machine output (``--json``, data attributes): ISO 8601 in UTC to the second,
  ``2026-12-02T17:55:00Z``.
- Human output (tables, pages): ``2026-12-02 17:55:00 UTC``.
- States: the suspended state's machine name is ``disabled`` (``KeyState``,
  the error code), kept for compatibility; people read ``suspended``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from apikeys._models import APIKey, KeyState

MACHINE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
HUMAN_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def iso_utc(value: datetime) -> str:
    """``value`` for machines: ``2026-12-02T17:55:00Z`` (naive values are taken as UTC)."""
    return _utc(value).strftime(MACHINE_FORMAT)


def human_utc(value: datetime | None, missing: str = "-") -> str:
    """``value`` for people: ``2026-12-02 17:55:00 UTC``, or ``missing`` for ``None``."""
    return missing if value is None else _utc(value).strftime(HUMAN_FORMAT)


# An instant already written as ISO 8601 text (event data, reports' to_dict()).
_ISO_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6}|\.\d{3})?(?:Z|[+-]\d\d:\d\d)")


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_TEXT.fullmatch(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def machine(data: Any) -> Any:
    """``data`` (JSON-ready dicts and lists) with every instant, as a datetime or
    as ISO 8601 text, rewritten by :func:`iso_utc`."""
    if isinstance(data, dict):
        return {k: machine(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [machine(v) for v in data]
    at = _instant(data)
    return data if at is None else iso_utc(at)


def readable(value: Any) -> Any:
    """``value`` for people: an instant (datetime or ISO 8601 text) by
    :func:`human_utc`, anything else unchanged."""
    at = _instant(value)
    return value if at is None else human_utc(at)


def state_label(state: KeyState) -> str:
    """The word people read for ``state`` (``suspended`` for ``KeyState.DISABLED``)."""
    return "suspended" if state is KeyState.DISABLED else state.value


def key_json(key: APIKey, now: datetime) -> dict[str, Any]:
    """A record as JSON-ready data: instants as :func:`iso_utc`, its ``state`` at
    ``now`` and, for a rotated-out key, ``grace_ends_at`` (when it stops working)."""
    data = key.model_dump(mode="json")
    for name, value in key:
        if isinstance(value, datetime):
            data[name] = iso_utc(value)
    data["state"] = key.state(now).value
    ends = grace_end(key)
    data["grace_ends_at"] = None if ends is None else iso_utc(ends)
    return data


def grace_end(key: APIKey) -> datetime | None:
    """When a rotated-out key stops working (``None`` unless it was rotated)."""
    return key.expires_at if key.replaced_by is not None else None


def rotation(key: APIKey) -> str:
    """A rotated-out key's successor and grace end for people, or ``-``."""
    if key.replaced_by is None:
        return "-"
    return f"replaced by {key.replaced_by}, grace ends {human_utc(grace_end(key), 'never')}"


KEY_HEADERS = (
    "ID",
    "PREFIX",
    "OWNER",
    "NAME",
    "STATE",
    "SCOPES",
    "EXPIRES",
    "LAST USED",
    "ROTATION",
)


def key_row(key: APIKey, now: datetime) -> tuple[str, ...]:
    """A record as one row under :data:`KEY_HEADERS`."""
    return (
        key.id,
        key.prefix,
        key.owner,
        key.name or "-",
        state_label(key.state(now)),
        ",".join(key.scopes) or "-",
        human_utc(key.expires_at, "never"),
        human_utc(key.last_used_at, "never"),
        rotation(key),
    )
