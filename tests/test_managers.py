"""The behavioural suite of the managers: ONE body per test, run against both
:class:`KeyManager` and :class:`AsyncKeyManager` (through :class:`SyncFacade`)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib.metadata import entry_points
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from apikeys import (
    APIKey,
    APIKeyError,
    AsyncKeyManager,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InsufficientScope,
    InvalidArgument,
    InvalidKeyState,
    IPNotAllowed,
    IssuedKey,
    KeyManager,
    KeyNotFound,
    KeyState,
    RateLimited,
    RateLimitStatus,
    ServiceBusy,
    StorageError,
    TooManyFailures,
    Verification,
    _hotpath,
)
from apikeys._keyformat import format_key
from apikeys._models import KeyRecord
from apikeys._policy import bump
from apikeys.events import (
    KeyCreated,
    KeyRevoked,
    KeyRotated,
    KeyUpdated,
    KeyVerified,
    RateLimitExceeded,
    VerificationFailed,
)
from apikeys.hashing import Argon2Hasher
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock, auth_headers, make_manager
from core_support import (
    AnyManager,
    CountingHasher,
    ListSink,
    RecordingStore,
    SyncFacade,
    split,
    unknown_key,
    with_wrong_secret,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
UNPROVEN = "Invalid API key."


@dataclass
class Harness:
    keys: AnyManager
    store: RecordingStore
    hasher: CountingHasher
    clock: ManualClock
    sink: ListSink

    def create(self, **kwargs: Any) -> IssuedKey:
        kwargs.setdefault("owner", "team-42")
        return self.keys.create(**kwargs)

    def fail(self, raw: str, **kwargs: Any) -> Exception:
        """Verify, expecting an apikeys error; return it."""
        with pytest.raises(APIKeyError) as info:
            self.keys.verify(raw, **kwargs)
        return info.value


Build = Callable[..., Harness]


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal(backend="asyncio") as running:
        yield running


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def build(flavour: str, request: pytest.FixtureRequest, clock: ManualClock) -> Build:
    def make(
        *,
        store: RecordingStore | None = None,
        hasher: CountingHasher | None = None,
        prefix: str | list[str] = "acme",
        **kwargs: Any,
    ) -> Harness:
        store = store if store is not None else RecordingStore()
        hasher = hasher if hasher is not None else CountingHasher()
        sink = ListSink()
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("events", sink)
        keys: AnyManager
        if flavour == "sync":
            keys = KeyManager(store, prefix=prefix, hasher=hasher, **kwargs)
        else:
            manager = AsyncKeyManager(store, prefix=prefix, hasher=hasher, **kwargs)
            keys = SyncFacade(manager, request.getfixturevalue("portal"))
        return Harness(keys, store, hasher, clock, sink)

    return make


@pytest.fixture
def h(build: Build) -> Harness:
    return build()


def reset(h: Harness) -> None:
    h.store.calls.clear()
    h.hasher.calls.clear()
    h.sink.events.clear()


# --- lifecycle ---------------------------------------------------------------------------


def test_create_issues_a_key_shown_once(h: Harness) -> None:
    issued = h.create(
        scopes=["orders:read", "orders:read", "invoices:*"],
        name="CI",
        expires_in=90 * DAY,
        allowed_ips=["10.0.0.0/8", "2001:db8::/32"],
        metadata={"plan": "pro"},
    )
    key = issued.key
    assert isinstance(issued, IssuedKey)
    assert isinstance(key, APIKey)
    assert issued.plaintext.startswith("acme_")
    prefix, key_id, secret = split(issued.plaintext)
    assert key.id == key_id
    assert key.prefix == prefix == "acme"
    assert (key.owner, key.name) == ("team-42", "CI")
    assert key.scopes == ("invoices:*", "orders:read")
    assert key.created_at == h.clock.now
    assert key.expires_at == h.clock.now + 90 * DAY
    assert key.allowed_ips == ("10.0.0.0/8", "2001:db8::/32")
    assert key.metadata == {"plan": "pro"}
    assert (key.revoked_at, key.replaced_by, key.last_used_at, key.version) == (None, None, None, 1)
    record = h.store.inner.get(key.id)
    assert record is not None
    assert record.key == key
    assert secret not in record.secret_hash
    assert issued.plaintext not in record.secret_hash
    assert h.hasher.inner.verify(record.secret_hash, secret)
    assert h.hasher.calls["hash"] == 1
    assert h.keys.get(key.id) == key
    assert [type(e) for e in h.sink.events] == [KeyCreated]
    # A second key is independent.
    other = h.create()
    assert other.key.id != key.id
    assert other.plaintext != issued.plaintext


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scopes": ["orders"]},
        {"scopes": "orders:read"},
        {"allowed_ips": ["10.0.0.0/33"]},
        {"expires_in": HOUR, "expires_at": datetime(2030, 1, 1, tzinfo=timezone.utc)},
        {"expires_at": datetime(2030, 1, 1)},
        {"expires_at": datetime(2020, 1, 1, tzinfo=timezone.utc)},
        {"expires_in": -HOUR},
        {"owner": ""},
        {"metadata": {"x": {1, 2}}},
        {"prefix": "other"},
        {"rate_limits": ["fast"]},
    ],
)
def test_create_refuses_invalid_arguments_before_any_work(
    h: Harness, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidArgument):
        h.create(**kwargs)
    assert h.store.calls["write"] == 0
    assert h.hasher.calls["hash"] == 0
    assert h.sink.events == []


def test_full_lifecycle(h: Harness) -> None:
    issued = h.create(
        scopes=["orders:read"],
        name="CI",
        expires_in=90 * DAY,
        allowed_ips=["10.0.0.0/8"],
        metadata={"plan": "pro"},
    )
    key = h.keys.verify(issued.plaintext, scopes=["orders:read"], ip="10.1.2.3")
    assert key.id == issued.key.id
    verification = h.keys.authenticate(issued.plaintext, scopes=["orders:read"], ip="10.9.9.9")
    assert isinstance(verification, Verification)
    assert verification.key.id == key.id
    assert verification.rate_limit is None
    h.keys.authorize(key, "orders:read")
    with pytest.raises(InsufficientScope) as info:
        h.keys.authorize(key, "orders:write")
    assert info.value.missing == ("orders:write",)
    assert h.keys.is_authorized(key, "orders:read") is True
    assert h.keys.is_authorized(key, "orders:read", "orders:write") is False
    with pytest.raises(InvalidArgument):
        h.keys.authorize(key, "orders:*")

    new = h.keys.rotate(key.id, grace=24 * HOUR)
    assert new.key.replaces == key.id
    assert new.plaintext != issued.plaintext
    assert h.keys.get(key.id).replaced_by == new.key.id
    assert h.keys.verify(issued.plaintext, ip="10.1.2.3").id == key.id  # in grace
    assert h.keys.verify(new.plaintext, scopes=["orders:read"], ip="10.1.2.3").id == new.key.id
    h.clock.advance(24 * HOUR)
    error = h.fail(issued.plaintext, ip="10.1.2.3")
    assert isinstance(error, AuthenticationError)
    assert error.code == "expired"

    revoked = h.keys.revoke(new.key.id, reason="leaked")
    assert revoked.revoked_at == h.clock.now
    assert revoked.revoke_reason == "leaked"
    error = h.fail(new.plaintext, ip="10.1.2.3")
    assert isinstance(error, AuthenticationError)
    assert error.code == "revoked"

    owned = h.keys.list(owner="team-42")
    assert {k.id for k in owned} == {key.id, new.key.id}
    assert [k.id for k in h.keys.list(state="revoked")] == [new.key.id]
    assert [k.id for k in h.keys.list(state=KeyState.EXPIRED)] == [key.id]

    assert h.keys.purge(key.id) is True
    assert h.keys.purge(key.id) is False
    with pytest.raises(KeyNotFound):
        h.keys.get(key.id)
    error = h.fail(issued.plaintext, ip="10.1.2.3")
    assert isinstance(error, AuthenticationError)
    assert error.code == "not_found"


def test_list_filters_and_pages(h: Harness) -> None:
    made = [h.create(owner=f"owner-{i % 2}").key for i in range(5)]
    h.keys.revoke(made[0].id)
    ids = sorted(k.id for k in made)
    assert [k.id for k in h.keys.list()] == ids
    assert [k.id for k in h.keys.list(owner="owner-1")] == sorted(
        k.id for k in made if k.owner == "owner-1"
    )
    assert [k.id for k in h.keys.list(state="active")] == sorted(k.id for k in made[1:])
    assert [k.id for k in h.keys.list(owner="nobody")] == []
    first = h.keys.list(limit=2)
    rest = h.keys.list(after=first[-1].id)
    assert [k.id for k in first + rest] == ids
    for bad in [{"state": "gone"}, {"limit": 0}, {"limit": 10_001}]:
        with pytest.raises(InvalidArgument):
            h.keys.list(**bad)


def test_update_changes_only_what_is_given(h: Harness) -> None:
    issued = h.create(scopes=["a:read"], name="CI", metadata={"k": 1}, expires_in=DAY)
    key_id = issued.key.id
    reset(h)
    updated = h.keys.update(key_id, scopes=["a:read", "b:write"], name=None)
    assert updated.scopes == ("a:read", "b:write")
    assert updated.name is None
    assert updated.metadata == {"k": 1}
    assert updated.expires_at == issued.key.expires_at
    assert updated.version == 2
    assert h.keys.get(key_id) == updated
    assert [type(e) for e in h.sink.events] == [KeyUpdated]
    event = h.sink.events[0]
    assert isinstance(event, KeyUpdated)
    assert set(event.fields) == {"scopes", "name"}
    # Nothing to change: no write, no event, same version.
    writes = h.store.calls["write"]
    assert h.keys.update(key_id, scopes=["b:write", "a:read"]).version == 2
    assert h.store.calls["write"] == writes
    assert len(h.sink.events) == 1
    cleared = h.keys.update(key_id, expires_at=None, metadata=None)
    assert cleared.expires_at is None
    assert cleared.metadata == {}
    with pytest.raises(InvalidArgument):
        h.keys.update(key_id, allowed_ips=None)
    with pytest.raises(KeyNotFound):
        h.keys.update("B" * 16, name="x")
    h.keys.revoke(key_id)
    with pytest.raises(InvalidKeyState):
        h.keys.update(key_id, name="x")


def test_revoke_is_final_and_idempotent(h: Harness) -> None:
    issued = h.create()
    first = h.keys.revoke(issued.key.id, reason="leaked")
    second = h.keys.revoke(issued.key.id, reason="other")
    assert second == first
    assert second.revoke_reason == "leaked"
    assert [e.type for e in h.sink.events].count("key.revoked") == 1
    with pytest.raises(KeyNotFound):
        h.keys.revoke("C" * 16)
    with pytest.raises(InvalidKeyState):
        h.keys.suspend(issued.key.id)
    with pytest.raises(InvalidKeyState):
        h.keys.enable(issued.key.id)
    with pytest.raises(InvalidKeyState):
        h.keys.rotate(issued.key.id)


def test_suspend_and_enable(h: Harness) -> None:
    issued = h.create()
    h.keys.verify(issued.plaintext)
    suspended = h.keys.suspend(issued.key.id, reason="billing")
    assert suspended.disabled_at == h.clock.now
    assert suspended.disabled_reason == "billing"
    error = h.fail(issued.plaintext)
    assert isinstance(error, AuthenticationError)
    assert error.code == "disabled"
    assert h.keys.enable(issued.key.id).disabled_at is None
    assert h.keys.verify(issued.plaintext).id == issued.key.id


def test_expiry_takes_effect_exactly_at_the_boundary(h: Harness) -> None:
    issued = h.create(expires_in=HOUR)
    h.clock.advance(HOUR - timedelta(microseconds=1))
    assert h.keys.verify(issued.plaintext).id == issued.key.id
    h.clock.advance(timedelta(microseconds=1))
    error = h.fail(issued.plaintext)
    assert isinstance(error, AuthenticationError)
    assert error.code == "expired"


def test_rotate_grace_inheritance_and_refusals(h: Harness) -> None:
    old = h.create(
        scopes=["a:read"],
        name="CI",
        expires_in=10 * DAY,
        allowed_ips=["10.0.0.0/8"],
        metadata={"plan": "pro"},
    )
    h.clock.advance(DAY)
    reset(h)
    new = h.keys.rotate(old.key.id, grace=HOUR)
    successor = new.key
    assert h.store.calls["write"] == 1  # both records in one atomic write
    for field in ("owner", "scopes", "name", "allowed_ips", "metadata", "prefix"):
        assert getattr(successor, field) == getattr(old.key, field)
    assert successor.expires_at == h.clock.now + 10 * DAY
    ended = h.keys.get(old.key.id)
    assert ended.expires_at == h.clock.now + HOUR
    assert ended.replaced_by == successor.id
    assert [type(e) for e in h.sink.events] == [KeyCreated, KeyRotated]
    created, rotated = h.sink.events
    assert isinstance(created, KeyCreated)
    assert created.replaces == old.key.id
    assert isinstance(rotated, KeyRotated)
    assert rotated.successor_id == successor.id
    assert rotated.ends_at == h.clock.now + HOUR
    with pytest.raises(InvalidKeyState):
        h.keys.rotate(old.key.id, grace=HOUR)  # already rotated
    with pytest.raises(KeyNotFound):
        h.keys.rotate("D" * 16)
    with pytest.raises(InvalidArgument):
        h.keys.rotate(successor.id, grace=-HOUR)
    h.clock.advance(HOUR)
    with pytest.raises(InvalidKeyState):
        h.keys.rotate(old.key.id)  # expired now


def test_rotate_never_extends_the_old_key(h: Harness) -> None:
    old = h.create(expires_in=HOUR)
    h.keys.rotate(old.key.id, grace=DAY)
    assert h.keys.get(old.key.id).expires_at == h.clock.now + HOUR


def test_rotate_with_zero_grace_ends_the_old_key_at_once(h: Harness) -> None:
    old = h.create()
    h.keys.verify(old.plaintext)  # cached: the cache must not keep it alive
    new = h.keys.rotate(old.key.id)
    error = h.fail(old.plaintext)
    assert isinstance(error, AuthenticationError)
    assert error.code == "expired"
    assert h.keys.verify(new.plaintext).id == new.key.id
    assert new.key.expires_at is None


def test_records_handed_out_cannot_change_the_store(h: Harness) -> None:
    issued = h.create(metadata={"plan": "pro"})
    key = h.keys.get(issued.key.id)
    with pytest.raises(TypeError):
        key.metadata["plan"] = "free"
    with pytest.raises(TypeError):
        issued.key.metadata.update(plan="free")
    assert h.keys.get(issued.key.id).metadata == {"plan": "pro"}


# --- check order and the error oracle ------------------------------------------------------

Setup = Callable[[Harness, IssuedKey], dict[str, Any]]


def _revoke(h: Harness, issued: IssuedKey) -> dict[str, Any]:
    h.keys.revoke(issued.key.id)
    return {}


def _expire(h: Harness, issued: IssuedKey) -> dict[str, Any]:
    h.clock.advance(HOUR)
    return {}


def _suspend(h: Harness, issued: IssuedKey) -> dict[str, Any]:
    h.keys.suspend(issued.key.id)
    return {}


def _foreign_ip(h: Harness, issued: IssuedKey) -> dict[str, Any]:
    return {"ip": "192.0.2.1"}


def _no_ip(h: Harness, issued: IssuedKey) -> dict[str, Any]:
    return {"ip": None}


def _missing_scope(h: Harness, issued: IssuedKey) -> dict[str, Any]:
    return {"scopes": ["orders:write"]}


OUTCOMES: list[tuple[str, Setup, type[Exception], str]] = [
    ("revoked", _revoke, AuthenticationError, "revoked"),
    ("expired", _expire, AuthenticationError, "expired"),
    ("disabled", _suspend, AuthenticationError, "disabled"),
    ("ip", _foreign_ip, IPNotAllowed, "ip_not_allowed"),
    ("no-ip", _no_ip, IPNotAllowed, "ip_not_allowed"),
    ("scope", _missing_scope, InsufficientScope, "insufficient_scope"),
]


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize(
    ("setup", "error_type", "code"),
    [case[1:] for case in OUTCOMES],
    ids=[case[0] for case in OUTCOMES],
)
def test_state_is_revealed_only_after_the_secret_is_proven(
    build: Build, setup: Setup, error_type: type[Exception], code: str, warm: bool
) -> None:
    h = build()
    issued = h.create(scopes=["orders:read"], expires_in=HOUR, allowed_ips=["10.0.0.0/8"])
    if warm:
        h.keys.verify(issued.plaintext, ip="10.0.0.1")
    kwargs = {"ip": "10.0.0.1", **setup(h, issued)}
    # A fresh manager on the same store is another process: nothing cached.
    other = h if warm else build(store=h.store)
    other.sink.events.clear()
    wrong = other.fail(with_wrong_secret(issued.plaintext), **kwargs)
    assert type(wrong) is AuthenticationError
    assert wrong.code == "invalid_secret"
    assert str(wrong) == UNPROVEN
    (event,) = other.sink.events
    assert isinstance(event, VerificationFailed)
    assert event.code == "invalid_secret"
    assert event.owner is None  # nothing about the key before its secret is proven
    right = other.fail(issued.plaintext, **kwargs)
    assert type(right) is error_type
    assert right.code == code
    assert str(right) != UNPROVEN
    assert isinstance(other.sink.events[-1], VerificationFailed)
    assert other.sink.events[-1].owner == "team-42"


def test_check_order_state_then_ip_then_scopes(h: Harness) -> None:
    issued = h.create(scopes=["a:read"], expires_in=HOUR, allowed_ips=["10.0.0.0/8"])
    everything_wrong = {"ip": "192.0.2.1", "scopes": ["a:write"]}
    error = h.fail(issued.plaintext, **everything_wrong)
    assert isinstance(error, IPNotAllowed)
    error = h.fail(issued.plaintext, ip="10.0.0.1", scopes=["a:write"])
    assert isinstance(error, InsufficientScope)
    h.clock.advance(HOUR)
    error = h.fail(issued.plaintext, **everything_wrong)
    assert isinstance(error, AuthenticationError)
    assert error.code == "expired"
    h.keys.suspend(issued.key.id)
    error = h.fail(issued.plaintext, **everything_wrong)
    assert isinstance(error, AuthenticationError)
    assert error.code == "disabled"
    h.keys.revoke(issued.key.id)
    error = h.fail(issued.plaintext, **everything_wrong)
    assert isinstance(error, AuthenticationError)
    assert error.code == "revoked"


def test_unproven_failures_are_indistinguishable(h: Harness) -> None:
    issued = h.create()
    h.keys.revoke(issued.key.id)
    errors = {
        "malformed": h.fail("acme_nope"),
        "not_found": h.fail(unknown_key()),
        "invalid_secret": h.fail(with_wrong_secret(issued.plaintext)),
    }
    for code, error in errors.items():
        assert type(error) is AuthenticationError
        assert error.code == code
        assert error.status == 401
        assert str(error) == UNPROVEN
        assert error.args == (UNPROVEN,)
    assert [e.owner for e in h.sink.events if isinstance(e, VerificationFailed)] == [None] * 3


def test_required_scopes_must_be_concrete(h: Harness) -> None:
    issued = h.create(scopes=["*"])
    assert h.keys.verify(issued.plaintext, scopes="orders:read").id == issued.key.id
    with pytest.raises(InvalidArgument):
        h.keys.verify(issued.plaintext, scopes=["orders:*"])


# --- the cached fast path ------------------------------------------------------------------


def test_a_repeat_verify_skips_the_slow_hash_but_reads_the_store(h: Harness) -> None:
    issued = h.create()
    reset(h)
    for n in range(1, 4):
        assert h.keys.verify(issued.plaintext).id == issued.key.id
        assert h.hasher.calls["verify"] == 1
        assert h.store.calls["get"] == n
    wrong = h.fail(with_wrong_secret(issued.plaintext))
    assert isinstance(wrong, AuthenticationError)
    assert wrong.code == "invalid_secret"
    assert h.hasher.calls["verify"] == 1  # rejected on the cached digest
    assert h.store.calls["get"] == 4


def test_changes_reach_a_warm_key_at_once(build: Build) -> None:
    h = build()
    elsewhere = build(store=h.store)  # another process sharing the store
    issued = h.create(scopes=["a:read", "b:read"], expires_in=DAY)
    h.keys.verify(issued.plaintext, scopes=["b:read"])
    elsewhere.keys.update(issued.key.id, scopes=["a:read"])
    error = h.fail(issued.plaintext, scopes=["b:read"])
    assert isinstance(error, InsufficientScope)
    elsewhere.keys.update(issued.key.id, allowed_ips=["10.0.0.0/8"])
    assert isinstance(h.fail(issued.plaintext), IPNotAllowed)
    elsewhere.keys.update(issued.key.id, allowed_ips=[])
    h.clock.advance(DAY)
    error = h.fail(issued.plaintext)
    assert isinstance(error, AuthenticationError)
    assert error.code == "expired"
    elsewhere.keys.update(issued.key.id, expires_at=h.clock.now + DAY)
    assert h.keys.verify(issued.plaintext).id == issued.key.id
    elsewhere.keys.revoke(issued.key.id)
    error = h.fail(issued.plaintext)
    assert isinstance(error, AuthenticationError)
    assert error.code == "revoked"
    assert h.hasher.calls["verify"] == 1  # all of that on one slow hash


def test_without_a_cache_every_verify_hashes(build: Build) -> None:
    h = build(cache_size=0)
    issued = h.create()
    for _ in range(3):
        h.keys.verify(issued.plaintext)
    assert h.hasher.calls["verify"] == 3


# --- cost bounds ---------------------------------------------------------------------------


def test_malformed_costs_no_read_and_unknown_costs_no_hash(h: Harness) -> None:
    issued = h.create()
    reset(h)
    body = issued.plaintext[len("acme_") :]
    for junk in [
        "",
        "acme_",
        issued.plaintext[:-1] + "!",
        "x" * 1_000_000,
        "other_" + body,
        issued.plaintext + issued.plaintext,
    ]:
        error = h.fail(junk)
        assert isinstance(error, AuthenticationError)
        assert error.code == "malformed"
    assert h.store.calls == {}
    assert h.hasher.calls == {}
    error = h.fail(unknown_key())
    assert isinstance(error, AuthenticationError)
    assert error.code == "not_found"
    assert h.store.calls == {"get": 1}
    assert h.hasher.calls == {}


def test_service_busy_when_every_hashing_slot_is_taken(build: Build) -> None:
    hasher = CountingHasher()
    h = build(hasher=hasher, max_concurrent_hashes=1, hash_wait=0)
    first, second = h.create(), h.create()
    hasher.block_verify = True
    done: dict[str, APIKey] = {}
    holder = threading.Thread(target=lambda: done.update(key=h.keys.verify(first.plaintext)))
    holder.start()
    try:
        assert hasher.entered.wait(10)
        error = h.fail(second.plaintext)
        assert isinstance(error, ServiceBusy)
        assert error.status == 503
        assert error.code == "busy"
        assert hasher.calls["verify"] == 1  # the refused call never hashed
        assert h.sink.events[-1].type == "key.verification_failed"
    finally:
        hasher.release.set()
        holder.join(10)
    assert done["key"].id == first.key.id
    hasher.block_verify = False
    assert h.keys.verify(second.plaintext).id == second.key.id  # the slot came back


def test_failure_throttle_pauses_cold_checks_of_one_id(build: Build) -> None:
    h = build(failure_limit=3, failure_window=timedelta(seconds=10))
    target, bystander = h.create(), h.create()
    wrong = with_wrong_secret(target.plaintext)
    for _ in range(3):
        error = h.fail(wrong)
        assert isinstance(error, AuthenticationError)
        assert error.code == "invalid_secret"
    assert h.hasher.calls["verify"] == 3
    error = h.fail(target.plaintext)  # even the right secret waits, cold
    assert isinstance(error, TooManyFailures)
    assert isinstance(error, RateLimited)
    assert error.status == 429
    assert error.code == "too_many_failures"
    assert error.retry_after == pytest.approx(10)
    assert h.hasher.calls["verify"] == 3  # refused without hashing
    assert h.keys.verify(bystander.plaintext).id == bystander.key.id  # per key id
    h.clock.advance(timedelta(seconds=6))
    error = h.fail(wrong)
    assert isinstance(error, TooManyFailures)
    assert error.retry_after == pytest.approx(4)
    h.clock.advance(timedelta(seconds=4))  # the window has slid past the failures
    assert h.keys.verify(target.plaintext).id == target.key.id
    assert h.hasher.calls["verify"] == 5


def test_failure_throttle_window_slides(build: Build) -> None:
    h = build(failure_limit=3, failure_window=timedelta(seconds=10))
    target = h.create()
    wrong = with_wrong_secret(target.plaintext)
    for _ in range(3):
        h.fail(wrong)
        h.clock.advance(timedelta(seconds=4))  # failures at 0, 4, 8 s
    # now 12 s: the first failure has left the window, two remain: a check may run.
    error = h.fail(wrong)
    assert isinstance(error, AuthenticationError)
    assert error.code == "invalid_secret"
    error = h.fail(wrong)  # failures at 4, 8, 12 s
    assert isinstance(error, TooManyFailures)
    assert error.retry_after == pytest.approx(2)


def test_failure_throttle_spares_a_cached_holder(build: Build) -> None:
    h = build(failure_limit=2, failure_window=timedelta(seconds=60))
    target = h.create()
    h.keys.verify(target.plaintext)
    codes = [h.fail(with_wrong_secret(target.plaintext)).code for _ in range(5)]
    # A cached mismatch is throttled like a cold one (or the answers would tell that
    # this process knows the id)...
    assert codes == ["invalid_secret"] * 2 + ["too_many_failures"] * 3
    # ...but the holder's own secret is proven by the cached digest, never paused.
    assert h.keys.verify(target.plaintext).id == target.key.id
    assert h.hasher.calls["verify"] == 1


def test_failure_throttle_can_be_disabled(build: Build) -> None:
    h = build(failure_limit=0)
    target = h.create()
    for _ in range(12):
        h.fail(with_wrong_secret(target.plaintext))
    assert h.keys.verify(target.plaintext).id == target.key.id


def test_store_failure_fails_closed(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    issued = h.create()
    h.keys.verify(issued.plaintext)
    h.store.fail_get = StorageError("database is down")
    error = h.fail(issued.plaintext)
    assert type(error) is StorageError
    assert error.status == 503
    with pytest.raises(StorageError):
        h.keys.get(issued.key.id)
    h.store.fail_get = None
    h.store.fail_touch = StorageError("read-only replica")
    h.clock.advance(HOUR)
    with caplog.at_level(logging.WARNING, logger="apikeys"):
        assert h.keys.verify(issued.plaintext).id == issued.key.id  # a lost touch is no failure
    assert "could not record the use" in caplog.text


# --- rate limiting is the last check -------------------------------------------------------


class CountingLimiter:
    """A tiny real limiter: ``allowed`` requests per key, then refused."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.hits: list[str] = []

    def hit(self, key: APIKey, *, now: datetime) -> RateLimitStatus:
        self.hits.append(key.id)
        used = self.hits.count(key.id)
        if used > self.allowed:
            raise RateLimited(retry_after=30, limit=self.allowed, policy=f"{self.allowed}/minute")
        return RateLimitStatus(self.allowed, self.allowed - used, 30.0, "2/minute", 60.0)

    async def ahit(self, key: APIKey, *, now: datetime) -> RateLimitStatus:
        return self.hit(key, now=now)


def test_rate_limit_is_charged_only_after_every_other_check(build: Build) -> None:
    limiter = CountingLimiter(allowed=2)
    h = build(rate_limiter=limiter)
    issued = h.create(scopes=["a:read"])
    h.fail(with_wrong_secret(issued.plaintext))
    h.fail(issued.plaintext, scopes=["a:write"])
    assert limiter.hits == []
    status = h.keys.authenticate(issued.plaintext).rate_limit
    assert status is not None
    assert status.remaining == 1
    h.keys.verify(issued.plaintext)
    error = h.fail(issued.plaintext)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 30
    event = h.sink.events[-1]
    assert isinstance(event, RateLimitExceeded)
    assert event.owner == "team-42"
    assert event.policy == "2/minute"


# --- events ------------------------------------------------------------------------------


def test_events_of_a_scripted_lifecycle(h: Harness) -> None:
    issued = h.create(scopes=["a:read"], expires_in=DAY)
    key_id = issued.key.id
    h.keys.verify(issued.plaintext, scopes=["a:read"], ip="10.0.0.1")
    wrong = with_wrong_secret(issued.plaintext)
    h.fail(wrong)
    h.fail(issued.plaintext[:-3])
    h.keys.update(key_id, scopes=["a:read", "b:read"])
    h.keys.suspend(key_id, reason="audit")
    h.fail(issued.plaintext)
    h.keys.enable(key_id)
    new = h.keys.rotate(key_id, grace=HOUR)
    h.keys.verify(new.plaintext, scopes=["b:read"])
    h.keys.record_request(new.key, method="GET", route="/orders/{id}", status=200, ip="10.0.0.2")
    h.keys.revoke(new.key.id, reason="leaked")
    h.fail(new.plaintext)
    h.keys.purge(key_id)

    expected = [
        ("key.created", key_id, "team-42"),
        ("key.verified", key_id, "team-42"),
        ("key.verification_failed", key_id, None),
        ("key.verification_failed", None, None),
        ("key.updated", key_id, "team-42"),
        ("key.suspended", key_id, "team-42"),
        ("key.verification_failed", key_id, "team-42"),
        ("key.enabled", key_id, "team-42"),
        ("key.created", new.key.id, "team-42"),
        ("key.rotated", key_id, "team-42"),
        ("key.verified", new.key.id, "team-42"),
        ("request.completed", new.key.id, "team-42"),
        ("key.revoked", new.key.id, "team-42"),
        ("key.updated", key_id, "team-42"),  # revoking the successor ended its grace
        ("key.verification_failed", new.key.id, "team-42"),
        ("key.purged", key_id, "team-42"),
    ]
    assert [(e.type, e.key_id, e.owner) for e in h.sink.events] == expected
    codes = [getattr(e, "code", None) for e in h.sink.events if e.type.endswith("failed")]
    assert codes == ["invalid_secret", "malformed", "disabled", "revoked"]
    verified = h.sink.events[1]
    assert isinstance(verified, KeyVerified)
    assert (verified.ip, verified.scopes) == ("10.0.0.1", ("a:read",))
    revoked = h.sink.events[12]
    assert isinstance(revoked, KeyRevoked)
    assert revoked.reason == "leaked"
    assert all(e.at == h.clock.now for e in h.sink.events)
    secrets = {issued.plaintext, new.plaintext, wrong}
    secrets |= {split(p)[2] for p in secrets}
    for event in h.sink.events:
        shown = repr(event) + str(event) + json.dumps(event.to_dict())
        assert not any(secret in shown for secret in secrets), event


def test_a_failing_sink_never_fails_a_request(
    build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def emit(self, event: object) -> None:
            raise RuntimeError("sink down")

    good = ListSink()
    h = build(events=[Broken(), good])
    with caplog.at_level(logging.ERROR, logger="apikeys"):
        issued = h.create()
        assert h.keys.verify(issued.plaintext).id == issued.key.id
    assert good.types == ["key.created", "key.verified"]
    assert "sink" in caplog.text
    late = ListSink()
    h.keys.add_sink(late)
    h.keys.revoke(issued.key.id)
    assert late.types == ["key.revoked"]
    with pytest.raises(ConfigurationError):
        h.keys.add_sink(object())  # type: ignore[arg-type]


# --- last use ------------------------------------------------------------------------------


def test_last_use_is_written_at_most_once_per_interval(build: Build) -> None:
    h = build(touch_interval=timedelta(minutes=1))
    issued = h.create()
    start = h.clock.now
    key = h.keys.verify(issued.plaintext, ip="10.0.0.1")
    assert h.store.calls["touch"] == 1
    stored = h.keys.get(issued.key.id)
    assert (stored.last_used_at, stored.last_used_ip) == (start, "10.0.0.1")
    assert stored.version == key.version == 1  # a touch is no versioned write
    h.keys.verify(issued.plaintext, ip="10.0.0.2")
    h.clock.advance(timedelta(seconds=59))
    h.keys.verify(issued.plaintext, ip="10.0.0.3")
    assert h.store.calls["touch"] == 1
    h.clock.advance(timedelta(seconds=1))
    h.keys.verify(issued.plaintext, ip="10.0.0.4")
    assert h.store.calls["touch"] == 2
    stored = h.keys.get(issued.key.id)
    assert (stored.last_used_at, stored.last_used_ip) == (h.clock.now, "10.0.0.4")
    h.keys.revoke(issued.key.id)  # no conflict with the touches


@pytest.mark.parametrize(("interval", "touches"), [(None, 0), (timedelta(0), 3)])
def test_touch_interval_extremes(build: Build, interval: timedelta | None, touches: int) -> None:
    h = build(touch_interval=interval)
    issued = h.create()
    for _ in range(3):
        h.keys.verify(issued.plaintext)
    assert h.store.calls["touch"] == touches


# --- version conflicts ----------------------------------------------------------------------


def _rename_elsewhere(h: Harness, key_id: str, name: str) -> Callable[[], None]:
    """Another process renames the key between our read and our write."""

    def change() -> None:
        record = h.store.inner.get(key_id)
        assert record is not None
        h.store.inner.write(update=[KeyRecord(bump(record.key, name=name), record.secret_hash)])

    return change


OPERATIONS: dict[str, Callable[[AnyManager, str], Any]] = {
    "revoke": lambda keys, key_id: keys.revoke(key_id, reason="leaked"),
    "update": lambda keys, key_id: keys.update(key_id, scopes=["b:write"]),
    "suspend": lambda keys, key_id: keys.suspend(key_id),
    "rotate": lambda keys, key_id: keys.rotate(key_id, grace=HOUR),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_conflicting_write_is_retried_without_losing_the_other(
    h: Harness, operation: str
) -> None:
    issued = h.create(scopes=["a:read"])
    key_id = issued.key.id
    h.store.before_write.append(_rename_elsewhere(h, key_id, "renamed"))
    result = OPERATIONS[operation](h.keys, key_id)
    stored = h.keys.get(key_id)
    assert stored.name == "renamed"  # the other process's write survived
    assert stored.version == 3
    if operation == "rotate":
        assert stored.replaced_by == result.key.id
        assert result.key.name == "renamed"  # the successor inherits the fresh record
        assert len(h.store.inner) == 2
    elif operation == "revoke":
        assert stored.revoke_reason == "leaked"
    elif operation == "update":
        assert stored.scopes == ("b:write",)
    else:
        assert stored.disabled_at is not None


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_two_conflicts_raise_and_write_nothing(h: Harness, operation: str) -> None:
    issued = h.create(scopes=["a:read"])
    key_id = issued.key.id
    h.store.before_write.extend(
        [_rename_elsewhere(h, key_id, "one"), _rename_elsewhere(h, key_id, "two")]
    )
    reset(h)
    with pytest.raises(ConflictError) as info:
        OPERATIONS[operation](h.keys, key_id)
    assert info.value.status == 409
    assert isinstance(info.value, StorageError)
    stored = h.keys.get(key_id)
    assert (stored.name, stored.version) == ("two", 3)
    assert stored.revoked_at is None
    assert stored.disabled_at is None
    assert stored.replaced_by is None
    assert stored.scopes == ("a:read",)
    assert len(h.store.inner) == 1
    assert h.sink.events == []


# --- prefixes -----------------------------------------------------------------------------


def test_several_prefixes(build: Build) -> None:
    h = build(prefix=["acme_live", "acme"])
    assert h.keys.prefix == "acme_live"
    assert h.keys.prefixes == frozenset({"acme_live", "acme"})
    live = h.create()
    legacy = h.create(prefix="acme")
    assert live.plaintext.startswith("acme_live_")
    assert live.key.prefix == "acme_live"
    assert legacy.plaintext.startswith("acme_")
    assert legacy.key.prefix == "acme"
    assert not legacy.plaintext.startswith("acme_live_")
    assert h.keys.verify(live.plaintext).id == live.key.id
    assert h.keys.verify(legacy.plaintext).id == legacy.key.id
    with pytest.raises(InvalidArgument):
        h.create(prefix="other")
    _, key_id, secret = split(legacy.plaintext)
    error = h.fail(format_key("other", key_id, secret))
    assert isinstance(error, AuthenticationError)
    assert error.code == "malformed"
    rotated = h.keys.rotate(legacy.key.id, grace=HOUR)
    assert rotated.plaintext.startswith("acme_")
    assert rotated.key.prefix == "acme"
    # A manager that accepts only one prefix refuses the other's keys as malformed.
    narrow = build(store=h.store, prefix="acme")
    assert narrow.keys.verify(rotated.plaintext).id == rotated.key.id
    error = narrow.fail(live.plaintext)
    assert isinstance(error, AuthenticationError)
    assert error.code == "malformed"


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prefix": []},
        {"prefix": "Acme"},
        {"prefix": ["acme", "bad prefix"]},
        {"max_concurrent_hashes": 0},
        {"max_concurrent_hashes": -1},
        {"hash_wait": -1},
        {"touch_interval": timedelta(seconds=-1)},
        {"events": object()},
        {"events": [ListSink(), object()]},
        {"rate_limiter": object()},
    ],
)
def test_configuration_errors(flavour: str, kwargs: dict[str, Any]) -> None:
    manager_type: Any = KeyManager if flavour == "sync" else AsyncKeyManager
    kwargs = {"prefix": "acme", "hasher": Argon2Hasher.for_tests(), **kwargs}
    with pytest.raises(ConfigurationError):
        manager_type(MemoryStore(), **kwargs)


def test_stores_must_implement_their_protocol() -> None:
    class SyncOnly:
        def get(self, key_id: str) -> None: ...
        def write(self, *, insert: Any = (), update: Any = ()) -> None: ...
        def list(self, **kwargs: Any) -> list[Any]:
            return []

        def purge(self, key_id: str) -> bool:
            return False

        def close(self) -> None: ...

    KeyManager(SyncOnly(), prefix="acme")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        AsyncKeyManager(SyncOnly(), prefix="acme")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        KeyManager(object(), prefix="acme")  # type: ignore[arg-type]


def test_clock_must_be_timezone_aware(build: Build) -> None:
    h = build(clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(ConfigurationError):
        h.create()
    with pytest.raises(ConfigurationError):
        h.keys.now()
    assert h.store.calls["write"] == 0


def test_management_calls_never_echo_a_whole_key(h: Harness) -> None:
    issued = h.create()
    _, _, secret = split(issued.plaintext)
    h.keys.purge(issued.key.id)
    for call in (h.keys.get, h.keys.revoke, h.keys.rotate, h.keys.suspend):
        with pytest.raises(KeyNotFound) as info:
            call(issued.plaintext)
        shown = str(info.value) + repr(info.value) + str(info.value.key_id)
        assert secret not in shown
        assert issued.plaintext not in shown
    with pytest.raises(KeyNotFound) as info:
        h.keys.get(issued.key.id)
    assert info.value.key_id == issued.key.id
    assert issued.key.id in str(info.value)


# --- the testing module ---------------------------------------------------------------------


def test_testing_fixtures_issue_a_key_in_one_line(
    key_manager: KeyManager, issue_key: Callable[..., str], key_manager_clock: ManualClock
) -> None:
    plaintext = issue_key(scopes=["orders:read"], expires_in=HOUR)
    key = key_manager.verify(plaintext, scopes=["orders:read"])
    assert key.owner == "test-owner"
    assert plaintext.startswith("test_")
    assert key.created_at == key_manager_clock.now
    assert isinstance(key_manager.hasher, Argon2Hasher)
    assert key_manager.hasher.parameters.memory_cost == 8  # the cheap profile
    assert isinstance(key_manager.store, MemoryStore)
    key_manager_clock.advance(HOUR)
    with pytest.raises(AuthenticationError) as info:
        key_manager.verify(plaintext)
    assert info.value.code == "expired"
    assert issue_key(owner="someone") != issue_key(owner="someone")


def test_testing_plugin_is_registered_by_its_entry_point(pytestconfig: pytest.Config) -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("apikeys") == "apikeys.testing.plugin"
    assert pytestconfig.pluginmanager.has_plugin("apikeys")


def test_testing_helpers() -> None:
    keys = make_manager("demo", clock=ManualClock())
    issued = keys.create(owner="o")
    assert issued.plaintext.startswith("demo_")
    assert keys.verify(issued.plaintext).id == issued.key.id
    assert auth_headers(issued.plaintext) == {"Authorization": f"Bearer {issued.plaintext}"}
    assert auth_headers("k", scheme="ApiKey") == {"Authorization": "ApiKey k"}
    clock = ManualClock()
    start = clock()
    clock.advance(HOUR)
    assert clock() - start == HOUR
    with pytest.raises(ValueError, match="timezone"):
        ManualClock(datetime(2026, 1, 1))


# --- the hot-path parts on their own ---------------------------------------------------------


def test_failure_throttle_directly() -> None:
    throttle = _hotpath.FailureThrottle(limit=3, window=10.0, max_tracked=2)
    assert throttle.retry_after("a", now=0) == 0
    for t in (0.0, 1.0, 2.0):
        throttle.record_failure("a", now=t)
    assert throttle.retry_after("a", now=2.0) == pytest.approx(8.0)
    assert throttle.retry_after("a", now=9.5) == pytest.approx(0.5)
    assert throttle.retry_after("a", now=10.0) == 0  # the failure at 0 left the window
    throttle.record_failure("a", now=10.0)
    assert throttle.retry_after("a", now=10.5) == pytest.approx(0.5)  # 1, 2, 10: until 11
    assert throttle.retry_after("b", now=10.5) == 0
    throttle.clear("a")
    assert throttle.retry_after("a", now=10.5) == 0
    # Memory is bounded: tracking a third id forgets the least recently failed one.
    for key_id in ("x", "y", "z"):
        for t in (20.0, 21.0, 22.0):
            throttle.record_failure(key_id, now=t)
    assert throttle.retry_after("x", now=22.0) == 0
    assert throttle.retry_after("z", now=22.0) > 0
    disabled = _hotpath.FailureThrottle(limit=0, window=10.0)
    for t in range(20):
        disabled.record_failure("a", now=float(t))
    assert disabled.retry_after("a", now=20.0) == 0


def test_verified_cache_directly() -> None:
    cache = _hotpath.VerifiedCache(maxsize=2)
    digest = cache.digest("secret")
    assert digest == cache.digest("secret")
    assert digest != cache.digest("secreT")
    assert _hotpath.VerifiedCache().digest("secret") != digest  # keyed per process
    assert cache.check("a", "hash-a", digest) == "unknown"
    cache.remember("a", "hash-a", digest)
    assert cache.check("a", "hash-a", digest) == "match"
    assert cache.check("a", "hash-a", cache.digest("other")) == "mismatch"
    assert cache.check("a", "hash-a2", digest) == "unknown"  # bound to the stored hash
    cache.remember("b", "hash-b", digest)
    cache.remember("c", "hash-c", digest)
    assert len(cache) == 2
    assert cache.check("a", "hash-a", digest) == "unknown"
    cache.forget("b")
    assert cache.check("b", "hash-b", digest) == "unknown"
    none = _hotpath.VerifiedCache(maxsize=0)
    none.remember("a", "hash-a", digest)
    assert len(none) == 0


def test_hash_slots_directly() -> None:
    slots = _hotpath.HashSlots(capacity=2, timeout=0)
    assert slots.try_acquire()
    assert slots.try_acquire()
    assert not slots.try_acquire()
    assert not slots.try_acquire(block=False)
    slots.release()
    assert slots.try_acquire(block=False)
