"""Metrics and traces for the monitoring stack an operator already runs.

- :class:`PrometheusMetrics` (``pip install 'apikeys[prometheus]'``): counters of
  verifications by outcome, rate-limit refusals by kind, lifecycle events,
  anomalies and dropped events, and a histogram of verification durations.
- :class:`OpenTelemetryTracing` (``pip install 'apikeys[opentelemetry]'``, the
  API only): an ``apikeys.verify`` span per verification carrying the key id
  (the owner only when asked).

Both attach to a manager with ``instrument(manager)``, which wraps its
``authenticate`` (``verify`` goes through it) on that one instance: the outcome
and duration are read there, around the call, so no ``key.verified`` event has
to be built on the request path for them. Labels never carry a key id unless
``per_key=True`` (each key would be a time series of its own).

Example::

    from prometheus_client import start_http_server
    from apikeys.metrics import PrometheusMetrics

    metrics = PrometheusMetrics()
    metrics.instrument(keys)         # a KeyManager or AsyncKeyManager
    metrics.watch(monitor)           # events it dropped become a counter
    start_http_server(9100)
"""

from __future__ import annotations

import bisect
import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from apikeys._base import ManagerBase
from apikeys.errors import APIKeyError, ConfigurationError
from apikeys.events import Event
from apikeys.monitoring._monitor_base import DEFAULT_AUDIT_TYPES

__all__ = ["DURATION_BUCKETS", "LIFECYCLE_TYPES", "OpenTelemetryTracing", "PrometheusMetrics"]

LIFECYCLE_TYPES = DEFAULT_AUDIT_TYPES - {
    "key.verification_failed",
    "key.rate_limited",
    "key.anomaly",
}
"""Events counted by ``apikeys_lifecycle_events_total{event=...}``."""

DURATION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05)
"""Histogram buckets in seconds: a cached verification takes microseconds, an
Argon2 one milliseconds."""

_Begin = Callable[[], Any]
_End = Callable[[Any, Any, BaseException | None], None]


def _wrap(manager: ManagerBase, name: str, begin: _Begin, end: _End) -> None:
    """Wrap ``manager.authenticate`` on this one instance (``verify`` calls it):
    ``state = begin()`` before each call, ``end(state, result, error)`` after,
    for the blocking and the awaitable manager alike.

    Raises:
        ConfigurationError: not a manager, or already wrapped by ``name``.
    """
    if not isinstance(manager, ManagerBase):
        raise ConfigurationError("instrument() takes a KeyManager or an AsyncKeyManager")
    marker = f"_apikeys_{name}"
    if getattr(manager, marker, False):
        raise ConfigurationError(f"this manager is already instrumented by {name}")
    inner = manager.authenticate  # type: ignore[attr-defined]
    wrapper: Any
    if inspect.iscoroutinefunction(inner):

        @functools.wraps(inner)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            state = begin()
            try:
                result = await inner(*args, **kwargs)
            except BaseException as exc:
                end(state, None, exc)
                raise
            end(state, result, None)
            return result

    else:

        @functools.wraps(inner)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            state = begin()
            try:
                result = inner(*args, **kwargs)
            except BaseException as exc:
                end(state, None, exc)
                raise
            end(state, result, None)
            return result

    manager.authenticate = wrapper  # type: ignore[attr-defined]
    setattr(manager, marker, True)


class PrometheusMetrics:
    """Counters and a histogram for ``prometheus_client``; also an event sink for
    lifecycle events and anomalies.

    Metrics (with the default ``namespace="apikeys"``):

    - ``apikeys_verifications_total{outcome}``: ``ok`` or the error code
      (``invalid_secret``, ``revoked``, ``rate_limited``...).
    - ``apikeys_verification_duration_seconds{result}``: ``ok`` or ``refused``.
    - ``apikeys_rate_limited_total{kind}``: ``rate_limited``, ``quota_exceeded``,
      ``too_many_failures``.
    - ``apikeys_lifecycle_events_total{event}``: ``key.created``, ``key.revoked``...
    - ``apikeys_anomalies_total{detector}``.
    - ``apikeys_events_dropped_total``: what watched monitors dropped.

    On the verification path the counts and the duration go into plain integers
    under one lock (about a fifth of what a ``prometheus_client`` counter plus
    histogram cost); a collector turns them into metric families when Prometheus
    scrapes.

    Args:
        registry: Where to register (default: ``prometheus_client.REGISTRY``).
        namespace: Prefix of the metric names.
        per_key: Add a ``key_id`` label to verifications (one series per key:
            only for a few keys).
        buckets: Histogram bounds in seconds, increasing.

    Raises:
        ConfigurationError: ``prometheus-client`` is not installed, or bad buckets.
    """

    event_types: frozenset[str] = LIFECYCLE_TYPES | {"key.anomaly"}
    """Only these are built for this sink: no event per verification."""

    def __init__(
        self,
        registry: Any = None,
        *,
        namespace: str = "apikeys",
        per_key: bool = False,
        buckets: tuple[float, ...] = DURATION_BUCKETS,
    ) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise ConfigurationError(
                "PrometheusMetrics needs prometheus-client: pip install 'apikeys[prometheus]'"
            ) from exc
        if not buckets or list(buckets) != sorted(set(buckets)):
            raise ConfigurationError("buckets must be distinct bounds in increasing order")
        self.registry = prom.REGISTRY if registry is None else registry
        self.namespace = namespace
        self.per_key = per_key
        self.buckets = tuple(float(b) for b in buckets)
        self._watched: list[Any] = []
        self._lock = threading.Lock()
        self._outcomes: dict[tuple[str, ...], int] = {}
        self._limited: dict[str, int] = {}
        # Per result: a count per bucket (the last one is +Inf), and the sum.
        self._histogram = {r: [0] * (len(self.buckets) + 1) for r in ("ok", "refused")}
        self._sums = {"ok": 0.0, "refused": 0.0}
        self.lifecycle = prom.Counter(
            "lifecycle_events",
            "Key lifecycle events.",
            ["event"],
            namespace=namespace,
            registry=self.registry,
        )
        self.anomalies = prom.Counter(
            "anomalies",
            "Anomalies detected, by detector.",
            ["detector"],
            namespace=namespace,
            registry=self.registry,
        )
        self.registry.register(_Collector(self))

    def __repr__(self) -> str:
        return f"PrometheusMetrics(per_key={self.per_key})"

    def instrument(self, manager: ManagerBase) -> None:
        """Count and time every verification of ``manager``, and take its events.

        Raises:
            ConfigurationError: not a manager, or already instrumented.
        """
        _wrap(manager, "prometheus", time.perf_counter, self._observe)
        manager.add_sink(self)

    def watch(self, monitor: Any) -> None:
        """Report what ``monitor`` (anything with a ``dropped`` count) dropped."""
        self._watched.append(monitor)

    def _observe(self, start: float, result: Any, error: BaseException | None) -> None:
        seconds = time.perf_counter() - start
        slot = bisect.bisect_left(self.buckets, seconds)
        if error is None:
            outcome, kind = "ok", "ok"
        else:
            outcome = error.code if isinstance(error, APIKeyError) else "error"
            kind = "refused"
        labels = (
            (outcome, result.key.id if result is not None else "") if self.per_key else (outcome,)
        )
        with self._lock:
            self._outcomes[labels] = self._outcomes.get(labels, 0) + 1
            self._histogram[kind][slot] += 1
            self._sums[kind] += seconds
            if outcome in _LIMIT_CODES:
                self._limited[outcome] = self._limited.get(outcome, 0) + 1

    def emit(self, event: Event) -> None:
        """Count a lifecycle event or an anomaly."""
        if event.type == "key.anomaly":
            self.anomalies.labels(getattr(event, "detector", "unknown")).inc()
        elif event.type in LIFECYCLE_TYPES:
            self.lifecycle.labels(event.type).inc()

    def _families(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        ns = self.namespace
        with self._lock:
            outcomes = dict(self._outcomes)
            limited = dict(self._limited)
            histogram = {k: list(v) for k, v in self._histogram.items()}
            sums = dict(self._sums)
        verifications = CounterMetricFamily(
            f"{ns}_verifications",
            "Key verifications by outcome.",
            labels=["outcome", "key_id"] if self.per_key else ["outcome"],
        )
        for labels, n in sorted(outcomes.items()):
            verifications.add_metric(list(labels), n)
        yield verifications
        duration = HistogramMetricFamily(
            f"{ns}_verification_duration_seconds",
            "Time spent in verify/authenticate.",
            labels=["result"],
        )
        for kind, counts in histogram.items():
            cumulative, running = [], 0
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                running += n
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
            duration.add_metric([kind], cumulative, sum_value=sums[kind])
        yield duration
        refusals = CounterMetricFamily(
            f"{ns}_rate_limited", "Verified keys refused by a limit, by kind.", labels=["kind"]
        )
        for kind, n in sorted(limited.items()):
            refusals.add_metric([kind], n)
        yield refusals
        yield CounterMetricFamily(
            f"{ns}_events_dropped",
            "Events and requests monitors could not deliver.",
            value=sum(int(getattr(m, "dropped", 0)) for m in self._watched),
        )


_LIMIT_CODES = frozenset({"rate_limited", "quota_exceeded", "too_many_failures"})


class _Collector:
    """What the registry calls at scrape time."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        return self.metrics._families()


class OpenTelemetryTracing:
    """An ``apikeys.verify`` span around every verification of a manager.

    Attributes set: ``apikeys.outcome`` (``ok`` or the error code) and, once the
    key is verified, ``apikeys.key_id`` (public: it is part of the key), plus
    ``apikeys.owner`` with ``include_owner=True``. A refusal sets the span's
    status to error without recording the exception (its message is generic and
    its traceback useless). Only the OpenTelemetry API is needed; the SDK and
    exporters are the application's.

    Args:
        tracer_provider: Whose tracer to use (default: the global provider).
        include_owner: Also record the key's owner (personal data in some
            deployments: off by default).

    Raises:
        ConfigurationError: ``opentelemetry-api`` is not installed.
    """

    def __init__(self, tracer_provider: Any = None, *, include_owner: bool = False) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:
            raise ConfigurationError(
                "OpenTelemetryTracing needs opentelemetry-api: pip install 'apikeys[opentelemetry]'"
            ) from exc
        self._trace = trace
        self.tracer = trace.get_tracer("apikeys", tracer_provider=tracer_provider)
        self.include_owner = include_owner

    def __repr__(self) -> str:
        return f"OpenTelemetryTracing(include_owner={self.include_owner})"

    def instrument(self, manager: ManagerBase) -> None:
        """Trace every verification of ``manager``.

        Raises:
            ConfigurationError: not a manager, or already instrumented.
        """
        _wrap(manager, "opentelemetry", self._begin, self._end)

    def _begin(self) -> tuple[Any, Any]:
        scope = self.tracer.start_as_current_span("apikeys.verify", record_exception=False)
        return scope, scope.__enter__()

    def _end(self, state: tuple[Any, Any], result: Any, error: BaseException | None) -> None:
        scope, span = state
        if error is None:
            self._verified(span, result)
        elif isinstance(error, APIKeyError):
            self._refused(span, error)
        else:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, type(error).__name__))
        scope.__exit__(None, None, None)

    def _verified(self, span: Any, result: Any) -> None:
        span.set_attribute("apikeys.outcome", "ok")
        span.set_attribute("apikeys.key_id", result.key.id)
        if self.include_owner:
            span.set_attribute("apikeys.owner", result.key.owner)

    def _refused(self, span: Any, error: APIKeyError) -> None:
        span.set_attribute("apikeys.outcome", error.code)
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error.code))
