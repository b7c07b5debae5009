"""Edges of the lifecycle found by adversarial testing (issues 14.3, 15.4, 15.8,
15.10): refusals of a revoked key stay cheap, rotation lineage cannot be revived,
a lost reply never strands a key, and per-key limits hold without a limiter."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from apikeys import (
    AsyncKeyManager,
    AuthenticationError,
    InvalidKeyState,
    KeyManager,
    KeyRecord,
    QuotaExceeded,
    RateLimited,
    StorageError,
)
from apikeys.hashing import Argon2Hasher
from apikeys.storage import KeyStore, MemoryStore, SQLiteStore
from apikeys.testing import ManualClock
from core_support import AnyManager, CountingHasher, ListSink, SyncFacade

HOUR = timedelta(hours=1)


class FaultyStore:
    """A real store (memory or SQLite) with injected faults: ``lose_reply`` makes the
    next write land and then raise, as when a driver loses the commit's reply;
    ``down`` makes every call raise before touching the store."""

    def __init__(self, inner: KeyStore) -> None:
        self.inner = inner
        self.lose_reply = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StorageError("injected: store down")

    def get(self, key_id: str) -> KeyRecord | None:
        self._check()
        return self.inner.get(key_id)

    def write(self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()) -> None:
        self._check()
        self.inner.write(insert=insert, update=update)
        if self.lose_reply:
            self.lose_reply -= 1
            raise StorageError("injected: the reply to the commit was lost")

    def list(self, **kwargs: Any) -> list[KeyRecord]:
        self._check()
        return self.inner.list(**kwargs)

    def purge(self, key_id: str) -> bool:
        self._check()
        return self.inner.purge(key_id)

    def close(self) -> None:
        self.inner.close()

    async def aget(self, key_id: str) -> KeyRecord | None:
        return self.get(key_id)

    async def awrite(
        self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()
    ) -> None:
        self.write(insert=insert, update=update)

    async def alist(self, **kwargs: Any) -> list[KeyRecord]:
        return self.list(**kwargs)

    async def apurge(self, key_id: str) -> bool:
        return self.purge(key_id)

    async def aclose(self) -> None:
        self.close()


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal(backend="asyncio") as running:
        yield running


@pytest.fixture(params=["sync-memory", "sync-sqlite", "async-memory"])
def setup(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> Iterator[tuple[AnyManager, FaultyStore, ListSink]]:
    flavour, kind = str(request.param).split("-")
    inner: KeyStore = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "k.db")
    store = FaultyStore(inner)
    sink = ListSink()
    options: dict[str, Any] = {"hasher": Argon2Hasher.for_tests(), "clock": clock, "events": sink}
    keys: AnyManager
    if flavour == "sync":
        keys = KeyManager(store, prefix="acme", **options)
    else:
        manager = AsyncKeyManager(store, prefix="acme", **options)
        keys = SyncFacade(manager, request.getfixturevalue("portal"))
    yield keys, store, sink
    keys.close()


def refused(keys: AnyManager, raw: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        keys.verify(raw)
    return info.value.code


# --- 14.3: refusals stay cheap --------------------------------------------------------


def test_a_revoked_key_costs_no_hash_once_verified() -> None:
    hasher = CountingHasher()
    keys = KeyManager(MemoryStore(), prefix="acme", hasher=hasher)
    issued = keys.create(owner="team")
    keys.verify(issued.plaintext)
    keys.suspend(issued.key.id)
    keys.enable(issued.key.id)
    keys.revoke(issued.key.id)
    hasher.calls.clear()
    for _ in range(20):
        assert refused(keys, issued.plaintext) == "revoked"
    assert hasher.calls["verify"] == 0
    keys.purge(issued.key.id)  # a purge still drops the cached digest
    assert refused(keys, issued.plaintext) == "not_found"


def test_threads_presenting_a_just_revoked_key_get_401_not_503() -> None:
    keys = KeyManager(MemoryStore(), prefix="acme", max_concurrent_hashes=2, hash_wait=0.01)
    issued = keys.create(owner="team")  # the default, production Argon2 profile
    keys.verify(issued.plaintext)
    keys.revoke(issued.key.id)
    codes: list[str] = []
    start = threading.Barrier(8)

    def present() -> None:
        start.wait()
        for _ in range(5):
            try:
                keys.verify(issued.plaintext)
            except Exception as exc:  # every outcome is recorded
                codes.append(getattr(exc, "code", type(exc).__name__))

    threads = [threading.Thread(target=present) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == ["revoked"] * 40


# --- 15.4: rotation lineage -------------------------------------------------------------


def test_a_rotated_out_key_cannot_be_revived(
    setup: tuple[AnyManager, FaultyStore, ListSink], clock: ManualClock
) -> None:
    keys, _, _ = setup
    old = keys.create(owner="team")
    keys.rotate(old.key.id, grace=HOUR)
    retired = keys.get(old.key.id)
    assert retired.expires_at == clock.now + HOUR
    with pytest.raises(InvalidKeyState):
        keys.update(old.key.id, expires_at=None)
    with pytest.raises(InvalidKeyState):
        keys.update(old.key.id, expires_at=clock.now + 2 * HOUR)
    shorter = keys.update(old.key.id, expires_at=clock.now + HOUR / 2)
    assert shorter.expires_at == clock.now + HOUR / 2
    clock.advance(HOUR)
    assert refused(keys, old.plaintext) == "expired"


def test_revoking_a_successor_ends_the_grace_of_its_predecessors(
    setup: tuple[AnyManager, FaultyStore, ListSink], clock: ManualClock
) -> None:
    keys, _, sink = setup
    first = keys.create(owner="team")
    second = keys.rotate(first.key.id, grace=HOUR)
    third = keys.rotate(second.key.id, grace=HOUR)
    other = keys.create(owner="team")
    for issued in (first, second, third, other):
        keys.verify(issued.plaintext)
    sink.events.clear()
    keys.revoke(third.key.id, reason="leaked")
    assert refused(keys, third.plaintext) == "revoked"
    assert refused(keys, second.plaintext) == "expired"
    assert refused(keys, first.plaintext) == "expired"
    keys.verify(other.plaintext)  # an unrelated key is untouched
    assert keys.get(first.key.id).expires_at == clock.now
    ended = [e.key_id for e in sink.events if e.type == "key.updated"]
    assert ended == [second.key.id, first.key.id]


def test_revoking_a_middle_key_spares_its_successor(
    setup: tuple[AnyManager, FaultyStore, ListSink],
) -> None:
    keys, _, _ = setup
    first = keys.create(owner="team")
    second = keys.rotate(first.key.id, grace=HOUR)
    third = keys.rotate(second.key.id, grace=HOUR)
    keys.revoke(second.key.id)
    assert refused(keys, first.plaintext) == "expired"
    keys.verify(third.plaintext)


# --- 15.8: ambiguous commits ------------------------------------------------------------


def test_create_whose_reply_is_lost_still_returns_the_key(
    setup: tuple[AnyManager, FaultyStore, ListSink],
) -> None:
    keys, store, sink = setup
    store.lose_reply = 1
    issued = keys.create(owner="team")  # the write landed: the manager checked
    assert keys.verify(issued.plaintext).id == issued.key.id
    assert sink.types == ["key.created", "key.verified"]


def test_rotate_whose_reply_is_lost_still_returns_the_successor(
    setup: tuple[AnyManager, FaultyStore, ListSink],
) -> None:
    keys, store, _ = setup
    old = keys.create(owner="team")
    store.lose_reply = 1
    new = keys.rotate(old.key.id, grace=timedelta(0))
    assert keys.verify(new.plaintext).id == new.key.id
    assert refused(keys, old.plaintext) == "expired"


class DownAfterWrite(FaultyStore):
    """The first write's reply is lost and the store then stays down until the test
    brings it back: nothing can be confirmed."""

    failed = False

    def write(self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()) -> None:
        super().write(insert=insert, update=update)
        if not self.failed:
            self.failed = self.down = True
            raise StorageError("injected: the reply to the commit was lost")


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_an_unconfirmed_rotation_carries_a_recovery_handle(
    flavour: str, request: pytest.FixtureRequest, clock: ManualClock
) -> None:
    store = DownAfterWrite(MemoryStore())
    options: dict[str, Any] = {"hasher": Argon2Hasher.for_tests(), "clock": clock}
    keys: AnyManager
    if flavour == "sync":
        keys = KeyManager(store, prefix="acme", **options)
    else:
        keys = SyncFacade(
            AsyncKeyManager(store, prefix="acme", **options), request.getfixturevalue("portal")
        )
    # The first key goes straight to the inner store: only the rotation meets the fault.
    seed = KeyManager(store.inner, prefix="acme", **options).create(owner="team")
    with pytest.raises(StorageError) as info:
        keys.rotate(seed.key.id, grace=timedelta(0))
    pending = info.value.issued
    assert pending is not None
    shown = str(info.value) + repr(info.value) + repr(pending) + str(pending)
    assert pending.plaintext not in shown
    store.down = False  # the store is back: the handle tells what happened
    assert keys.get(pending.key.id).replaces == seed.key.id
    assert keys.verify(pending.plaintext).id == pending.key.id


def test_an_unconfirmed_create_carries_a_recovery_handle(clock: ManualClock) -> None:
    store = DownAfterWrite(MemoryStore())
    keys = KeyManager(store, prefix="acme", hasher=Argon2Hasher.for_tests(), clock=clock)
    with pytest.raises(StorageError) as info:
        keys.create(owner="team")
    pending = info.value.issued
    assert pending is not None
    store.down = False
    keys.revoke(pending.key.id, reason="never handed out")  # or hand it out
    assert refused(keys, pending.plaintext) == "revoked"


def test_a_write_that_did_not_land_carries_no_handle(clock: ManualClock) -> None:
    class Refusing(FaultyStore):
        def write(self, **kwargs: Any) -> None:
            raise StorageError("injected: refused before the commit")

    keys = KeyManager(Refusing(MemoryStore()), prefix="acme", hasher=Argon2Hasher.for_tests())
    with pytest.raises(StorageError) as info:
        keys.create(owner="team")
    assert info.value.issued is None
    assert keys.list() == []


# --- 15.10: limits without a limiter ----------------------------------------------------


def test_per_key_limits_hold_without_a_rate_limiter(
    setup: tuple[AnyManager, FaultyStore, ListSink], clock: ManualClock
) -> None:
    keys, _, _ = setup
    assert keys.rate_limiter is None
    limited = keys.create(owner="team", rate_limits=["5/hour"])
    for _ in range(5):
        keys.verify(limited.plaintext)
    with pytest.raises(RateLimited):
        keys.verify(limited.plaintext)
    quota = keys.create(owner="team", quota=3)
    for _ in range(3):
        keys.verify(quota.plaintext)
    with pytest.raises(QuotaExceeded):
        keys.verify(quota.plaintext)
    free = keys.create(owner="team")
    for _ in range(50):
        keys.verify(free.plaintext)
    clock.advance(2 * HOUR)
    keys.verify(limited.plaintext)


def test_keys_without_limits_never_build_the_default_limiter(clock: ManualClock) -> None:
    keys = KeyManager(MemoryStore(), prefix="acme", hasher=Argon2Hasher.for_tests(), clock=clock)
    issued = keys.create(owner="team")
    for _ in range(10):
        keys.verify(issued.plaintext)
    assert keys._own_limiter is None
