"""Fixtures for the storage tests: SQL databases with the apikeys tables, emptied
before each test that asks for them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from apikeys.storage import SQLAlchemyStore


def _prepared(url: str) -> Iterator[sqlalchemy.Engine]:
    store = SQLAlchemyStore(url)
    store.create_schema()
    store.close()
    engine = sqlalchemy.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_engine(postgres_url: str) -> Iterator[sqlalchemy.Engine]:
    """A plain engine on the session's PostgreSQL database, tables created."""
    yield from _prepared(postgres_url)


@pytest.fixture(scope="session")
def mariadb_engine(mariadb_url: str) -> Iterator[sqlalchemy.Engine]:
    """A plain engine on the session's MariaDB database, tables created."""
    yield from _prepared(mariadb_url)


def empty(engine: sqlalchemy.Engine) -> None:
    """Delete every key row (the tables stay)."""
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM apikeys_keys"))


@pytest.fixture
def pg(pg_engine: sqlalchemy.Engine, postgres_url: str) -> str:
    """The PostgreSQL URL (psycopg), its key table emptied."""
    empty(pg_engine)
    return postgres_url


@pytest.fixture
def mariadb(mariadb_engine: sqlalchemy.Engine, mariadb_url: str) -> str:
    """The MariaDB URL (PyMySQL), its key table emptied."""
    empty(mariadb_engine)
    return mariadb_url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` here (1,000 revocation trials) run only when asked
    for by marker (``pytest -m slow tests/storage``), keeping the default suite short."""
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    here = str(Path(__file__).parent)
    for item in items:
        if item.get_closest_marker("slow") is not None and str(item.path).startswith(here):
            item.add_marker(skip)
