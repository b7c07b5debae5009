"""The dashboard's queries of the monitoring stores, on every backend: totals
and top keys/routes across keys (usage), newest-first reads (audit)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from apikeys.errors import InvalidArgument
from apikeys.events import KeyCreated, KeyRevoked, VerificationFailed
from apikeys.monitoring import AuditStore, UsageStore
from apikeys.monitoring._audit import AuditHistory
from apikeys.monitoring._usage import CounterRow, UsageSummaries

HOUR = 3600
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def _summaries(store: UsageStore) -> UsageSummaries:
    if not isinstance(store, UsageSummaries):
        pytest.skip(f"{type(store).__name__} has no cross-key queries (the dashboard says so)")
    return store


def test_totals_and_top_across_keys(usage_store: UsageStore) -> None:
    store = _summaries(usage_store)
    rows = [
        CounterRow("aaaaaaaaaaaaaaaa", HOUR, T0, "GET", "/a", 200, 5),
        CounterRow("aaaaaaaaaaaaaaaa", HOUR, T0, "GET", "/a", 500, 1),
        CounterRow("bbbbbbbbbbbbbbbb", HOUR, T0, "GET", "/b", 200, 2),
        CounterRow("bbbbbbbbbbbbbbbb", HOUR, T0 + HOUR, "POST", "/b", 200, 7),
        CounterRow("cccccccccccccccc", HOUR, T0 + 2 * HOUR, "GET", "/c", 404, 100),  # outside
        CounterRow("cccccccccccccccc", 86_400, T0, "GET", "/c", 200, 50),  # other width
    ]
    store.add(rows, [])
    totals = store.totals(granularity=HOUR, since=T0, until=T0 + 2 * HOUR)
    assert totals == [(T0, 200, 7), (T0, 500, 1), (T0 + HOUR, 200, 7)]
    keys = store.top("key_id", granularity=HOUR, since=T0, until=T0 + 2 * HOUR)
    assert keys == [("bbbbbbbbbbbbbbbb", 9), ("aaaaaaaaaaaaaaaa", 6)]
    routes = store.top("route", granularity=HOUR, since=T0, until=T0 + 2 * HOUR, limit=1)
    assert routes == [("/b", 9)]
    with pytest.raises(InvalidArgument):
        store.top("owner", granularity=HOUR, since=T0, until=T0 + HOUR)
    with pytest.raises(InvalidArgument):
        store.top("route", granularity=HOUR, since=T0, until=T0 + HOUR, limit=0)


def test_recent_reads_newest_first(audit_store: AuditStore) -> None:
    assert isinstance(audit_store, AuditHistory)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    events = [
        KeyCreated(at=start, key_id="aaaaaaaaaaaaaaaa", owner="o"),
        VerificationFailed(at=start + timedelta(minutes=1), key_id="aaaaaaaaaaaaaaaa", code="x"),
        KeyCreated(at=start + timedelta(minutes=2), key_id="bbbbbbbbbbbbbbbb", owner="o"),
        KeyRevoked(at=start + timedelta(minutes=3), key_id="aaaaaaaaaaaaaaaa", owner="o"),
    ]
    audit_store.emit_batch(events)
    newest = audit_store.recent(limit=2)
    assert [e.type for e in newest] == ["key.revoked", "key.created"]
    older = audit_store.recent(before_id=newest[-1].id, limit=10)
    assert [e.type for e in older] == ["key.verification_failed", "key.created"]
    mine = audit_store.recent(key_ids=["aaaaaaaaaaaaaaaa"], types=["key.created"])
    assert [e.key_id for e in mine] == ["aaaaaaaaaaaaaaaa"]
    window = audit_store.recent(
        since=start + timedelta(minutes=1), until=start + timedelta(minutes=3)
    )
    assert [e.type for e in window] == ["key.created", "key.verification_failed"]
