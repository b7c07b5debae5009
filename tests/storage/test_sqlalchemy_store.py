"""SQLAlchemyStore specifics: the exposed tables, an existing engine, the schema
version, auto-creation, and the column types each database gets."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy
from conformance import NOW, record

from apikeys import ConfigurationError, StorageError
from apikeys.storage import SQLAlchemyStore, _schema, keys_table, metadata


def test_tables_are_exposed_for_migrations() -> None:
    # Every table apikeys creates, monitoring included (tests/storage/test_alembic.py).
    assert {"apikeys_keys", "apikeys_schema", "apikeys_audit"} <= set(metadata.tables)
    assert metadata.tables["apikeys_keys"] is keys_table
    assert [c.name for c in keys_table.primary_key.columns] == ["id"]
    owner_indexes = [i for i in keys_table.indexes if i.columns.keys()[0] == "owner"]
    assert [i.name for i in owner_indexes] == ["ix_apikeys_keys_owner"]
    assert "secret_hash" in keys_table.c
    assert not {"secret", "plaintext", "key"} & set(keys_table.c.keys())


def test_ddl_per_dialect() -> None:
    from sqlalchemy.dialects import mysql, postgresql, sqlite
    from sqlalchemy.schema import CreateTable

    pg = str(CreateTable(keys_table).compile(dialect=postgresql.dialect()))
    assert 'id VARCHAR(64) COLLATE "C" NOT NULL' in pg
    assert "created_at TIMESTAMP WITH TIME ZONE NOT NULL" in pg
    my = str(CreateTable(keys_table).compile(dialect=mysql.dialect()))
    assert "created_at DATETIME(6) NOT NULL" in my
    assert "owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL" in my
    assert "ENGINE=InnoDB" in my
    lite = str(CreateTable(keys_table).compile(dialect=sqlite.dialect()))
    assert "created_at DATETIME NOT NULL" in lite


def test_an_existing_engine_is_used_and_left_open(tmp_path: Path) -> None:
    engine = sqlalchemy.create_engine(f"sqlite+pysqlite:///{tmp_path / 'app.db'}")
    store = SQLAlchemyStore(engine)
    assert store.engine is engine
    rec = record()
    store.write(insert=[rec])
    store.close()
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT id FROM apikeys_keys")).scalar() == rec.id
    engine.dispose()


def test_create_schema_is_idempotent_and_records_the_version(tmp_path: Path) -> None:
    url = f"sqlite+pysqlite:///{tmp_path / 'keys.db'}"
    store = SQLAlchemyStore(url, auto_create=False)
    store.create_schema()
    store.create_schema()
    SQLAlchemyStore(url).create_schema()
    with store.engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("SELECT id, version FROM apikeys_schema")).all()
    assert [tuple(r) for r in rows] == [(1, 1)]
    store.close()


def test_without_auto_create_missing_tables_are_a_storage_error(tmp_path: Path) -> None:
    store = SQLAlchemyStore(f"sqlite+pysqlite:///{tmp_path / 'keys.db'}", auto_create=False)
    with pytest.raises(StorageError, match="apikeys_keys"):
        store.get("0000000000000000")
    store.create_schema()
    assert store.get("0000000000000000") is None
    store.close()


def test_tables_made_by_the_applications_migrations_are_used(tmp_path: Path) -> None:
    engine = sqlalchemy.create_engine(f"sqlite+pysqlite:///{tmp_path / 'app.db'}")
    metadata.create_all(engine)  # what an Alembic migration of `metadata` does
    store = SQLAlchemyStore(engine, auto_create=False)
    rec = record()
    store.write(insert=[rec])
    assert store.get(rec.id) == rec
    store.close()
    engine.dispose()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+pysqlite:///{tmp_path / 'keys.db'}"
    SQLAlchemyStore(url).create_schema()
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE apikeys_schema SET version = 2"))
    engine.dispose()
    store = SQLAlchemyStore(url)
    with pytest.raises(ConfigurationError, match="schema version 2"):
        store.get("0000000000000000")
    store.close()


def test_in_memory_sqlite_is_shared_by_threads() -> None:
    import threading

    store = SQLAlchemyStore("sqlite+pysqlite://")
    rec = record()
    store.write(insert=[rec])
    found = []
    thread = threading.Thread(target=lambda: found.append(store.get(rec.id)))
    thread.start()
    thread.join()
    assert found == [rec]
    store.close()


@pytest.mark.postgres
def test_postgres_column_types(pg: str) -> None:
    store = SQLAlchemyStore(pg)
    store.write(insert=[record(expires_at=NOW)])
    with store.engine.connect() as conn:
        types = dict(
            conn.execute(
                sqlalchemy.text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'apikeys_keys'"
                )
            ).all()
        )
        collation = conn.execute(
            sqlalchemy.text(
                "SELECT collation_name FROM information_schema.columns "
                "WHERE table_name = 'apikeys_keys' AND column_name = 'id'"
            )
        ).scalar()
    assert types["created_at"] == "timestamp with time zone"
    assert types["version"] == "integer"
    assert collation == "C"
    store.close()


@pytest.mark.mariadb
def test_mariadb_keeps_microseconds_and_utc(mariadb: str) -> None:
    store = SQLAlchemyStore(mariadb)
    rec = record(expires_at=NOW.replace(microsecond=123456))
    store.write(insert=[rec])
    with store.engine.connect() as conn:
        raw = conn.execute(
            sqlalchemy.text("SELECT CAST(expires_at AS CHAR) FROM apikeys_keys")
        ).scalar()
    assert raw == "2026-01-01 12:00:00.123456"
    store.close()


def test_an_older_schema_is_upgraded_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+pysqlite:///{tmp_path / 'keys.db'}"
    old = SQLAlchemyStore(url)
    rec = record()
    old.write(insert=[rec])
    old.close()
    monkeypatch.setattr(_schema, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(
        _schema, "UPGRADES", {1: ("ALTER TABLE apikeys_keys ADD COLUMN note TEXT",)}
    )
    upgraded = SQLAlchemyStore(url)
    assert upgraded.get(rec.id) == rec
    with upgraded.engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT version FROM apikeys_schema")).scalar() == 2
        assert conn.execute(sqlalchemy.text("SELECT note FROM apikeys_keys")).scalar() is None
    upgraded.close()
    # Migrations-owned tables (auto_create=False) are never altered by the store.
    monkeypatch.setattr(_schema, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(_schema, "UPGRADES", {2: ("ALTER TABLE apikeys_keys ADD COLUMN x TEXT",)})
    hands_off = SQLAlchemyStore(url, auto_create=False)
    assert hands_off.get(rec.id) == rec
    with hands_off.engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT version FROM apikeys_schema")).scalar() == 2
    hands_off.close()
