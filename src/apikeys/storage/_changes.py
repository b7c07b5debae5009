"""The change announcements a :class:`~apikeys.storage.CachedStore` listens for.

A payload is the changed key ids joined by commas (ids are base62, never a
comma), or ``*`` ("forget everything") when they would not fit in one
PostgreSQL NOTIFY payload. Shared by the cache and by the stores that announce
a change inside their own write transaction (:class:`SupportsNotify`).
"""

from __future__ import annotations

from collections.abc import Iterable

EVERYTHING = "*"
_MAX_PAYLOAD = 7_000  # PostgreSQL's limit is 8000 bytes


def change_payload(key_ids: Iterable[str]) -> str:
    """The announcement of a change to ``key_ids``."""
    payload = ",".join(key_ids)
    return payload if 0 < len(payload) <= _MAX_PAYLOAD else EVERYTHING


def changed_ids(payload: str) -> list[str] | None:
    """The key ids a payload names, ``None`` for "everything"."""
    if payload == EVERYTHING or not payload:
        return None
    return payload.split(",")
