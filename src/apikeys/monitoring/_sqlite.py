"""The audit trail and usage counters in SQLite, through the standard library's
:mod:`sqlite3` (no extra needed). Tables are created on first use."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from apikeys.errors import ConfigurationError, InvalidArgument, StorageError
from apikeys.events import Event
from apikeys.monitoring._audit import AuditEntry, check_query, event_row, row_entry, to_micros
from apikeys.monitoring._usage import (
    MAX_METHOD_LENGTH,
    MAX_ROUTE_LENGTH,
    AddressRow,
    CounterRow,
    check_retention,
    check_top,
    cutoffs,
)

_PREFIX_RE = re.compile(r"[a-z_][a-z0-9_]{0,30}")
MAX_KEY_IDS = 900  # below SQLite's oldest limit on bound parameters (999)


def check_prefix(prefix: str) -> str:
    """Validate a table-name prefix (it is spliced into SQL, so it is strict).

    Raises:
        ConfigurationError: not lower-case letters, digits and ``_``.
    """
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise ConfigurationError("table_prefix must be lower-case letters, digits and '_'")
    return prefix


def _translate(exc: sqlite3.Error) -> StorageError:
    return StorageError(f"SQLite monitoring store failed ({type(exc).__name__})")


class _Database:
    """One SQLite connection shared by threads under a lock, opened on first use."""

    def __init__(self, path: str | os.PathLike[str], timeout: float, schema: str) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self.schema = schema
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """The connection inside one transaction; driver errors become StorageError."""
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            except sqlite3.Error as exc:
                raise _translate(exc) from exc

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            try:
                conn.row_factory = sqlite3.Row
                if self.path != ":memory:":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(self.schema)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def create_schema(self) -> None:
        with self._lock:
            try:
                self._connect()
            except sqlite3.Error as exc:
                raise _translate(exc) from exc

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class SQLiteAuditStore:
    """The audit trail in a SQLite file (table ``<prefix>audit``).

    One connection, shared by threads; WAL mode, so several processes can write
    the same file. Writes of one batch are one transaction.

    Args:
        path: The database file (``":memory:"`` for a private in-memory one).
        table_prefix: Prefix of the table and index names.
        timeout: Seconds to wait for another writer's lock.

    Raises:
        ConfigurationError: an invalid prefix.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table_prefix: str = "apikeys_",
        timeout: float = 5.0,
    ) -> None:
        p = check_prefix(table_prefix)
        self.table = f"{p}audit"
        self._db = _Database(
            path,
            timeout,
            f"""
            CREATE TABLE IF NOT EXISTS {p}audit (
                id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
                at_us BIGINT NOT NULL,
                type VARCHAR(64) NOT NULL,
                key_id VARCHAR(64),
                owner VARCHAR(200),
                data TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {p}audit_key ON {p}audit (key_id, id);
            CREATE INDEX IF NOT EXISTS {p}audit_owner ON {p}audit (owner, id);
            CREATE INDEX IF NOT EXISTS {p}audit_at ON {p}audit (at_us);
            """,
        )

    def __repr__(self) -> str:
        return f"SQLiteAuditStore({self._db.path!r}, table={self.table!r})"

    def create_schema(self) -> None:
        """Create the table and indexes now (otherwise done on first use).

        Raises:
            StorageError: SQLite failed.
        """
        self._db.create_schema()

    def emit(self, event: Event) -> None:
        """Append one event (blocking)."""
        self.emit_batch((event,))

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Append ``events`` in order, in one transaction.

        Raises:
            StorageError: SQLite failed; nothing was written.
        """
        if not events:
            return
        rows = [event_row(event) for event in events]
        with self._db.transaction(write=True) as conn:
            conn.executemany(
                f"INSERT INTO {self.table} (at_us, type, key_id, owner, data) "  # noqa: S608 (validated prefix)
                "VALUES (:at_us, :type, :key_id, :owner, :data)",
                rows,
            )

    def query(
        self,
        *,
        key_ids: Sequence[str] | None = None,
        owner: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        types: Sequence[str] | None = None,
        after_id: int | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Entries in id order (see :class:`~apikeys.monitoring.AuditStore`).

        Raises:
            InvalidArgument: a limit outside 1-10000 or more than 900 key ids.
            StorageError: SQLite failed.
        """
        sql, params = _audit_select(
            self.table, check_query(limit, key_ids), owner, since, until, types, after_id, limit
        )
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(sql, params).fetchall()
        return [row_entry(row) for row in rows]

    def recent(
        self,
        *,
        key_ids: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        """The newest entries first (see ``AuditHistory``).

        Raises:
            InvalidArgument: a limit outside 1-10000 or more than 900 key ids.
            StorageError: SQLite failed.
        """
        sql, params = _audit_select(
            self.table,
            check_query(limit, key_ids),
            None,
            since,
            until,
            types,
            None,
            limit,
            before_id=before_id,
            newest_first=True,
        )
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(sql, params).fetchall()
        return [row_entry(row) for row in rows]

    def prune(self, before: datetime) -> int:
        """Delete entries older than ``before``; returns how many.

        Raises:
            StorageError: SQLite failed.
        """
        with self._db.transaction(write=True) as conn:
            cursor = conn.execute(
                f"DELETE FROM {self.table} WHERE at_us < ?",  # noqa: S608 (validated prefix)
                (to_micros(before),),
            )
            return int(cursor.rowcount)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


def _audit_select(
    table: str,
    key_ids: list[str] | None,
    owner: str | None,
    since: datetime | None,
    until: datetime | None,
    types: Sequence[str] | None,
    after_id: int | None,
    limit: int,
    *,
    before_id: int | None = None,
    newest_first: bool = False,
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    who: list[str] = []
    if key_ids is not None:
        if len(key_ids) > MAX_KEY_IDS:
            raise InvalidArgument(f"at most {MAX_KEY_IDS} key ids per query")
        if key_ids:
            who.append(f"key_id IN ({', '.join('?' * len(key_ids))})")
            params += key_ids
    if owner is not None:
        who.append("owner = ?")
        params.append(owner)
    if key_ids is not None or owner is not None:
        where.append("(" + " OR ".join(who) + ")" if who else "0 = 1")
    if since is not None:
        where.append("at_us >= ?")
        params.append(to_micros(since))
    if until is not None:
        where.append("at_us < ?")
        params.append(to_micros(until))
    if types is not None:
        kinds = list(types)
        where.append(f"type IN ({', '.join('?' * len(kinds))})" if kinds else "0 = 1")
        params += kinds
    if after_id is not None:
        where.append("id > ?")
        params.append(int(after_id))
    if before_id is not None:
        where.append("id < ?")
        params.append(int(before_id))
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    params.append(limit)
    order = "id DESC" if newest_first else "id"
    return f"SELECT * FROM {table}{clause} ORDER BY {order} LIMIT ?", params  # noqa: S608


class SQLiteUsageStore:
    """Usage counters in a SQLite file (tables ``<prefix>usage`` and
    ``<prefix>usage_ips``); additions are upserts, one transaction per flush.

    Args:
        path: The database file (``":memory:"`` for a private in-memory one).
        table_prefix: Prefix of the table names.
        timeout: Seconds to wait for another writer's lock.
        retention: How long each width is kept (see ``DEFAULT_RETENTION``).

    Raises:
        ConfigurationError: an invalid prefix.
        InvalidArgument: an invalid retention.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table_prefix: str = "apikeys_",
        timeout: float = 5.0,
        retention: dict[str, Any] | None = None,
    ) -> None:
        p = check_prefix(table_prefix)
        self.retention = check_retention(retention)
        self.table = f"{p}usage"
        self.ip_table = f"{p}usage_ips"
        self._db = _Database(
            path,
            timeout,
            f"""
            CREATE TABLE IF NOT EXISTS {p}usage (
                key_id VARCHAR(64) NOT NULL,
                granularity INTEGER NOT NULL,
                bucket BIGINT NOT NULL,
                method VARCHAR({MAX_METHOD_LENGTH}) NOT NULL,
                route VARCHAR({MAX_ROUTE_LENGTH}) NOT NULL,
                status INTEGER NOT NULL,
                count BIGINT NOT NULL,
                PRIMARY KEY (key_id, granularity, bucket, method, route, status)
            ) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS {p}usage_bucket
                ON {p}usage (granularity, bucket, status, count);
            CREATE TABLE IF NOT EXISTS {p}usage_ips (
                key_id VARCHAR(64) NOT NULL,
                day BIGINT NOT NULL,
                ip VARCHAR(64) NOT NULL,
                count BIGINT NOT NULL,
                first_us BIGINT NOT NULL,
                last_us BIGINT NOT NULL,
                PRIMARY KEY (key_id, day, ip)
            ) WITHOUT ROWID;
            """,
        )

    def __repr__(self) -> str:
        return f"SQLiteUsageStore({self._db.path!r}, table={self.table!r})"

    def create_schema(self) -> None:
        """Create the tables now (otherwise done on first use).

        Raises:
            StorageError: SQLite failed.
        """
        self._db.create_schema()

    def add(self, counts: Sequence[CounterRow], addresses: Sequence[AddressRow]) -> None:
        """Add rows in one transaction (see ``UsageStore``).

        Raises:
            StorageError: SQLite failed; nothing was added.
        """
        if not counts and not addresses:
            return
        with self._db.transaction(write=True) as conn:
            conn.executemany(
                f"INSERT INTO {self.table} VALUES (?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
                "ON CONFLICT (key_id, granularity, bucket, method, route, status) "
                "DO UPDATE SET count = count + excluded.count",
                [
                    (r.key_id, r.granularity, r.bucket, r.method, r.route, r.status, r.count)
                    for r in counts
                ],
            )
            conn.executemany(
                f"INSERT INTO {self.ip_table} VALUES (?, ?, ?, ?, ?, ?) "  # noqa: S608
                "ON CONFLICT (key_id, day, ip) DO UPDATE SET count = count + excluded.count, "
                "first_us = min(first_us, excluded.first_us), "
                "last_us = max(last_us, excluded.last_us)",
                [(a.key_id, a.day, a.ip, a.count, a.first_us, a.last_us) for a in addresses],
            )

    def counts(self, key_id: str, *, granularity: int, since: int, until: int) -> list[CounterRow]:
        """Rows of one key and width in ``[since, until)``.

        Raises:
            StorageError: SQLite failed.
        """
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(
                f"SELECT * FROM {self.table} WHERE key_id = ? AND granularity = ? "  # noqa: S608
                "AND bucket >= ? AND bucket < ?",
                (key_id, granularity, since, until),
            ).fetchall()
        return [
            CounterRow(
                r["key_id"],
                r["granularity"],
                r["bucket"],
                r["method"],
                r["route"],
                r["status"],
                r["count"],
            )
            for r in rows
        ]

    def addresses(self, key_id: str, *, since: int, until: int) -> list[AddressRow]:
        """Address rows of one key with a day in ``[since, until)``.

        Raises:
            StorageError: SQLite failed.
        """
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(
                f"SELECT * FROM {self.ip_table} WHERE key_id = ? AND day >= ? AND day < ?",  # noqa: S608
                (key_id, since, until),
            ).fetchall()
        return [
            AddressRow(r["key_id"], r["day"], r["ip"], r["count"], r["first_us"], r["last_us"])
            for r in rows
        ]

    def totals(self, *, granularity: int, since: int, until: int) -> list[tuple[int, int, int]]:
        """Requests of all keys per bucket and status (see ``UsageSummaries``).

        Raises:
            StorageError: SQLite failed.
        """
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(
                f"SELECT bucket, status, SUM(count) FROM {self.table} "  # noqa: S608
                "WHERE granularity = ? AND bucket >= ? AND bucket < ? "
                "GROUP BY bucket, status ORDER BY bucket, status",
                (granularity, since, until),
            ).fetchall()
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]

    def top(
        self, dimension: str, *, granularity: int, since: int, until: int, limit: int = 10
    ) -> list[tuple[str, int]]:
        """The busiest keys or routes (see ``UsageSummaries``).

        Raises:
            InvalidArgument: an unknown dimension or a bad limit.
            StorageError: SQLite failed.
        """
        column = check_top(dimension, limit)  # one of two fixed names: safe to splice
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(
                f"SELECT {column}, SUM(count) AS n FROM {self.table} "  # noqa: S608
                "WHERE granularity = ? AND bucket >= ? AND bucket < ? "
                f"GROUP BY {column} ORDER BY n DESC, {column} LIMIT ?",
                (granularity, since, until, limit),
            ).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    def prune(self, now: datetime) -> int:
        """Delete buckets older than the retention; returns how many rows went.

        Raises:
            StorageError: SQLite failed.
        """
        removed = 0
        with self._db.transaction(write=True) as conn:
            for width, cutoff in cutoffs(self.retention, now).items():
                removed += conn.execute(
                    f"DELETE FROM {self.table} WHERE granularity = ? AND bucket < ?",  # noqa: S608
                    (width, cutoff),
                ).rowcount
                if width == 86_400:
                    removed += conn.execute(
                        f"DELETE FROM {self.ip_table} WHERE day < ?",  # noqa: S608
                        (cutoff,),
                    ).rowcount
        return removed

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
