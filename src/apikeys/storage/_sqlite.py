"""SQLiteStore: keys in a SQLite file through the standard library (no extra)."""

from __future__ import annotations

import builtins
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from apikeys._models import COLUMNS, KeyRecord, KeyState, record_to_row
from apikeys.errors import ConflictError, StorageError
from apikeys.storage._decoded import DecodedRows, decode_row
from apikeys.storage._schema import (
    DATETIME_COLUMNS,
    KEYS_TABLE,
    OWNER_INDEX,
    SCHEMA_TABLE,
    check_schema_version,
    check_write,
    current_version,
    driver_message,
    duplicate_message,
    state_condition,
    to_sqlite_text,
    upgrade_steps,
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (
    id INTEGER NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    prefix VARCHAR(64) NOT NULL,
    owner VARCHAR(255) NOT NULL,
    name VARCHAR(255),
    scopes TEXT NOT NULL,
    secret_hash VARCHAR(512) NOT NULL,
    created_at DATETIME NOT NULL,
    expires_at DATETIME,
    revoked_at DATETIME,
    revoke_reason TEXT,
    disabled_at DATETIME,
    disabled_reason TEXT,
    last_used_at DATETIME,
    last_used_ip VARCHAR(64),
    allowed_ips TEXT NOT NULL,
    metadata TEXT NOT NULL,
    replaced_by VARCHAR(64),
    replaces VARCHAR(64),
    rate_limits TEXT NOT NULL,
    quota VARCHAR(64),
    version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS {OWNER_INDEX} ON {KEYS_TABLE} (owner, id);
"""

# The f-strings below splice only constant table and column names (S608 is about
# values, which are always bound parameters here).
_SCHEMA_VERSION = f"SELECT version FROM {SCHEMA_TABLE} WHERE id = 1"  # noqa: S608 (constants)
_RECORD_VERSION = f"INSERT INTO {SCHEMA_TABLE} (id, version) VALUES (1, ?)"  # noqa: S608 (constants)
_UPGRADE_VERSION = f"UPDATE {SCHEMA_TABLE} SET version = ? WHERE id = 1"  # noqa: S608 (constants)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM {KEYS_TABLE}"  # noqa: S608 (constants)
_GET = f"{_SELECT} WHERE id = ?"
_INSERT = (
    f"INSERT INTO {KEYS_TABLE} ({', '.join(COLUMNS)}) "  # noqa: S608 (constants)
    f"VALUES ({', '.join(':' + c for c in COLUMNS)})"
)
_UPDATE = (
    f"UPDATE {KEYS_TABLE} SET "  # noqa: S608 (constants)
    + ", ".join(f"{c} = :{c}" for c in COLUMNS if c != "id")
    + " WHERE id = :id AND version = :expected"
)
_TOUCH = f"UPDATE {KEYS_TABLE} SET last_used_at = ?, last_used_ip = ? WHERE id = ?"  # noqa: S608 (constants)
_PURGE = f"DELETE FROM {KEYS_TABLE} WHERE id = ?"  # noqa: S608 (constants)


def _row(record: KeyRecord) -> dict[str, Any]:
    row = record_to_row(record)
    for name in DATETIME_COLUMNS:
        row[name] = to_sqlite_text(row[name])
    return row


class _Connection:
    """One sqlite3 connection with its lock and the process that opened it."""

    __slots__ = ("__weakref__", "conn", "lock", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.pid = os.getpid()


class SQLiteStore:
    """Keys in a SQLite database, through the standard library's :mod:`sqlite3`.

    The embedded default: the quickstart, the CLI and small deployments. The
    tables (``apikeys_keys`` and ``apikeys_schema``, which records the schema
    version) are created on first use; the file is the same shape as
    :class:`~apikeys.storage.SQLAlchemyStore` writes on SQLite, so either store
    opens it.

    Safe from several threads (each thread gets its own connection) and several
    processes on one file (WAL journal, writes in ``BEGIN IMMEDIATE``
    transactions, a busy timeout instead of instant "database is locked"). A
    process that forks opens fresh connections in the child. ``":memory:"``
    gives a private database shared by the threads of this store only, for tests.

    Implements :class:`~apikeys.storage.KeyStore` and
    :class:`~apikeys.storage.SupportsTouch`.

    Args:
        path: The database file (created if missing) or ``":memory:"``.
        timeout: Seconds a statement waits for another writer's lock before
            :class:`~apikeys.errors.StorageError`.

    Example::

        store = SQLiteStore("apikeys.db")
        keys = KeyManager(store, prefix="acme")
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._memory = self.path == ":memory:" or self.path == ""
        self._local = threading.local()
        self._shared: _Connection | None = None
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()
        # Connections inherited across fork() are never touched again, nor closed
        # (SQLite forbids using them in the child); they are kept alive here.
        self._inherited: builtins.list[_Connection] = []
        self._registry_lock = threading.Lock()
        self._schema_ready = False
        self._closed = False
        self._decoded = DecodedRows()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # --- connections ------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if not self._memory:
                conn.execute("PRAGMA journal_mode = WAL")
            if not self._schema_ready:
                self._create_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Create the tables, or upgrade older ones, in one transaction."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
                (SCHEMA_TABLE,),
            ).fetchone()
            version = None
            if found is not None:
                row = conn.execute(_SCHEMA_VERSION).fetchone()
                version = None if row is None else int(row[0])
            check_schema_version(version, self.path)
            if version is None:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(_RECORD_VERSION, (current_version(),))
            elif version < current_version():
                for statement in upgrade_steps(version):
                    conn.execute(statement)
                conn.execute(_UPGRADE_VERSION, (current_version(),))
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        self._schema_ready = True

    def _connection(self) -> _Connection:
        if self._closed:
            raise StorageError(f"{self!r} is closed")
        if self._memory:
            with self._registry_lock:
                if self._shared is None:
                    self._shared = _Connection(self._connect())
                return self._shared
        held: _Connection | None = getattr(self._local, "held", None)
        if held is not None and held.pid == os.getpid():
            return held
        if held is not None:
            self._inherited.append(held)
        held = _Connection(self._connect())
        self._local.held = held
        with self._registry_lock:
            self._open.add(held)
        return held

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The translation seam: a connection (inside one ``BEGIN IMMEDIATE``
        transaction when ``write``); every sqlite3 error leaves as StorageError."""
        try:
            held = self._connection()
            with held.lock:
                conn = held.conn
                if not write:
                    yield conn
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
        except sqlite3.IntegrityError as exc:
            raise ConflictError(duplicate_message(exc, "SQLite")) from exc
        except sqlite3.Error as exc:
            raise StorageError(driver_message(exc, "SQLite")) from exc

    # --- the protocol -----------------------------------------------------------------

    def get(self, key_id: str) -> KeyRecord | None:
        """The record of ``key_id``, or ``None``.

        Raises:
            StorageError: the database failed.
        """
        # The hot path of every verification: no context manager, and a record
        # decoded earlier is reused while its row is unchanged (_decoded.py).
        # sqlite3 keeps the statement prepared in its per-connection cache.
        try:
            held = self._connection()
            with held.lock:
                row = held.conn.execute(_GET, (key_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(driver_message(exc, "SQLite")) from exc
        return self._decoded.record(key_id, row)

    def write(self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()) -> None:
        """Insert and update records in one transaction: all land or none does.

        Raises:
            ConflictError: an inserted id exists, or an updated record's stored
                version is not ``version - 1``.
            StorageError: the database failed.
        """
        check_write(insert, update)
        inserts = [_row(r) for r in insert]
        updates = [{**_row(r), "expected": r.version - 1} for r in update]
        with self._session(write=True) as conn:
            if inserts:
                conn.executemany(_INSERT, inserts)
            for row in updates:
                if conn.execute(_UPDATE, row).rowcount != 1:
                    raise ConflictError(f"key {row['id']!r} changed since it was read")

    def list(
        self,
        *,
        owner: str | None = None,
        state: KeyState | None = None,
        now: datetime,
        limit: int = 100,
        after: str | None = None,
    ) -> builtins.list[KeyRecord]:
        """Records ordered by id after ``after``, filtered by owner and state at ``now``.

        Raises:
            StorageError: the database failed.
        """
        conditions: builtins.list[str] = []
        params: dict[str, Any] = {"limit": limit}
        if owner is not None:
            conditions.append("owner = :owner")
            params["owner"] = owner
        if after is not None:
            conditions.append("id > :after")
            params["after"] = after
        if state is not None:
            condition, uses_now = state_condition(state)
            conditions.append(condition)
            if uses_now:
                params["now"] = to_sqlite_text(now)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"{_SELECT}{where} ORDER BY id LIMIT :limit"
        with self._session() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [decode_row(row) for row in rows]

    def purge(self, key_id: str) -> bool:
        """Delete a record for good; return whether one existed.

        Raises:
            StorageError: the database failed.
        """
        with self._session(write=True) as conn:
            return conn.execute(_PURGE, (key_id,)).rowcount > 0

    def touch(self, key_id: str, *, at: datetime, ip: str | None) -> None:
        """Record a use of ``key_id`` without a version bump (a missing key is ignored).

        Raises:
            StorageError: the database failed.
        """
        with self._session(write=True) as conn:
            conn.execute(_TOUCH, (to_sqlite_text(at), ip, key_id))

    def close(self) -> None:
        """Close every connection this store opened in this process. Later calls
        raise :class:`~apikeys.errors.StorageError`."""
        with self._registry_lock:
            self._closed = True
            held = [c for c in (*self._open, self._shared) if c is not None]
            self._open = weakref.WeakSet()
            self._shared = None
        for connection in held:
            if connection.pid == os.getpid():
                with connection.lock:
                    connection.conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
