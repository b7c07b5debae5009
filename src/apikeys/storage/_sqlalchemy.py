"""SQLAlchemyStore: keys in PostgreSQL, MariaDB/MySQL or SQLite through
SQLAlchemy 2 Core, plus the tables (:data:`metadata`, :data:`keys_table`) for the
application's own migrations. The async twin shares everything here but I/O."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    exc,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from apikeys._models import COLUMNS, KeyRecord, KeyState, record_to_row, row_to_record
from apikeys.errors import ConfigurationError, ConflictError, StorageError
from apikeys.monitoring._sqlalchemy import audit_table, usage_tables
from apikeys.storage._changes import change_payload
from apikeys.storage._decoded import DecodedRows
from apikeys.storage._pgdirect import DirectReader
from apikeys.storage._schema import (
    KEYS_TABLE,
    OWNER_INDEX,
    SCHEMA_TABLE,
    check_schema_version,
    check_write,
    current_version,
    driver_message,
    duplicate_message,
    redact_url,
    state_condition,
    upgrade_steps,
)

__all__ = ["SQLAlchemyStore", "keys_table", "metadata", "schema_table"]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in every database, to the microsecond.

    PostgreSQL keeps ``timestamptz``; MariaDB/MySQL get ``DATETIME(6)`` and SQLite
    text, both holding naive UTC. Naive values read back are taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("datetimes must be timezone-aware")
        value = value.astimezone(timezone.utc)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class ExactString(TypeDecorator[str]):
    """Text compared and ordered by code point, case-sensitively.

    Key ids are mixed-case base62 and owners arbitrary: the default collations of
    MariaDB (case-insensitive) and of many PostgreSQL databases (locale order)
    would merge or misorder them. PostgreSQL gets ``COLLATE "C"``, MariaDB/MySQL
    ``utf8mb4_bin``; SQLite compares bytes already. (``utf8mb4_bin`` ignores
    trailing spaces, so owner filters there also compare lengths.)
    """

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.VARCHAR(self.length, collation="C"))
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(
                mysql.VARCHAR(self.length, charset="utf8mb4", collation="utf8mb4_bin")
            )
        return dialect.type_descriptor(String(self.length))


def _build_tables(metadata: MetaData) -> tuple[Table, Table]:
    keys = Table(
        KEYS_TABLE,
        metadata,
        Column("id", ExactString(64), primary_key=True),
        Column("prefix", String(64), nullable=False),
        Column("owner", ExactString(255), nullable=False),
        Column("name", String(255)),
        Column("scopes", Text, nullable=False),
        Column("secret_hash", String(512), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("expires_at", UTCDateTime),
        Column("revoked_at", UTCDateTime),
        Column("revoke_reason", Text),
        Column("disabled_at", UTCDateTime),
        Column("disabled_reason", Text),
        Column("last_used_at", UTCDateTime),
        Column("last_used_ip", String(64)),
        Column("allowed_ips", Text, nullable=False),
        Column("metadata", Text, nullable=False),
        Column("replaced_by", ExactString(64)),
        Column("replaces", ExactString(64)),
        Column("rate_limits", Text, nullable=False),
        Column("quota", String(64)),
        Column("version", Integer, nullable=False),
        comment="API keys (apikeys): hashes only, never a plaintext secret",
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    Index(OWNER_INDEX, keys.c.owner, keys.c.id)
    schema = Table(
        SCHEMA_TABLE,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("version", Integer, nullable=False),
        comment="schema version of the apikeys tables",
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    return keys, schema


metadata = MetaData()
"""The :class:`~sqlalchemy.MetaData` holding every table apikeys creates with its
default table prefix: the keys and schema-version tables and the monitoring
tables (audit trail, usage counters). Include it in Alembic's
``target_metadata`` (a list is fine) to manage them with your own migrations."""
keys_table, schema_table = _build_tables(metadata)
"""The key table (``apikeys_keys``) and the one-row schema-version table."""
audit_table(metadata)
usage_tables(metadata)

_DRIVER_EXTRAS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}


def extra_for(url: URL, *, asynchronous: bool) -> str:
    """The apikeys extra that installs the driver of ``url``."""
    if asynchronous:
        return "asyncio" if url.get_backend_name() != "postgresql" else "postgres,asyncio"
    return _DRIVER_EXTRAS.get(url.get_backend_name(), "sqlalchemy")


def parse_url(url: str | URL) -> URL:
    """Parse a SQLAlchemy URL.

    Raises:
        ConfigurationError: the URL is malformed.
    """
    try:
        return make_url(url)
    except (exc.ArgumentError, ValueError):
        shown = redact_url(url) if isinstance(url, str) else "?"
        raise ConfigurationError(f"not a database URL: {shown!r}") from None


def missing_driver(url: URL, error: Exception, *, asynchronous: bool) -> ConfigurationError:
    """The ConfigurationError for a URL whose dialect or driver cannot load."""
    extra = extra_for(url, asynchronous=asynchronous)
    return ConfigurationError(
        f"cannot load the database driver for {url.drivername}:// "
        f"({type(error).__name__}: {error}); pip install 'apikeys[{extra}]' for the "
        "drivers apikeys supports (postgresql+psycopg://, mysql+pymysql://, "
        "mysql+aiomysql://, sqlite+aiosqlite://)"
    )


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """On each new SQLite connection: WAL (persistent in the file) and a busy
    timeout, so several processes share one file."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout = 5000")
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


@contextmanager
def translate(backend: str) -> Iterator[None]:
    """The translation seam of the SQLAlchemy stores: a driver's exception leaves
    as :class:`~apikeys.errors.StorageError` (a duplicate key as
    :class:`~apikeys.errors.ConflictError`), raised ``from`` it."""
    try:
        yield
    except exc.IntegrityError as error:
        raise ConflictError(duplicate_message(error.orig or error, backend)) from error
    except exc.DBAPIError as error:
        raise StorageError(driver_message(error.orig or error, backend)) from error
    except (exc.SQLAlchemyError, OSError) as error:
        raise StorageError(driver_message(error, backend)) from error


class Statements:
    """Every statement a store runs, built once per table."""

    def __init__(self, table: Table, dialect: str) -> None:
        self.table = table
        self.pad_space = dialect in ("mysql", "mariadb")
        c = table.c
        self.get = select(*(c[name] for name in COLUMNS)).where(c.id == bindparam("key_id"))
        self.insert = insert(table)
        self.update = (
            update(table)
            .where(c.id == bindparam("b_id"), c.version == bindparam("b_expected"))
            .values({name: bindparam(name) for name in COLUMNS if name != "id"})
        )
        self.touch = (
            update(table)
            .where(c.id == bindparam("b_id"))
            .values(last_used_at=bindparam("at"), last_used_ip=bindparam("ip"))
        )
        self.purge = delete(table).where(c.id == bindparam("key_id"))
        self.notify = text("SELECT pg_notify(:channel, :payload)")
        self.now_type = UTCDateTime()

    def update_params(self, record: KeyRecord) -> dict[str, Any]:
        row = record_to_row(record)
        row["b_id"] = row.pop("id")
        row["b_expected"] = record.version - 1
        return row

    def list(
        self,
        *,
        owner: str | None,
        state: KeyState | None,
        now: datetime,
        limit: int,
        after: str | None,
    ) -> Any:
        c = self.table.c
        conditions: builtins.list[ColumnElement[bool]] = []
        if owner is not None:
            conditions.append(c.owner == owner)
            if self.pad_space:
                conditions.append(func.char_length(c.owner) == len(owner))
        if after is not None:
            conditions.append(c.id > after)
        if state is not None:
            condition, uses_now = state_condition(state)
            clause = text(condition)
            if uses_now:
                clause = clause.bindparams(bindparam("now", value=now, type_=self.now_type))
            conditions.append(clause)  # type: ignore[arg-type]
        query = select(*(c[name] for name in COLUMNS)).order_by(c.id).limit(limit)
        return query.where(and_(*conditions)) if conditions else query


def to_records(rows: Sequence[Any]) -> builtins.list[KeyRecord]:
    return [row_to_record(row) for row in rows]


def direct_reads_apply(engine_dialect: Dialect, wanted: bool) -> bool:
    """Whether a store reads ``get`` through psycopg directly (see _pgdirect.py)."""
    return wanted and engine_dialect.name == "postgresql" and engine_dialect.driver == "psycopg"


def notify_params(channel: str | None, ids: Sequence[str], backend: str) -> dict[str, str] | None:
    """The parameters of the in-transaction NOTIFY, ``None`` without a channel.

    Raises:
        ConfigurationError: a channel on a database other than PostgreSQL.
    """
    if channel is None:
        return None
    if backend != "postgresql":
        raise ConfigurationError("notify= needs PostgreSQL (LISTEN/NOTIFY)")
    return {"channel": channel, "payload": change_payload(ids)}


def schema_version(conn: Connection) -> int | None:
    """The recorded schema version, ``None`` when the tables are not there."""
    if not inspect(conn).has_table(SCHEMA_TABLE):
        return None
    found = conn.execute(select(schema_table.c.version).where(schema_table.c.id == 1)).scalar()
    return None if found is None else int(found)


def ensure_schema(conn: Connection, *, create: bool, where: str) -> None:
    """Check (and with ``create``, make) the tables on ``conn``, in its transaction.

    Without ``create`` the application's migrations own the tables: only a
    recorded version newer than this release is refused.

    Raises:
        ConfigurationError: the recorded schema is newer than this release.
    """
    version = schema_version(conn)
    check_schema_version(version, where)
    target = current_version()
    if version == target or not create:
        return
    if version is None:
        metadata.create_all(conn, tables=[keys_table, schema_table], checkfirst=True)
        conn.execute(insert(schema_table).values(id=1, version=target))
        return
    for statement in upgrade_steps(version):
        conn.execute(text(statement))
    conn.execute(update(schema_table).where(schema_table.c.id == 1).values(version=target))


class SQLAlchemyStore:
    """Keys in a SQL database through SQLAlchemy 2 Core (synchronous).

    PostgreSQL (``postgresql+psycopg://``, extra ``apikeys[postgres]``),
    MariaDB/MySQL (``mysql+pymysql://``, extra ``apikeys[mysql]``) and SQLite
    (``sqlite+pysqlite:///file.db``, extra ``apikeys[sqlalchemy]``). Lookups are
    one primary-key read; writes run in one transaction, updates as
    ``UPDATE … WHERE id = ? AND version = ?`` with a row-count check.

    The tables are :data:`apikeys.storage.keys_table` and its schema-version
    table, both in :data:`apikeys.storage.metadata`. Unless ``auto_create`` is
    false they are created on first use if missing (as :meth:`create_schema`).

    Implements :class:`~apikeys.storage.KeyStore` and
    :class:`~apikeys.storage.SupportsTouch`.

    Args:
        url_or_engine: A database URL, or the application's own
            :class:`~sqlalchemy.Engine` (which the store then never disposes of).
        auto_create: Create missing tables (and record the schema version) on
            first use. Pass ``False`` when your own migrations own the tables.
        engine_options: Extra :func:`~sqlalchemy.create_engine` arguments when a
            URL is given (``pool_size``, ``pool_pre_ping``...).
        direct_reads: On PostgreSQL through psycopg, run ``get`` on psycopg
            directly (connections detached from the engine's pool, autocommit,
            a server-side prepared statement); pass ``False`` behind a pooler
            that cannot keep prepared statements (PgBouncer in transaction mode).

    Raises:
        ConfigurationError: a malformed URL or a driver that is not installed
            (the message names the extra).

    Example::

        store = SQLAlchemyStore("postgresql+psycopg://app@127.0.0.1/app")
        keys = KeyManager(store, prefix="acme")
    """

    def __init__(
        self,
        url_or_engine: str | URL | Engine,
        *,
        auto_create: bool = True,
        engine_options: Mapping[str, Any] | None = None,
        direct_reads: bool = True,
    ) -> None:
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
            self._owns_engine = False
        else:
            url = parse_url(url_or_engine)
            options: dict[str, Any] = {"hide_parameters": True}
            if is_memory_sqlite(url):
                options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            options.update(engine_options or {})
            try:
                self.engine = create_engine(url, **options)
            except (ImportError, exc.NoSuchModuleError) as error:
                raise missing_driver(url, error, asynchronous=False) from error
            except exc.ArgumentError as error:
                raise ConfigurationError(f"bad engine options: {error}") from error
            if url.get_backend_name() == "sqlite":
                event.listen(self.engine, "connect", sqlite_pragmas)
            self._owns_engine = True
        self.auto_create = auto_create
        self._backend = self.engine.dialect.name
        self._sql = Statements(keys_table, self._backend)
        # A read is one statement: on PostgreSQL, autocommit spares the BEGIN and
        # ROLLBACK round trips of each lookup (the verify hot path). MySQL drivers
        # would pay a round trip to switch modes; SQLite reads open no transaction.
        self._reads = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self._backend == "postgresql"
            else self.engine
        )
        self._ready = False
        self._ready_lock = threading.Lock()
        self._decoded = DecodedRows()
        self._direct = (
            DirectReader(self.engine)
            if direct_reads_apply(self.engine.dialect, direct_reads)
            else None
        )

    def __repr__(self) -> str:
        return f"SQLAlchemyStore({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[Connection]:
        with translate(self._backend):
            if not self._ready:
                self._prepare(create=self.auto_create)
            if write:
                with self.engine.begin() as conn:
                    yield conn
            else:
                with self._reads.connect() as conn:
                    yield conn

    def _prepare(self, *, create: bool) -> None:
        with self._ready_lock:
            if self._ready:
                return
            where = self.engine.url.render_as_string(hide_password=True)
            try:
                with self.engine.begin() as conn:
                    ensure_schema(conn, create=create, where=where)
            except (exc.ProgrammingError, exc.IntegrityError, exc.OperationalError):
                # Another process created the tables at the same moment: check again.
                with self.engine.begin() as conn:
                    ensure_schema(conn, create=False, where=where)
            self._ready = True

    def create_schema(self) -> None:
        """Create the tables and record the schema version, if not done yet.

        For the simple case; applications with migrations include
        :data:`apikeys.storage.metadata` in them instead (see docs/storage.md).

        Raises:
            ConfigurationError: the recorded schema is newer than this release.
            StorageError: the database failed.
        """
        with translate(self._backend):
            self._ready = False
            self._prepare(create=True)

    def get(self, key_id: str) -> KeyRecord | None:
        """The record of ``key_id``, or ``None``.

        Raises:
            StorageError: the database failed.
        """
        row: tuple[Any, ...] | None
        if self._direct is not None:
            if not self._ready:
                with translate(self._backend):
                    self._prepare(create=self.auto_create)
            row = self._direct.fetch(key_id)
        else:
            with self._connect() as conn:
                found = conn.execute(self._sql.get, {"key_id": key_id}).first()
            row = None if found is None else tuple(found)
        return self._decoded.record(key_id, row)

    def supports_notify(self) -> bool:
        """Whether ``write``/``purge`` take ``notify=`` (PostgreSQL only)."""
        return self._backend == "postgresql"

    def write(
        self,
        *,
        insert: Sequence[KeyRecord] = (),
        update: Sequence[KeyRecord] = (),
        notify: str | None = None,
    ) -> None:
        """Insert and update records in one transaction: all land or none does.

        Args:
            insert: New records.
            update: Changed records, each at its stored version + 1.
            notify: A PostgreSQL channel to announce the change on, in the same
                transaction (for :class:`~apikeys.storage.CachedStore`).

        Raises:
            ConflictError: an inserted id exists, or an updated record's stored
                version is not ``version - 1``.
            ConfigurationError: ``notify`` on a database other than PostgreSQL.
            StorageError: the database failed.
        """
        check_write(insert, update)
        rows = [record_to_row(r) for r in insert]
        updates = [self._sql.update_params(r) for r in update]
        announce = notify_params(notify, [r.id for r in (*insert, *update)], self._backend)
        with self._connect(write=True) as conn:
            if rows:
                conn.execute(self._sql.insert, rows)
            for params in updates:
                if conn.execute(self._sql.update, params).rowcount != 1:
                    raise ConflictError(f"key {params['b_id']!r} changed since it was read")
            if announce is not None:
                conn.execute(self._sql.notify, announce)

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
        query = self._sql.list(owner=owner, state=state, now=now, limit=limit, after=after)
        with self._connect() as conn:
            rows = conn.execute(query).mappings().all()
        return to_records(rows)

    def purge(self, key_id: str, *, notify: str | None = None) -> bool:
        """Delete a record for good; return whether one existed.

        Args:
            key_id: The key to delete.
            notify: A PostgreSQL channel to announce the deletion on, in the same
                transaction (for :class:`~apikeys.storage.CachedStore`).

        Raises:
            ConfigurationError: ``notify`` on a database other than PostgreSQL.
            StorageError: the database failed.
        """
        announce = notify_params(notify, [key_id], self._backend)
        with self._connect(write=True) as conn:
            existed = conn.execute(self._sql.purge, {"key_id": key_id}).rowcount > 0
            if announce is not None:
                conn.execute(self._sql.notify, announce)
            return existed

    def touch(self, key_id: str, *, at: datetime, ip: str | None) -> None:
        """Record a use of ``key_id`` without a version bump (a missing key is ignored).

        Raises:
            StorageError: the database failed.
        """
        with self._connect(write=True) as conn:
            conn.execute(self._sql.touch, {"b_id": key_id, "at": at, "ip": ip})

    def close(self) -> None:
        """Close the direct-read connections; dispose of the engine's
        connections, if the store created the engine."""
        if self._direct is not None:
            self._direct.close()
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> SQLAlchemyStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
