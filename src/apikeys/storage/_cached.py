"""CachedStore and AsyncCachedStore: records served from process memory while a
change channel proves itself alive; see docs/storage.md ("Caching records across
processes")."""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from apikeys._models import KeyRecord, KeyState
from apikeys.errors import ConfigurationError
from apikeys.storage._changes import change_payload
from apikeys.storage._listeners import Listener, PostgresListener, RedisListener
from apikeys.storage._protocol import (
    AsyncKeyStore,
    AsyncSupportsTouch,
    KeyStore,
    SupportsNotify,
    SupportsTouch,
)
from apikeys.storage._schema import redact_url

logger = logging.getLogger("apikeys.storage")

DEFAULT_CHANNEL = "apikeys_changes"


class _CacheCore:
    """The memory, the freshness rule and the listener, shared by both twins."""

    def __init__(
        self,
        store: Any,
        *,
        invalidation: str,
        max_staleness: timedelta,
        channel: str,
        maxsize: int,
        name: str | None,
    ) -> None:
        if max_staleness <= timedelta(0):
            raise ConfigurationError("max_staleness must be positive")
        if not channel.replace("_", "").isalnum() or not channel.isascii() or len(channel) > 40:
            raise ConfigurationError(f"bad channel name {channel!r} (letters, digits, _)")
        self.store = store
        self.max_staleness = max_staleness
        self.channel = channel
        self.name = name or f"apikeys-cache-{secrets.token_hex(4)}"
        self._staleness = max_staleness.total_seconds()
        self._maxsize = maxsize
        self._records: dict[str, KeyRecord] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._fresh_until = 0.0
        self._url = redact_url(invalidation)
        self._invalidation = invalidation
        self._in_transaction = isinstance(store, SupportsNotify) and store.supports_notify()
        self._listener = self._make_listener(invalidation)
        self._closed = False
        self._listener.start()
        this = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(this))

    def _make_listener(self, url: str) -> Listener:
        scheme = url.split("://", 1)[0].lower()
        interval = self._staleness / 4
        if scheme.startswith("postgres"):
            return PostgresListener(url, self, interval=interval)
        if scheme in ("redis", "rediss", "unix"):
            self._in_transaction = False
            return RedisListener(url, self, interval=interval)
        raise ConfigurationError(
            f"cache invalidation needs a postgresql:// or redis:// URL, not {self._url!r}"
        )

    def _forked(self) -> None:
        """In a child after fork(): the parent's listener thread is not here, and
        its memory proves nothing for us. Start over with a listener of our own."""
        self._lock = threading.Lock()
        self._fresh_until = 0.0
        self._records = {}
        self._generation += 1
        if not self._closed:
            self._listener = self._make_listener(self._invalidation)
            self._listener.start()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r}, invalidation={self._url!r})"

    # --- called by the listener thread ------------------------------------------------

    def resynchronised(self) -> None:
        """The channel is (again) subscribed: forget everything read before."""
        with self._lock:
            self._generation += 1
            self._records.clear()

    def lost(self) -> None:
        """The channel dropped: serve nothing from memory until resynchronised."""
        self._fresh_until = 0.0
        self.resynchronised()

    def proven(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` (monotonic) came back: every change
        announced before it has been applied."""
        fresh_until = sent_at + self._staleness
        if fresh_until > self._fresh_until:
            self._fresh_until = fresh_until

    def forget(self, key_ids: Sequence[str] | None) -> None:
        """Drop ``key_ids`` (``None``: everything) after a change announcement."""
        with self._lock:
            self._generation += 1
            if key_ids is None:
                self._records.clear()
            else:
                for key_id in key_ids:
                    self._records.pop(key_id, None)

    @property
    def live(self) -> bool:
        """Whether records are being served from memory right now."""
        return time.monotonic() < self._fresh_until

    # --- shared by the twins ----------------------------------------------------------

    def _cached(self, key_id: str) -> KeyRecord | None:
        if time.monotonic() < self._fresh_until:
            return self._records.get(key_id)
        return None

    def _keep(self, key_id: str, record: KeyRecord | None, generation: int) -> None:
        if record is None or self._maxsize <= 0:
            return
        with self._lock:
            # A change announced while the record was read makes it suspect.
            if generation == self._generation:
                while len(self._records) >= self._maxsize:
                    del self._records[next(iter(self._records))]
                self._records[key_id] = record

    def _announce(self, ids: Sequence[str]) -> None:
        try:
            self._listener.publish(self.channel, change_payload(ids))
        except Exception as exc:  # the change has committed; see docs/storage.md
            logger.warning(
                "apikeys: could not announce a change on %s (%s)", self._url, type(exc).__name__
            )

    def _stop(self) -> None:
        self._closed = True
        self._listener.stop()
        self._fresh_until = 0.0


def _after_fork(ref: weakref.ref[_CacheCore]) -> None:
    cache = ref()
    if cache is not None:
        cache._forked()


_GUARANTEE = """
    The guarantee (docs/storage.md states it in full):

    - The process that writes (revoke, suspend, rotate, purge...) through its
      cache sees its own change as soon as the call returns.
    - Every other process sharing the same ``invalidation`` channel sees a
      change no later than ``max_staleness`` after it was announced: with
      PostgreSQL the announcement is the commit itself (``NOTIFY`` inside the
      write's transaction, for stores with :class:`SupportsNotify`); with Redis
      it is the ``PUBLISH`` sent right after the commit.

    Safe by construction: a background thread sends a heartbeat through the
    channel every ``max_staleness / 4``; a cached record is served only while a
    heartbeat sent less than ``max_staleness`` ago has come back (messages
    arrive in order, so every change announced before that heartbeat has been
    applied). When the channel drops, reconnects or lags, every read goes to the
    inner store, and the memory is emptied before it is trusted again. Unknown
    ids are never cached. ``touch`` writes through but announces nothing.

    Args:
        store: The store holding the records (the source of truth).
        invalidation: ``postgresql://...`` (LISTEN/NOTIFY) or ``redis://...``
            (pub/sub) URL of the change channel.
        max_staleness: How late another process may see a change (default 100 ms).
        channel: The channel name shared by every process (letters, digits, ``_``).
        maxsize: Records kept at most (oldest dropped first).
        name: Identifies this cache's listening connection (PostgreSQL
            ``application_name``); random by default.

    Raises:
        ConfigurationError: an unsupported URL scheme, a bad channel name or a
            non-positive ``max_staleness``.
"""


class CachedStore(_CacheCore):
    __doc__ = (
        """A :class:`~apikeys.storage.KeyStore` that keeps records in process memory
    and drops them when any process announces a change.
"""
        + _GUARANTEE
        + """
    Example::

        store = CachedStore(
            SQLAlchemyStore("postgresql+psycopg://app@db/app"),
            invalidation="postgresql://app@db/app",
        )
    """
    )

    def __init__(
        self,
        store: KeyStore,
        *,
        invalidation: str,
        max_staleness: timedelta = timedelta(milliseconds=100),
        channel: str = DEFAULT_CHANNEL,
        maxsize: int = 10_000,
        name: str | None = None,
    ) -> None:
        super().__init__(
            store,
            invalidation=invalidation,
            max_staleness=max_staleness,
            channel=channel,
            maxsize=maxsize,
            name=name,
        )
        self._toucher = store if isinstance(store, SupportsTouch) else None

    def get(self, key_id: str) -> KeyRecord | None:
        """The record of ``key_id``: from memory while the channel is proven
        alive, else (and on a miss) from the inner store.

        Raises:
            StorageError: the inner store failed.
        """
        found = self._cached(key_id)
        if found is not None:
            return found
        generation = self._generation
        record: KeyRecord | None = self.store.get(key_id)
        self._keep(key_id, record, generation)
        return record

    def write(self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()) -> None:
        """Write through to the inner store and announce the change.

        Raises:
            ConflictError: as the inner store.
            StorageError: the inner store failed.
        """
        ids = [r.id for r in (*insert, *update)]
        try:
            if self._in_transaction:
                self.store.write(insert=insert, update=update, notify=self.channel)
            else:
                self.store.write(insert=insert, update=update)
                self._announce(ids)
        finally:
            self.forget(ids)

    def purge(self, key_id: str) -> bool:
        """Delete through the inner store and announce it.

        Raises:
            StorageError: the inner store failed.
        """
        try:
            if self._in_transaction:
                existed: bool = self.store.purge(key_id, notify=self.channel)
            else:
                existed = self.store.purge(key_id)
                self._announce([key_id])
        finally:
            self.forget([key_id])
        return existed

    def list(
        self,
        *,
        owner: str | None = None,
        state: KeyState | None = None,
        now: datetime,
        limit: int = 100,
        after: str | None = None,
    ) -> builtins.list[KeyRecord]:
        """The inner store's ``list`` (never cached)."""
        records: builtins.list[KeyRecord] = self.store.list(
            owner=owner, state=state, now=now, limit=limit, after=after
        )
        return records

    def touch(self, key_id: str, *, at: datetime, ip: str | None) -> None:
        """Record a use through the inner store (not announced)."""
        if self._toucher is not None:
            self._toucher.touch(key_id, at=at, ip=ip)
            self.forget([key_id])

    def close(self) -> None:
        """Stop the listener and close the inner store."""
        self._stop()
        self.store.close()

    def __enter__(self) -> CachedStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncCachedStore(_CacheCore):
    __doc__ = (
        """The asyncio twin of :class:`CachedStore`, around an
    :class:`~apikeys.storage.AsyncKeyStore` (the listener is a thread either way;
    a read served from memory never awaits).
"""
        + _GUARANTEE
    )

    def __init__(
        self,
        store: AsyncKeyStore,
        *,
        invalidation: str,
        max_staleness: timedelta = timedelta(milliseconds=100),
        channel: str = DEFAULT_CHANNEL,
        maxsize: int = 10_000,
        name: str | None = None,
    ) -> None:
        super().__init__(
            store,
            invalidation=invalidation,
            max_staleness=max_staleness,
            channel=channel,
            maxsize=maxsize,
            name=name,
        )
        self._toucher = store if isinstance(store, AsyncSupportsTouch) else None

    async def aget(self, key_id: str) -> KeyRecord | None:
        """Awaitable :meth:`CachedStore.get`."""
        found = self._cached(key_id)
        if found is not None:
            return found
        generation = self._generation
        record: KeyRecord | None = await self.store.aget(key_id)
        self._keep(key_id, record, generation)
        return record

    async def awrite(
        self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()
    ) -> None:
        """Awaitable :meth:`CachedStore.write`."""
        ids = [r.id for r in (*insert, *update)]
        try:
            if self._in_transaction:
                await self.store.awrite(insert=insert, update=update, notify=self.channel)
            else:
                await self.store.awrite(insert=insert, update=update)
                await asyncio.to_thread(self._announce, ids)
        finally:
            self.forget(ids)

    async def apurge(self, key_id: str) -> bool:
        """Awaitable :meth:`CachedStore.purge`."""
        try:
            if self._in_transaction:
                existed: bool = await self.store.apurge(key_id, notify=self.channel)
            else:
                existed = await self.store.apurge(key_id)
                await asyncio.to_thread(self._announce, [key_id])
        finally:
            self.forget([key_id])
        return existed

    async def alist(
        self,
        *,
        owner: str | None = None,
        state: KeyState | None = None,
        now: datetime,
        limit: int = 100,
        after: str | None = None,
    ) -> builtins.list[KeyRecord]:
        """The inner store's ``alist`` (never cached)."""
        records: builtins.list[KeyRecord] = await self.store.alist(
            owner=owner, state=state, now=now, limit=limit, after=after
        )
        return records

    async def atouch(self, key_id: str, *, at: datetime, ip: str | None) -> None:
        """Record a use through the inner store (not announced)."""
        if self._toucher is not None:
            await self._toucher.atouch(key_id, at=at, ip=ip)
            self.forget([key_id])

    async def aclose(self) -> None:
        """Stop the listener and close the inner store."""
        await asyncio.to_thread(self._stop)
        await self.store.aclose()

    async def __aenter__(self) -> AsyncCachedStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
