"""Usage counters on a Redis Cluster and behind Sentinel: exact across two
processes, exactly once across a lost reply, one slot per key."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from apikeys import StorageError
from apikeys.monitoring import Monitor, RedisUsageStore, UsageRecorder
from apikeys.testing import ManualClock, make_manager

from _redis_servers import forget  # isort: skip

WORKER = Path(__file__).resolve().parents[1] / "monitoring" / "monitoring_usage_worker.py"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def test_counts_exact_across_two_processes(topology_url: str, namespace: str) -> None:
    manager = make_manager("acme", clock=ManualClock(T0))
    key = manager.create(owner="team").key
    threads, per_thread = 4, 300
    command = [
        sys.executable, str(WORKER), topology_url, namespace, key.model_dump_json(),
        T0.isoformat(), str(threads), str(per_thread),
    ]  # fmt: skip
    workers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert out.strip() == "dropped=0"
    reader = Monitor(manager, usage_store=RedisUsageStore(topology_url, namespace=namespace))
    try:
        for granularity in ("minute", "hour", "day"):
            report = reader.usage(
                key.id, since=T0, until=T0 + timedelta(minutes=1), granularity=granularity
            )
            assert report.total == 2 * threads * per_thread, granularity
        addresses = reader.addresses(key.id, since=T0, until=T0 + timedelta(minutes=1))
        assert sum(a.count for a in addresses) == 2 * threads * per_thread
    finally:
        reader.close()
        forget(topology_url, namespace)


def test_flush_of_many_keys_counts_once_across_a_lost_reply(
    topology_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys in many slots, the reply of the flush lost after Redis applied it."""
    import redis

    clock = ManualClock(T0)
    manager = make_manager("acme", clock=clock)
    store = RedisUsageStore(topology_url, namespace=namespace)
    recorder = UsageRecorder(store)
    manager.add_sink(recorder)
    keys = [manager.create(owner=f"team-{n}").key for n in range(12)]
    send = store._run
    faults = [1]

    def drop_reply(calls: Any) -> None:
        send(calls)
        if faults:
            faults.pop()
            raise redis.ConnectionError("connection lost before the reply")

    monkeypatch.setattr(store, "_run", drop_reply)
    try:
        for key in keys:
            manager.record_request(key, method="GET", route="/x", status=200, ip="10.0.0.1")
        with pytest.raises(StorageError):
            recorder.flush()
        for key in keys[:4]:
            manager.record_request(key, method="GET", route="/x", status=200, ip="10.0.0.1")
        recorder.flush()
        since = int(T0.timestamp())
        for n, key in enumerate(keys):
            rows = store.counts(key.id, granularity=60, since=since, until=since + 60)
            assert sum(r.count for r in rows) == (2 if n < 4 else 1), n
    finally:
        store.close()
        forget(topology_url, namespace)


def test_shared_detector_window(topology_url: str, namespace: str) -> None:
    """Two detectors (as in two workers) feeding one window on the deployment: the
    burst split between them fires once."""
    from apikeys.events import VerificationFailed
    from apikeys.monitoring import FailedSecretBurst, RedisDetectorState

    states = [RedisDetectorState(topology_url, namespace=namespace) for _ in range(2)]
    detectors = [FailedSecretBurst(threshold=10, shared=state) for state in states]
    fired = 0
    try:
        for n in range(16):
            event = VerificationFailed(
                at=T0 + timedelta(seconds=n), key_id="k" * 16, code="invalid_secret", ip="::1"
            )
            if detectors[n % 2].observe(event) is not None:
                fired += 1
    finally:
        for state in states:
            state.close()
        forget(topology_url, namespace)
    assert fired == 1
