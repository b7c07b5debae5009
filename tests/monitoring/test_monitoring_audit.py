"""The audit trail: a scripted lifecycle leaves exactly the expected entries, in
order, on every backend, with no secret anywhere; queries filter as documented."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from apikeys import AuthenticationError, KeyManager, StorageError
from apikeys.events import KeyCreated, KeyRevoked, KeyRotated, VerificationFailed
from apikeys.monitoring import (
    AuditEntry,
    AuditStore,
    LoggingSink,
    MemoryAuditStore,
    Monitor,
    SQLiteAuditStore,
)
from apikeys.testing import ManualClock
from core_support import split, with_wrong_secret


def _secrets_of(manager: KeyManager, *plaintexts: str) -> list[str]:
    """Every secret-bearing string of these keys: plaintext, secret, stored hash."""
    found = []
    for plaintext in plaintexts:
        _, key_id, secret = split(plaintext)
        found += [plaintext, secret]
        record = manager.store.get(key_id)
        if record is not None:
            found.append(record.secret_hash)
    return found


def _scripted_lifecycle(manager: KeyManager, clock: ManualClock) -> dict[str, Any]:
    first = manager.create(owner="team-7", scopes=["orders:read"], expires_in=timedelta(days=30))
    a = first.key.id
    manager.verify(first.plaintext, ip="10.0.0.1")
    clock.advance(timedelta(seconds=1))
    with pytest.raises(AuthenticationError):
        manager.verify(with_wrong_secret(first.plaintext), ip="203.0.113.9")
    with pytest.raises(AuthenticationError):
        manager.verify("acme_not-a-key", ip="203.0.113.9")
    clock.advance(timedelta(seconds=1))
    manager.update(a, scopes=["orders:read", "orders:write"])
    manager.suspend(a, reason="investigating")
    with pytest.raises(AuthenticationError, match="suspended"):
        manager.verify(first.plaintext, ip="10.0.0.1")
    manager.enable(a)
    clock.advance(timedelta(seconds=1))
    second = manager.rotate(a, grace=timedelta(hours=1))
    b = second.key.id
    manager.revoke(b, reason="done")
    secrets = _secrets_of(manager, first.plaintext, second.plaintext)
    return {"a": a, "b": b, "secrets": secrets}


def _expected(a: str, b: str) -> list[tuple[str, str | None, str | None, dict[str, Any]]]:
    return [
        ("key.created", a, "team-7", {"scopes": ["orders:read"], "replaces": None}),
        ("key.verification_failed", a, None, {"code": "invalid_secret", "ip": "203.0.113.9"}),
        ("key.verification_failed", None, None, {"code": "malformed"}),
        ("key.updated", a, "team-7", {"fields": ["scopes"]}),
        ("key.suspended", a, "team-7", {"reason": "investigating"}),
        ("key.verification_failed", a, "team-7", {"code": "disabled", "ip": "10.0.0.1"}),
        ("key.enabled", a, "team-7", {}),
        ("key.created", b, "team-7", {"replaces": a}),
        ("key.rotated", a, "team-7", {"successor_id": b}),
        ("key.revoked", b, "team-7", {"reason": "done"}),
        # Revoking b ended the grace of a, the key it replaced.
        ("key.updated", a, "team-7", {"fields": ["expires_at"]}),
    ]


def _shape(entries: list[AuditEntry]) -> list[tuple[str, str | None, str | None, dict[str, Any]]]:
    return [(e.type, e.key_id, e.owner, e.data) for e in entries]


def _matches(entries: list[AuditEntry], expected: list[Any]) -> None:
    assert [(e.type, e.key_id, e.owner) for e in entries] == [x[:3] for x in expected]
    for entry, (_, _, _, data) in zip(entries, expected, strict=True):
        assert {k: entry.data[k] for k in data} == data, entry


def test_lifecycle_trail_is_complete_ordered_and_secret_free(
    manager: KeyManager,
    clock: ManualClock,
    audit_store: AuditStore,
    make_monitor: Callable[..., Monitor],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="apikeys")
    manager.add_sink(LoggingSink("apikeys.events"))
    monitor = make_monitor(audit_store=audit_store)
    run = _scripted_lifecycle(manager, clock)
    a, b = run["a"], run["b"]

    everything = monitor.audit()
    _matches(everything, _expected(a, b))
    assert [e.id for e in everything] == sorted(e.id for e in everything)
    assert everything[0].at == clock.now - timedelta(seconds=3)

    # One key's trail, and the owner's (the pre-proof failure has no owner but names a key).
    _matches(monitor.audit(key_id=a), [x for x in _expected(a, b) if x[1] == a])
    _matches(monitor.audit(owner="team-7"), [x for x in _expected(a, b) if x[1] is not None])
    assert monitor.audit(owner="nobody") == []

    # No secret anywhere: entries, their JSON, the typed events again, every log line.
    dumped = json.dumps([e.to_dict() for e in everything]) + repr(everything)
    dumped += repr([e.event() for e in everything])
    dumped += "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert len(caplog.records) > 10
    for secret in run["secrets"]:
        assert secret not in dumped


def test_sqlite_file_rows_hold_no_secret(
    manager: KeyManager, clock: ManualClock, tmp_path: Path, make_monitor: Callable[..., Monitor]
) -> None:
    path = tmp_path / "audit.db"
    monitor = make_monitor(audit_store=SQLiteAuditStore(path))
    run = _scripted_lifecycle(manager, clock)
    monitor.flush()
    raw = path.read_bytes() + (tmp_path / "audit.db-wal").read_bytes()
    assert b"key.revoked" in raw
    for secret in run["secrets"]:
        assert secret.encode() not in raw


def test_entries_rebuild_their_typed_events(
    manager: KeyManager, clock: ManualClock, monitor: Monitor
) -> None:
    run = _scripted_lifecycle(manager, clock)
    events = [e.event() for e in monitor.audit()]
    created = events[0]
    assert isinstance(created, KeyCreated)
    assert created.scopes == ("orders:read",)
    assert created.expires_at == clock.now - timedelta(seconds=3) + timedelta(days=30)
    assert isinstance(events[1], VerificationFailed)
    assert events[1].code == "invalid_secret"
    rotated = events[8]
    assert isinstance(rotated, KeyRotated)
    assert rotated.ends_at == clock.now + timedelta(hours=1)
    assert events[-2] == KeyRevoked(at=clock.now, key_id=run["b"], owner="team-7", reason="done")


def test_query_filters_and_paging(audit_store: AuditStore, clock: ManualClock) -> None:
    t0 = clock.now
    events = [
        KeyCreated(at=t0 + timedelta(minutes=i), key_id=f"K{i % 3:015d}", owner=f"o{i % 2}")
        for i in range(10)
    ]
    audit_store.emit_batch(events[:6])
    for event in events[6:]:
        audit_store.emit(event)
    audit_store.emit(KeyRevoked(at=t0, key_id="K" + "9" * 15, owner=None, reason="x"))
    everything = audit_store.query()
    assert len(everything) == 11
    ids = [e.id for e in everything]
    assert ids == sorted(ids)
    assert len(set(ids)) == 11
    key0 = "K" + "0" * 15
    assert [e.key_id for e in audit_store.query(key_ids=[key0])] == [key0] * 4
    either = audit_store.query(key_ids=[key0], owner="o1")
    assert len(either) == 4 + 5 - 2  # key 0 at i=0,3,6,9; owner o1 at odd i
    assert audit_store.query(key_ids=[]) == []
    window = audit_store.query(since=t0 + timedelta(minutes=2), until=t0 + timedelta(minutes=5))
    assert [e.at for e in window] == [t0 + timedelta(minutes=m) for m in (2, 3, 4)]
    assert [e.type for e in audit_store.query(types=["key.revoked"])] == ["key.revoked"]
    page = audit_store.query(limit=4)
    rest = audit_store.query(after_id=page[-1].id, limit=100)
    assert [e.id for e in page + rest] == ids
    assert audit_store.prune(t0 + timedelta(minutes=5)) == 6  # five early + the revoke at t0
    assert len(audit_store.query()) == 5


def test_limits_are_checked(audit_store: AuditStore) -> None:
    from apikeys import InvalidArgument

    for bad in (0, 10_001):
        with pytest.raises(InvalidArgument):
            audit_store.query(limit=bad)
    with pytest.raises(InvalidArgument):
        audit_store.query(key_ids="K" * 16)  # type: ignore[arg-type]


def test_default_trail_leaves_out_successes_but_can_keep_everything(
    manager: KeyManager, make_monitor: Callable[..., Monitor]
) -> None:
    default = make_monitor()
    everything = make_monitor(audit_types=None)
    issued = manager.create(owner="o")
    key = manager.verify(issued.plaintext)
    manager.record_request(key, method="GET", route="/x", status=200)
    assert [e.type for e in default.audit()] == ["key.created"]
    assert [e.type for e in everything.audit()] == [
        "key.created",
        "key.verified",
        "request.completed",
    ]


class FlakyAudit(MemoryAuditStore):
    """A real memory store that fails while ``down`` is set."""

    down = False

    def emit_batch(self, events: Any) -> None:
        if self.down:
            raise StorageError("audit database down")
        super().emit_batch(events)


def test_a_failing_audit_store_keeps_entries_for_later_and_never_fails_requests(
    manager: KeyManager, make_monitor: Callable[..., Monitor], caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyAudit()
    monitor = make_monitor(audit_store=store)
    store.down = True
    issued = manager.create(owner="o")
    manager.revoke(issued.key.id)
    monitor.flush()
    assert len(store) == 0
    assert "audit store failed" in caplog.text
    store.down = False
    assert [e.type for e in monitor.audit()] == ["key.created", "key.revoked"]
    assert monitor.dropped == 0


def test_sqlite_audit_store_failure_is_a_storage_error(tmp_path: Path, clock: ManualClock) -> None:
    store = SQLiteAuditStore(tmp_path / "missing-dir" / "audit.db")
    with pytest.raises(StorageError) as caught:
        store.emit(KeyCreated(at=clock.now, key_id="K" * 16))
    assert caught.value.__cause__ is not None
    with pytest.raises(StorageError):
        store.query()
