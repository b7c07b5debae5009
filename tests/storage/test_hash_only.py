"""No plaintext secret ever reaches a store: the SQLite file's bytes and the SQL
servers' table dumps hold the hash, never the key or its secret."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy
from conformance import NOW

from apikeys import IssuedKey, KeyManager
from apikeys._keyformat import parse
from apikeys.storage import KeyStore, SQLAlchemyStore, SQLiteStore
from apikeys.testing import ManualClock, test_hasher


def exercise(store: KeyStore) -> list[IssuedKey]:
    """Issue, verify (the re-hash and touch paths write too), rotate and revoke."""
    keys = KeyManager(
        store,
        prefix="acme",
        hasher=test_hasher(),
        clock=ManualClock(NOW),
        touch_interval=timedelta(0),
    )
    first = keys.create(owner="o", scopes=["a:b"], metadata={"note": "x"})
    keys.verify(first.plaintext, ip="10.0.0.1")
    second = keys.rotate(first.key.id, grace=timedelta(hours=1))
    keys.verify(second.plaintext)
    third = keys.create(owner="o")
    keys.revoke(third.key.id)
    return [first, second, third]


def secrets_of(issued: list[IssuedKey]) -> list[str]:
    found = []
    for key in issued:
        found.append(key.plaintext)
        found.append(parse(key.plaintext, frozenset({"acme"})).secret)
    return found


def assert_hash_only(dump: bytes, issued: list[IssuedKey], store: KeyStore) -> None:
    for secret in secrets_of(issued):
        assert secret.encode() not in dump
        assert secret.encode("utf-16-le") not in dump
    for key in issued:
        record = store.get(key.key.id)
        assert record is not None
        # The dump is really the data: the id and the hash are there.
        assert key.key.id.encode() in dump
        assert record.secret_hash.encode() in dump


@pytest.mark.parametrize("kind", ["sqlite", "sqlalchemy"])
def test_sqlite_file_holds_no_secret(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store: KeyStore = (
        SQLiteStore(path) if kind == "sqlite" else SQLAlchemyStore(f"sqlite+pysqlite:///{path}")
    )
    issued = exercise(store)
    # Read the bytes while the store is open (the WAL holds recent pages) and after.
    live = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert_hash_only(live, issued, store)
    store.close()
    closed = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    reopened = SQLiteStore(path)
    assert_hash_only(closed, issued, reopened)
    reopened.close()


def _dump(engine: sqlalchemy.Engine, query: str) -> bytes:
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(query)).all()
    return "\n".join(str(value) for row in rows for value in row).encode()


@pytest.mark.postgres
def test_postgres_table_dump_holds_no_secret(pg: str) -> None:
    store = SQLAlchemyStore(pg)
    issued = exercise(store)
    engine = sqlalchemy.create_engine(pg)
    dump = _dump(engine, "SELECT t::text FROM apikeys_keys AS t")
    engine.dispose()
    assert_hash_only(dump, issued, store)
    store.close()


@pytest.mark.mariadb
def test_mariadb_table_dump_holds_no_secret(mariadb: str) -> None:
    store = SQLAlchemyStore(mariadb)
    issued = exercise(store)
    engine = sqlalchemy.create_engine(mariadb)
    columns = ", ".join(f"COALESCE(CAST(`{c.name}` AS CHAR), '')" for c in store._sql.table.c)
    dump = _dump(engine, f"SELECT CONCAT_WS('|', {columns}) FROM apikeys_keys")
    engine.dispose()
    assert_hash_only(dump, issued, store)
    store.close()
