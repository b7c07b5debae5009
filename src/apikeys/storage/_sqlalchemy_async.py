"""AsyncSQLAlchemyStore: the tables of :class:`SQLAlchemyStore`, for asyncio."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from apikeys._models import KeyRecord, KeyState, record_to_row
from apikeys.errors import ConfigurationError, ConflictError
from apikeys.storage._decoded import DecodedRows
from apikeys.storage._pgdirect import AsyncDirectReader
from apikeys.storage._schema import check_write
from apikeys.storage._sqlalchemy import (
    Statements,
    direct_reads_apply,
    ensure_schema,
    is_memory_sqlite,
    keys_table,
    missing_driver,
    notify_params,
    parse_url,
    sqlite_pragmas,
    to_records,
    translate,
)

__all__ = ["AsyncSQLAlchemyStore"]


class AsyncSQLAlchemyStore:
    """Keys in a SQL database through SQLAlchemy's asyncio extension.

    The same tables and semantics as :class:`~apikeys.storage.SQLAlchemyStore`
    (they can share one database), awaitable: PostgreSQL through psycopg 3 in
    async mode (``postgresql+psycopg://``) or asyncpg, MariaDB/MySQL through
    aiomysql (``mysql+aiomysql://``), SQLite through aiosqlite
    (``sqlite+aiosqlite:///file.db``). Extra: ``apikeys[asyncio]`` (plus
    ``apikeys[postgres]`` for psycopg).

    Cancellation-safe: a write runs in one database transaction, so a task
    cancelled part-way through ``awrite`` (a request dropped mid-rotate) leaves
    either every change of that write or none.

    Implements :class:`~apikeys.storage.AsyncKeyStore` and
    :class:`~apikeys.storage.AsyncSupportsTouch`.

    Args:
        url_or_engine: A database URL or the application's own
            :class:`~sqlalchemy.ext.asyncio.AsyncEngine` (never disposed of by the store).
        auto_create: Create missing tables (and record the schema version) on
            first use. Pass ``False`` when your own migrations own the tables.
        engine_options: Extra :func:`~sqlalchemy.ext.asyncio.create_async_engine`
            arguments when a URL is given.
        direct_reads: On PostgreSQL through psycopg, run ``aget`` on psycopg
            directly (as :class:`~apikeys.storage.SQLAlchemyStore` does).

    Raises:
        ConfigurationError: a malformed URL, a synchronous driver, or a driver
            that is not installed (the message names the extra).

    Example::

        store = AsyncSQLAlchemyStore("postgresql+psycopg://app@127.0.0.1/app")
        keys = AsyncKeyManager(store, prefix="acme")
    """

    def __init__(
        self,
        url_or_engine: str | URL | AsyncEngine,
        *,
        auto_create: bool = True,
        engine_options: Mapping[str, Any] | None = None,
        direct_reads: bool = True,
    ) -> None:
        if isinstance(url_or_engine, AsyncEngine):
            self.engine = url_or_engine
            self._owns_engine = False
        else:
            url = parse_url(url_or_engine)
            options: dict[str, Any] = {"hide_parameters": True}
            if is_memory_sqlite(url):
                options["poolclass"] = StaticPool
            options.update(engine_options or {})
            try:
                self.engine = create_async_engine(url, **options)
            except (ImportError, exc.NoSuchModuleError) as error:
                raise missing_driver(url, error, asynchronous=True) from error
            except exc.InvalidRequestError as error:
                raise ConfigurationError(
                    f"{url.drivername}:// is not an asyncio driver ({error}); use "
                    "e.g. postgresql+psycopg://, mysql+aiomysql:// or sqlite+aiosqlite://"
                ) from error
            except exc.ArgumentError as error:
                raise ConfigurationError(f"bad engine options: {error}") from error
            if url.get_backend_name() == "sqlite":
                event.listen(self.engine.sync_engine, "connect", sqlite_pragmas)
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
        self._ready_lock: asyncio.Lock | None = None
        self._decoded = DecodedRows()
        self._direct = (
            AsyncDirectReader(self.engine)
            if direct_reads_apply(self.engine.dialect, direct_reads)
            else None
        )

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"AsyncSQLAlchemyStore({url!r})"

    @asynccontextmanager
    async def _connect(self, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        with translate(self._backend):
            if not self._ready:
                await self._prepare(create=self.auto_create)
            if write:
                async with self.engine.begin() as conn:
                    yield conn
            else:
                async with self._reads.connect() as conn:
                    yield conn

    async def _prepare(self, *, create: bool) -> None:
        if self._ready_lock is None:
            self._ready_lock = asyncio.Lock()
        async with self._ready_lock:
            if self._ready:
                return
            where = self.engine.url.render_as_string(hide_password=True)
            try:
                async with self.engine.begin() as conn:
                    await conn.run_sync(partial(ensure_schema, create=create, where=where))
            except (exc.ProgrammingError, exc.IntegrityError, exc.OperationalError):
                # Another process created the tables at the same moment: check again.
                async with self.engine.begin() as conn:
                    await conn.run_sync(partial(ensure_schema, create=False, where=where))
            self._ready = True

    async def acreate_schema(self) -> None:
        """Create the tables and record the schema version, if not done yet.

        Raises:
            ConfigurationError: the recorded schema is newer than this release.
            StorageError: the database failed.
        """
        with translate(self._backend):
            self._ready = False
            await self._prepare(create=True)

    async def aget(self, key_id: str) -> KeyRecord | None:
        """The record of ``key_id``, or ``None``.

        Raises:
            StorageError: the database failed.
        """
        row: tuple[Any, ...] | None
        if self._direct is not None:
            if not self._ready:
                with translate(self._backend):
                    await self._prepare(create=self.auto_create)
            row = await self._direct.fetch(key_id)
        else:
            async with self._connect() as conn:
                found = (await conn.execute(self._sql.get, {"key_id": key_id})).first()
            row = None if found is None else tuple(found)
        return self._decoded.record(key_id, row)

    def supports_notify(self) -> bool:
        """Whether ``awrite``/``apurge`` take ``notify=`` (PostgreSQL only)."""
        return self._backend == "postgresql"

    async def awrite(
        self,
        *,
        insert: Sequence[KeyRecord] = (),
        update: Sequence[KeyRecord] = (),
        notify: str | None = None,
    ) -> None:
        """Insert and update records in one transaction: all land or none does,
        also when the calling task is cancelled part-way.

        Args:
            insert: New records.
            update: Changed records, each at its stored version + 1.
            notify: A PostgreSQL channel to announce the change on, in the same
                transaction.

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
        async with self._connect(write=True) as conn:
            if rows:
                await conn.execute(self._sql.insert, rows)
            for params in updates:
                if (await conn.execute(self._sql.update, params)).rowcount != 1:
                    raise ConflictError(f"key {params['b_id']!r} changed since it was read")
            if announce is not None:
                await conn.execute(self._sql.notify, announce)

    async def alist(
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
        async with self._connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return to_records(rows)

    async def apurge(self, key_id: str, *, notify: str | None = None) -> bool:
        """Delete a record for good; return whether one existed.

        Args:
            key_id: The key to delete.
            notify: A PostgreSQL channel to announce the deletion on, in the same
                transaction.

        Raises:
            ConfigurationError: ``notify`` on a database other than PostgreSQL.
            StorageError: the database failed.
        """
        announce = notify_params(notify, [key_id], self._backend)
        async with self._connect(write=True) as conn:
            existed = (await conn.execute(self._sql.purge, {"key_id": key_id})).rowcount > 0
            if announce is not None:
                await conn.execute(self._sql.notify, announce)
            return existed

    async def atouch(self, key_id: str, *, at: datetime, ip: str | None) -> None:
        """Record a use of ``key_id`` without a version bump (a missing key is ignored).

        Raises:
            StorageError: the database failed.
        """
        async with self._connect(write=True) as conn:
            await conn.execute(self._sql.touch, {"b_id": key_id, "at": at, "ip": ip})

    async def aclose(self) -> None:
        """Close the direct-read connections; dispose of the engine's
        connections, if the store created the engine."""
        if self._direct is not None:
            await self._direct.close()
        if self._owns_engine:
            await self.engine.dispose()

    async def __aenter__(self) -> AsyncSQLAlchemyStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
