"""The sinks: structured logging, callbacks, and the bounded background buffer
(order, flush, drops counted and never blocking, close); the events' fast
constructor; the shape of the public module."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest

import apikeys.monitoring
from apikeys import AsyncKeyManager, ConfigurationError, KeyManager
from apikeys import events as events_module
from apikeys.events import Event, KeyCreated, KeyRevoked, KeyVerified
from apikeys.monitoring import AsyncMonitor, BufferedSink, CallbackSink, LoggingSink, Monitor
from apikeys.testing import ManualClock

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _event(i: int) -> Event:
    return KeyRevoked(at=NOW, key_id=f"K{i:015d}", owner="o", reason=str(i))


class Gate:
    """A sink that blocks on a gate, to fill a buffer's queue deterministically."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()
        self.seen: list[Event] = []

    def emit(self, event: Event) -> None:
        self.entered.set()
        self.open.wait(10)
        self.seen.append(event)


def test_logging_sink_writes_structured_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="apikeys.events")
    sink = LoggingSink()
    sink.emit(KeyCreated(at=NOW, key_id="K" * 16, owner="team", scopes=("a:b",)))
    sink.emit(KeyVerified(at=NOW, key_id="K" * 16, owner="team", ip="10.0.0.1"))
    created, verified = caplog.records
    assert created.levelno == logging.INFO
    assert verified.levelno == logging.DEBUG
    assert created.apikeys_event == "key.created"  # type: ignore[attr-defined]
    assert created.apikeys_key_id == "K" * 16  # type: ignore[attr-defined]
    assert created.apikeys_owner == "team"  # type: ignore[attr-defined]
    assert created.apikeys_fields["scopes"] == ["a:b"]  # type: ignore[attr-defined]
    assert "key.created" in created.getMessage()


def test_logging_sink_builds_nothing_below_its_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="apikeys.events")
    LoggingSink(levels={"key.revoked": logging.DEBUG}).emit(_event(1))
    assert caplog.records == []
    with pytest.raises(ConfigurationError):
        LoggingSink(logger=42)  # type: ignore[arg-type]


def test_callback_sink_filters_by_type() -> None:
    seen: list[str] = []
    sink = CallbackSink(lambda e: seen.append(e.type), types={"key.revoked"})
    sink.emit(KeyCreated(at=NOW, key_id="K" * 16))
    sink.emit(_event(1))
    assert seen == ["key.revoked"]
    with pytest.raises(ConfigurationError):
        CallbackSink("not callable")  # type: ignore[arg-type]


def test_buffer_delivers_in_order_in_batches_off_the_caller_thread() -> None:
    threads: set[str] = set()
    batches: list[list[str]] = []

    class Batching:
        def emit(self, event: Event) -> None:
            raise AssertionError("emit_batch is preferred")

        def emit_batch(self, events: list[Event]) -> None:
            threads.add(threading.current_thread().name)
            batches.append([e.key_id or "" for e in events])

    buffer = BufferedSink(Batching(), interval=10)
    for i in range(100):
        buffer.emit(_event(i))
    assert buffer.flush()
    assert [k for batch in batches for k in batch] == [f"K{i:015d}" for i in range(100)]
    assert threads == {"apikeys-events"}
    assert (buffer.delivered, buffer.pending, buffer.dropped) == (100, 0, 0)
    buffer.close()


def test_a_full_buffer_drops_counts_and_never_blocks(caplog: pytest.LogCaptureFixture) -> None:
    gate = Gate()
    buffer = BufferedSink(gate, maxsize=10, interval=0.01)
    buffer.emit(_event(0))
    assert gate.entered.wait(5)  # the worker holds event 0; the queue is empty again
    started = time.perf_counter()
    for i in range(1, 26):
        buffer.emit(_event(i))
    assert time.perf_counter() - started < 0.5  # a blocked sink never blocks emit
    assert buffer.dropped == 15
    assert "dropping events" in caplog.text
    gate.open.set()
    assert buffer.flush()
    assert [int(e.reason or 0) for e in gate.seen] == list(range(11))  # type: ignore[attr-defined]
    buffer.close()
    buffer.emit(_event(99))
    assert buffer.dropped == 16


def test_a_failing_sink_is_logged_and_the_rest_still_get_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def emit(self, event: Event) -> None:
            raise RuntimeError("boom")

    seen: list[Event] = []
    buffer = BufferedSink([Broken(), CallbackSink(seen.append)])
    buffer.emit(_event(1))
    assert buffer.flush()
    assert len(seen) == 1
    assert "failed" in caplog.text
    buffer.close()


def test_flush_times_out_on_a_stuck_sink() -> None:
    gate = Gate()
    buffer = BufferedSink(gate, interval=0.01)
    buffer.emit(_event(1))
    assert buffer.flush(timeout=0.05) is False
    gate.open.set()
    assert buffer.flush()
    buffer.close()


def test_monitor_declares_the_events_it_takes(manager: KeyManager) -> None:
    quiet = Monitor(manager)
    assert quiet.event_types is not None
    assert "key.verified" not in quiet.event_types
    assert "request.completed" in quiet.event_types
    everything = Monitor(manager, audit_types=None)
    assert everything.event_types is None
    assert manager._sinks_for("key.verified") == (everything,)
    quiet.close()
    everything.close()


def test_sinks_must_have_emit() -> None:
    with pytest.raises(ConfigurationError):
        BufferedSink([])
    with pytest.raises(ConfigurationError):
        BufferedSink(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Monitor(object())  # type: ignore[arg-type]


# --- the events' constructor -----------------------------------------------------------


@pytest.mark.parametrize("cls", events_module._EVENT_CLASSES, ids=lambda c: c.__name__)
def test_fast_event_constructor_keeps_the_dataclass_contract(cls: type[Event]) -> None:
    required = {
        f.name: "x" if f.name != "status" else 200
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    required.update(at=NOW, key_id="K" * 16)
    if "ends_at" in required:
        required["ends_at"] = NOW
    event = cls(**required)
    assert event == cls(**required)
    for f in dataclasses.fields(cls):
        expected = required.get(f.name, f.default)
        if f.default_factory is not dataclasses.MISSING:
            expected = f.default_factory()
        assert getattr(event, f.name) == expected, f.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.key_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cls(**required, unknown=1)
    with pytest.raises(TypeError):
        cls(NOW, "K" * 16)  # keyword-only
    params = inspect.signature(cls).parameters
    assert list(params) == [f.name for f in dataclasses.fields(cls)]
    assert event.to_dict()["type"] == cls.type


def test_anomaly_evidence_is_not_shared_between_events() -> None:
    from apikeys.events import AnomalyDetected

    a = AnomalyDetected(at=NOW, key_id=None, detector="d")
    b = AnomalyDetected(at=NOW, key_id=None, detector="d")
    assert a.evidence == {}
    assert a.evidence is not b.evidence


# --- the public module -----------------------------------------------------------------


def test_monitoring_exports_are_unique_and_real() -> None:
    names = apikeys.monitoring.__all__  # ordered by ruff (RUF022: constants first)
    assert len(set(names)) == len(names) == 37  # PlaintextTransport, RedisDetectorState
    for name in names:
        value = getattr(apikeys.monitoring, name)
        if isinstance(value, type):
            assert value.__module__.startswith("apikeys")


def test_importing_monitoring_loads_no_driver() -> None:
    import json
    import subprocess
    import sys

    code = "import sys, json, apikeys.monitoring; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = {name.split(".")[0] for name in json.loads(out)}
    assert not loaded & {"sqlalchemy", "redis", "psycopg", "pymysql", "fastapi", "django"}


def _methods(cls: type) -> dict[str, Any]:
    return {
        n: getattr(cls, n)
        for n in dir(cls)
        if (not n.startswith("_") or n in {"__enter__", "__exit__", "__aenter__", "__aexit__"})
        and callable(getattr(cls, n))
    }


def test_monitor_twins_have_the_same_methods() -> None:
    renames = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
    sync, async_ = _methods(Monitor), _methods(AsyncMonitor)
    assert set(async_) == {renames.get(n, n) for n in sync}
    no_io = {"emit", "prune_now"}
    for name, method in sync.items():
        twin = async_[renames.get(name, name)]
        assert not inspect.iscoroutinefunction(method)
        assert inspect.iscoroutinefunction(twin) == (name not in no_io), name
        if name not in {"__init__", "__enter__", "__exit__"}:
            assert [
                (p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()
            ] == [
                (p.name, p.kind, p.default) for p in inspect.signature(twin).parameters.values()
            ], name
        assert inspect.getdoc(method), name


def test_monitors_watch_their_own_kind_of_manager(clock: ManualClock) -> None:
    from apikeys.storage import MemoryStore

    with pytest.raises(ConfigurationError):
        Monitor(AsyncKeyManager(MemoryStore(), prefix="acme"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        AsyncMonitor(KeyManager(MemoryStore(), prefix="acme"))  # type: ignore[arg-type]
