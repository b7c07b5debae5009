"""apikeys.metrics against prometheus_client's own registry and OpenTelemetry's
SDK with its in-memory exporter."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from apikeys import AsyncKeyManager, KeyManager
from apikeys.errors import AuthenticationError, ConfigurationError, RateLimited
from apikeys.metrics import OpenTelemetryTracing, PrometheusMetrics
from apikeys.monitoring import Monitor
from apikeys.ratelimit import KeyRateLimiter
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock, test_hasher


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_prometheus_counts_outcomes_durations_and_lifecycle(manager: KeyManager) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    metrics.instrument(manager)
    issued = manager.create(owner="team-1")
    for _ in range(3):
        manager.verify(issued.plaintext)
    with pytest.raises(AuthenticationError):
        manager.verify(issued.plaintext[:-8] + "AAAAAAAA")  # bad checksum: malformed
    manager.revoke(issued.key.id)
    with pytest.raises(AuthenticationError):
        manager.verify(issued.plaintext)
    assert value(registry, "apikeys_verifications_total", outcome="ok") == 3
    assert value(registry, "apikeys_verifications_total", outcome="malformed") == 1
    assert value(registry, "apikeys_verifications_total", outcome="revoked") == 1
    assert value(registry, "apikeys_verification_duration_seconds_count", result="ok") == 3
    assert value(registry, "apikeys_verification_duration_seconds_count", result="refused") == 2
    assert value(registry, "apikeys_verification_duration_seconds_sum", result="ok") > 0
    cumulative = [
        value(registry, "apikeys_verification_duration_seconds_bucket", result="ok", le=le)
        for le in ("5e-05", "0.001", "0.05", "+Inf")
    ]
    assert cumulative == sorted(cumulative)
    assert cumulative[-1] == 3
    assert value(registry, "apikeys_lifecycle_events_total", event="key.created") == 1
    assert value(registry, "apikeys_lifecycle_events_total", event="key.revoked") == 1
    text = generate_latest(registry).decode()
    assert issued.key.id not in text  # no per-key label by default
    with pytest.raises(ConfigurationError, match="already instrumented"):
        metrics.instrument(manager)


def test_prometheus_rate_limits_anomalies_and_drops(clock: ManualClock) -> None:
    limiter = KeyRateLimiter(default=["2/minute"], clock=clock)
    keys = KeyManager(
        MemoryStore(), prefix="acme", hasher=test_hasher(), clock=clock, rate_limiter=limiter
    )
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry, per_key=True)
    metrics.instrument(keys)
    issued = keys.create(owner="team-1")
    keys.verify(issued.plaintext)
    keys.verify(issued.plaintext)
    with pytest.raises(RateLimited):
        keys.verify(issued.plaintext)
    assert value(registry, "apikeys_rate_limited_total", kind="rate_limited") == 1
    assert value(registry, "apikeys_verifications_total", outcome="ok", key_id=issued.key.id) == 2
    from apikeys.events import AnomalyDetected

    keys._emit(AnomalyDetected(at=clock(), key_id=issued.key.id, detector="new_network"))
    assert value(registry, "apikeys_anomalies_total", detector="new_network") == 1
    with Monitor(keys, flush_interval=60) as monitor:  # no drain during the test
        metrics.watch(monitor)
        monitor.recorder.max_queue = 1
        for _ in range(3):
            keys.record_request(issued.key, method="GET", route="/", status=200)
        assert monitor.dropped >= 1
        assert value(registry, "apikeys_events_dropped_total") == monitor.dropped


@pytest.mark.anyio
async def test_prometheus_on_the_async_manager(clock: ManualClock) -> None:
    keys = AsyncKeyManager(MemoryStore(), prefix="acme", hasher=test_hasher(), clock=clock)
    registry = CollectorRegistry()
    PrometheusMetrics(registry).instrument(keys)
    issued = await keys.create(owner="team-1")
    await keys.verify(issued.plaintext)
    assert value(registry, "apikeys_verifications_total", outcome="ok") == 1


@pytest.fixture
def spans() -> object:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_opentelemetry_span_carries_the_key_id_not_the_owner(
    manager: KeyManager, spans: object
) -> None:
    provider, exporter = spans  # type: ignore[misc]
    OpenTelemetryTracing(provider).instrument(manager)
    issued = manager.create(owner="team-1")
    manager.verify(issued.plaintext)
    manager.revoke(issued.key.id)
    with pytest.raises(AuthenticationError):
        manager.verify(issued.plaintext)
    ok, refused = exporter.get_finished_spans()
    assert ok.name == "apikeys.verify"
    assert ok.attributes["apikeys.key_id"] == issued.key.id
    assert "apikeys.owner" not in ok.attributes
    assert refused.attributes["apikeys.outcome"] == "revoked"
    assert refused.status.status_code.name == "ERROR"
    assert refused.events == ()  # no exception recorded
    for span in (ok, refused):
        assert issued.plaintext not in str(dict(span.attributes))


def test_opentelemetry_owner_by_opt_in(clock: ManualClock, spans: object) -> None:
    provider, exporter = spans  # type: ignore[misc]
    keys = KeyManager(MemoryStore(), prefix="acme", hasher=test_hasher(), clock=clock)
    OpenTelemetryTracing(provider, include_owner=True).instrument(keys)
    keys.verify(keys.create(owner="team-9").plaintext)
    (span,) = exporter.get_finished_spans()
    assert span.attributes["apikeys.owner"] == "team-9"


def test_instrument_refuses_what_is_not_a_manager_and_bad_buckets() -> None:
    with pytest.raises(ConfigurationError):
        PrometheusMetrics(CollectorRegistry()).instrument(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="buckets"):
        PrometheusMetrics(CollectorRegistry(), buckets=(0.1, 0.01))


def test_the_docs_example_runs() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "docs/metrics.md", "exec"), {})  # noqa: S102  (our own docs)
