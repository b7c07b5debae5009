"""Each detector, driven by scripted traffic through a real manager on a manual
clock: it fires on the attack pattern and stays quiet on normal traffic of the
same volume. Then the actions: record, callback, suspend (sync and async)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from apikeys import (
    APIKeyError,
    AsyncKeyManager,
    AuthenticationError,
    ConfigurationError,
    KeyManager,
    KeyState,
)
from apikeys.events import AnomalyDetected
from apikeys.hashing import Argon2Hasher
from apikeys.monitoring import (
    AsyncMonitor,
    Detector,
    FailedSecretBurst,
    ManyAddresses,
    Monitor,
    NewNetwork,
    TrafficSpike,
)
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock
from core_support import with_wrong_secret


def anomalies(monitor: Monitor) -> list[dict[str, Any]]:
    return [e.data for e in monitor.audit(types=["key.anomaly"])]


def attempt(manager: KeyManager, raw: str, ip: str) -> None:
    with contextlib.suppress(APIKeyError):
        manager.verify(raw, ip=ip)


# --- failed-secret bursts ---------------------------------------------------------------


def test_failed_secret_burst_fires_on_guessing(
    manager: KeyManager, clock: ManualClock, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(detectors=[FailedSecretBurst(threshold=20, window=timedelta(minutes=5))])
    issued = manager.create(owner="o")
    for i in range(40):
        attempt(manager, with_wrong_secret(issued.plaintext), ip=f"198.51.100.{i % 3}")
        clock.advance(timedelta(seconds=6))
    (found,) = anomalies(monitor)  # the cooldown keeps it to one per window
    assert found["detector"] == "failed_secret_burst"
    assert found["action"] == "record"
    evidence = found["evidence"]
    assert evidence["failures"] == 20
    assert evidence["addresses"] == ["198.51.100.0", "198.51.100.1", "198.51.100.2"]
    assert sum(evidence["codes"].values()) == 20
    assert set(evidence["codes"]) <= {"invalid_secret", "too_many_failures"}
    assert manager.get(issued.key.id).state(clock.now) is KeyState.ACTIVE


def test_failed_secret_burst_quiet_on_normal_traffic(
    manager: KeyManager, clock: ManualClock, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(detectors=[FailedSecretBurst(threshold=20, window=timedelta(minutes=5))])
    issued = manager.create(owner="o")
    for i in range(40):  # the same volume: 40 attempts, but the holder's occasional typos
        raw = with_wrong_secret(issued.plaintext) if i % 5 == 0 else issued.plaintext
        attempt(manager, raw, ip="10.0.0.1")
        clock.advance(timedelta(seconds=6))
    for _ in range(40):  # and 40 failures spread over hours
        attempt(manager, with_wrong_secret(issued.plaintext), ip="10.0.0.1")
        clock.advance(timedelta(minutes=20))
    monitor.flush()
    assert anomalies(monitor) == []


# --- many addresses -----------------------------------------------------------------------


def test_many_addresses_fires_when_a_key_spreads(
    manager: KeyManager, clock: ManualClock, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(
        detectors=[ManyAddresses(max_addresses=10, window=timedelta(minutes=10))]
    )
    issued = manager.create(owner="o")
    for i in range(60):
        manager.verify(issued.plaintext, ip=f"203.0.113.{i % 30}")
        clock.advance(timedelta(seconds=5))
    (found,) = anomalies(monitor)
    evidence = found["evidence"]
    assert evidence["distinct_addresses"] == 11
    assert evidence["addresses"][0] == "203.0.113.10"


def test_many_addresses_quiet_on_normal_traffic(
    manager: KeyManager, clock: ManualClock, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(
        detectors=[ManyAddresses(max_addresses=10, window=timedelta(minutes=10))]
    )
    issued = manager.create(owner="o")
    for i in range(60):  # same volume from a few servers
        manager.verify(issued.plaintext, ip=f"10.0.0.{i % 4}")
        clock.advance(timedelta(seconds=5))
    for i in range(60):  # 60 addresses, but a new one every 2 minutes (DHCP churn)
        manager.verify(issued.plaintext, ip=f"10.9.{i}.1")
        clock.advance(timedelta(minutes=2))
    monitor.flush()
    assert anomalies(monitor) == []


# --- never-seen network -----------------------------------------------------------------


def _learn(manager: KeyManager, clock: ManualClock, raw: str) -> None:
    for i in range(48):  # a day of requests from the office and the CI network
        manager.verify(raw, ip="10.20.30.4" if i % 2 else "2001:db8:1:2::7")
        clock.advance(timedelta(minutes=31))


def test_new_network_fires_once_per_never_seen_network(
    manager: KeyManager, clock: ManualClock, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(detectors=[NewNetwork()])
    issued = manager.create(owner="o")
    _learn(manager, clock, issued.plaintext)
    for _ in range(3):
        manager.verify(issued.plaintext, ip="198.51.100.23")
        manager.verify(issued.plaintext, ip="2001:db8:ffff::1")
        manager.verify(issued.plaintext, ip="10.20.30.99")  # known /24
    found = anomalies(monitor)
    assert [f["evidence"]["network"] for f in found] == ["198.51.100.0/24", "2001:db8:ffff::/48"]
    assert found[0]["evidence"]["address"] == "198.51.100.23"
    assert found[0]["evidence"]["known_networks"] == 2


def test_new_network_quiet_on_normal_traffic_and_while_learning(
    manager: KeyManager, clock: ManualClock, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(detectors=[NewNetwork()])
    issued = manager.create(owner="o")
    _learn(manager, clock, issued.plaintext)
    for i in range(6):  # the same volume afterwards, from the known networks
        manager.verify(issued.plaintext, ip=f"10.20.30.{i}")
    young = manager.create(owner="o")
    for i in range(6):  # a new key roams freely while it learns
        manager.verify(young.plaintext, ip=f"198.51.{i}.1")
    monitor.flush()
    assert anomalies(monitor) == []


# --- traffic far above the key's baseline -----------------------------------------------


def _traffic(manager: KeyManager, clock: ManualClock, raw: str, per_minute: list[int]) -> None:
    for count in per_minute:
        for _ in range(count):
            manager.verify(raw, ip="10.0.0.1")
        clock.advance(timedelta(minutes=1))


def test_traffic_spike_fires_far_above_the_baseline(
    manager: KeyManager, clock: ManualClock, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(detectors=[TrafficSpike(factor=10, min_history=30, min_requests=50)])
    issued = manager.create(owner="o")
    _traffic(manager, clock, issued.plaintext, [5] * 40 + [120])
    (found,) = anomalies(monitor)
    evidence = found["evidence"]
    assert evidence["requests"] == 50  # fired as soon as the window crossed the threshold
    assert evidence["baseline"] == pytest.approx(5, abs=0.5)
    assert evidence["threshold"] == 50


def test_traffic_spike_quiet_on_a_steadily_busy_key(
    manager: KeyManager, clock: ManualClock, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(detectors=[TrafficSpike(factor=10, min_history=30, min_requests=50)])
    busy = manager.create(owner="o")
    _traffic(manager, clock, busy.plaintext, [120] * 41)  # the spike's volume is its normal
    fresh = manager.create(owner="o")
    _traffic(manager, clock, fresh.plaintext, [120] * 3)  # no history: not judged yet
    lull = manager.create(owner="o")  # quiet hours then a normal minute: not a spike
    _traffic(manager, clock, lull.plaintext, [40] * 30 + [0] * 20 + [40])
    monitor.flush()
    assert anomalies(monitor) == []


# --- actions --------------------------------------------------------------------------------


def test_callback_action(
    manager: KeyManager, clock: ManualClock, make_monitor: Callable[..., Monitor]
) -> None:
    called: list[tuple[AnomalyDetected, str]] = []

    def on_anomaly(event: AnomalyDetected) -> None:
        called.append((event, threading.current_thread().name))

    detector = NewNetwork(
        learning=timedelta(0), min_requests=1, action="callback", callback=on_anomaly
    )
    monitor = make_monitor(detectors=[detector])
    issued = manager.create(owner="team")
    manager.verify(issued.plaintext, ip="10.0.0.1")
    manager.verify(issued.plaintext, ip="192.0.2.1")
    monitor.flush()
    ((event, thread),) = called
    assert (event.key_id, event.owner, event.action) == (issued.key.id, "team", "callback")
    assert thread == "apikeys-monitor"  # never on the request path
    assert manager.get(issued.key.id).state(clock.now) is KeyState.ACTIVE


def test_suspend_action_suspends_reversibly(
    manager: KeyManager, clock: ManualClock, make_monitor: Callable[..., Monitor]
) -> None:
    detector = NewNetwork(learning=timedelta(0), min_requests=1, action="suspend")
    monitor = make_monitor(detectors=[detector])
    issued = manager.create(owner="team")
    manager.verify(issued.plaintext, ip="10.0.0.1")
    manager.verify(issued.plaintext, ip="192.0.2.1")  # succeeds: detection is after the fact
    monitor.flush()
    key = manager.get(issued.key.id)
    assert key.state(clock.now) is KeyState.DISABLED
    assert key.disabled_reason == "anomaly: new_network"
    with pytest.raises(AuthenticationError) as caught:
        manager.verify(issued.plaintext, ip="10.0.0.1")
    assert caught.value.code == "disabled"
    assert [e.type for e in monitor.audit(key_id=key.id)][-3:] == [
        "key.anomaly",
        "key.suspended",
        "key.verification_failed",
    ]
    manager.enable(key.id)
    manager.verify(issued.plaintext, ip="10.0.0.1")


@pytest.mark.anyio
async def test_async_monitor_suspends_on_the_event_loop(clock: ManualClock) -> None:
    manager = AsyncKeyManager(
        MemoryStore(), prefix="acme", hasher=Argon2Hasher.for_tests(), clock=clock
    )
    detector = NewNetwork(learning=timedelta(0), min_requests=1, action="suspend")
    monitor = AsyncMonitor(manager, detectors=[detector])
    try:
        issued = await manager.create(owner="team")
        await manager.verify(issued.plaintext, ip="10.0.0.1")
        await manager.verify(issued.plaintext, ip="192.0.2.1")
        assert await monitor.flush()
        key = await manager.get(issued.key.id)
        assert key.state(clock.now) is KeyState.DISABLED
        entries = await monitor.audit(key_id=key.id)
        assert [e.type for e in entries][-2:] == ["key.anomaly", "key.suspended"]
    finally:
        await monitor.aclose()


def test_detector_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        FailedSecretBurst(action="explode")
    with pytest.raises(ConfigurationError):
        ManyAddresses(action="callback")
    with pytest.raises(ConfigurationError):
        TrafficSpike(factor=1)
    with pytest.raises(ConfigurationError):
        NewNetwork(ipv4_prefix=33)
    with pytest.raises(ConfigurationError):
        FailedSecretBurst(window=timedelta(0))
    manager = KeyManager(MemoryStore(), prefix="acme")
    with pytest.raises(ConfigurationError):
        Monitor(manager, detectors=[object()])  # type: ignore[list-item]


def test_detector_state_is_bounded(clock: ManualClock) -> None:
    from apikeys.events import KeyVerified

    detector = NewNetwork(max_keys=3, learning=timedelta(0), min_requests=0)
    for i in range(10):
        detector.observe(KeyVerified(at=clock.now, key_id=f"K{i:015d}", ip="10.0.0.1"))
    assert len(detector._keys) == 3
    assert isinstance(detector, Detector)


@pytest.mark.redis
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-process"])
def test_burst_spread_over_two_processes(
    redis_url: str, redis_namespace: str, clock: ManualClock, shared: bool
) -> None:
    """12 wrong secrets in each of two processes: 24 within the window, over the
    threshold of 20 only when the detectors share their window; then exactly one
    of them fires (the cooldown is shared)."""
    import multiprocessing

    from monitoring_detector_worker import run

    ctx = multiprocessing.get_context("spawn")
    gate, results = ctx.Barrier(2), ctx.Queue()
    args = (redis_url, redis_namespace, "k" * 16, clock.now.isoformat())
    workers = [
        ctx.Process(target=run, args=(*args, offset, 12, shared, gate, results))
        for offset in (0, 1)
    ]
    for worker in workers:
        worker.start()
    try:
        fired = [results.get(timeout=60) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
        import redis

        client = redis.Redis.from_url(redis_url)
        for name in list(client.scan_iter(match=redis_namespace + "*")):
            client.delete(name)
        client.close()
    assert all(isinstance(n, int) for n in fired), fired
    assert sum(fired) == (1 if shared else 0)


def test_shared_state_down_falls_back_to_the_process_window(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    from apikeys.events import VerificationFailed
    from apikeys.monitoring import RedisDetectorState

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    state = RedisDetectorState(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    detector = FailedSecretBurst(threshold=3, shared=state)
    found = [
        detector.observe(
            VerificationFailed(at=clock.now, key_id="k" * 16, code="invalid_secret", ip="::1")
        )
        for _ in range(3)
    ]
    state.close()
    assert found[:2] == [None, None]
    assert found[2] is not None
    assert found[2]["failures"] == 3
    assert "shared state of detector failed_secret_burst unavailable" in caplog.text
    with pytest.raises(ConfigurationError):
        TrafficSpike(shared=state)  # type: ignore[arg-type]
