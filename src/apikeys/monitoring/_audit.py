"""The audit trail: what an audit store keeps (:class:`AuditEntry`), the store
protocol, the in-memory store, and the row encoding the SQL stores share."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

from apikeys import events as _events
from apikeys.errors import InvalidArgument
from apikeys.events import Event

MAX_QUERY_LIMIT = 10_000

EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (getattr(_events, name) for name in _events.__all__)
    if isinstance(cls, type) and issubclass(cls, Event) and cls is not Event
}
"""Every event class of :mod:`apikeys.events` by its ``type``."""

_COLUMNS = ("type", "at", "key_id", "owner")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event as the audit trail keeps it.

    Attributes:
        id: Position in the trail (increasing in the order entries were written).
        at: When the event happened (UTC).
        type: The event type (``"key.revoked"``).
        key_id: The key concerned, if known.
        owner: The key's owner, if the event carried it (failures before the
            secret is proven do not).
        data: The event's other fields, JSON-ready (datetimes as ISO strings).
    """

    id: int
    at: datetime
    type: str
    key_id: str | None
    owner: str | None
    data: dict[str, Any]

    def event(self) -> Event:
        """The typed event again (an :class:`~apikeys.events.Event` for unknown types)."""
        cls = EVENT_TYPES.get(self.type)
        if cls is None:
            return Event(at=self.at, key_id=self.key_id, owner=self.owner)
        kwargs: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            if spec.name in _COLUMNS or spec.name not in self.data:
                continue
            value = self.data[spec.name]
            annotation = str(spec.type)
            if isinstance(value, str) and annotation.startswith("datetime"):
                value = datetime.fromisoformat(value)
            elif isinstance(value, list) and annotation.startswith("tuple"):
                value = tuple(value)
            kwargs[spec.name] = value
        return cls(at=self.at, key_id=self.key_id, owner=self.owner, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the event's fields plus ``id``."""
        return {
            "id": self.id,
            "type": self.type,
            "at": self.at.isoformat(),
            "key_id": self.key_id,
            "owner": self.owner,
            **self.data,
        }


@runtime_checkable
class AuditStore(Protocol):
    """Where the audit trail is kept. Also an event sink: ``emit``/``emit_batch``
    append. Writes block; put a :class:`~apikeys.monitoring.BufferedSink` in front
    (:class:`~apikeys.monitoring.Monitor` does) to keep them off the request path.

    Contract:

    - ``emit_batch`` appends all of ``events`` in order, atomically where the
      backend allows; entries get increasing ids.
    - ``query`` returns entries in id order, after ``after_id``, at most ``limit``.
      Entries match when their ``key_id`` is in ``key_ids`` or their ``owner`` is
      ``owner`` (either given), their ``at`` is in ``[since, until)`` and their
      ``type`` is in ``types`` (each filter only when given).
    - ``prune`` deletes entries older than ``before`` and returns how many.
    - Driver errors surface as :class:`~apikeys.errors.StorageError`.
    """

    def emit(self, event: Event) -> None: ...

    def emit_batch(self, events: Sequence[Event]) -> None: ...

    def query(
        self,
        *,
        key_ids: Sequence[str] | None = None,
        owner: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        types: Sequence[str] | None = None,
        after_id: int | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]: ...

    def prune(self, before: datetime) -> int: ...

    def close(self) -> None: ...


# --- the row encoding shared by the SQL stores ----------------------------------------


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact, no float)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """The aware UTC datetime of :func:`to_micros`."""
    return _EPOCH + timedelta(microseconds=int(value))


def event_row(event: Event) -> dict[str, Any]:
    """The columns of one audit row: ``at_us``, ``type``, ``key_id``, ``owner``,
    ``data`` (the other fields as JSON text)."""
    data = event.to_dict()
    fields = {name: value for name, value in data.items() if name not in _COLUMNS}
    return {
        "at_us": to_micros(event.at),
        "type": event.type,
        "key_id": event.key_id,
        "owner": event.owner,
        "data": json.dumps(fields, sort_keys=True, default=str),
    }


def row_entry(row: Any) -> AuditEntry:
    """An :class:`AuditEntry` from a row mapping with the columns of :func:`event_row`."""
    data = row["data"]
    return AuditEntry(
        id=int(row["id"]),
        at=from_micros(int(row["at_us"])),
        type=str(row["type"]),
        key_id=row["key_id"],
        owner=row["owner"],
        data=json.loads(data) if isinstance(data, str | bytes) else dict(data),
    )


@runtime_checkable
class AuditHistory(Protocol):
    """Newest-first reads, for dashboards (the SQL and memory stores have them).

    Contract: ``recent`` returns at most ``limit`` entries, newest (highest id)
    first, with ``id < before_id`` (paging backwards), ``key_id`` in ``key_ids``,
    ``type`` in ``types`` and ``at`` in ``[since, until)``, each filter only when
    given. The SQL stores read through the primary key or the ``(key_id, id)``
    index, backwards, and stop at ``limit``.
    """

    def recent(
        self,
        *,
        key_ids: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]: ...


def check_query(limit: int, key_ids: Sequence[str] | None) -> list[str] | None:
    """Validate the common query arguments; returns ``key_ids`` as a list.

    Raises:
        InvalidArgument: a limit outside 1-10000, or ``key_ids`` given as one string.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_QUERY_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_QUERY_LIMIT}")
    if key_ids is None:
        return None
    if isinstance(key_ids, str):
        raise InvalidArgument("key_ids must be a list of key ids, not one string")
    return list(key_ids)


# --- in memory ------------------------------------------------------------------------


def _matcher(
    key_ids: Sequence[str] | None,
    owner: str | None,
    types: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
) -> Callable[[AuditEntry], bool]:
    """The filter of an audit query: of one of ``key_ids`` or of ``owner`` (either
    matches; neither given: any), of one of ``types``, at or after ``since`` and
    before ``until``."""
    wanted = None if key_ids is None else set(key_ids)
    kinds = None if types is None else set(types)

    def matches(entry: AuditEntry) -> bool:
        if (wanted is not None or owner is not None) and not (
            (wanted is not None and entry.key_id in wanted)
            or (owner is not None and entry.owner == owner)
        ):
            return False
        return (
            (kinds is None or entry.type in kinds)
            and (since is None or entry.at >= since)
            and (until is None or entry.at < until)
        )

    return matches


class MemoryAuditStore:
    """The audit trail in a list, for tests and single-process apps.

    Thread-safe. Contents vanish with the process.

    Args:
        max_entries: Keep at most this many (the oldest go first); ``None``: all.
    """

    def __init__(self, *, max_entries: int | None = None) -> None:
        self._entries: list[AuditEntry] = []
        self._next_id = 1
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def __repr__(self) -> str:
        return f"MemoryAuditStore(<{len(self._entries)} entries>)"

    def __len__(self) -> int:
        return len(self._entries)

    def emit(self, event: Event) -> None:
        """Append one event."""
        self.emit_batch((event,))

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Append ``events`` in order."""
        rows = [event_row(event) for event in events]
        with self._lock:
            for row in rows:
                self._entries.append(row_entry({**row, "id": self._next_id}))
                self._next_id += 1
            if self.max_entries is not None and len(self._entries) > self.max_entries:
                del self._entries[: len(self._entries) - self.max_entries]

    def query(
        self,
        *,
        key_ids: Sequence[str] | None = None,
        owner: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        types: Sequence[str] | None = None,
        after_id: int | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Entries in id order (see :class:`AuditStore` for the filters).

        Raises:
            InvalidArgument: a limit outside 1-10000.
        """
        matches = _matcher(check_query(limit, key_ids), owner, types, since, until)
        with self._lock:
            entries = list(self._entries)
        found = (e for e in entries if (after_id is None or e.id > after_id) and matches(e))
        return list(itertools.islice(found, limit))

    def recent(
        self,
        *,
        key_ids: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        """The newest entries first (see :class:`AuditHistory`).

        Raises:
            InvalidArgument: a limit outside 1-10000.
        """
        matches = _matcher(check_query(limit, key_ids), None, types, since, until)
        with self._lock:
            entries = list(self._entries)
        found = (
            e for e in reversed(entries) if (before_id is None or e.id < before_id) and matches(e)
        )
        return list(itertools.islice(found, limit))

    def prune(self, before: datetime) -> int:
        """Delete entries older than ``before``; returns how many."""
        with self._lock:
            kept = [entry for entry in self._entries if entry.at >= before]
            removed = len(self._entries) - len(kept)
            self._entries = kept
        return removed

    def close(self) -> None:
        """Nothing to release."""
