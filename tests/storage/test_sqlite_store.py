"""SQLiteStore specifics: schema and its version, WAL, threads, processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from conformance import NOW, record

from apikeys import ConfigurationError, KeyManager, StorageError
from apikeys.storage import SQLAlchemyStore, SQLiteStore, _schema, _sqlite
from apikeys.testing import ManualClock, test_hasher


def test_schema_is_created_on_first_use_with_its_version(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = SQLiteStore(path)
    assert not path.exists()
    store.get("0000000000000000")
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT id, version FROM apikeys_schema").fetchall() == [(1, 1)]
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = raw.execute("PRAGMA index_list(apikeys_keys)").fetchall()
        assert "ix_apikeys_keys_owner" in {row[1] for row in indexes}
        plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM apikeys_keys WHERE id = ?", ("x",)
        ).fetchall()
        assert "USING INDEX" in str(plan) or "PRIMARY KEY" in str(plan)
    finally:
        raw.close()
    store.close()
    # Opening again leaves the single version row alone.
    again = SQLiteStore(path)
    again.get("0000000000000000")
    again.close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT count(*) FROM apikeys_schema").fetchone() == (1,)
    raw.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    SQLiteStore(path).close()
    store = SQLiteStore(path)
    store.get("0000000000000000")
    store.close()
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("UPDATE apikeys_schema SET version = 99")
    raw.close()
    store = SQLiteStore(path)
    with pytest.raises(ConfigurationError, match="schema version 99"):
        store.get("0000000000000000")
    store.close()


def test_files_are_shared_with_sqlalchemy_store(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    plain, viasa = record(), record(owner="other", expires_at=NOW)
    first = SQLiteStore(path)
    first.write(insert=[plain])
    second = SQLAlchemyStore(f"sqlite+pysqlite:///{path}")
    assert second.get(plain.id) == plain
    second.write(insert=[viasa])
    assert first.get(viasa.id) == viasa
    assert [r.id for r in first.list(now=NOW)] == [r.id for r in second.list(now=NOW)]
    second.close()
    first.close()


def test_each_thread_has_its_own_connection(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keys.db")
    seen: list[object] = []

    def grab() -> None:
        seen.append(store._connection())
        store.get("0000000000000000")

    threads = [threading.Thread(target=grab) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    grab()
    assert len({id(c) for c in seen}) == 4
    store.close()


def test_a_forked_child_opens_fresh_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "keys.db")
    rec = record()
    store.write(insert=[rec])
    parent = store._connection()
    real_pid = _sqlite.os.getpid()
    monkeypatch.setattr(_sqlite.os, "getpid", lambda: real_pid + 1)
    assert store.get(rec.id) == rec
    child = store._connection()
    assert child is not parent
    assert store._inherited == [parent]
    store.close()
    monkeypatch.undo()
    parent.conn.close()


def test_closed_store_raises_storage_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keys.db")
    store.get("0000000000000000")
    store.close()
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.get("0000000000000000")


def test_a_locked_database_is_a_storage_error_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = SQLiteStore(path, timeout=0.05)
    store.get("0000000000000000")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match="locked"):
            store.write(insert=[record()])
        assert store.get("0000000000000000") is None  # readers are not blocked (WAL)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.write(insert=[record()])
    store.close()


WORKER = textwrap.dedent(
    """
    import json, sys
    from apikeys import ConflictError
    from apikeys.storage import SQLiteStore
    path, counter_id, worker, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    sys.path.insert(0, sys.argv[5])
    from conformance import bumped, record
    store = SQLiteStore(path, timeout=30)
    inserted, conflicts = [], 0
    for n in range(rounds):
        rec = record(owner=f"worker-{worker}")
        store.write(insert=[rec])
        inserted.append(rec.id)
        while True:
            current = store.get(counter_id)
            count = current.key.metadata["count"] + 1
            try:
                store.write(update=[bumped(current, metadata={"count": count})])
                break
            except ConflictError:
                conflicts += 1
    store.close()
    print(json.dumps({"inserted": inserted, "conflicts": conflicts}))
    """
)


def test_two_processes_share_one_file_without_losing_writes(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = SQLiteStore(path)
    counter = record(metadata={"count": 0})
    store.write(insert=[counter])
    rounds = 40
    here = str(Path(__file__).parent)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), counter.id, str(w), str(rounds), here],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in (1, 2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    final = store.get(counter.id)
    assert final is not None
    assert final.key.metadata["count"] == 2 * rounds
    assert final.version == 1 + 2 * rounds
    for w, result in zip((1, 2), results, strict=True):
        listed = store.list(owner=f"worker-{w}", now=NOW, limit=1000)
        assert sorted(r.id for r in listed) == sorted(result["inserted"])
    store.close()


def test_keys_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    keys = KeyManager(SQLiteStore(path), prefix="acme", hasher=test_hasher(), clock=ManualClock())
    issued = keys.create(owner="o")
    keys.close()
    again = KeyManager(SQLiteStore(path), prefix="acme", hasher=test_hasher(), clock=ManualClock())
    assert again.verify(issued.plaintext).id == issued.key.id
    again.close()


def test_an_older_schema_is_upgraded_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.db"
    old = SQLiteStore(path)
    rec = record()
    old.write(insert=[rec])
    old.close()
    monkeypatch.setattr(_schema, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(
        _schema, "UPGRADES", {1: ("ALTER TABLE apikeys_keys ADD COLUMN note TEXT",)}
    )
    upgraded = SQLiteStore(path)
    assert upgraded.get(rec.id) == rec
    upgraded.close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT version FROM apikeys_schema").fetchall() == [(2,)]
    assert "note" in {row[1] for row in raw.execute("PRAGMA table_info(apikeys_keys)")}
    raw.close()


def test_a_missing_upgrade_step_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keys.db"
    SQLiteStore(path).get("0000000000000000")
    monkeypatch.setattr(_schema, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(_schema, "UPGRADES", {1: ()})
    store = SQLiteStore(path)
    with pytest.raises(ConfigurationError, match="no upgrade from apikeys schema version 2"):
        store.get("0000000000000000")
    store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT version FROM apikeys_schema").fetchall() == [(1,)]
    raw.close()
