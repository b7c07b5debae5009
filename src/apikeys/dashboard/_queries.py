"""What each page shows, read from the monitor, its stores and the manager. Every
read is bounded: a fixed number of buckets, a LIMIT, or a fixed number of pages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from apikeys import _keyformat
from apikeys._models import APIKey, KeyState
from apikeys.dashboard._bridge import Watched
from apikeys.dashboard._svg import status_class
from apikeys.errors import APIKeyError, InvalidArgument, KeyNotFound
from apikeys.monitoring._audit import AuditEntry, AuditHistory
from apikeys.monitoring._review import ReviewFinding, review_key
from apikeys.monitoring._usage import (
    AddressActivity,
    UsageSummaries,
    bucket_range,
    day_range,
    merge_addresses,
)

PERIODS: Mapping[str, tuple[timedelta, str]] = {
    "1h": (timedelta(hours=1), "minute"),
    "24h": (timedelta(hours=24), "hour"),
    "7d": (timedelta(days=7), "hour"),
    "30d": (timedelta(days=30), "day"),
    "90d": (timedelta(days=90), "day"),
    "365d": (timedelta(days=365), "day"),
}
"""The periods a page can show, and the bucket width each is drawn with."""

DEFAULT_PERIOD = "24h"
FAILURE_TYPES = ("key.verification_failed", "key.rate_limited")
FAILURE_SCAN = 2000
"""Failure entries read to count failures by code (newest first); past it the
page says "at least"."""
TOP = 10
LIST_PAGE = 50
LIST_SCAN = 2000
"""Keys read per list page when filtering by prefix or text (the store filters
by owner and state itself)."""
REVIEW_PAGE = 250
EXPIRING_WITHIN = timedelta(days=14)
NEAR_LIMIT = 0.8
AUDIT_PAGE = 50
LINEAGE_DEPTH = 20


def period_of(name: str | None) -> str:
    """A known period name (the default for anything else)."""
    return name if name is not None and name in PERIODS else DEFAULT_PERIOD


def bucket_label(bucket: int, width: int) -> str:
    """A bucket start as a short UTC label."""
    at = datetime.fromtimestamp(bucket, timezone.utc)
    return at.strftime("%Y-%m-%d" if width >= 86_400 else "%m-%d %H:%M")


@dataclass
class Limits:
    """A key's tightest window or quota, when the limiter can tell."""

    key: APIKey
    policy: str
    used: int
    limit: int

    @property
    def fraction(self) -> float:
        """Share of the limit used."""
        return self.used / self.limit if self.limit else 1.0


@dataclass
class Overview:
    """The overview page of one period."""

    period: str
    since: datetime
    until: datetime
    summaries: bool
    total: int = 0
    previous: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    buckets: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    failure_codes: list[tuple[str, int]] = field(default_factory=list)
    failures_capped: bool = False
    top_keys: list[tuple[str, int, APIKey | None]] = field(default_factory=list)
    top_routes: list[tuple[str, int]] = field(default_factory=list)
    near_limits: list[Limits] = field(default_factory=list)
    anomalies: list[AuditEntry] = field(default_factory=list)
    findings: list[ReviewFinding] = field(default_factory=list)
    expiring: list[APIKey] = field(default_factory=list)
    review_next: str | None = None


@dataclass
class KeyList:
    """One page of the keys list."""

    keys: list[APIKey]
    next_after: str | None
    scanned: int


@dataclass
class KeyDetail:
    """Everything the page of one key shows."""

    key: APIKey
    period: str
    lineage: list[APIKey]
    total: int
    buckets: list[tuple[str, dict[str, int]]]
    routes: list[tuple[tuple[str, str, int], int]]
    addresses: list[AddressActivity]
    audit: list[AuditEntry]
    audit_next: int | None
    limits: list[Limits]


class Queries:
    """Reads for the pages, over one monitor (and its manager)."""

    def __init__(self, monitor: Watched) -> None:
        self.monitor = monitor
        self.manager = monitor.manager

    def _window(self, period: str) -> tuple[datetime, datetime, int, int, int]:
        span, granularity = PERIODS[period]
        until = self.manager.now() + timedelta(microseconds=1)
        since = until - span
        width, start, end = bucket_range(since, until, granularity)
        return since, until, width, start, end

    def _recent(self, **filters: object) -> list[AuditEntry]:
        store = self.monitor.audit_store
        if isinstance(store, AuditHistory):
            return store.recent(**filters)  # type: ignore[arg-type]
        # A third-party store without newest-first reads: oldest first, bounded.
        filters.pop("before_id", None)
        return store.query(**filters)  # type: ignore[arg-type]

    def overview(self, period: str) -> Overview:
        """The overview of ``period`` (a key of :data:`PERIODS`)."""
        since, until, width, start, end = self._window(period)
        self.monitor.flush(timeout=2.0)
        store = self.monitor.usage_store
        view = Overview(period, since, until, isinstance(store, UsageSummaries))
        if isinstance(store, UsageSummaries):
            per_bucket: dict[int, dict[str, int]] = {}
            for bucket, status, n in store.totals(granularity=width, since=start, until=end):
                cls = status_class(status)
                slot = per_bucket.setdefault(bucket, {})
                slot[cls] = slot.get(cls, 0) + n
                view.by_class[cls] = view.by_class.get(cls, 0) + n
            view.total = sum(view.by_class.values())
            view.buckets = [
                (bucket_label(b, width), per_bucket.get(b, {})) for b in range(start, end, width)
            ]
            span = end - start
            view.previous = sum(
                n for _, _, n in store.totals(granularity=width, since=start - span, until=start)
            )
            for key_id, n in store.top("key_id", granularity=width, since=start, until=end):
                view.top_keys.append((key_id, n, self._get(key_id)))
            view.top_routes = store.top("route", granularity=width, since=start, until=end)
            view.near_limits = [
                found
                for _, _, key in view.top_keys
                if key is not None
                for found in self.limits(key)
                if found.fraction >= NEAR_LIMIT
            ]
        failures = self._recent(types=FAILURE_TYPES, since=since, until=until, limit=FAILURE_SCAN)
        codes: dict[str, int] = {}
        for entry in failures:
            code = str(entry.data.get("code", entry.type))
            codes[code] = codes.get(code, 0) + 1
        view.failure_codes = sorted(codes.items(), key=lambda item: (-item[1], item[0]))
        view.failures_capped = len(failures) >= FAILURE_SCAN
        view.anomalies = self._recent(types=("key.anomaly",), since=since, limit=TOP)
        view.findings, view.expiring, view.review_next = self.review(None)
        return view

    def review(self, after: str | None) -> tuple[list[ReviewFinding], list[APIKey], str | None]:
        """Findings and keys expiring soon among one page of keys (by id)."""
        now = self.manager.now()
        page = self.manager.list(limit=REVIEW_PAGE, after=after)
        findings = [
            finding
            for key in page
            if (
                finding := review_key(
                    key,
                    now,
                    unused_for=timedelta(days=90),
                    max_age=timedelta(days=365),
                    broad_scopes=("*",),
                )
            )
            is not None
        ]
        expiring = [
            key
            for key in page
            if key.state(now) is KeyState.ACTIVE
            and key.expires_at is not None
            and key.expires_at - now <= EXPIRING_WITHIN
        ]
        expiring.sort(key=lambda key: key.expires_at or now)
        following = page[-1].id if len(page) == REVIEW_PAGE else None
        return findings, expiring, following

    def _get(self, key_id: str) -> APIKey | None:
        try:
            return self.manager.get(key_id)
        except KeyNotFound:
            return None

    def limits(self, key: APIKey) -> list[Limits]:
        """The key's windows and quota, if the manager's limiter can peek."""
        limiter = self.manager.rate_limiter
        peek = getattr(limiter, "peek", None)
        if peek is None:
            return []
        try:
            usage = peek(key)
        except APIKeyError:
            return []
        statuses = [*usage.limits, *([usage.quota] if usage.quota is not None else [])]
        return [Limits(key, s.policy, s.limit - s.remaining, s.limit) for s in statuses]

    def keys(
        self,
        *,
        owner: str | None,
        state: str | None,
        prefix: str | None,
        text: str | None,
        after: str | None,
    ) -> KeyList:
        """One page of keys matching the filters, in id order.

        Owner and state are filtered by the store; prefix and text (part of the id
        or the name) by reading at most :data:`LIST_SCAN` keys per page.

        Raises:
            InvalidArgument: an unknown state.
        """
        if text and _keyformat.is_key_id(text):
            key = self._get(text)
            return KeyList([key] if key is not None else [], None, 1)
        if state and state not in {s.value for s in KeyState}:
            raise InvalidArgument("unknown state")
        if not prefix and not text:
            page = self.manager.list(owner=owner, state=state, limit=LIST_PAGE, after=after)
            following = page[-1].id if len(page) == LIST_PAGE else None
            return KeyList(page, following, len(page))
        needle = (text or "").lower()
        found: list[APIKey] = []
        scanned = 0
        cursor = after
        while scanned < LIST_SCAN:
            page = self.manager.list(owner=owner, state=state, limit=500, after=cursor)
            for key in page:
                scanned += 1
                if (not prefix or key.prefix == prefix) and (
                    not needle or needle in key.id.lower() or needle in (key.name or "").lower()
                ):
                    found.append(key)
                    if len(found) >= LIST_PAGE:
                        return KeyList(found, key.id, scanned)
            if len(page) < 500:
                return KeyList(found, None, scanned)
            cursor = page[-1].id
        return KeyList(found, cursor, scanned)

    def key(self, key_id: str, period: str, before_id: int | None) -> KeyDetail:
        """The page of one key.

        Raises:
            KeyNotFound: no such key.
        """
        key = self.manager.get(key_id)
        since, until, width, start, end = self._window(period)
        self.monitor.flush(timeout=2.0)
        rows = self.monitor.usage_store.counts(key_id, granularity=width, since=start, until=end)
        per_bucket: dict[int, dict[str, int]] = {}
        routes: dict[tuple[str, str, int], int] = {}
        for row in rows:
            slot = per_bucket.setdefault(row.bucket, {})
            cls = status_class(row.status)
            slot[cls] = slot.get(cls, 0) + row.count
            name = (row.method, row.route, row.status)
            routes[name] = routes.get(name, 0) + row.count
        day_start, day_end = day_range(since, until)
        addresses = merge_addresses(
            self.monitor.usage_store.addresses(key_id, since=day_start, until=day_end)
        )
        audit = self._recent(key_ids=[key_id], before_id=before_id, limit=AUDIT_PAGE)
        return KeyDetail(
            key=key,
            period=period,
            lineage=self.lineage(key),
            total=sum(routes.values()),
            buckets=[
                (bucket_label(b, width), per_bucket.get(b, {})) for b in range(start, end, width)
            ],
            routes=sorted(routes.items(), key=lambda item: (-item[1], item[0]))[:100],
            addresses=addresses[:50],
            audit=audit,
            audit_next=audit[-1].id if len(audit) == AUDIT_PAGE else None,
            limits=self.limits(key),
        )

    def lineage(self, key: APIKey) -> list[APIKey]:
        """The key's rotation chain, oldest first (at most 20 each way)."""
        return [*reversed(self._chain(key, "replaces")), key, *self._chain(key, "replaced_by")]

    def _chain(self, key: APIKey, link: str) -> list[APIKey]:
        found: list[APIKey] = []
        current: APIKey | None = key
        while current is not None and len(found) < LINEAGE_DEPTH:
            following = getattr(current, link)
            current = self._get(following) if following else None
            if current is not None:
                found.append(current)
        return found
