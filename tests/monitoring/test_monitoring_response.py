"""The compromise response, the hygiene review and the issuance policy, on both
managers; and ``last_used_at``/``last_used_ip`` as the review relies on them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from apikeys import (
    AsyncKeyManager,
    AuthenticationError,
    ConfigurationError,
    InvalidArgument,
    KeyManager,
    KeyNotFound,
    KeyState,
    StorageError,
)
from apikeys.hashing import Argon2Hasher
from apikeys.monitoring import AsyncMonitor, IssuancePolicy, Monitor
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock
from core_support import with_wrong_secret


def _used_key(manager: KeyManager, clock: ManualClock) -> tuple[str, str]:
    issued = manager.create(
        owner="team",
        scopes=["orders:read"],
        name="CI",
        expires_in=timedelta(days=30),
        allowed_ips=["10.0.0.0/8", "192.0.2.0/24"],
        metadata={"env": "ci"},
        rate_limits=["100/minute"],
    )
    for ip, route, status in [
        ("10.0.0.5", "/orders", 200),
        ("192.0.2.66", "/orders/{id}", 404),
        ("10.0.0.5", "/orders", 200),
    ]:
        key = manager.verify(issued.plaintext, ip=ip)
        manager.record_request(key, method="GET", route=route, status=status, ip=ip)
        clock.advance(timedelta(minutes=10))
    with pytest.raises(AuthenticationError):
        manager.verify(with_wrong_secret(issued.plaintext), ip="198.51.100.1")
    return issued.key.id, issued.plaintext


def test_compromise_response_rotates_revokes_and_reports(
    manager: KeyManager, clock: ManualClock, monitor: Monitor
) -> None:
    start = clock.now
    key_id, plaintext = _used_key(manager, clock)
    report = monitor.respond_to_compromise(key_id, reason="leaked in a public repo")

    assert report.revoked
    assert report.method == "rotate"
    assert report.errors == ()
    assert report.key.state(clock.now) is KeyState.REVOKED
    assert report.key.revoke_reason == "leaked in a public repo"
    with pytest.raises(AuthenticationError) as caught:
        manager.verify(plaintext, ip="10.0.0.5")
    assert caught.value.code == "revoked"
    successor = report.successor
    assert successor is not None
    new = manager.verify(successor.plaintext, ip="10.0.0.5")
    old = report.key
    for field in ("owner", "scopes", "name", "allowed_ips", "metadata", "rate_limits", "prefix"):
        assert getattr(new, field) == getattr(old, field), field
    assert new.replaces == key_id
    assert new.expires_at == clock.now + timedelta(days=30)

    activity = report.activity
    assert activity is not None
    assert activity.requests == 3
    assert activity.routes == {("GET", "/orders", 200): 2, ("GET", "/orders/{id}", 404): 1}
    assert [(a.ip, a.count) for a in activity.addresses] == [("10.0.0.5", 2), ("192.0.2.66", 1)]
    assert activity.first_seen == start
    assert activity.last_seen == start + timedelta(minutes=20)
    assert activity.last_used_ip == "10.0.0.5"
    assert [e.type for e in activity.events] == [
        "key.created",
        "key.verification_failed",
        "key.rotated",
        "key.revoked",
    ]
    text = repr(report) + str(report.to_dict())
    assert successor.plaintext not in text
    assert plaintext not in text
    assert report.to_dict()["successor_id"] == successor.key.id


def test_a_suspended_key_is_revoked_first_then_replaced(
    manager: KeyManager, clock: ManualClock, monitor: Monitor
) -> None:
    key_id, _ = _used_key(manager, clock)
    manager.suspend(key_id, reason="detector")
    report = monitor.respond_to_compromise(key_id)
    assert (report.revoked, report.method) == (True, "create")
    assert report.successor is not None
    assert report.successor.key.scopes == ("orders:read",)
    assert [e.type for e in monitor.audit(owner="team")][-2:] == ["key.revoked", "key.created"]


def test_without_replacement_and_for_unknown_keys(
    manager: KeyManager, clock: ManualClock, monitor: Monitor
) -> None:
    key_id, _ = _used_key(manager, clock)
    report = monitor.respond_to_compromise(key_id, replace=False)
    assert (report.revoked, report.successor, report.method) == (True, None, None)
    assert len(manager.list(owner="team")) == 1
    again = monitor.respond_to_compromise(key_id, replace=False)  # idempotent
    assert again.key.revoke_reason == "compromised"
    with pytest.raises(KeyNotFound):
        monitor.respond_to_compromise("A" * 16)


class RevokeFails(MemoryStore):
    """A real memory store whose next update of ``fail_id`` fails (after a rotation)."""

    fail_id: str | None = None
    writes = 0

    def write(self, *, insert: Any = (), update: Any = ()) -> None:
        if self.fail_id and any(r.id == self.fail_id for r in update) and not insert:
            raise StorageError("store went away")
        super().write(insert=insert, update=update)


def test_a_failed_revoke_after_rotation_still_leaves_the_key_dead(
    clock: ManualClock, fast_hasher: Argon2Hasher
) -> None:
    store = RevokeFails()
    manager = KeyManager(store, prefix="acme", hasher=fast_hasher, clock=clock)
    with Monitor(manager) as monitor:
        key_id, plaintext = _used_key(manager, clock)
        store.fail_id = key_id
        report = monitor.respond_to_compromise(key_id)
        assert report.revoked is False
        assert report.successor is not None
        assert report.method == "rotate"
        assert any("revoke failed" in error for error in report.errors)
        with pytest.raises(AuthenticationError) as caught:
            manager.verify(plaintext, ip="10.0.0.5")
        assert caught.value.code == "expired"


@pytest.mark.anyio
async def test_async_compromise_response(clock: ManualClock, fast_hasher: Argon2Hasher) -> None:
    manager = AsyncKeyManager(MemoryStore(), prefix="acme", hasher=fast_hasher, clock=clock)
    monitor = AsyncMonitor(manager)
    try:
        issued = await manager.create(owner="team", scopes=["*"])
        key = await manager.verify(issued.plaintext, ip="10.0.0.5")
        manager.record_request(key, method="GET", route="/x", status=200, ip="10.0.0.5")
        report = await monitor.respond_to_compromise(key.id)
        assert report.revoked
        assert report.method == "rotate"
        assert report.activity is not None
        assert report.activity.requests == 1
        assert report.successor is not None
        await manager.verify(report.successor.plaintext)
        findings = await monitor.review()
        assert [(f.key.id, f.issues) for f in findings] == [
            (report.successor.key.id, ("no_expiry", "broad_scope"))
        ]
    finally:
        await monitor.aclose()


# --- review -----------------------------------------------------------------------------


def test_review_flags_stale_eternal_old_and_broad_keys(
    manager: KeyManager, clock: ManualClock, monitor: Monitor
) -> None:
    old_broad = manager.create(owner="a", scopes=["*"])
    never_used = manager.create(owner="a", expires_in=timedelta(days=900))
    clock.advance(timedelta(days=200))
    used = manager.create(owner="b", expires_in=timedelta(days=300), scopes=["orders:*"])
    manager.verify(used.plaintext, ip="10.1.1.1")
    manager.verify(old_broad.plaintext)
    revoked = manager.create(owner="b", scopes=["*"])
    manager.revoke(revoked.key.id)
    clock.advance(timedelta(days=200))

    findings = {f.key.id: f for f in monitor.review()}
    assert set(findings) == {old_broad.key.id, never_used.key.id, used.key.id}
    assert findings[old_broad.key.id].issues == ("unused", "no_expiry", "too_old", "broad_scope")
    assert findings[never_used.key.id].issues == ("unused", "too_old")
    assert findings[never_used.key.id].notes["unused"].startswith("never used")
    assert findings[used.key.id].issues == ("unused",)
    assert findings[used.key.id].notes["unused"] == "last used 200 days ago"

    loose = monitor.review(
        unused_for=None,
        max_age=None,
        flag_no_expiry=False,
        broad_scopes=["*", "orders:*"],
        owner="b",
    )
    assert [(f.key.id, f.issues) for f in loose] == [(used.key.id, ("broad_scope",))]
    assert loose[0].to_dict()["notes"] == {"broad_scope": "holds orders:*"}
    with pytest.raises(InvalidArgument):
        monitor.review(unused_for=timedelta(0))


def test_last_use_is_recorded_at_most_once_per_touch_interval(
    clock: ManualClock, fast_hasher: Argon2Hasher
) -> None:
    manager = KeyManager(
        MemoryStore(),
        prefix="acme",
        hasher=fast_hasher,
        clock=clock,
        touch_interval=timedelta(minutes=5),
    )
    issued = manager.create(owner="o")
    first = clock.now
    manager.verify(issued.plaintext, ip="10.0.0.1")
    clock.advance(timedelta(minutes=1))
    manager.verify(issued.plaintext, ip="10.0.0.2")  # within the interval: not written
    key = manager.get(issued.key.id)
    assert (key.last_used_at, key.last_used_ip) == (first, "10.0.0.1")
    assert key.version == 1  # a touch is not a lifecycle write
    clock.advance(timedelta(minutes=5))
    manager.verify(issued.plaintext, ip="10.0.0.3")
    key = manager.get(issued.key.id)
    assert (key.last_used_at, key.last_used_ip) == (clock.now, "10.0.0.3")


# --- issuance policy ----------------------------------------------------------------------


def _managers(clock: ManualClock, policy: IssuancePolicy) -> list[Callable[..., Any]]:
    """``create``/``rotate`` of a KeyManager and of an AsyncKeyManager, as plain calls."""
    import anyio

    store = MemoryStore()
    hasher = Argon2Hasher.for_tests()
    sync = KeyManager(store, prefix="acme", hasher=hasher, clock=clock, issuance=policy)
    async_ = AsyncKeyManager(store, prefix="acme", hasher=hasher, clock=clock, issuance=policy)

    def run_async(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            async def main() -> Any:
                return await getattr(async_, name)(*args, **kwargs)

            return anyio.run(main)

        return call

    return [
        lambda name: getattr(sync, name),
        run_async,
    ]


@pytest.mark.parametrize("twin", [0, 1], ids=["sync", "async"])
def test_issuance_policy_is_enforced_at_create_and_rotate(clock: ManualClock, twin: int) -> None:
    policy = IssuancePolicy(
        require_expiry=True, max_lifetime=timedelta(days=90), max_live_keys_per_owner=2
    )
    call = _managers(clock, policy)[twin]
    create, rotate, revoke, suspend = (call(n) for n in ("create", "rotate", "revoke", "suspend"))
    with pytest.raises(InvalidArgument, match="requires an expiry"):
        create(owner="o")
    with pytest.raises(InvalidArgument, match="caps a key's lifetime"):
        create(owner="o", expires_in=timedelta(days=91))
    first = create(owner="o", expires_in=timedelta(days=90))
    second = create(owner="o", expires_at=clock.now + timedelta(days=1))
    suspend(second.key.id)  # suspended keys still count: they can come back
    with pytest.raises(InvalidArgument, match="already holds 2 live keys"):
        create(owner="o", expires_in=timedelta(days=1))
    create(owner="other", expires_in=timedelta(days=1))
    successor = rotate(first.key.id)  # a rotation replaces: not capped
    with pytest.raises(InvalidArgument, match="caps a key's lifetime"):
        rotate(successor.key.id, expires_in=timedelta(days=365))
    revoke(second.key.id)
    clock.advance(timedelta(days=2))
    create(owner="o", expires_in=timedelta(days=1))  # the revoked one no longer counts


def test_policy_settings_are_checked() -> None:
    for bad in (
        {"max_lifetime": timedelta(0)},
        {"max_live_keys_per_owner": 0},
        {"max_live_keys_per_owner": 10_001},
        {"max_live_keys_per_owner": True},
    ):
        with pytest.raises(ConfigurationError):
            IssuancePolicy(**bad)
    with pytest.raises(ConfigurationError):
        KeyManager(MemoryStore(), prefix="acme", issuance={"require_expiry": True})  # type: ignore[arg-type]
