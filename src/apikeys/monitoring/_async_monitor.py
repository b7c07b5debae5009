"""AsyncMonitor: watches an :class:`~apikeys.AsyncKeyManager`; the methods of
:class:`~apikeys.monitoring.Monitor`, awaitable where they do I/O."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from apikeys._async import AsyncKeyManager
from apikeys._models import APIKey
from apikeys.errors import (
    APIKeyError,
    ConfigurationError,
    KeyNotFound,
    StorageError,
)
from apikeys.events import Event
from apikeys.monitoring._audit import AuditEntry, AuditStore
from apikeys.monitoring._detectors import Detector
from apikeys.monitoring._monitor_base import (
    DEFAULT_AUDIT_TYPES,
    PAGE,
    MonitorBase,
    check_review_args,
)
from apikeys.monitoring._review import (
    ActivityReport,
    CompromiseReport,
    ReviewFinding,
    check_window,
    rotatable,
    successor_settings,
)
from apikeys.monitoring._usage import (
    AddressActivity,
    UsageReport,
    UsageStore,
    check_by,
)

logger = logging.getLogger("apikeys")


class AsyncMonitor(MonitorBase):
    """:class:`Monitor` for an :class:`~apikeys.AsyncKeyManager`: the same methods,
    awaitable (store reads run in worker threads; ``emit`` stays a plain call).

    A detector's ``suspend`` action is scheduled on the event loop the manager
    emits from (captured from the first event); :meth:`flush` waits for it.

    Args:
        manager: The manager to watch.
        **options: See :class:`MonitorBase`.

    Raises:
        ConfigurationError: not an AsyncKeyManager, or a bad option.
    """

    manager: AsyncKeyManager

    def __init__(
        self,
        manager: AsyncKeyManager,
        *,
        audit_store: AuditStore | None = None,
        usage_store: UsageStore | None = None,
        detectors: Sequence[Detector] = (),
        audit_types: Collection[str] | None = DEFAULT_AUDIT_TYPES,
        audit_retention: timedelta | None = None,
        buffer_size: int = 50_000,
        flush_interval: float = 0.25,
        attach: bool = True,
    ) -> None:
        if not isinstance(manager, AsyncKeyManager):
            raise ConfigurationError("AsyncMonitor watches an AsyncKeyManager")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._actions: set[concurrent.futures.Future[Any]] = set()
        self._actions_lock = threading.Lock()
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        super().__init__(
            manager,
            audit_store=audit_store,
            usage_store=usage_store,
            detectors=detectors,
            audit_types=audit_types,
            audit_retention=audit_retention,
            buffer_size=buffer_size,
            flush_interval=flush_interval,
            attach=attach,
        )

    def emit(self, event: Event) -> None:
        """Take one event (see :meth:`Monitor.emit`); remembers the event loop."""
        if self._loop is None:
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
        super().emit(event)

    def _suspend(self, key_id: str, reason: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            logger.warning("apikeys: no event loop to suspend key %s on", key_id)
            return
        future = asyncio.run_coroutine_threadsafe(self.manager.suspend(key_id, reason=reason), loop)
        with self._actions_lock:
            self._actions.add(future)
        future.add_done_callback(lambda f: self._action_done(f, key_id))

    def _action_done(self, future: concurrent.futures.Future[Any], key_id: str) -> None:
        with self._actions_lock:
            self._actions.discard(future)
        if future.cancelled():
            return
        error = future.exception()
        if isinstance(error, APIKeyError):
            logger.warning("apikeys: could not suspend key %s: %s", key_id, error.code)
        elif error is not None:
            logger.error("apikeys: suspending key %s failed", key_id, exc_info=error)

    async def flush(self, timeout: float | None = 5.0) -> bool:
        """Deliver everything queued so far (see :meth:`Monitor.flush`), suspensions
        scheduled by detectors included.

        Raises:
            StorageError: the usage store failed (the counts are kept).
        """
        done = True
        for _ in range(3):
            done = await asyncio.to_thread(self._flush_sync, timeout)
            with self._actions_lock:
                pending = list(self._actions)
            if not pending:
                break
            await asyncio.gather(*(asyncio.wrap_future(f) for f in pending), return_exceptions=True)
        return done

    async def usage(
        self,
        key_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Iterable[str] = ("route", "status"),
        granularity: str | None = None,
    ) -> UsageReport:
        """Requests of one key (see :meth:`Monitor.usage`).

        Raises:
            InvalidArgument: not a key id, a bad period, dimension or granularity.
            StorageError: the usage store failed.
        """
        key_id = self._key_id(key_id)
        start, end = self._period(since, until, timedelta(days=1))
        return await asyncio.to_thread(
            self._usage_sync, key_id, start, end, check_by(by), granularity
        )

    async def addresses(
        self, key_id: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[AddressActivity]:
        """Client addresses of one key (see :meth:`Monitor.addresses`).

        Raises:
            InvalidArgument: not a key id, or a bad period.
            StorageError: the usage store failed.
        """
        key_id = self._key_id(key_id)
        start, end = self._period(since, until, timedelta(days=7))
        return await asyncio.to_thread(self._addresses_sync, key_id, start, end)

    async def audit(
        self,
        *,
        key_id: str | None = None,
        owner: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        types: Sequence[str] | None = None,
        after_id: int | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """The audit trail (see :meth:`Monitor.audit`).

        Raises:
            InvalidArgument: not a key id, or a bad limit.
            StorageError: a store failed.
        """
        key_ids = None if key_id is None else [self._key_id(key_id)]
        if owner is not None:
            key_ids = (key_ids or []) + [k.id for k in await self._owner_keys(owner)]
        return await asyncio.to_thread(
            self._audit_sync, key_ids, owner, since, until, types, after_id, limit
        )

    async def _owner_keys(self, owner: str) -> list[APIKey]:
        keys: list[APIKey] = []
        after: str | None = None
        while True:
            page = await self.manager.list(owner=owner, limit=PAGE, after=after)
            keys += page
            if len(page) < PAGE:
                return keys
            after = page[-1].id

    async def activity(
        self, key_id: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> ActivityReport:
        """What one key did over a period (see :meth:`Monitor.activity`).

        Raises:
            InvalidArgument: not a key id, or a bad period.
            StorageError: a store failed.
        """
        key_id = self._key_id(key_id)
        start, end = self._period(since, until, timedelta(days=7))
        try:
            key: APIKey | None = await self.manager.get(key_id)
        except KeyNotFound:
            key = None
        return await asyncio.to_thread(self._activity_sync, key, key_id, start, end)

    async def respond_to_compromise(
        self,
        key_id: str,
        *,
        replace: bool = True,
        reason: str = "compromised",
        expires_in: timedelta | None = None,
        window: timedelta = timedelta(days=7),
    ) -> CompromiseReport:
        """Stop a compromised key now, optionally replace it, and report what it did
        (see :meth:`Monitor.respond_to_compromise` for the order of writes).

        Raises:
            KeyNotFound: no such key.
            InvalidArgument: not a key id.
            StorageError: the store failed before the key was stopped.
        """
        key_id = self._key_id(key_id)
        check_window(window, "window")
        errors: list[str] = []
        old = await self.manager.get(key_id)
        successor = None
        method = None
        now = self.manager.now()
        if replace and rotatable(old, now):
            try:
                successor = await self.manager.rotate(
                    key_id, grace=timedelta(0), expires_in=expires_in
                )
                method = "rotate"
            except APIKeyError as exc:
                if isinstance(exc, StorageError):
                    raise
                errors.append(f"rotate refused ({exc.code}): {exc.message}")
        revoked = True
        try:
            key = await self.manager.revoke(key_id, reason=reason)
        except StorageError as exc:
            if successor is None:
                raise
            revoked = False
            key = old
            errors.append(f"revoke failed after the rotation ({exc.code}); the key has expired")
        if replace and successor is None:
            try:
                successor = await self.manager.create(**successor_settings(old, expires_in))
                method = "create"
            except APIKeyError as exc:
                errors.append(f"no successor ({exc.code}): {exc.message}")
        activity = None
        try:
            await self.flush()
            activity = await asyncio.to_thread(
                self._activity_sync, key, key_id, now - window, self._now_inclusive()
            )
        except StorageError as exc:
            errors.append(f"activity unavailable ({exc.code})")
        return CompromiseReport(
            key=key,
            revoked=revoked,
            successor=successor,
            method=method,
            activity=activity,
            errors=tuple(errors),
        )

    async def review(
        self,
        *,
        unused_for: timedelta | None = timedelta(days=90),
        max_age: timedelta | None = timedelta(days=365),
        broad_scopes: Collection[str] = ("*",),
        flag_no_expiry: bool = True,
        owner: str | None = None,
    ) -> list[ReviewFinding]:
        """Live keys that need a look (see :meth:`Monitor.review`).

        Raises:
            InvalidArgument: a non-positive period.
            StorageError: the store failed.
        """
        broad = check_review_args(unused_for, max_age, broad_scopes)
        now = self.manager.now()
        found: list[ReviewFinding] = []
        after: str | None = None
        while True:
            page = await self.manager.list(owner=owner, limit=PAGE, after=after)
            found += self._review_page(page, now, unused_for, max_age, broad, flag_no_expiry)
            if len(page) < PAGE:
                return found
            after = page[-1].id

    async def aclose(self, timeout: float | None = 5.0) -> None:
        """Deliver what is queued, stop the background thread, close both stores.

        Args:
            timeout: Longest wait in seconds for the final delivery.
        """
        await self.flush(timeout)
        await asyncio.to_thread(self._close_sync, timeout)

    async def __aenter__(self) -> AsyncMonitor:
        """Use as an async context manager: :meth:`aclose` at the end."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close (see :meth:`aclose`)."""
        await self.aclose()
