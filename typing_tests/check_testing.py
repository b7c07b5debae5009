"""apikeys.testing type-checks: the helpers, a StoreConformance subclass, an async
store through blocking_store, and FastAPI's use_manager."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apikeys import AsyncKeyManager, KeyManager
from apikeys.fastapi import APIKeyAuth
from apikeys.storage import KeyStore, MemoryStore
from apikeys.testing import (
    BlockingStore,
    ManualClock,
    StoreConformance,
    auth_headers,
    blocking_store,
    make_manager,
)


class TestMyStore(StoreConformance):
    concurrent_writes = False

    @pytest.fixture
    def store(self) -> Iterator[KeyStore]:
        with blocking_store(MemoryStore) as wrapped:
            as_blocking: BlockingStore = wrapped
            yield as_blocking


def helpers() -> None:
    keys: KeyManager = make_manager("acme", clock=ManualClock())
    headers: dict[str, str] = auth_headers("acme_x", scheme="Bearer")
    auth = APIKeyAuth(keys)
    with auth.use_manager(make_manager()) as used:
        manager: KeyManager | AsyncKeyManager = used
    del headers, manager
