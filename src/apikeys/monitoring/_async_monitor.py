"""AsyncMonitor: watches an :class:`~apikeys.AsyncKeyManager` and answers questions
about its keys (awaitable).

This is the hand-kept source of both monitors: ``tools/unasync.py`` writes
``_monitor.py`` (Monitor) from it, and ``nox -s generate -- --check`` fails when
that file is stale.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta

from apikeys._async import AsyncKeyManager
from apikeys._base import arun_blocking
from apikeys._models import APIKey
from apikeys.errors import APIKeyError, ConfigurationError, KeyNotFound, StorageError
from apikeys.monitoring._audit import AuditEntry, AuditStore
from apikeys.monitoring._detectors import Detector
from apikeys.monitoring._monitor_base import (
    DEFAULT_AUDIT_TYPES,
    PAGE,
    LoopActions,
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


class AsyncMonitor(LoopActions):
    """Watches an :class:`~apikeys.AsyncKeyManager`: audit trail, usage counters, abuse
    detectors, and the questions an operator asks about keys (asyncio).

    It registers itself as an event sink of the manager. On the request path it
    only counts (a dict increment) and queues (a deque append); audit writes,
    detectors and store flushes run in one background thread. A detector's
    ``suspend`` action is scheduled on the event loop the manager emits from
    (captured from the first event), never run inside the manager's own ``emit``.

    Queries flush first, so they see every event this process emitted before
    the call.

    The keyword-only arguments are those of :class:`MonitorBase` (``audit_store``,
    ``usage_store``, ``detectors``, ``audit_types``, ``audit_retention``,
    ``buffer_size``, ``flush_interval``, ``attach``).

    Args:
        manager: The manager to watch.

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

    async def flush(self, timeout: float | None = 5.0) -> bool:
        """Deliver everything queued so far: audit entries written, detectors run,
        their actions done, usage counters added to the store.

        Args:
            timeout: Longest wait in seconds for the background thread.

        Returns:
            Whether the queue was drained in time.

        Raises:
            StorageError: the usage store failed (the counts are kept).
        """
        return await self._aflush(timeout)

    async def usage(
        self,
        key_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Iterable[str] = ("route", "status"),
        granularity: str | None = None,
    ) -> UsageReport:
        """Requests of one key over ``[since, until)``, per ``by`` and per bucket.

        Args:
            key_id: The key.
            since: Start (default: a day before ``until``).
            until: End, exclusive (default: now, by the manager's clock).
            by: Dimensions to break the counts down by: ``route``, ``method``,
                ``status`` (``()``: totals only).
            granularity: ``minute``, ``hour`` or ``day`` (default: picked from the
                period's length).

        Returns:
            The report (``total``, ``counts`` per ``by`` values, ``series``).

        Raises:
            InvalidArgument: not a key id, a bad period, dimension or granularity.
            StorageError: the usage store failed.
        """
        key_id = self._key_id(key_id)
        start, end = self._period(since, until, timedelta(days=1))
        return await arun_blocking(self._usage_sync, key_id, start, end, check_by(by), granularity)

    async def addresses(
        self, key_id: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[AddressActivity]:
        """Client addresses one key was used from (whole UTC days overlapping the
        period), busiest first, with first and last time seen.

        Raises:
            InvalidArgument: not a key id, or a bad period.
            StorageError: the usage store failed.
        """
        key_id = self._key_id(key_id)
        start, end = self._period(since, until, timedelta(days=7))
        return await arun_blocking(self._addresses_sync, key_id, start, end)

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
        """The audit trail, oldest first: of one key, of one owner (events carrying
        the owner, plus every event naming one of the owner's keys, failures before
        the secret was proven included), or all.

        Args:
            key_id: Only this key's entries.
            owner: Only this owner's (with ``key_id``: either).
            since: Entries at or after this instant.
            until: Entries before this instant.
            types: Only these event types (``["key.revoked"]``).
            after_id: Entries after this id (paging).
            limit: At most this many (1-10000).

        Raises:
            InvalidArgument: not a key id, or a bad limit.
            StorageError: a store failed.
        """
        key_ids = None if key_id is None else [self._key_id(key_id)]
        if owner is not None:
            key_ids = (key_ids or []) + [k.id for k in await self._owner_keys(owner)]
        return await arun_blocking(
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
        """What one key did over a period (default: the last 7 days): requests by
        route and status, client addresses with first/last seen, audit trail.

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
        return await arun_blocking(self._activity_sync, key, key_id, start, end)

    async def respond_to_compromise(
        self,
        key_id: str,
        *,
        replace: bool = True,
        reason: str = "compromised",
        expires_in: timedelta | None = None,
        window: timedelta = timedelta(days=7),
    ) -> CompromiseReport:
        """Stop a compromised key now, optionally replace it, and report what it did.

        With ``replace`` and an active key, the successor comes from
        ``rotate(grace=0)``: one atomic store write creates it *and* ends the old
        key, so there is never a moment with both or neither working. The old key
        is then revoked (to record ``reason``); if that second write fails, the
        key has still stopped working, and the report says so in ``errors``. A key
        that cannot rotate (suspended, expired, already rotated) is revoked first,
        then a new key with its settings is created; if the create fails, the
        key stays revoked and the report has no successor.

        Args:
            key_id: The compromised key.
            replace: Issue a successor with the same owner, scopes and settings.
            reason: The revocation reason.
            expires_in: The successor's lifetime (default: the old key's).
            window: How far back the activity report looks.

        Returns:
            The report: the key afterwards, the successor (its plaintext shown
            once), recent activity.

        Raises:
            KeyNotFound: no such key.
            InvalidArgument: not a key id.
            StorageError: the store failed before the key was stopped (nothing
                changed; retry).
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
            activity = await arun_blocking(
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
        """Live keys (active or suspended) that need a look, in id order.

        Args:
            unused_for: Flag keys unused this long (``None``: skip the check).
                Relies on ``last_used_at`` (the manager's ``touch_interval``).
            max_age: Flag keys older than this (``None``: skip).
            broad_scopes: Scopes that are too broad to hold (default: ``*``).
            flag_no_expiry: Flag keys that never expire.
            owner: Only this owner's keys.

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
        await arun_blocking(self._close_sync, timeout)

    async def __aenter__(self) -> AsyncMonitor:
        """Use as a context manager: :meth:`aclose` at the end."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close (see :meth:`aclose`)."""
        await self.aclose()
