"""What both monitors share: the event sink (the request path: count and queue),
the background processing (audit writes, detectors, actions, flushes), and every
step of the queries that does no I/O on the manager."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from apikeys import _keyformat
from apikeys._async import AsyncKeyManager
from apikeys._base import ManagerBase
from apikeys._manager import KeyManager
from apikeys._models import APIKey
from apikeys.errors import (
    APIKeyError,
    ConfigurationError,
    InvalidArgument,
    StorageError,
)
from apikeys.events import AnomalyDetected, Event, RequestCompleted
from apikeys.monitoring._audit import AuditEntry, AuditStore, MemoryAuditStore
from apikeys.monitoring._detectors import Detector
from apikeys.monitoring._review import (
    ActivityReport,
    ReviewFinding,
    build_activity,
    check_window,
    review_key,
)
from apikeys.monitoring._sinks import BufferedSink
from apikeys.monitoring._sqlite import MAX_KEY_IDS
from apikeys.monitoring._usage import (
    AddressActivity,
    MemoryUsageStore,
    UsageRecorder,
    UsageReport,
    UsageStore,
    bucket_range,
    build_report,
    day_range,
    merge_addresses,
    pick_granularity,
)

logger = logging.getLogger("apikeys")

DEFAULT_AUDIT_TYPES: frozenset[str] = frozenset(
    {
        "key.created",
        "key.verification_failed",
        "key.rate_limited",
        "key.revoked",
        "key.rotated",
        "key.updated",
        "key.suspended",
        "key.enabled",
        "key.purged",
        "key.anomaly",
    }
)
"""What the audit trail keeps by default: every event but the two that happen on
every successful request (``key.verified``, ``request.completed``), which the
usage counters summarise instead. Pass ``audit_types=None`` to keep everything."""

PAGE = 1000
_INSTANT = timedelta(microseconds=1)
_PRUNE_EVERY = 3600.0
_WARN_EVERY = 60.0


class MonitorBase:
    """The sink side of a monitor and everything that does no manager I/O.

    Args:
        manager: The manager to watch.
        audit_store: Where the audit trail goes (default: a
            :class:`~apikeys.monitoring.MemoryAuditStore`).
        usage_store: Where usage counters go (default: a
            :class:`~apikeys.monitoring.MemoryUsageStore`).
        detectors: Abuse detectors to run over the events.
        audit_types: Event types the audit trail keeps (``None``: all); see
            :data:`DEFAULT_AUDIT_TYPES`.
        audit_retention: Entries older than this are pruned hourly (``None``: kept).
        buffer_size: Events the delivery queue holds before it drops (and counts).
        flush_interval: Longest time, in seconds, between background deliveries.
        attach: Register as a sink of ``manager`` (else add it yourself).

    Raises:
        ConfigurationError: a store or detector of the wrong kind.
    """

    def __init__(
        self,
        manager: ManagerBase,
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
        self.manager = manager
        self.audit_store: AuditStore = MemoryAuditStore() if audit_store is None else audit_store
        if not isinstance(self.audit_store, AuditStore):
            raise ConfigurationError(f"{audit_store!r} does not implement AuditStore")
        self.usage_store: UsageStore = MemoryUsageStore() if usage_store is None else usage_store
        if not isinstance(self.usage_store, UsageStore):
            raise ConfigurationError(f"{usage_store!r} does not implement UsageStore")
        self.detectors: tuple[Detector, ...] = tuple(detectors)
        for detector in self.detectors:
            if not isinstance(detector, Detector):
                raise ConfigurationError(f"{detector!r} is not a Detector")
        self.audit_types: frozenset[str] | None = (
            None if audit_types is None else frozenset(audit_types)
        )
        self.audit_retention = check_window(audit_retention, "audit_retention")
        self.recorder = UsageRecorder(self.usage_store)
        """Counts ``RequestCompleted`` events (flushed in the background)."""
        watched = {cls.type for d in self.detectors for cls in d.watches}
        self._buffered: frozenset[str] | None = (
            None if self.audit_types is None else self.audit_types | watched
        )
        self.event_types: frozenset[str] | None = (
            None if self._buffered is None else self._buffered | {RequestCompleted.type}
        )
        """The event types this monitor takes (managers build no others for it)."""
        self._buffer = BufferedSink(
            _Processor(self),
            maxsize=buffer_size,
            interval=flush_interval,
            on_tick=self._tick,
            name="apikeys-monitor",
        )
        self._started = False
        self._backlog: list[Event] = []
        self._backlog_lock = threading.Lock()
        self._audit_dropped = 0
        self._warned: dict[str, float] = {}
        self._next_prune = time.monotonic() + _PRUNE_EVERY
        self.anomalies = 0
        """Anomalies detected so far."""
        if attach:
            manager.add_sink(self)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(audit_store={self.audit_store!r}, "
            f"usage_store={self.usage_store!r}, detectors={len(self.detectors)})"
        )

    # --- the sink (request path: O(1), no I/O) -----------------------------------------

    def emit(self, event: Event) -> None:
        """Take one event from the manager: count it (a ``RequestCompleted``) and
        queue it for the audit trail and the detectors. Never blocks."""
        if type(event) is RequestCompleted:
            self.recorder.emit(event)
            if not self._started:
                self._started = True
                self._buffer.start()  # its periodic tick drains the counters
        buffered = self._buffered
        if buffered is None or event.type in buffered:
            self._buffer.emit(event)

    @property
    def dropped(self) -> int:
        """Events and requests lost: the queue was full, the audit store kept failing
        past the backlog, or the usage store kept failing past its backlog."""
        return self._buffer.dropped + self._audit_dropped + self.recorder.dropped

    # --- the background thread -----------------------------------------------------------

    def _process(self, events: Sequence[Event]) -> None:
        types = self.audit_types
        audited = list(events) if types is None else [e for e in events if e.type in types]
        if audited or self._backlog:
            self._write_audit(audited)
        if not self.detectors:
            return
        for event in events:
            if event.key_id is None:
                continue
            for detector in self.detectors:
                if isinstance(event, detector.watches):
                    evidence = detector.observe(event)
                    if evidence is not None:
                        self._anomaly(detector, event, evidence)

    def _write_audit(self, events: list[Event]) -> None:
        with self._backlog_lock:
            batch, self._backlog = self._backlog + events, []
        if not batch:
            return
        try:
            self.audit_store.emit_batch(batch)
        except StorageError as exc:
            limit = self._buffer.maxsize
            with self._backlog_lock:
                kept = (batch + self._backlog)[-limit:]
                self._audit_dropped += len(batch) + len(self._backlog) - len(kept)
                self._backlog = kept
            self._warn(
                "audit", "apikeys: audit store failed (%s); %d events wait", exc.code, len(kept)
            )

    def _anomaly(self, detector: Detector, event: Event, evidence: dict[str, Any]) -> None:
        anomaly = AnomalyDetected(
            at=event.at,
            key_id=event.key_id,
            owner=event.owner,
            detector=detector.name,
            action=detector.action,
            evidence=evidence,
        )
        self.anomalies += 1
        # Through the manager, so every sink of it (this monitor too) gets it.
        self.manager._emit(anomaly)
        if detector.callback is not None:
            try:
                detector.callback(anomaly)
            except Exception:
                logger.exception("apikeys: callback of detector %s failed", detector.name)
        if detector.action == "suspend" and event.key_id is not None:
            self._suspend(event.key_id, f"anomaly: {detector.name}")

    def _suspend(self, key_id: str, reason: str) -> None:
        raise NotImplementedError

    def _tick(self) -> None:
        try:
            self.recorder.flush()
        except StorageError as exc:
            self._warn("usage", "apikeys: usage store failed (%s); counts kept", exc.code)
        if self._backlog:
            self._write_audit([])
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + _PRUNE_EVERY
            self._prune_quietly()

    def _prune_quietly(self) -> None:
        try:
            self.prune_now()
        except StorageError as exc:
            self._warn("prune", "apikeys: pruning monitoring data failed (%s)", exc.code)

    def prune_now(self) -> int:
        """Delete usage counters past their retention and, with ``audit_retention``,
        old audit entries (done hourly in the background anyway).

        Returns:
            Rows deleted.

        Raises:
            StorageError: a store failed.
        """
        now = self.manager.now()
        removed = self.usage_store.prune(now)
        if self.audit_retention is not None:
            removed += self.audit_store.prune(now - self.audit_retention)
        return removed

    def _warn(self, topic: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._warned.get(topic, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned[topic] = now
            logger.warning(message, *args)

    def _close_sync(self, timeout: float | None) -> None:
        self._buffer.close(timeout)
        try:
            self.recorder.flush()
        except StorageError as exc:
            logger.warning("apikeys: usage counts lost at close: %s", exc.code)
        if self._backlog:
            self._write_audit([])
        self.audit_store.close()
        self.usage_store.close()

    def _flush_sync(self, timeout: float | None) -> bool:
        done = self._buffer.flush(timeout)
        self.recorder.flush()
        if self._backlog:
            self._write_audit([])
        return done

    # --- pure parts of the queries -------------------------------------------------------

    @staticmethod
    def _key_id(key_id: str) -> str:
        if not _keyformat.is_key_id(key_id):
            # Never echo it: a whole key pasted where an id belongs holds a secret.
            raise InvalidArgument("not a key id (16 letters and digits, e.g. from `list`)")
        return key_id

    def _now_inclusive(self) -> datetime:
        """The end of a period that ends now: events at this very instant count."""
        return self.manager.now() + _INSTANT

    def _period(
        self, since: datetime | None, until: datetime | None, default: timedelta
    ) -> tuple[datetime, datetime]:
        end = self._now_inclusive() if until is None else until
        start = end - default if since is None else since
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidArgument("since and until must be timezone-aware")
        if start >= end:
            raise InvalidArgument("since must be before until")
        return start, end

    def _usage_sync(
        self,
        key_id: str,
        since: datetime,
        until: datetime,
        by: tuple[str, ...],
        granularity: str | None,
    ) -> UsageReport:
        granularity = granularity or pick_granularity(since, until)
        width, start, end = bucket_range(since, until, granularity)
        self.recorder.flush()
        rows = self.usage_store.counts(key_id, granularity=width, since=start, until=end)
        return build_report(
            key_id,
            rows,
            width=width,
            start=start,
            end=end,
            until=until,
            granularity=granularity,
            by=by,
        )

    def _addresses_sync(
        self, key_id: str, since: datetime, until: datetime
    ) -> list[AddressActivity]:
        start, end = day_range(since, until)
        self.recorder.flush()
        return merge_addresses(self.usage_store.addresses(key_id, since=start, until=end))

    def _audit_sync(
        self,
        key_ids: list[str] | None,
        owner: str | None,
        since: datetime | None,
        until: datetime | None,
        types: Sequence[str] | None,
        after_id: int | None,
        limit: int,
    ) -> list[AuditEntry]:
        self._buffer.flush()
        if self._backlog:
            self._write_audit([])
        store = self.audit_store
        if key_ids is None or len(key_ids) <= MAX_KEY_IDS:
            return store.query(
                key_ids=key_ids,
                owner=owner,
                since=since,
                until=until,
                types=types,
                after_id=after_id,
                limit=limit,
            )
        merged: dict[int, AuditEntry] = {}
        for i in range(0, len(key_ids), MAX_KEY_IDS):
            chunk = key_ids[i : i + MAX_KEY_IDS]
            for entry in store.query(
                key_ids=chunk,
                owner=owner,
                since=since,
                until=until,
                types=types,
                after_id=after_id,
                limit=limit,
            ):
                merged[entry.id] = entry
        return [merged[i] for i in sorted(merged)][:limit]

    def _activity_sync(
        self, key: APIKey | None, key_id: str, since: datetime, until: datetime
    ) -> ActivityReport:
        usage = self._usage_sync(key_id, since, until, ("method", "route", "status"), None)
        addresses = self._addresses_sync(key_id, since, until)
        events = self._audit_sync([key_id], None, since, until, None, None, 1000)
        return build_activity(key, key_id, usage, addresses, events, since=since, until=until)

    def _review_page(
        self,
        keys: Iterable[APIKey],
        now: datetime,
        unused_for: timedelta | None,
        max_age: timedelta | None,
        broad_scopes: Collection[str],
        flag_no_expiry: bool,
    ) -> list[ReviewFinding]:
        found = []
        for key in keys:
            finding = review_key(
                key,
                now,
                unused_for=unused_for,
                max_age=max_age,
                broad_scopes=broad_scopes,
                flag_no_expiry=flag_no_expiry,
            )
            if finding is not None:
                found.append(finding)
        return found


class InlineActions(MonitorBase):
    """How a :class:`~apikeys.monitoring.Monitor` acts: a detector's ``suspend``
    calls the blocking manager from the monitor's background thread (never from
    inside the manager's own ``emit``)."""

    manager: KeyManager

    def _suspend(self, key_id: str, reason: str) -> None:
        try:
            self.manager.suspend(key_id, reason=reason)
        except APIKeyError as exc:
            logger.warning("apikeys: could not suspend key %s: %s", key_id, exc.code)

    def _flush(self, timeout: float | None) -> bool:
        return self._flush_sync(timeout)


class LoopActions(MonitorBase):
    """How an :class:`~apikeys.monitoring.AsyncMonitor` acts: a detector's
    ``suspend`` is scheduled on the event loop the manager emits from (captured
    from the first event), and :meth:`_aflush` waits for it."""

    manager: AsyncKeyManager

    def __init__(self, manager: Any, **options: Any) -> None:
        self._actions: set[concurrent.futures.Future[Any]] = set()
        self._actions_lock = threading.Lock()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        super().__init__(manager, **options)

    def emit(self, event: Event) -> None:
        """Take one event (see :meth:`MonitorBase.emit`); remembers the event loop."""
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

    async def _aflush(self, timeout: float | None) -> bool:
        done = True
        for _ in range(3):
            done = await asyncio.to_thread(self._flush_sync, timeout)
            with self._actions_lock:
                pending = list(self._actions)
            if not pending:
                break
            await asyncio.gather(*(asyncio.wrap_future(f) for f in pending), return_exceptions=True)
        return done


class _Processor:
    """What the monitor's buffer delivers batches to (in its background thread)."""

    __slots__ = ("_monitor",)

    def __init__(self, monitor: MonitorBase) -> None:
        self._monitor = monitor

    def emit(self, event: Event) -> None:
        self._monitor._process((event,))

    def emit_batch(self, events: Sequence[Event]) -> None:
        self._monitor._process(events)


def check_review_args(
    unused_for: timedelta | None, max_age: timedelta | None, broad_scopes: Collection[str]
) -> frozenset[str]:
    check_window(unused_for, "unused_for")
    check_window(max_age, "max_age")
    if isinstance(broad_scopes, str):
        raise InvalidArgument("broad_scopes must be a list of scopes, not one string")
    return frozenset(broad_scopes)
