"""Type-checked, never run: the shipped stores satisfy the store protocols."""

from __future__ import annotations

from sqlalchemy import MetaData, Table

from apikeys import AsyncKeyManager, KeyManager
from apikeys.storage import (
    AsyncKeyStore,
    AsyncSQLAlchemyStore,
    AsyncSupportsTouch,
    KeyStore,
    MemoryStore,
    SQLAlchemyStore,
    SQLiteStore,
    SupportsTouch,
    async_store_from_url,
    keys_table,
    metadata,
    register_store,
    store_from_url,
)


def sync_stores() -> None:
    stores: list[KeyStore] = [
        MemoryStore(),
        SQLiteStore("keys.db"),
        SQLAlchemyStore("postgresql+psycopg://app@127.0.0.1/app"),
        store_from_url("sqlite:///keys.db"),
    ]
    touchers: list[SupportsTouch] = [MemoryStore(), SQLiteStore(":memory:")]
    KeyManager(stores[0], prefix="acme")
    del touchers


def async_stores() -> None:
    stores: list[AsyncKeyStore] = [
        MemoryStore(),
        AsyncSQLAlchemyStore("sqlite+aiosqlite:///keys.db"),
        async_store_from_url("postgresql+psycopg://app@127.0.0.1/app"),
    ]
    touchers: list[AsyncSupportsTouch] = [AsyncSQLAlchemyStore("sqlite+aiosqlite://")]
    AsyncKeyManager(stores[0], prefix="acme")
    del touchers


def migrations() -> None:
    target: list[MetaData] = [metadata]
    table: Table = keys_table
    register_store("mine", lambda url, **options: MemoryStore())
    del target, table
