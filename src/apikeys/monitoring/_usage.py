"""Usage counting: requests per key per time bucket (minute, hour, day) by method,
route and status, plus per-day client addresses; the store protocol, the in-memory
store, the recorder that aggregates events in memory, and the report."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

from apikeys.errors import InvalidArgument, StorageError
from apikeys.events import Event, RequestCompleted
from apikeys.monitoring._audit import from_micros, to_micros

GRANULARITIES: Mapping[str, int] = {"minute": 60, "hour": 3600, "day": 86_400}
"""Bucket widths in seconds. Buckets are aligned on the UTC epoch (days are UTC days)."""

DEFAULT_RETENTION: Mapping[str, timedelta] = {
    "minute": timedelta(days=2),
    "hour": timedelta(days=90),
    "day": timedelta(days=730),
}
"""How long each bucket width is kept (client addresses: as long as days)."""

OTHER = "(other)"
"""The route (or address) counted for a key once it has more distinct ones than
the recorder's cap: a client cannot grow the tables without bound by requesting
random paths."""

DIMENSIONS = ("method", "route", "status")
MAX_BUCKETS = 10_000
MAX_ROUTE_LENGTH = 255
MAX_METHOD_LENGTH = 16
_DAY = 86_400


@dataclass(frozen=True, slots=True)
class CounterRow:
    """One counter: requests of ``key_id`` in the bucket starting at ``bucket``
    (epoch seconds) of width ``granularity`` seconds, with this method, route and
    status. Stores add rows and read them back."""

    key_id: str
    granularity: int
    bucket: int
    method: str
    route: str
    status: int
    count: int


@dataclass(frozen=True, slots=True)
class AddressRow:
    """Requests of ``key_id`` from ``ip`` on the UTC day starting at ``day`` (epoch
    seconds), with the first and last time seen (epoch microseconds)."""

    key_id: str
    day: int
    ip: str
    count: int
    first_us: int
    last_us: int


@runtime_checkable
class UsageStore(Protocol):
    """Where usage counters are kept.

    Contract:

    - ``add`` adds every row's ``count`` to the stored counter (creating it at
      zero); for addresses it also keeps the earliest ``first_us`` and the latest
      ``last_us``. Additions from many processes at once are never lost.
    - ``counts`` returns the rows of one key and width with ``since <= bucket <
      until``; ``addresses`` the rows of one key with ``since <= day < until``.
    - ``prune(now)`` deletes what is older than the store's retention.
    - Driver errors surface as :class:`~apikeys.errors.StorageError`.
    """

    def add(self, counts: Sequence[CounterRow], addresses: Sequence[AddressRow]) -> None: ...

    def counts(
        self, key_id: str, *, granularity: int, since: int, until: int
    ) -> list[CounterRow]: ...

    def addresses(self, key_id: str, *, since: int, until: int) -> list[AddressRow]: ...

    def prune(self, now: datetime) -> int: ...

    def close(self) -> None: ...


SUMMARY_DIMENSIONS = ("key_id", "route")
"""What :meth:`UsageSummaries.top` can rank."""

MAX_TOP = 1000


@runtime_checkable
class UsageSummaries(Protocol):
    """Queries across all keys, for dashboards (the SQL and memory stores have them).

    Contract:

    - ``totals`` returns ``(bucket, status, requests)`` of every key together,
      for buckets of width ``granularity`` with ``since <= bucket < until``,
      ordered by bucket then status.
    - ``top`` returns at most ``limit`` ``(value, requests)`` pairs of
      ``dimension`` (``"key_id"`` or ``"route"``) over the same range, busiest
      first (ties by value).
    - Both read only rows of one width in one range (an indexed range scan in
      the SQL stores) and return bounded results.
    """

    def totals(self, *, granularity: int, since: int, until: int) -> list[tuple[int, int, int]]: ...

    def top(
        self, dimension: str, *, granularity: int, since: int, until: int, limit: int = 10
    ) -> list[tuple[str, int]]: ...


def check_top(dimension: str, limit: int) -> str:
    """Validate the arguments of ``top``; returns the dimension.

    Raises:
        InvalidArgument: an unknown dimension or a limit outside 1-1000.
    """
    if dimension not in SUMMARY_DIMENSIONS:
        raise InvalidArgument("dimension must be key_id or route")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_TOP:
        raise InvalidArgument(f"limit must be between 1 and {MAX_TOP}")
    return dimension


def rank(counts: Mapping[str, int], limit: int) -> list[tuple[str, int]]:
    """The ``limit`` largest counts, busiest first, ties by value."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]


def check_retention(retention: Mapping[str, timedelta] | None) -> dict[str, timedelta]:
    """The retention per width, defaults filled in.

    Raises:
        InvalidArgument: an unknown width or a non-positive period.
    """
    merged = dict(DEFAULT_RETENTION)
    for name, period in (retention or {}).items():
        if name not in GRANULARITIES:
            raise InvalidArgument(f"unknown granularity {name!r}; use minute, hour or day")
        if not isinstance(period, timedelta) or period <= timedelta(0):
            raise InvalidArgument("a retention period must be a positive timedelta")
        merged[name] = period
    return merged


def cutoffs(retention: Mapping[str, timedelta], now: datetime) -> dict[int, int]:
    """Per width in seconds, the epoch second before which buckets are pruned."""
    stamp = int(now.timestamp())
    return {
        GRANULARITIES[name]: stamp - int(period.total_seconds())
        for name, period in retention.items()
    }


class MemoryUsageStore:
    """Usage counters in dicts, for tests and single-process apps. Thread-safe.

    Args:
        retention: How long each width is kept (see :data:`DEFAULT_RETENTION`).
    """

    def __init__(self, *, retention: Mapping[str, timedelta] | None = None) -> None:
        self.retention = check_retention(retention)
        self._counts: dict[tuple[str, int, int, str, str, int], int] = {}
        self._addresses: dict[tuple[str, int, str], list[int]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryUsageStore(<{len(self._counts)} counters>)"

    def add(self, counts: Sequence[CounterRow], addresses: Sequence[AddressRow]) -> None:
        """Add rows (see :class:`UsageStore`)."""
        with self._lock:
            table = self._counts
            for row in counts:
                k = (row.key_id, row.granularity, row.bucket, row.method, row.route, row.status)
                table[k] = table.get(k, 0) + row.count
            for a in addresses:
                entry = self._addresses.get((a.key_id, a.day, a.ip))
                if entry is None:
                    self._addresses[(a.key_id, a.day, a.ip)] = [a.count, a.first_us, a.last_us]
                else:
                    entry[0] += a.count
                    entry[1] = min(entry[1], a.first_us)
                    entry[2] = max(entry[2], a.last_us)

    def counts(self, key_id: str, *, granularity: int, since: int, until: int) -> list[CounterRow]:
        """Rows of one key and width in ``[since, until)``."""
        with self._lock:
            items = list(self._counts.items())
        return [
            CounterRow(k[0], k[1], k[2], k[3], k[4], k[5], n)
            for k, n in items
            if k[0] == key_id and k[1] == granularity and since <= k[2] < until
        ]

    def addresses(self, key_id: str, *, since: int, until: int) -> list[AddressRow]:
        """Address rows of one key with a day in ``[since, until)``."""
        with self._lock:
            items = [(k, list(v)) for k, v in self._addresses.items()]
        return [
            AddressRow(k[0], k[1], k[2], v[0], v[1], v[2])
            for k, v in items
            if k[0] == key_id and since <= k[1] < until
        ]

    def totals(self, *, granularity: int, since: int, until: int) -> list[tuple[int, int, int]]:
        """Requests of all keys per bucket and status (see :class:`UsageSummaries`)."""
        with self._lock:
            items = list(self._counts.items())
        merged: dict[tuple[int, int], int] = {}
        for k, n in items:
            if k[1] == granularity and since <= k[2] < until:
                merged[(k[2], k[5])] = merged.get((k[2], k[5]), 0) + n
        return [(bucket, status, n) for (bucket, status), n in sorted(merged.items())]

    def top(
        self, dimension: str, *, granularity: int, since: int, until: int, limit: int = 10
    ) -> list[tuple[str, int]]:
        """The busiest keys or routes (see :class:`UsageSummaries`).

        Raises:
            InvalidArgument: an unknown dimension or a bad limit.
        """
        column = 0 if check_top(dimension, limit) == "key_id" else 4
        with self._lock:
            items = list(self._counts.items())
        merged: dict[str, int] = {}
        for k, n in items:
            if k[1] == granularity and since <= k[2] < until:
                value = str(k[column])
                merged[value] = merged.get(value, 0) + n
        return rank(merged, limit)

    def prune(self, now: datetime) -> int:
        """Delete buckets older than the retention; returns how many rows went."""
        limits = cutoffs(self.retention, now)
        with self._lock:
            old = [k for k in self._counts if k[2] < limits[k[1]]]
            for k in old:
                del self._counts[k]
            stale = [k for k in self._addresses if k[1] < limits[_DAY]]
            for a in stale:
                del self._addresses[a]
        return len(old) + len(stale)

    def close(self) -> None:
        """Nothing to release."""


# --- the recorder -----------------------------------------------------------------------


class UsageRecorder:
    """An event sink that counts :class:`~apikeys.events.RequestCompleted` events.

    On the request path ``emit`` only appends the (immutable) event to a bounded
    queue: O(1), no lock, no I/O. :meth:`drain` aggregates queued events by key,
    minute, method, route and status (and by key, day and client address);
    :meth:`flush` drains, rolls minutes up into hours and days and adds
    everything to the store in one call, so the store sees one write per flush,
    not one per request. :class:`~apikeys.monitoring.Monitor` drains and flushes
    in its background thread, and flushes before every query.

    Args:
        store: Where counters go.
        max_routes_per_key: Distinct ``(method, route)`` pairs counted per key (per
            process) before further ones count as route ``"(other)"``.
        max_addresses_per_key: Distinct client addresses kept per key per day
            before further ones count as ``"(other)"``.
        max_queue: Events queued between drains; beyond it, requests are dropped
            and counted in :attr:`dropped`.
        max_pending: Aggregated entries kept while the store is failing; beyond
            that, counts are dropped and counted in :attr:`dropped`.

    Raises:
        InvalidArgument: a cap below 1.
    """

    event_types: frozenset[str] = frozenset({RequestCompleted.type})
    """The only events this sink takes (managers build no others for it)."""

    def __init__(
        self,
        store: UsageStore,
        *,
        max_routes_per_key: int = 200,
        max_addresses_per_key: int = 1000,
        max_queue: int = 200_000,
        max_pending: int = 100_000,
    ) -> None:
        if min(max_routes_per_key, max_addresses_per_key, max_queue, max_pending) < 1:
            raise InvalidArgument("the caps of a UsageRecorder must be >= 1")
        self.store = store
        self.max_routes_per_key = max_routes_per_key
        self.max_addresses_per_key = max_addresses_per_key
        self.max_queue = max_queue
        self.max_pending = max_pending
        self._queue: deque[RequestCompleted] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[tuple[str, int, str, str, int], int] = {}
        self._pending_ips: dict[tuple[str, int, str], list[int]] = {}
        self._routes: dict[str, set[tuple[str, str]]] = {}
        self._ips: dict[tuple[str, int], set[str]] = {}
        self._last_day = 0
        self._dropped = 0

    def __repr__(self) -> str:
        return f"UsageRecorder(store={self.store!r})"

    @property
    def dropped(self) -> int:
        """Requests not counted: the queue was full, or the store kept failing and
        the backlog was full."""
        return self._dropped

    def emit(self, event: Event) -> None:
        """Queue ``event`` for counting if it is a ``RequestCompleted`` (O(1))."""
        if type(event) is RequestCompleted and event.key_id is not None:
            if len(self._queue) >= self.max_queue:
                with self._lock:
                    self._dropped += 1
                return
            self._queue.append(event)

    def record(
        self,
        key_id: str,
        *,
        at: datetime,
        method: str,
        route: str,
        status: int,
        ip: str | None = None,
    ) -> None:
        """Count one request at once (what draining does for each queued event)."""
        with self._lock:
            self._count(key_id, at, method, route, status, ip)

    def drain(self) -> int:
        """Aggregate every queued event; returns how many.

        Safe from any thread: events are taken from the queue one by one, so a
        request that queues while this runs is counted now or by the next drain.
        """
        queue = self._queue
        done = 0
        with self._lock:
            while True:
                try:
                    e = queue.popleft()
                except IndexError:
                    return done
                self._count(e.key_id or "", e.at, e.method, e.route, e.status, e.ip)
                done += 1

    def _count(
        self, key_id: str, at: datetime, method: str, route: str, status: int, ip: str | None
    ) -> None:
        # Exact: a double's error at today's epoch is far below half a microsecond.
        us = round(at.timestamp() * 1_000_000)
        minute = us // 60_000_000 * 60
        method = method.upper()[:MAX_METHOD_LENGTH]
        route = route[:MAX_ROUTE_LENGTH]
        routes = self._routes.get(key_id)
        if routes is None:
            routes = self._routes[key_id] = set()
        if (method, route) not in routes:
            if len(routes) >= self.max_routes_per_key:
                route = OTHER
            else:
                routes.add((method, route))
        k = (key_id, minute, method, route, status)
        self._pending[k] = self._pending.get(k, 0) + 1
        if ip is not None:
            self._count_address(key_id, minute - minute % _DAY, ip[:64], us)

    def _count_address(self, key_id: str, day: int, ip: str, us: int) -> None:
        seen = self._ips.get((key_id, day))
        if seen is None:
            seen = self._ips[(key_id, day)] = set()
            if day > self._last_day:
                self._last_day = day
                for old in [k for k in self._ips if k[1] < day - _DAY]:
                    del self._ips[old]
        if ip not in seen:
            if len(seen) >= self.max_addresses_per_key:
                ip = OTHER
            else:
                seen.add(ip)
        entry = self._pending_ips.get((key_id, day, ip))
        if entry is None:
            self._pending_ips[(key_id, day, ip)] = [1, us, us]
        else:
            entry[0] += 1
            if us < entry[1]:
                entry[1] = us
            if us > entry[2]:
                entry[2] = us

    def flush(self) -> None:
        """Drain, then add everything counted so far to the store.

        Raises:
            StorageError: the store failed; the counts are kept for the next flush
                (up to ``max_pending`` entries).
        """
        with self._flush_lock:
            self.drain()
            with self._lock:
                pending, self._pending = self._pending, {}
                pending_ips, self._pending_ips = self._pending_ips, {}
            if not pending and not pending_ips:
                return
            counts = roll_up(pending)
            addresses = [
                AddressRow(k[0], k[1], k[2], v[0], v[1], v[2]) for k, v in pending_ips.items()
            ]
            try:
                self.store.add(counts, addresses)
            except StorageError:
                self._keep(pending, pending_ips)
                raise

    def _keep(
        self,
        pending: dict[tuple[str, int, str, str, int], int],
        pending_ips: dict[tuple[str, int, str], list[int]],
    ) -> None:
        with self._lock:
            for k, n in pending.items():
                if k in self._pending or len(self._pending) < self.max_pending:
                    self._pending[k] = self._pending.get(k, 0) + n
                else:
                    self._dropped += n
            for a, v in pending_ips.items():
                entry = self._pending_ips.get(a)
                if entry is not None:
                    entry[0] += v[0]
                    entry[1] = min(entry[1], v[1])
                    entry[2] = max(entry[2], v[2])
                elif len(self._pending_ips) < self.max_pending:
                    self._pending_ips[a] = v


def roll_up(pending: Mapping[tuple[str, int, str, str, int], int]) -> list[CounterRow]:
    """Minute counts as rows of every width (minute, hour, day), sorted by primary
    key so concurrent writers lock rows in one order."""
    merged: dict[tuple[str, int, int, str, str, int], int] = {}
    for (key_id, minute, method, route, status), n in pending.items():
        for width in (60, 3600, _DAY):
            k = (key_id, width, minute - minute % width, method, route, status)
            merged[k] = merged.get(k, 0) + n
    return [CounterRow(*k, count=n) for k, n in sorted(merged.items())]


# --- the report -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddressActivity:
    """Requests of one key from one client address over a period.

    Attributes:
        ip: The address (``"(other)"`` past the per-day cap).
        count: Requests.
        first_seen: The first request in the period.
        last_seen: The last request in the period.
    """

    ip: str
    count: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Requests of one key over ``[since, until)``.

    Attributes:
        key_id: The key.
        since: Start of the first bucket (aligned down to ``granularity``).
        until: The end of the period (exclusive).
        granularity: ``"minute"``, ``"hour"`` or ``"day"``.
        by: The dimensions of :attr:`counts`, e.g. ``("route", "status")``.
        total: All requests in the period.
        counts: Requests per combination of the ``by`` values, e.g.
            ``{("/orders/{id}", 200): 41, ("/orders/{id}", 404): 2}``.
        series: ``(bucket start, requests)`` for every bucket, zeros included.
    """

    key_id: str
    since: datetime
    until: datetime
    granularity: str
    by: tuple[str, ...]
    total: int
    counts: dict[tuple[str | int, ...], int] = field(default_factory=dict)
    series: tuple[tuple[datetime, int], ...] = ()

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "key_id": self.key_id,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "granularity": self.granularity,
            "by": list(self.by),
            "total": self.total,
            "counts": [
                {**dict(zip(self.by, values, strict=True)), "count": n}
                for values, n in self.counts.items()
            ],
            "series": [[at.isoformat(), n] for at, n in self.series],
        }


def pick_granularity(since: datetime, until: datetime) -> str:
    """The finest width that keeps a period to a readable number of buckets."""
    span = until - since
    if span <= timedelta(hours=6):
        return "minute"
    if span <= timedelta(days=14):
        return "hour"
    return "day"


def bucket_range(since: datetime, until: datetime, granularity: str) -> tuple[int, int, int]:
    """``(width, first bucket start, until)`` in epoch seconds.

    Raises:
        InvalidArgument: an unknown width, naive datetimes, ``since >= until``, or
            more than 10000 buckets.
    """
    width = GRANULARITIES.get(granularity)
    if width is None:
        raise InvalidArgument(f"unknown granularity {granularity!r}; use minute, hour or day")
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidArgument("since and until must be timezone-aware")
    if since >= until:
        raise InvalidArgument("since must be before until")
    start = to_micros(since) // 1_000_000
    start -= start % width
    end = -(-to_micros(until) // 1_000_000)
    if (end - start) // width > MAX_BUCKETS:
        raise InvalidArgument(
            f"{granularity} buckets over that period are more than {MAX_BUCKETS}: "
            "use a coarser granularity or a shorter period"
        )
    return width, start, end


def check_by(by: Iterable[str]) -> tuple[str, ...]:
    """Validate the ``by`` dimensions.

    Raises:
        InvalidArgument: an unknown or repeated dimension.
    """
    if isinstance(by, str):
        by = (by,)
    result = tuple(by)
    if len(set(result)) != len(result) or not set(result) <= set(DIMENSIONS):
        raise InvalidArgument(f"by must name distinct dimensions among {', '.join(DIMENSIONS)}")
    return result


def build_report(
    key_id: str,
    rows: Iterable[CounterRow],
    *,
    width: int,
    start: int,
    end: int,
    until: datetime,
    granularity: str,
    by: tuple[str, ...],
) -> UsageReport:
    """Group stored rows into a :class:`UsageReport` (pure)."""
    per_bucket: dict[int, int] = {}
    counts: dict[tuple[str | int, ...], int] = {}
    total = 0
    for row in rows:
        if not start <= row.bucket < end:
            continue
        total += row.count
        per_bucket[row.bucket] = per_bucket.get(row.bucket, 0) + row.count
        values: tuple[str | int, ...] = tuple(getattr(row, name) for name in by)
        counts[values] = counts.get(values, 0) + row.count
    series = tuple(
        (datetime.fromtimestamp(bucket, timezone.utc), per_bucket.get(bucket, 0))
        for bucket in range(start, end, width)
    )
    ordered = dict(sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))))
    return UsageReport(
        key_id=key_id,
        since=datetime.fromtimestamp(start, timezone.utc),
        until=until,
        granularity=granularity,
        by=by,
        total=total,
        counts=ordered,
        series=series,
    )


def merge_addresses(rows: Iterable[AddressRow]) -> list[AddressActivity]:
    """Per address over several days: counts summed, first/last seen widened;
    busiest first."""
    merged: dict[str, list[int]] = {}
    for row in rows:
        entry = merged.get(row.ip)
        if entry is None:
            merged[row.ip] = [row.count, row.first_us, row.last_us]
        else:
            entry[0] += row.count
            entry[1] = min(entry[1], row.first_us)
            entry[2] = max(entry[2], row.last_us)
    activity = [
        AddressActivity(ip, v[0], from_micros(v[1]), from_micros(v[2])) for ip, v in merged.items()
    ]
    activity.sort(key=lambda a: (-a.count, a.ip))
    return activity


def day_range(since: datetime, until: datetime) -> tuple[int, int]:
    """The epoch-second day starts covering ``[since, until)``."""
    start = to_micros(since) // 1_000_000
    end = -(-to_micros(until) // 1_000_000)
    return start - start % _DAY, end
