"""Every store that ships with apikeys passes the one conformance suite, sync and
async, against real SQLite files and the real PostgreSQL and MariaDB servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apikeys.storage import (
    AsyncSQLAlchemyStore,
    KeyStore,
    MemoryStore,
    SQLAlchemyStore,
    SQLiteStore,
)
from apikeys.testing import StoreConformance, blocking_store


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> KeyStore:
        return MemoryStore()


class TestSQLiteStoreFile(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[KeyStore]:
        store = SQLiteStore(tmp_path / "keys.db")
        yield store
        store.close()


class TestSQLiteStoreInMemory(StoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[KeyStore]:
        store = SQLiteStore(":memory:")
        yield store
        store.close()


class TestSQLAlchemyStoreSQLite(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[KeyStore]:
        store = SQLAlchemyStore(f"sqlite+pysqlite:///{tmp_path / 'keys.db'}")
        yield store
        store.close()


@pytest.mark.postgres
class TestSQLAlchemyStorePostgres(StoreConformance):
    @pytest.fixture
    def store(self, pg: str) -> Iterator[KeyStore]:
        store = SQLAlchemyStore(pg)
        yield store
        store.close()


@pytest.mark.mariadb
class TestSQLAlchemyStoreMariaDB(StoreConformance):
    @pytest.fixture
    def store(self, mariadb: str) -> Iterator[KeyStore]:
        store = SQLAlchemyStore(mariadb)
        yield store
        store.close()


class TestMemoryStoreAsync(StoreConformance):
    """MemoryStore's awaitable methods, driven through the async protocol."""

    @pytest.fixture
    def store(self) -> Iterator[KeyStore]:
        with blocking_store(MemoryStore) as store:
            yield store


class TestAsyncSQLAlchemyStoreSQLite(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[KeyStore]:
        url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
        with blocking_store(lambda: AsyncSQLAlchemyStore(url)) as store:
            yield store


@pytest.mark.postgres
class TestAsyncSQLAlchemyStorePostgres(StoreConformance):
    @pytest.fixture
    def store(self, pg: str) -> Iterator[KeyStore]:
        with blocking_store(lambda: AsyncSQLAlchemyStore(pg)) as store:
            yield store


@pytest.mark.mariadb
class TestAsyncSQLAlchemyStoreMariaDB(StoreConformance):
    @pytest.fixture
    def store(self, mariadb: str) -> Iterator[KeyStore]:
        url = mariadb.replace("mysql+pymysql://", "mysql+aiomysql://")
        with blocking_store(lambda: AsyncSQLAlchemyStore(url)) as store:
            yield store
