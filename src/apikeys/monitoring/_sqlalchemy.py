"""The audit trail and usage counters through SQLAlchemy Core: PostgreSQL,
MySQL/MariaDB and SQLite. Needs ``pip install 'apikeys[sqlalchemy]'`` (plus the
driver: ``[postgres]`` or ``[mysql]``). Tables are created on first use."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from apikeys.errors import ConfigurationError, InvalidArgument, StorageError
from apikeys.events import Event
from apikeys.monitoring._audit import AuditEntry, check_query, event_row, row_entry, to_micros
from apikeys.monitoring._sqlite import MAX_KEY_IDS, check_prefix
from apikeys.monitoring._usage import (
    MAX_METHOD_LENGTH,
    MAX_ROUTE_LENGTH,
    AddressRow,
    CounterRow,
    check_retention,
    check_top,
    cutoffs,
)

_UPSERT_DIALECTS = ("postgresql", "sqlite", "mysql", "mariadb")


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "SQL monitoring stores need SQLAlchemy: pip install 'apikeys[sqlalchemy]'"
        ) from exc
    return sqlalchemy


def audit_table(metadata: Any, prefix: str = "apikeys_") -> Any:
    """Define the audit table (``<prefix>audit``) and its indexes in ``metadata``.

    Args:
        metadata: A :class:`sqlalchemy.MetaData`.
        prefix: Prefix of the table and index names (checked by the caller).

    Returns:
        The :class:`sqlalchemy.Table`.
    """
    sa = _sqlalchemy()
    p = prefix
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    return sa.Table(
        f"{p}audit",
        metadata,
        sa.Column("id", big, primary_key=True, autoincrement=True),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64)),
        sa.Column("owner", sa.String(200)),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Index(f"{p}audit_key", "key_id", "id"),
        sa.Index(f"{p}audit_owner", "owner", "id"),
        sa.Index(f"{p}audit_at", "at_us"),
    )


def usage_tables(metadata: Any, prefix: str = "apikeys_") -> tuple[Any, Any]:
    """Define the usage counter tables (``<prefix>usage``, ``<prefix>usage_ips``).

    Args:
        metadata: A :class:`sqlalchemy.MetaData`.
        prefix: Prefix of the table and index names (checked by the caller).

    Returns:
        The counters table and the per-address table.
    """
    sa = _sqlalchemy()
    p = prefix
    key = sa.String(64)
    table = sa.Table(
        f"{p}usage",
        metadata,
        sa.Column("key_id", key, primary_key=True),
        sa.Column("granularity", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("bucket", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("method", sa.String(MAX_METHOD_LENGTH), primary_key=True),
        sa.Column("route", sa.String(MAX_ROUTE_LENGTH), primary_key=True),
        sa.Column("status", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        # Covers the cross-key totals (and, with the key columns, top keys and routes).
        sa.Index(f"{p}usage_bucket", "granularity", "bucket", "status", "count"),
    )
    ip_table = sa.Table(
        f"{p}usage_ips",
        metadata,
        sa.Column("key_id", key, primary_key=True),
        sa.Column("day", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("ip", sa.String(64), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_us", sa.BigInteger(), nullable=False),
        sa.Column("last_us", sa.BigInteger(), nullable=False),
    )
    return table, ip_table


class _Engine:
    """An engine (made from a URL, or the caller's), tables made on first use, and
    the one seam where driver errors become StorageError."""

    def __init__(self, url_or_engine: Any, engine_options: dict[str, Any] | None) -> None:
        self.sa = _sqlalchemy()
        if isinstance(url_or_engine, str | self.sa.engine.URL):
            try:
                self.engine = self.sa.create_engine(
                    url_or_engine, pool_pre_ping=True, **(engine_options or {})
                )
            except (ImportError, self.sa.exc.ArgumentError) as exc:
                raise ConfigurationError(
                    f"cannot make an engine for this URL ({exc}); is its driver installed? "
                    "pip install 'apikeys[postgres]' or 'apikeys[mysql]'"
                ) from exc
            self.owned = True
        elif isinstance(url_or_engine, self.sa.engine.Engine):
            self.engine = url_or_engine
            self.owned = False
        else:
            raise ConfigurationError("give a database URL or a sqlalchemy Engine")
        self.metadata = self.sa.MetaData()
        self._created = False

    @property
    def dialect(self) -> str:
        return str(self.engine.dialect.name)

    @contextmanager
    def begin(self) -> Iterator[Any]:
        try:
            if not self._created:
                self.create_schema()
            with self.engine.begin() as conn:
                yield conn
        except self.sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"SQL monitoring store failed ({type(exc).__name__})") from exc

    def create_schema(self) -> None:
        try:
            self.metadata.create_all(self.engine, checkfirst=True)
        except self.sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"SQL monitoring store failed ({type(exc).__name__})") from exc
        self._created = True

    def close(self) -> None:
        if self.owned:
            self.engine.dispose()


class SQLAlchemyAuditStore:
    """The audit trail in a SQL table (``<prefix>audit``) through SQLAlchemy Core.

    Args:
        url: A SQLAlchemy URL (``postgresql+psycopg://…``, ``mysql+pymysql://…``,
            ``sqlite:///file.db``) or an ``Engine`` of yours (not disposed by
            :meth:`close`).
        table_prefix: Prefix of the table and index names.
        engine_options: Extra arguments of ``create_engine`` (pool sizes...).

    Raises:
        ConfigurationError: SQLAlchemy or the URL's driver is missing, or an
            invalid prefix.
    """

    def __init__(
        self,
        url: Any,
        *,
        table_prefix: str = "apikeys_",
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        p = check_prefix(table_prefix)
        self._db = _Engine(url, engine_options)
        self.table = audit_table(self._db.metadata, p)

    def __repr__(self) -> str:
        return f"SQLAlchemyAuditStore(dialect={self._db.dialect!r}, table={self.table.name!r})"

    def create_schema(self) -> None:
        """Create the table and indexes now (otherwise done on first use).

        Raises:
            StorageError: the database failed.
        """
        self._db.create_schema()

    def emit(self, event: Event) -> None:
        """Append one event (blocking)."""
        self.emit_batch((event,))

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Append ``events`` in order, in one transaction.

        Raises:
            StorageError: the database failed; nothing was written.
        """
        if not events:
            return
        rows = [event_row(event) for event in events]
        with self._db.begin() as conn:
            conn.execute(self.table.insert(), rows)

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
            StorageError: the database failed.
        """
        ids = check_query(limit, key_ids)
        sa, c = self._db.sa, self.table.c
        conditions: list[Any] = []
        who: list[Any] = []
        if ids is not None:
            if len(ids) > MAX_KEY_IDS:
                raise InvalidArgument(f"at most {MAX_KEY_IDS} key ids per query")
            if ids:
                who.append(c.key_id.in_(ids))
        if owner is not None:
            who.append(c.owner == owner)
        if ids is not None or owner is not None:
            conditions.append(sa.or_(*who) if who else sa.false())
        if since is not None:
            conditions.append(c.at_us >= to_micros(since))
        if until is not None:
            conditions.append(c.at_us < to_micros(until))
        if types is not None:
            conditions.append(c.type.in_(list(types)))
        if after_id is not None:
            conditions.append(c.id > int(after_id))
        statement = sa.select(self.table).where(*conditions).order_by(c.id).limit(limit)
        with self._db.begin() as conn:
            rows = conn.execute(statement).mappings().all()
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
            StorageError: the database failed.
        """
        ids = check_query(limit, key_ids)
        if ids is not None and len(ids) > MAX_KEY_IDS:
            raise InvalidArgument(f"at most {MAX_KEY_IDS} key ids per query")
        c = self.table.c
        conditions: list[Any] = []
        if ids is not None:
            conditions.append(c.key_id.in_(ids))
        if types is not None:
            conditions.append(c.type.in_(list(types)))
        if since is not None:
            conditions.append(c.at_us >= to_micros(since))
        if until is not None:
            conditions.append(c.at_us < to_micros(until))
        if before_id is not None:
            conditions.append(c.id < int(before_id))
        statement = (
            self._db.sa.select(self.table).where(*conditions).order_by(c.id.desc()).limit(limit)
        )
        with self._db.begin() as conn:
            rows = conn.execute(statement).mappings().all()
        return [row_entry(row) for row in rows]

    def prune(self, before: datetime) -> int:
        """Delete entries older than ``before``; returns how many.

        Raises:
            StorageError: the database failed.
        """
        with self._db.begin() as conn:
            result = conn.execute(self.table.delete().where(self.table.c.at_us < to_micros(before)))
            return int(result.rowcount)

    def close(self) -> None:
        """Dispose of the engine, if this store made it."""
        self._db.close()


class SQLAlchemyUsageStore:
    """Usage counters in SQL tables (``<prefix>usage``, ``<prefix>usage_ips``)
    through SQLAlchemy Core. Additions are native upserts (``ON CONFLICT`` on
    PostgreSQL and SQLite, ``ON DUPLICATE KEY`` on MySQL/MariaDB), written in
    primary-key order so concurrent flushes from many processes do not deadlock.

    Args:
        url: A SQLAlchemy URL or an ``Engine`` of yours (not disposed by :meth:`close`).
        table_prefix: Prefix of the table names.
        engine_options: Extra arguments of ``create_engine``.
        retention: How long each width is kept (see ``DEFAULT_RETENTION``).

    Raises:
        ConfigurationError: SQLAlchemy or the driver is missing, an invalid
            prefix, or a database without upserts (not PostgreSQL, MySQL,
            MariaDB or SQLite).
        InvalidArgument: an invalid retention.
    """

    def __init__(
        self,
        url: Any,
        *,
        table_prefix: str = "apikeys_",
        engine_options: dict[str, Any] | None = None,
        retention: dict[str, Any] | None = None,
    ) -> None:
        p = check_prefix(table_prefix)
        self.retention = check_retention(retention)
        self._db = _Engine(url, engine_options)
        if self._db.dialect not in _UPSERT_DIALECTS:
            raise ConfigurationError(
                f"SQLAlchemyUsageStore supports PostgreSQL, MySQL/MariaDB and SQLite, "
                f"not {self._db.dialect}"
            )
        self.table, self.ip_table = usage_tables(self._db.metadata, p)

    def __repr__(self) -> str:
        return f"SQLAlchemyUsageStore(dialect={self._db.dialect!r}, table={self.table.name!r})"

    def create_schema(self) -> None:
        """Create the tables now (otherwise done on first use).

        Raises:
            StorageError: the database failed.
        """
        self._db.create_schema()

    def _upserts(self) -> tuple[Any, Any]:
        dialect = self._db.dialect
        table, ips, func = self.table, self.ip_table, self._db.sa.func
        counts: Any
        addresses: Any
        if dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects import mysql

            counts = mysql.insert(table)
            counts = counts.on_duplicate_key_update(count=table.c.count + counts.inserted.count)
            addresses = mysql.insert(ips)
            new = addresses.inserted
            return counts, addresses.on_duplicate_key_update(
                count=ips.c.count + new.count,
                first_us=func.least(ips.c.first_us, new.first_us),
                last_us=func.greatest(ips.c.last_us, new.last_us),
            )
        if dialect == "postgresql":
            from sqlalchemy.dialects import postgresql as module

            smallest, largest = func.least, func.greatest
        else:
            from sqlalchemy.dialects import sqlite as module  # type: ignore[no-redef]

            smallest, largest = func.min, func.max  # two arguments: SQLite's scalar min/max
        counts = module.insert(table)
        counts = counts.on_conflict_do_update(
            index_elements=[col.name for col in table.primary_key.columns],
            set_={"count": table.c.count + counts.excluded["count"]},
        )
        addresses = module.insert(ips)
        new = addresses.excluded
        addresses = addresses.on_conflict_do_update(
            index_elements=[col.name for col in ips.primary_key.columns],
            set_={
                "count": ips.c.count + new["count"],
                "first_us": smallest(ips.c.first_us, new.first_us),
                "last_us": largest(ips.c.last_us, new.last_us),
            },
        )
        return counts, addresses

    def add(self, counts: Sequence[CounterRow], addresses: Sequence[AddressRow]) -> None:
        """Add rows in one transaction (see ``UsageStore``).

        Raises:
            StorageError: the database failed; nothing was added.
        """
        if not counts and not addresses:
            return
        upsert_counts, upsert_addresses = self._upserts()
        count_rows = sorted(
            (r.key_id, r.granularity, r.bucket, r.method, r.route, r.status, r.count)
            for r in counts
        )
        address_rows = sorted(
            (a.key_id, a.day, a.ip, a.count, a.first_us, a.last_us) for a in addresses
        )
        with self._db.begin() as conn:
            if count_rows:
                names = [col.name for col in self.table.columns]
                conn.execute(upsert_counts, [dict(zip(names, r, strict=True)) for r in count_rows])
            if address_rows:
                names = [col.name for col in self.ip_table.columns]
                conn.execute(
                    upsert_addresses, [dict(zip(names, r, strict=True)) for r in address_rows]
                )

    def counts(self, key_id: str, *, granularity: int, since: int, until: int) -> list[CounterRow]:
        """Rows of one key and width in ``[since, until)``.

        Raises:
            StorageError: the database failed.
        """
        c = self.table.c
        statement = self._db.sa.select(self.table).where(
            c.key_id == key_id, c.granularity == granularity, c.bucket >= since, c.bucket < until
        )
        with self._db.begin() as conn:
            rows = conn.execute(statement).all()
        return [
            CounterRow(
                r.key_id,
                int(r.granularity),
                int(r.bucket),
                r.method,
                r.route,
                int(r.status),
                int(r.count),
            )
            for r in rows
        ]

    def addresses(self, key_id: str, *, since: int, until: int) -> list[AddressRow]:
        """Address rows of one key with a day in ``[since, until)``.

        Raises:
            StorageError: the database failed.
        """
        c = self.ip_table.c
        statement = self._db.sa.select(self.ip_table).where(
            c.key_id == key_id, c.day >= since, c.day < until
        )
        with self._db.begin() as conn:
            rows = conn.execute(statement).all()
        return [AddressRow(r[0], int(r[1]), r[2], int(r[3]), int(r[4]), int(r[5])) for r in rows]

    def totals(self, *, granularity: int, since: int, until: int) -> list[tuple[int, int, int]]:
        """Requests of all keys per bucket and status (see ``UsageSummaries``).

        Raises:
            StorageError: the database failed.
        """
        sa, c = self._db.sa, self.table.c
        statement = (
            sa.select(c.bucket, c.status, sa.func.sum(c.count))
            .where(c.granularity == granularity, c.bucket >= since, c.bucket < until)
            .group_by(c.bucket, c.status)
            .order_by(c.bucket, c.status)
        )
        with self._db.begin() as conn:
            rows = conn.execute(statement).all()
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]

    def top(
        self, dimension: str, *, granularity: int, since: int, until: int, limit: int = 10
    ) -> list[tuple[str, int]]:
        """The busiest keys or routes (see ``UsageSummaries``).

        Raises:
            InvalidArgument: an unknown dimension or a bad limit.
            StorageError: the database failed.
        """
        sa, c = self._db.sa, self.table.c
        column = c[check_top(dimension, limit)]
        total = sa.func.sum(c.count).label("n")
        statement = (
            sa.select(column, total)
            .where(c.granularity == granularity, c.bucket >= since, c.bucket < until)
            .group_by(column)
            .order_by(total.desc(), column)
            .limit(limit)
        )
        with self._db.begin() as conn:
            rows = conn.execute(statement).all()
        return [(str(r[0]), int(r[1])) for r in rows]

    def prune(self, now: datetime) -> int:
        """Delete buckets older than the retention; returns how many rows went.

        Raises:
            StorageError: the database failed.
        """
        removed = 0
        with self._db.begin() as conn:
            for width, cutoff in cutoffs(self.retention, now).items():
                c = self.table.c
                removed += conn.execute(
                    self.table.delete().where(c.granularity == width, c.bucket < cutoff)
                ).rowcount
                if width == 86_400:
                    removed += conn.execute(
                        self.ip_table.delete().where(self.ip_table.c.day < cutoff)
                    ).rowcount
        return removed

    def close(self) -> None:
        """Dispose of the engine, if this store made it."""
        self._db.close()
