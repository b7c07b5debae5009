"""Decoded records reused while their stored row is unchanged.

Decoding a row into a validated :class:`~apikeys.APIKey` costs more than reading
it (the JSON columns, the datetimes and pydantic's validation). A store reads the
whole row on every ``get`` anyway, so it keeps the last row it decoded per key
id and hands back the same immutable record while the row read now is equal,
column by column, to that one. Nothing stale can be served: any change to the
row (a write bumps ``version``; ``touch`` changes ``last_used_at``) makes the
rows differ and the new one is decoded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from apikeys._models import COLUMNS, KeyRecord, row_to_record


def decode_row(row: Sequence[Any]) -> KeyRecord:
    """A record from a row whose values are in :data:`~apikeys._models.COLUMNS` order."""
    return row_to_record(dict(zip(COLUMNS, row, strict=True)))


class DecodedRows:
    """Bounded map ``key id -> (row, record decoded from it)``; thread-safe."""

    __slots__ = ("_entries", "_lock", "_maxsize")

    def __init__(self, maxsize: int = 10_000) -> None:
        self._maxsize = maxsize
        self._entries: dict[str, tuple[tuple[Any, ...], KeyRecord]] = {}
        self._lock = threading.Lock()

    def record(
        self,
        key_id: str,
        row: tuple[Any, ...] | None,
        decode: Callable[[tuple[Any, ...]], KeyRecord] = decode_row,
    ) -> KeyRecord | None:
        """The record of ``row`` (``None`` for no row), decoded only when the row
        differs from the one last decoded for ``key_id``."""
        if row is None:
            if key_id in self._entries:
                with self._lock:
                    self._entries.pop(key_id, None)
            return None
        entry = self._entries.get(key_id)
        if entry is not None and entry[0] == row:
            return entry[1]
        record = decode(row)
        if self._maxsize > 0:
            with self._lock:
                self._entries.pop(key_id, None)
                while len(self._entries) >= self._maxsize:
                    del self._entries[next(iter(self._entries))]
                self._entries[key_id] = (row, record)
        return record

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
