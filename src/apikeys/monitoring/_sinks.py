"""Event sinks: structured logging, user callbacks, and a bounded buffer that
delivers in a background thread so the request path never waits on a sink."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from apikeys._logsafe import log_safe_data
from apikeys.errors import ConfigurationError
from apikeys.events import Event, EventSink

logger = logging.getLogger("apikeys")

DEFAULT_LEVELS: Mapping[str, int] = {
    "key.verified": logging.DEBUG,
    "request.completed": logging.DEBUG,
    "key.verification_failed": logging.INFO,
    "key.rate_limited": logging.INFO,
    "key.anomaly": logging.WARNING,
}
"""Log levels of :class:`LoggingSink` by event type; other types log at INFO."""

_COLUMNS = ("type", "at", "key_id", "owner")


def deliver(sink: EventSink, events: Sequence[Event]) -> None:
    """Hand ``events`` to ``sink``: in one ``emit_batch`` call if it has one, else one
    ``emit`` each. An exception is logged, never raised (like the managers do)."""
    batch = getattr(sink, "emit_batch", None)
    try:
        if batch is not None:
            batch(events)
            return
        for event in events:
            sink.emit(event)
    except Exception:
        logger.exception("apikeys: event sink %r failed on a batch of %d", sink, len(events))


class LoggingSink:
    """Writes each event as one record of the standard :mod:`logging` module.

    The message is short and human-readable; the fields ride on the record as
    ``extra``: ``apikeys_event`` (the type), ``apikeys_key_id``, ``apikeys_owner``
    and ``apikeys_fields`` (every other field of the event, JSON-ready), so a
    JSON formatter or a log shipper can index them. Events carry no secret, so
    neither do the records. Every string, in the message and in ``extra``, has its
    control, line-separator and other non-printable characters escaped
    (``\\x0a``, ``\\u2028``; a backslash as ``\\\\``): a hostile owner, reason,
    address or route cannot forge or hide a log line.

    Args:
        logger: The logger (or its name) to write to.
        levels: Level by event type (``"key.anomaly"``); see :data:`DEFAULT_LEVELS`.
        default_level: The level of types missing from ``levels``.

    Raises:
        ConfigurationError: ``logger`` is neither a name nor a ``logging.Logger``.
    """

    def __init__(
        self,
        logger: logging.Logger | str = "apikeys.events",
        *,
        levels: Mapping[str, int] | None = None,
        default_level: int = logging.INFO,
    ) -> None:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        if not isinstance(logger, logging.Logger):
            raise ConfigurationError("logger must be a logging.Logger or a logger name")
        self.logger = logger
        self._levels = dict(DEFAULT_LEVELS if levels is None else levels)
        self._default_level = default_level

    def __repr__(self) -> str:
        return f"LoggingSink(logger={self.logger.name!r})"

    def emit(self, event: Event) -> None:
        """Log ``event`` (nothing is built when its level is disabled)."""
        level = self._levels.get(event.type, self._default_level)
        if not self.logger.isEnabledFor(level):
            return
        data = log_safe_data(event.to_dict())
        fields = {name: value for name, value in data.items() if name not in _COLUMNS}
        self.logger.log(
            level,
            "apikeys %s key_id=%s owner=%s %s",
            data["type"],
            data["key_id"],
            data["owner"],
            " ".join(f"{name}={value}" for name, value in fields.items()),
            extra={
                "apikeys_event": data["type"],
                "apikeys_key_id": data["key_id"],
                "apikeys_owner": data["owner"],
                "apikeys_fields": fields,
            },
        )


class CallbackSink:
    """Calls ``callback(event)`` for every event, or only for the given types.

    The callback runs where the event is emitted (the request path, or the
    background thread of a :class:`BufferedSink` wrapping this sink): keep it quick.

    Args:
        callback: Called with each event.
        types: Event types to pass (``{"key.anomaly", "key.revoked"}``); all if ``None``.

    Raises:
        ConfigurationError: ``callback`` is not callable.
    """

    def __init__(
        self, callback: Callable[[Event], object], *, types: Collection[str] | None = None
    ) -> None:
        if not callable(callback):
            raise ConfigurationError("callback must be callable")
        self.callback = callback
        self.types = None if types is None else frozenset(types)

    def __repr__(self) -> str:
        return f"CallbackSink({self.callback!r})"

    def emit(self, event: Event) -> None:
        """Call the callback if ``event`` is of a selected type."""
        if self.types is None or event.type in self.types:
            self.callback(event)


class _Marker:
    """Put in the queue by :meth:`BufferedSink.flush`; set once everything before it
    was delivered."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_live: weakref.WeakSet[BufferedSink] = weakref.WeakSet()
_hooks_installed = False
_hooks_lock = threading.Lock()


def _close_all_at_exit() -> None:
    for sink in list(_live):
        sink.close(timeout=2.0)


def _reset_after_fork() -> None:
    for sink in list(_live):
        sink._after_fork()


def _install_process_hooks() -> None:
    global _hooks_installed
    with _hooks_lock:
        if not _hooks_installed:
            atexit.register(_close_all_at_exit)
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_reset_after_fork)
            _hooks_installed = True


class BufferedSink:
    """Takes events on the request path in O(1) and delivers them to ``sinks`` from
    one background thread, in batches, in emission order.

    ``emit`` never blocks and never does I/O: it appends to a bounded queue. When
    the queue is full the event is dropped and counted in :attr:`dropped` (and a
    warning is logged, at most once a minute), never silently lost, never waited
    for. The thread starts on the first event (so a process forked before that,
    e.g. by a pre-forking server, starts its own), wakes at least every
    ``interval`` seconds, and is stopped, after a final delivery, by
    :meth:`close` or at interpreter exit.

    A wrapped sink with an ``emit_batch(events)`` method gets whole batches (the
    SQL audit stores use it to write one transaction per batch).

    Args:
        sinks: The sink, or sinks, to deliver to.
        maxsize: Events the queue holds before it drops.
        interval: Longest wait, in seconds, between deliveries.
        on_tick: Called in the background thread after each wake-up (periodic
            work such as flushing aggregated counters); exceptions are logged.
        name: The background thread's name.

    Raises:
        ConfigurationError: no sink, an object without ``emit``, ``maxsize`` < 1 or
            ``interval`` <= 0.
    """

    def __init__(
        self,
        sinks: EventSink | Iterable[EventSink],
        *,
        maxsize: int = 10_000,
        interval: float = 0.25,
        on_tick: Callable[[], object] | None = None,
        name: str = "apikeys-events",
    ) -> None:
        if isinstance(sinks, EventSink):
            targets: tuple[Any, ...] = (sinks,)
        elif isinstance(sinks, Iterable):
            targets = tuple(sinks)
        else:
            targets = ()
        if not targets or not all(isinstance(sink, EventSink) for sink in targets):
            raise ConfigurationError("BufferedSink needs one or more sinks with emit()")
        if maxsize < 1 or interval <= 0:
            raise ConfigurationError("maxsize must be >= 1 and interval > 0")
        self.sinks: tuple[EventSink, ...] = targets
        self.maxsize = maxsize
        self.interval = interval
        self._on_tick = on_tick
        self._name = name
        self._wake_at = max(1, maxsize // 4)
        self._setup()

    def _setup(self) -> None:
        self._queue: deque[Event | _Marker] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._dropped = 0
        self._delivered = 0
        self._warned_at = -1.0

    def __repr__(self) -> str:
        return (
            f"BufferedSink({len(self.sinks)} sinks, queued={len(self._queue)}, "
            f"dropped={self._dropped})"
        )

    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full (or the sink closed)."""
        return self._dropped

    @property
    def delivered(self) -> int:
        """Events handed to the wrapped sinks so far."""
        return self._delivered

    @property
    def pending(self) -> int:
        """Events waiting in the queue."""
        return len(self._queue)

    def emit(self, event: Event) -> None:
        """Queue ``event`` for delivery; drop (and count) it if the queue is full."""
        queue = self._queue
        if len(queue) >= self.maxsize or self._closed:
            self._drop()
            return
        queue.append(event)
        if self._thread is None:
            self._start()
        elif len(queue) >= self._wake_at and not self._wake.is_set():
            self._wake.set()

    def _drop(self) -> None:
        with self._lock:
            self._dropped += 1
            now = time.monotonic()
            if self._warned_at < 0 or now - self._warned_at >= 60:
                self._warned_at = now
                logger.warning(
                    "apikeys: event buffer full, dropping events (%d dropped so far)",
                    self._dropped,
                )

    def start(self) -> None:
        """Start the background thread now (otherwise the first event starts it)."""
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            _install_process_hooks()
            _live.add(self)
            thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread = thread
            thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._drain()
            if self._on_tick is not None:
                try:
                    self._on_tick()
                except Exception:
                    logger.exception("apikeys: periodic task of %r failed", self)
            if self._closed and not self._queue:
                return

    def _drain(self) -> None:
        queue = self._queue
        batch: list[Event] = []
        while True:
            try:
                item = queue.popleft()
            except IndexError:
                break
            if isinstance(item, _Marker):
                self._deliver(batch)
                batch = []
                item.done.set()
            else:
                batch.append(item)
        self._deliver(batch)

    def _deliver(self, batch: list[Event]) -> None:
        if not batch:
            return
        for sink in self.sinks:
            deliver(sink, batch)
        self._delivered += len(batch)

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every event queued so far (and any event the wrapped sinks
        emitted meanwhile) was delivered.

        Args:
            timeout: Longest wait in seconds (``None``: no limit).

        Returns:
            Whether everything was delivered in time.
        """
        if self._thread is None:
            if not self._queue:
                return True
            self._start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            thread = self._thread
            if thread is None or not thread.is_alive():
                return not self._queue
            if thread is threading.current_thread():
                self._drain()  # called from a wrapped sink: deliver in place
                return True
            marker = _Marker()
            self._queue.append(marker)
            self._wake.set()
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not marker.done.wait(left):
                return False
            if not self._queue:
                return True

    def close(self, timeout: float | None = 5.0) -> None:
        """Deliver what is queued, then stop the thread; later events are dropped.

        Args:
            timeout: Longest wait in seconds for the final delivery.
        """
        with self._lock:
            self._closed = True
            thread = self._thread
        _live.discard(self)
        if thread is not None and thread is not threading.current_thread():
            self._wake.set()
            thread.join(timeout)

    def _after_fork(self) -> None:
        # The parent delivers what it had queued; the child starts empty, with fresh
        # locks (one may have been held at the fork) and its own thread on first use.
        dropped, closed = self._dropped, self._closed
        self._setup()
        self._dropped, self._closed = dropped, closed
