"""A store written outside apikeys plugs in through the protocol alone: it does
not subclass anything, and passes the same conformance suite."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from datetime import datetime

import pytest

from apikeys import ConflictError, KeyManager, KeyRecord, KeyState
from apikeys.storage import KeyStore, SupportsTouch, _registry, register_store, store_from_url
from apikeys.testing import StoreConformance, test_hasher


class SortedListStore:
    """A third party's store: records in a sorted list, found by bisection,
    replaced copy-on-write so a failed write leaves nothing behind. No touch."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._records: list[KeyRecord] = []
        self._lock = threading.Lock()

    def _find(self, key_id: str) -> int | None:
        at = bisect.bisect_left(self._ids, key_id)
        return at if at < len(self._ids) and self._ids[at] == key_id else None

    def get(self, key_id: str) -> KeyRecord | None:
        with self._lock:
            at = self._find(key_id)
            return None if at is None else self._records[at]

    def write(self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()) -> None:
        with self._lock:
            ids, records = list(self._ids), list(self._records)
            seen: set[str] = set()
            for rec in (*insert, *update):
                if rec.id in seen:
                    raise ConflictError("duplicate id in one write")
                seen.add(rec.id)
            for rec in insert:
                at = bisect.bisect_left(ids, rec.id)
                if at < len(ids) and ids[at] == rec.id:
                    raise ConflictError("exists")
                ids.insert(at, rec.id)
                records.insert(at, rec)
            for rec in update:
                at = bisect.bisect_left(ids, rec.id)
                if at == len(ids) or ids[at] != rec.id or records[at].version + 1 != rec.version:
                    raise ConflictError("stale")
                records[at] = rec
            self._ids, self._records = ids, records

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
            start = 0 if after is None else bisect.bisect_right(self._ids, after)
            candidates = self._records[start:]
        found = [
            r
            for r in candidates
            if (owner is None or r.key.owner == owner)
            and (state is None or r.key.state(now) is state)
        ]
        return found[:limit]

    def purge(self, key_id: str) -> bool:
        with self._lock:
            at = self._find(key_id)
            if at is None:
                return False
            del self._ids[at], self._records[at]
            return True

    def close(self) -> None:
        pass


class TestThirdPartyStore(StoreConformance):
    @pytest.fixture
    def store(self) -> KeyStore:
        return SortedListStore()


def test_it_is_a_key_store_by_structure_only() -> None:
    store = SortedListStore()
    assert isinstance(store, KeyStore)
    assert not isinstance(store, SupportsTouch)
    assert SortedListStore.__mro__ == (SortedListStore, object)


def test_it_plugs_into_store_from_url_and_the_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_STORES", dict(_registry._STORES))
    register_store("sortedlist", lambda url, **options: SortedListStore())
    store = store_from_url("sortedlist://")
    keys = KeyManager(store, prefix="acme", hasher=test_hasher())
    issued = keys.create(owner="o")
    assert keys.verify(issued.plaintext).id == issued.key.id
    assert keys.rotate(issued.key.id).key.replaces == issued.key.id
