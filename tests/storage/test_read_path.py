"""The read path of the SQL stores: a decoded record is reused only while its row
is unchanged, and PostgreSQL's direct psycopg read answers as SQLAlchemy does."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from apikeys import KeyManager, KeyRecord
from apikeys.hashing import HmacHasher
from apikeys.storage import KeyStore, SQLAlchemyStore, SQLiteStore


def _issue(store: KeyStore) -> str:
    keys = KeyManager(store, prefix="acme", hasher=HmacHasher([b"p" * 32]), touch_interval=None)
    return keys.create(owner="o", scopes=["a:read"]).key.id


def _check_reuse(store: KeyStore) -> None:
    key_id = _issue(store)
    first = store.get(key_id)
    assert first is not None
    assert store.get(key_id) is first  # unchanged row: the same decoded record
    at = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    store.touch(key_id, at=at, ip="10.0.0.1")  # type: ignore[attr-defined]
    touched = store.get(key_id)
    assert touched is not None
    assert touched is not first
    assert touched.key.last_used_at == at
    assert touched.key.version == first.key.version
    bumped = KeyRecord(touched.key.model_copy(update={"version": 2, "name": "n"}), "h")
    store.write(update=[bumped])
    again = store.get(key_id)
    assert again is not None
    assert (again.key.name, again.secret_hash, again.key.version) == ("n", "h", 2)
    store.purge(key_id)
    assert store.get(key_id) is None


def test_sqlite_reuses_a_record_only_while_its_row_is_unchanged(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "keys.db") as store:
        _check_reuse(store)


@pytest.mark.postgres
@pytest.mark.parametrize("direct", [True, False])
def test_postgres_read_paths_agree(pg: str, direct: bool) -> None:
    with SQLAlchemyStore(pg, direct_reads=direct) as store:
        assert (store._direct is not None) is direct
        _check_reuse(store)


@pytest.mark.postgres
def test_direct_and_sqlalchemy_reads_decode_alike(pg: str) -> None:
    with SQLAlchemyStore(pg) as direct, SQLAlchemyStore(pg, direct_reads=False) as plain:
        key_id = _issue(direct)
        assert direct.get(key_id) == plain.get(key_id)
        direct.purge(key_id)
