"""The in-memory store: for tests and single-process apps. Implements both protocols."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Sequence
from datetime import datetime

from apikeys._models import KeyRecord, KeyState
from apikeys.errors import ConflictError


class MemoryStore:
    """Keeps records in a dict. Thread-safe; writes are version-checked and atomic.

    Implements :class:`~apikeys.storage.KeyStore`,
    :class:`~apikeys.storage.AsyncKeyStore` and both touch capabilities. Its
    awaitable methods never block, so they run on the event loop directly.
    Contents vanish with the process.
    """

    def __init__(self) -> None:
        self._records: dict[str, KeyRecord] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._records)} keys>)"

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key_id: str) -> KeyRecord | None:
        return self._records.get(key_id)

    def write(self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()) -> None:
        with self._lock:
            ids = [r.id for r in insert] + [r.id for r in update]
            if len(set(ids)) != len(ids):
                raise ConflictError("one write names a key id twice")
            for record in insert:
                if record.id in self._records:
                    raise ConflictError(f"key id {record.id!r} exists")
            for record in update:
                current = self._records.get(record.id)
                if current is None or record.version != current.version + 1:
                    raise ConflictError(f"key {record.id!r} changed since it was read")
            for record in (*insert, *update):
                self._records[record.id] = record

    def list(
        self,
        *,
        owner: str | None = None,
        state: KeyState | None = None,
        now: datetime,
        limit: int = 100,
        after: str | None = None,
    ) -> list[KeyRecord]:
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: r.id)
        selected = []
        for record in records:
            if after is not None and record.id <= after:
                continue
            if owner is not None and record.key.owner != owner:
                continue
            if state is not None and record.key.state(now) is not state:
                continue
            selected.append(record)
            if len(selected) >= limit:
                break
        return selected

    def purge(self, key_id: str) -> bool:
        with self._lock:
            return self._records.pop(key_id, None) is not None

    def touch(self, key_id: str, *, at: datetime, ip: str | None) -> None:
        with self._lock:
            record = self._records.get(key_id)
            if record is not None:
                key = record.key.model_copy(update={"last_used_at": at, "last_used_ip": ip})
                self._records[key_id] = KeyRecord(key, record.secret_hash)

    def close(self) -> None:
        """Nothing to release; present for the protocol."""

    async def aget(self, key_id: str) -> KeyRecord | None:
        return self.get(key_id)

    async def awrite(
        self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()
    ) -> None:
        self.write(insert=insert, update=update)

    async def alist(
        self,
        *,
        owner: str | None = None,
        state: KeyState | None = None,
        now: datetime,
        limit: int = 100,
        after: str | None = None,
    ) -> builtins.list[KeyRecord]:
        return self.list(owner=owner, state=state, now=now, limit=limit, after=after)

    async def apurge(self, key_id: str) -> bool:
        return self.purge(key_id)

    async def atouch(self, key_id: str, *, at: datetime, ip: str | None) -> None:
        self.touch(key_id, at=at, ip=ip)

    async def aclose(self) -> None:
        self.close()
