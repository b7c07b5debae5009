"""Usage counters: exact per bucket, route and status on every backend, exact under
concurrent requests, exact across two processes sharing Redis."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from apikeys import APIKey, InvalidArgument, KeyManager, StorageError
from apikeys.monitoring import (
    OTHER,
    CounterRow,
    MemoryUsageStore,
    Monitor,
    RedisUsageStore,
    UsageRecorder,
    UsageStore,
)
from apikeys.testing import ManualClock

HERE = Path(__file__).parent
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def _key(manager: KeyManager) -> APIKey:
    return manager.create(owner="team").key


def test_counts_by_route_status_and_bucket(
    manager: KeyManager,
    clock: ManualClock,
    usage_store: UsageStore,
    make_monitor: Callable[..., Monitor],
) -> None:
    monitor = make_monitor(usage_store=usage_store)
    key = _key(manager)
    other = _key(manager)
    start = clock.now
    for minute in range(3):
        for _ in range(minute + 1):
            manager.record_request(
                key, method="get", route="/orders/{id}", status=200, ip="10.0.0.1"
            )
        manager.record_request(key, method="POST", route="/orders", status=201, ip="10.0.0.2")
        clock.advance(timedelta(minutes=1))
    clock.advance(timedelta(hours=1))
    manager.record_request(key, method="GET", route="/orders/{id}", status=404, ip="10.0.0.1")
    manager.record_request(other, method="GET", route="/orders/{id}", status=200)

    report = monitor.usage(key.id, since=start, granularity="minute")
    assert report.total == 10
    assert report.counts == {
        ("/orders/{id}", 200): 6,
        ("/orders", 201): 3,
        ("/orders/{id}", 404): 1,
    }
    assert report.series[:4] == (
        (start, 2),
        (start + timedelta(minutes=1), 3),
        (start + timedelta(minutes=2), 4),
        (start + timedelta(minutes=3), 0),
    )
    assert report.series[-1] == (clock.now, 1)
    assert len(report.series) == 64

    hourly = monitor.usage(key.id, since=start, by=("method",), granularity="hour")
    assert hourly.counts == {("GET",): 7, ("POST",): 3}
    assert [n for _, n in hourly.series] == [9, 1]
    daily = monitor.usage(key.id, since=start - timedelta(days=2), by=(), granularity="day")
    assert daily.counts == {(): 10}
    assert [n for _, n in daily.series] == [0, 0, 10]
    assert monitor.usage(other.id).total == 1
    assert monitor.usage(key.id, until=start).total == 0

    addresses = {a.ip: a for a in monitor.addresses(key.id)}
    assert {ip: a.count for ip, a in addresses.items()} == {"10.0.0.1": 7, "10.0.0.2": 3}
    assert addresses["10.0.0.1"].first_seen == start
    assert addresses["10.0.0.1"].last_seen == clock.now
    assert addresses["10.0.0.2"].last_seen == start + timedelta(minutes=2)


def test_default_period_picks_a_readable_granularity(
    manager: KeyManager, clock: ManualClock, monitor: Monitor
) -> None:
    key = _key(manager)
    manager.record_request(key, method="GET", route="/x", status=200)
    report = monitor.usage(key.id)
    assert (report.granularity, report.total, len(report.series)) == ("hour", 1, 25)
    assert monitor.usage(key.id, since=clock.now - timedelta(hours=1)).granularity == "minute"
    assert monitor.usage(key.id, since=clock.now - timedelta(days=60)).granularity == "day"
    assert report.to_dict()["counts"] == [{"route": "/x", "status": 200, "count": 1}]


def test_bad_queries_are_refused_without_echoing_a_key(
    manager: KeyManager, clock: ManualClock, monitor: Monitor
) -> None:
    issued = manager.create(owner="o")
    with pytest.raises(InvalidArgument) as caught:
        monitor.usage(issued.plaintext)
    assert issued.plaintext not in str(caught.value)
    key_id = issued.key.id
    with pytest.raises(InvalidArgument):
        monitor.usage(key_id, by=("route", "route"))
    with pytest.raises(InvalidArgument):
        monitor.usage(key_id, by=("ip",))
    with pytest.raises(InvalidArgument):
        monitor.usage(key_id, granularity="week")
    with pytest.raises(InvalidArgument):
        monitor.usage(key_id, since=clock.now, until=clock.now - timedelta(hours=1))
    with pytest.raises(InvalidArgument, match="coarser"):
        monitor.usage(key_id, since=clock.now - timedelta(days=30), granularity="minute")


def test_exact_under_concurrent_requests(
    manager: KeyManager, clock: ManualClock, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(flush_interval=0.01)  # drains race the requests
    key = _key(manager)
    threads, per_thread = 8, 2_000
    gate = threading.Barrier(threads)

    def work(slot: int) -> None:
        gate.wait()
        for i in range(per_thread):
            status = 200 if i % 4 else 500
            manager.record_request(
                key, method="GET", route=f"/r{slot % 2}", status=status, ip=f"10.1.{slot}.1"
            )

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    report = monitor.usage(key.id)
    assert report.total == threads * per_thread
    per_route = threads // 2 * per_thread
    assert report.counts == {
        ("/r0", 200): per_route * 3 // 4,
        ("/r1", 200): per_route * 3 // 4,
        ("/r0", 500): per_route // 4,
        ("/r1", 500): per_route // 4,
    }
    assert sum(a.count for a in monitor.addresses(key.id)) == threads * per_thread
    assert monitor.dropped == 0


@pytest.mark.redis
def test_redis_counts_exact_across_two_processes(
    manager: KeyManager, redis_url: str, redis_namespace: str
) -> None:
    key = _key(manager)
    threads, per_thread = 4, 750
    command = [
        sys.executable,
        str(HERE / "monitoring_usage_worker.py"),
        redis_url,
        redis_namespace,
        key.model_dump_json(),
        T0.isoformat(),
        str(threads),
        str(per_thread),
    ]
    workers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert out.strip() == "dropped=0"
    store = RedisUsageStore(redis_url, namespace=redis_namespace)
    reader = Monitor(manager, usage_store=store, attach=False)
    try:
        for granularity in ("minute", "hour", "day"):
            report = reader.usage(
                key.id, since=T0, until=T0 + timedelta(minutes=1), granularity=granularity
            )
            assert report.total == 2 * threads * per_thread, granularity
            assert report.counts == {
                ("/orders/{id}", 200): 2000,
                ("/orders", 201): 2000,
                ("/orders/{id}", 404): 2000,
            }
        addresses = reader.addresses(key.id, since=T0, until=T0 + timedelta(minutes=1))
        assert len(addresses) == threads * 7
        assert sum(a.count for a in addresses) == 2 * threads * per_thread
        assert {a.first_seen for a in addresses} == {T0}
    finally:
        reader.close()


def test_stores_add_up_and_keep_first_and_last_seen(usage_store: UsageStore) -> None:
    from apikeys.monitoring import AddressRow

    row = CounterRow("K" * 16, 60, 1_767_268_800, "GET", "/a", 200, 2)
    usage_store.add([row], [AddressRow("K" * 16, 1_767_225_600, "10.0.0.1", 2, 500, 900)])
    usage_store.add(
        [row, CounterRow("K" * 16, 60, 1_767_268_800, "GET", "/a", 500, 1)],
        [AddressRow("K" * 16, 1_767_225_600, "10.0.0.1", 3, 100, 700)],
    )
    rows = usage_store.counts("K" * 16, granularity=60, since=1_767_268_800, until=1_767_268_860)
    assert sorted((r.status, r.count) for r in rows) == [(200, 4), (500, 1)]
    day = 1_767_225_600
    assert usage_store.counts("K" * 16, granularity=3600, since=day, until=day + 86_400) == []
    assert (
        usage_store.counts("K" * 16, granularity=60, since=1_767_268_860, until=1_767_268_920) == []
    )
    (address,) = usage_store.addresses("K" * 16, since=1_767_225_600, until=1_767_312_000)
    assert (address.count, address.first_us, address.last_us) == (5, 100, 900)


def test_prune_drops_buckets_past_retention(manager: KeyManager, clock: ManualClock) -> None:
    store = MemoryUsageStore(retention={"minute": timedelta(hours=1)})
    monitor = Monitor(manager, usage_store=store)
    try:
        key = _key(manager)
        manager.record_request(key, method="GET", route="/x", status=200, ip="10.0.0.1")
        monitor.flush()
        clock.advance(timedelta(hours=2))
        assert monitor.prune_now() == 1  # the minute bucket; hour, day and address remain
        assert (
            monitor.usage(key.id, granularity="minute", since=clock.now - timedelta(hours=3)).total
            == 0
        )
        assert monitor.usage(key.id, granularity="hour").total == 1
    finally:
        monitor.close()


def test_sql_prune(usage_store: UsageStore, clock: ManualClock) -> None:
    from apikeys.monitoring import AddressRow

    if isinstance(usage_store, RedisUsageStore):
        assert usage_store.prune(clock.now) == 0  # Redis expires keys itself
        return
    old = int((clock.now - timedelta(days=800)).timestamp()) // 86_400 * 86_400
    usage_store.add(
        [
            CounterRow("K" * 16, 86_400, old, "GET", "/a", 200, 1),
            CounterRow("K" * 16, 86_400, old + 86_400 * 790, "GET", "/a", 200, 1),
        ],
        [AddressRow("K" * 16, old, "10.0.0.1", 1, 1, 1)],
    )
    assert usage_store.prune(clock.now) == 2


def test_route_and_address_caps_bound_the_tables(manager: KeyManager) -> None:
    store = MemoryUsageStore()
    recorder = UsageRecorder(store, max_routes_per_key=2, max_addresses_per_key=1)
    manager.add_sink(recorder)
    key = _key(manager)
    for i in range(5):
        manager.record_request(
            key, method="GET", route=f"/random/{i}", status=404, ip=f"10.0.0.{i}"
        )
    recorder.flush()
    rows = store.counts(key.id, granularity=60, since=0, until=2**40)
    assert sorted((r.route, r.count) for r in rows) == [
        (OTHER, 3),
        ("/random/0", 1),
        ("/random/1", 1),
    ]
    ips = store.addresses(key.id, since=0, until=2**40)
    assert sorted((a.ip, a.count) for a in ips) == [(OTHER, 4), ("10.0.0.0", 1)]


class FlakyUsage(MemoryUsageStore):
    down = False

    def add(self, counts: object, addresses: object) -> None:
        if self.down:
            raise StorageError("usage database down")
        super().add(counts, addresses)  # type: ignore[arg-type]


def test_counts_survive_a_store_outage(manager: KeyManager) -> None:
    store = FlakyUsage()
    recorder = UsageRecorder(store)
    manager.add_sink(recorder)
    key = _key(manager)
    store.down = True
    manager.record_request(key, method="GET", route="/x", status=200)
    with pytest.raises(StorageError):
        recorder.flush()
    manager.record_request(key, method="GET", route="/x", status=200)
    store.down = False
    recorder.flush()
    assert sum(r.count for r in store.counts(key.id, granularity=60, since=0, until=2**40)) == 2
    assert recorder.dropped == 0


def test_a_full_queue_drops_and_counts(manager: KeyManager) -> None:
    recorder = UsageRecorder(MemoryUsageStore(), max_queue=3)
    manager.add_sink(recorder)
    key = _key(manager)
    for _ in range(5):
        manager.record_request(key, method="GET", route="/x", status=200)
    assert recorder.dropped == 2
    recorder.flush()
    assert recorder.drain() == 0


def test_manager_builds_no_request_event_without_a_taker(manager: KeyManager) -> None:
    seen: list[object] = []

    class Lifecycle:
        event_types = frozenset({"key.created"})

        def emit(self, event: object) -> None:
            seen.append(event)

    manager.add_sink(Lifecycle())
    key = _key(manager)
    assert manager._sinks_for("request.completed") == ()
    manager.record_request(key, method="GET", route="/x", status=200)
    assert [type(e).__name__ for e in seen] == ["KeyCreated"]


@pytest.mark.redis
@pytest.mark.parametrize("lost", ["after-apply", "before-apply"])
def test_redis_flush_counts_once_across_a_lost_reply(
    manager: KeyManager,
    clock: ManualClock,
    redis_url: str,
    redis_namespace: str,
    lost: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flush whose reply is lost (the connection drops after Redis applied it, or
    before) is retried with the next flush and counted exactly once."""
    import redis

    store = RedisUsageStore(redis_url, namespace=redis_namespace)
    recorder = UsageRecorder(store)
    manager.add_sink(recorder)
    key, other = _key(manager), _key(manager)
    send = store._run
    faults = [lost]

    def drop_reply(calls: Any) -> None:
        if faults:
            if faults.pop() == "after-apply":
                send(calls)
            raise redis.ConnectionError("connection lost before the reply")
        send(calls)

    monkeypatch.setattr(store, "_run", drop_reply)
    try:
        for n in range(5):
            manager.record_request(key, method="GET", route="/x", status=200, ip=f"10.0.0.{n}")
        manager.record_request(other, method="GET", route="/y", status=200, ip="10.0.0.9")
        with pytest.raises(StorageError):
            recorder.flush()
        for n in range(3):
            manager.record_request(key, method="GET", route="/x", status=200, ip=f"10.0.0.{n}")
        recorder.flush()
        recorder.flush()  # nothing new: no second application
        now = int(clock.now.timestamp())
        since, until = now - 2 * 86400, now + 2 * 86400
        for width in (60, 3600, 86400):
            rows = store.counts(key.id, granularity=width, since=since, until=until)
            assert sum(r.count for r in rows) == 8, width
            rows = store.counts(other.id, granularity=width, since=since, until=until)
            assert sum(r.count for r in rows) == 1, width
        addresses = store.addresses(key.id, since=since, until=until)
        assert sorted((a.ip, a.count) for a in addresses) == [
            ("10.0.0.0", 2), ("10.0.0.1", 2), ("10.0.0.2", 2), ("10.0.0.3", 1), ("10.0.0.4", 1),
        ]  # fmt: skip
        assert recorder.dropped == 0
    finally:
        client = store._sync()
        for name in list(client.scan_iter(match=redis_namespace + "*")):
            client.delete(name)
        store.close()
