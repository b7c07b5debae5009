"""Driver-level reads of one key on PostgreSQL (psycopg 3), under the SQLAlchemy stores.

SQLAlchemy's execution path (pool checkout, statement cache lookup, result
processing) costs several times the database's own work for a one-row primary
key read, the verify hot path. These readers run that one statement on psycopg
directly: connections taken from the engine's own pool and detached from it (so
they carry the engine's connection settings and events), in autocommit (no
BEGIN/ROLLBACK round trips), the statement prepared server-side on first use.
A few idle connections are kept for reuse; every other statement still goes
through SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from apikeys._models import COLUMNS
from apikeys.errors import StorageError
from apikeys.storage._schema import KEYS_TABLE, driver_message

# Only constant table and column names are spliced; the id is a bound parameter.
GET_SQL = f"SELECT {', '.join(COLUMNS)} FROM {KEYS_TABLE} WHERE id = %s"  # noqa: S608 (constants)


def _configure(conn: Any) -> Any:
    conn.autocommit = True
    return conn.cursor()


def _quiet_close(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


class _Idle:
    """The idle (connection, cursor) pairs of one process; list pop/append are
    atomic, so threads share it without a lock."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.pairs: list[tuple[Any, Any]] = []
        self.pid = os.getpid()
        self.closed = False

    def take(self) -> tuple[Any, Any] | None:
        if self.pid != os.getpid():
            # Connections inherited across fork() belong to the parent: abandoned
            # without a close (which would end the parent's sessions).
            self.pairs = []
            self.pid = os.getpid()
        if self.closed:
            raise StorageError("the store is closed")
        try:
            return self.pairs.pop()
        except IndexError:
            return None

    def give_back(self, pair: tuple[Any, Any]) -> bool:
        """Keep ``pair`` for reuse; ``False`` when the caller must close it."""
        if not self.closed and len(self.pairs) < self.keep:
            self.pairs.append(pair)
            return True
        return False

    def close(self) -> list[Any]:
        self.closed = True
        pairs, self.pairs = self.pairs, []
        return [conn for conn, _ in pairs] if self.pid == os.getpid() else []


class DirectReader:
    """One-row reads by primary key on psycopg connections made like ``engine``'s."""

    def __init__(self, engine: Any, *, keep: int = 8) -> None:
        # A pool of the engine's class, creator and events, used only to make
        # fresh connections: never one the engine's pool may hold after a failure.
        self._factory = engine.pool.recreate()
        self._idle = _Idle(keep)

    def _open(self) -> tuple[Any, Any]:
        proxied = self._factory.connect()
        conn = proxied.driver_connection
        proxied.detach()
        return conn, _configure(conn)

    def fetch(self, key_id: str) -> tuple[Any, ...] | None:
        """The row of ``key_id`` in :data:`~apikeys._models.COLUMNS` order, or ``None``.

        Raises:
            StorageError: the database failed (the connection is dropped).
        """
        import psycopg

        pair = self._idle.take()
        try:
            if pair is None:
                pair = self._open()
            cursor = pair[1]
            cursor.execute(GET_SQL, (key_id,), prepare=True)
            row: tuple[Any, ...] | None = cursor.fetchone()
        except BaseException as exc:
            if pair is not None:
                _quiet_close(pair[0])
            if isinstance(exc, psycopg.Error):
                raise StorageError(driver_message(exc, "postgresql")) from exc
            raise
        if not self._idle.give_back(pair):
            _quiet_close(pair[0])
        return row

    def close(self) -> None:
        for conn in self._idle.close():
            _quiet_close(conn)
        self._factory.dispose()


class AsyncDirectReader:
    """The asyncio twin of :class:`DirectReader` (psycopg's AsyncConnection)."""

    def __init__(self, engine: Any, *, keep: int = 8) -> None:
        self._factory = engine.sync_engine.pool.recreate()
        self._idle = _Idle(keep)

    async def _open(self) -> tuple[Any, Any]:
        from sqlalchemy.util import greenlet_spawn

        proxied = await greenlet_spawn(self._factory.connect)
        conn = proxied.driver_connection
        proxied.detach()
        await conn.set_autocommit(True)
        return conn, conn.cursor()

    async def fetch(self, key_id: str) -> tuple[Any, ...] | None:
        """The row of ``key_id``, or ``None``.

        Raises:
            StorageError: the database failed (the connection is dropped).
        """
        import psycopg

        pair = self._idle.take()
        try:
            if pair is None:
                pair = await self._open()
            cursor = pair[1]
            await cursor.execute(GET_SQL, (key_id,), prepare=True)
            row: tuple[Any, ...] | None = await cursor.fetchone()
        except BaseException as exc:
            # Also when cancelled mid-statement: the connection's state is unknown.
            if pair is not None:
                await _aquiet_close(pair[0])
            if isinstance(exc, psycopg.Error):
                raise StorageError(driver_message(exc, "postgresql")) from exc
            raise
        if not self._idle.give_back(pair):
            await _aquiet_close(pair[0])
        return row

    async def close(self) -> None:
        for conn in self._idle.close():
            await _aquiet_close(conn)
        self._factory.dispose()


async def _aquiet_close(conn: Any) -> None:
    with contextlib.suppress(Exception):
        await conn.close()
