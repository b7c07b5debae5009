"""The one conformance suite every key store passes: :class:`StoreConformance`.

Use it for any :class:`apikeys.storage.KeyStore`, including your own (needs pytest)::

    import pytest
    from apikeys.testing import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self):
            store = MyStore(...)        # a fresh, EMPTY store for every test
            yield store
            store.close()

That is the whole interface: a subclass with a ``store`` fixture returning a
fresh, empty ``KeyStore``. Optional class attribute:

- ``concurrent_writes = False`` skips the test that races writers from threads
  (for stores that are not meant to be shared between threads).

An :class:`~apikeys.storage.AsyncKeyStore` runs the very same assertions through
:class:`BlockingStore`, which drives its awaitable methods on an event loop in a
worker thread (see :func:`blocking_store`)::

    @pytest.fixture
    def store(self):
        with blocking_store(lambda: MyAsyncStore(...)) as store:
            yield store

The record helpers (:func:`record`, :func:`bumped`, :data:`NOW`) are the suite's
own; the project's tests reuse them, users need not.
"""

from __future__ import annotations

import asyncio
import builtins
import secrets
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, TypeVar

import pytest

from apikeys._manager import KeyManager
from apikeys._models import APIKey, KeyRecord, KeyState
from apikeys.errors import AuthenticationError, ConflictError, StorageError
from apikeys.storage import AsyncKeyStore, AsyncSupportsTouch, KeyStore, SupportsTouch
from apikeys.testing import ManualClock, test_hasher

__all__ = ["BlockingStore", "StoreConformance", "blocking_store"]

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

T = TypeVar("T")


def key_id() -> str:
    """A random, valid 16-character base62 key id."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(16))


def record(
    id: str | None = None,
    *,
    owner: str = "team-1",
    secret_hash: str = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",  # noqa: S107 (a hash)
    **fields: Any,
) -> KeyRecord:
    """A record as a manager would write it, with ``fields`` overriding defaults."""
    data: dict[str, Any] = {
        "id": id or key_id(),
        "prefix": "acme",
        "owner": owner,
        "created_at": NOW - HOUR,
    }
    data.update(fields)
    return KeyRecord(APIKey(**data), secret_hash)


def bumped(rec: KeyRecord, **changes: Any) -> KeyRecord:
    """``rec`` changed as a lifecycle write would: fields updated, version + 1."""
    key = rec.key.model_copy(update={**changes, "version": rec.version + 1})
    return KeyRecord(key, rec.secret_hash)


def every_id(store: KeyStore, *, now: datetime = NOW, **filters: Any) -> list[str]:
    """Every id the store lists (paging 2 at a time, to exercise ``after``)."""
    ids: list[str] = []
    after = None
    while True:
        page = store.list(now=now, limit=2, after=after, **filters)
        ids.extend(r.id for r in page)
        if len(page) < 2:
            return ids
        after = page[-1].id


class EventLoopThread:
    """An asyncio event loop running in a daemon worker thread, until :meth:`stop`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="apikeys-blocking-store", daemon=True
        )
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (or exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        """Stop the loop, wait for the thread, close the loop."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class BlockingStore:
    """A :class:`~apikeys.storage.KeyStore` over an
    :class:`~apikeys.storage.AsyncKeyStore`: each call runs the awaitable method
    on an event loop in a worker thread, so async stores pass the same suite.

    Args:
        inner: The async store.
        runner: The loop thread its methods run on.
    """

    def __init__(self, inner: AsyncKeyStore, runner: EventLoopThread) -> None:
        self.inner = inner
        self._runner = runner

    def _run(self, fn: Callable[..., Awaitable[T]], **kwargs: Any) -> T:
        async def call() -> T:
            return await fn(**kwargs)

        return self._runner.call(call())

    def __repr__(self) -> str:
        return f"BlockingStore({self.inner!r})"

    def get(self, key_id: str) -> KeyRecord | None:
        return self._run(self.inner.aget, key_id=key_id)

    def write(self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()) -> None:
        self._run(self.inner.awrite, insert=insert, update=update)

    def list(
        self,
        *,
        owner: str | None = None,
        state: KeyState | None = None,
        now: datetime,
        limit: int = 100,
        after: str | None = None,
    ) -> builtins.list[KeyRecord]:
        return self._run(
            self.inner.alist, owner=owner, state=state, now=now, limit=limit, after=after
        )

    def purge(self, key_id: str) -> bool:
        return self._run(self.inner.apurge, key_id=key_id)

    def touch(self, key_id: str, *, at: datetime, ip: str | None) -> None:
        if not isinstance(self.inner, AsyncSupportsTouch):
            raise TypeError(f"{self.inner!r} has no atouch")
        self._run(self.inner.atouch, key_id=key_id, at=at, ip=ip)

    def close(self) -> None:
        self._run(self.inner.aclose)


@contextmanager
def blocking_store(make: Callable[[], AsyncKeyStore]) -> Iterator[BlockingStore]:
    """An async store built by ``make`` (on the event loop, so it may bind to it)
    and driven on that loop in a worker thread, wrapped as a synchronous store;
    ``aclose``-d on the way out.

    Args:
        make: Builds the async store (called with the loop running).

    Yields:
        The store as a :class:`~apikeys.storage.KeyStore`.
    """
    runner = EventLoopThread()
    try:

        async def build() -> AsyncKeyStore:
            return make()

        store = BlockingStore(runner.call(build()), runner)
        try:
            yield store
        finally:
            store.close()
    finally:
        runner.stop()


class StoreConformance:
    """The behaviour every key store must show, as pytest tests.

    Subclass it in a test module (the subclass name starting with ``Test``) and
    define a ``store`` fixture yielding a fresh, empty
    :class:`~apikeys.storage.KeyStore` for each test (an async store through
    :func:`blocking_store`). Every ``test_*`` method then runs on it.

    Attributes:
        concurrent_writes: ``False`` skips the test racing writers from threads
            (for a store not meant to be shared between threads).
    """

    concurrent_writes: ClassVar[bool] = True

    # --- protocol and reads ---------------------------------------------------------

    def test_implements_the_protocol(self, store: KeyStore) -> None:
        assert isinstance(store, KeyStore)

    def test_get_unknown_id_is_none(self, store: KeyStore) -> None:
        assert store.get(key_id()) is None

    def test_minimal_record_round_trips(self, store: KeyStore) -> None:
        rec = record()
        store.write(insert=[rec])
        assert store.get(rec.id) == rec

    def test_every_field_round_trips(self, store: KeyStore) -> None:
        cest = timezone(timedelta(hours=2))
        rec = record(
            owner="Équipe 42 — ünïcødé 😀",
            name="CI key «prod»",
            scopes=("orders:read", "orders:write", "*"),
            created_at=datetime(2025, 12, 31, 23, 59, 59, 123456, tzinfo=cest),
            expires_at=NOW + timedelta(days=90, microseconds=7),
            revoked_at=NOW + timedelta(seconds=1, microseconds=1),
            revoke_reason="leaked\nin a log",
            disabled_at=NOW + timedelta(seconds=2),
            disabled_reason="suspended",
            last_used_at=NOW + timedelta(seconds=3, microseconds=999999),
            last_used_ip="2001:db8::1",
            allowed_ips=("10.0.0.0/8", "2001:db8::/32"),
            metadata={"plan": "pro", "nested": {"list": [1, 2.5, None, True]}, "é": "ü"},
            replaced_by=key_id(),
            replaces=key_id(),
            rate_limits=("100/minute", "5000/day"),
            quota="1000/month",
            version=7,
            secret_hash="$argon2id$v=19$m=65536,t=3,p=4$" + "A" * 22 + "$" + "B" * 43,
        )
        store.write(insert=[rec])
        got = store.get(rec.id)
        assert got == rec
        assert got is not None
        assert got.key.created_at.utcoffset() == timedelta(0)
        assert got.key.created_at == datetime(2025, 12, 31, 21, 59, 59, 123456, tzinfo=timezone.utc)

    def test_large_values_round_trip(self, store: KeyStore) -> None:
        rec = record(
            owner="o" * 200,
            name="n" * 200,
            metadata={"blob": "x" * 16_000},
            scopes=tuple(f"area{i}:read" for i in range(100)),
        )
        store.write(insert=[rec])
        assert store.get(rec.id) == rec

    def test_ids_are_case_sensitive(self, store: KeyStore) -> None:
        lower, upper = record("abcdefghijklmnop"), record("ABCDEFGHIJKLMNOP", owner="other")
        store.write(insert=[lower, upper])
        assert store.get("abcdefghijklmnop") == lower
        assert store.get("ABCDEFGHIJKLMNOP") == upper
        assert store.get("Abcdefghijklmnop") is None

    # --- writes ---------------------------------------------------------------------

    def test_insert_of_existing_id_conflicts_and_changes_nothing(self, store: KeyStore) -> None:
        rec = record()
        store.write(insert=[rec])
        with pytest.raises(ConflictError) as info:
            store.write(insert=[record(rec.id, owner="someone-else")])
        assert isinstance(info.value, StorageError)
        assert store.get(rec.id) == rec

    def test_one_write_naming_an_id_twice_conflicts(self, store: KeyStore) -> None:
        rec = record()
        with pytest.raises(ConflictError):
            store.write(insert=[rec, record(rec.id)])
        assert store.get(rec.id) is None

    def test_several_inserts_land_together(self, store: KeyStore) -> None:
        recs = [record() for _ in range(5)]
        store.write(insert=recs)
        assert [store.get(r.id) for r in recs] == recs

    def test_update_with_next_version_lands(self, store: KeyStore) -> None:
        rec = record()
        store.write(insert=[rec])
        changed = bumped(rec, scopes=("a:b",), metadata={"k": 1}, expires_at=NOW + HOUR)
        store.write(update=[changed])
        assert store.get(rec.id) == changed
        again = bumped(changed, expires_at=None, metadata={})
        store.write(update=[again])
        assert store.get(rec.id) == again

    def test_update_can_change_the_hash(self, store: KeyStore) -> None:
        rec = record()
        store.write(insert=[rec])
        rehashed = KeyRecord(bumped(rec).key, "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3aGFzaA")
        store.write(update=[rehashed])
        got = store.get(rec.id)
        assert got is not None
        assert got.secret_hash == rehashed.secret_hash

    @pytest.mark.parametrize("offset", [0, 2, -1])
    def test_update_with_a_stale_version_conflicts(self, store: KeyStore, offset: int) -> None:
        rec = record(version=3)
        store.write(insert=[rec])
        stale = KeyRecord(
            rec.key.model_copy(update={"version": rec.version + offset, "name": "x"}),
            rec.secret_hash,
        )
        with pytest.raises(ConflictError):
            store.write(update=[stale])
        assert store.get(rec.id) == rec

    def test_update_of_a_missing_record_conflicts(self, store: KeyStore) -> None:
        with pytest.raises(ConflictError):
            store.write(update=[bumped(record())])

    def test_a_failing_update_rolls_back_the_inserts(self, store: KeyStore) -> None:
        old = record()
        store.write(insert=[old])
        successor = record(replaces=old.id)
        stale = KeyRecord(old.key.model_copy(update={"replaced_by": successor.id}), old.secret_hash)
        with pytest.raises(ConflictError):
            store.write(insert=[successor], update=[stale])
        assert store.get(successor.id) is None
        assert store.get(old.id) == old

    def test_a_failing_insert_rolls_back_the_updates(self, store: KeyStore) -> None:
        old, other = record(), record()
        store.write(insert=[old, other])
        with pytest.raises(ConflictError):
            store.write(insert=[record(other.id)], update=[bumped(old, name="changed")])
        assert store.get(old.id) == old
        assert store.get(other.id) == other

    def test_rotation_shaped_write_lands_both(self, store: KeyStore) -> None:
        old = record()
        store.write(insert=[old])
        successor = record(replaces=old.id, created_at=NOW)
        ended = bumped(old, replaced_by=successor.id, expires_at=NOW + HOUR)
        store.write(insert=[successor], update=[ended])
        assert store.get(old.id) == ended
        assert store.get(successor.id) == successor

    def test_racing_writers_exactly_one_wins(self, store: KeyStore) -> None:
        if not self.concurrent_writes:
            pytest.skip("this store is not shared between threads")
        rec = record()
        store.write(insert=[rec])
        threads = 6
        gate = threading.Barrier(threads)
        outcomes: list[str] = []
        lock = threading.Lock()

        def race(n: int) -> None:
            gate.wait()
            try:
                store.write(update=[bumped(rec, name=f"writer {n}")])
                result = f"won {n}"
            except ConflictError:
                result = "conflict"
            except BaseException as exc:  # reported to the test, not swallowed
                result = repr(exc)
            with lock:
                outcomes.append(result)

        workers = [threading.Thread(target=race, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        winners = [o for o in outcomes if o.startswith("won")]
        assert len(winners) == 1, outcomes
        assert outcomes.count("conflict") == threads - 1, outcomes
        got = store.get(rec.id)
        assert got is not None
        assert got.version == rec.version + 1
        assert got.key.name == "writer " + winners[0].split()[1]

    # --- list -----------------------------------------------------------------------

    def test_list_of_empty_store(self, store: KeyStore) -> None:
        assert store.list(now=NOW) == []

    def test_list_orders_by_id_in_code_point_order(self, store: KeyStore) -> None:
        ids = [
            "zzzzzzzzzzzzzzzz",
            "ZZZZZZZZZZZZZZZZ",
            "0000000000000000",
            "aAAAAAAAAAAAAAAA",
            "Aaaaaaaaaaaaaaaa",
            "9zzzzzzzzzzzzzzz",
            "a000000000000000",
            "AAAAAAAAAAAAAAAA",
        ]
        recs = [record(i) for i in ids]
        store.write(insert=recs[:4])
        store.write(insert=recs[4:])
        listed = store.list(now=NOW)
        assert [r.id for r in listed] == sorted(ids)
        assert listed == sorted(recs, key=lambda r: r.id)

    def test_list_pages_with_after_and_limit(self, store: KeyStore) -> None:
        recs = [record() for _ in range(7)]
        store.write(insert=recs)
        expected = sorted(r.id for r in recs)
        assert every_id(store) == expected
        assert [r.id for r in store.list(now=NOW, limit=3)] == expected[:3]
        assert [r.id for r in store.list(now=NOW, limit=3, after=expected[2])] == expected[3:6]
        assert [r.id for r in store.list(now=NOW, limit=100, after=expected[5])] == expected[6:]
        assert store.list(now=NOW, after=expected[-1]) == []
        assert [r.id for r in store.list(now=NOW, limit=1, after="")] == expected[:1]
        assert store.list(now=NOW, limit=1, after=expected[2] + "0")[0].id == expected[3]

    def test_list_by_owner_is_exact(self, store: KeyStore) -> None:
        owners = ["team", "Team", "TEAM", "team ", " team", "teams", "tëam", "team-😀"]
        recs = {o: [record(owner=o), record(owner=o)] for o in owners}
        store.write(insert=[r for rs in recs.values() for r in rs])
        for owner in owners:
            listed = store.list(owner=owner, now=NOW)
            assert [r.id for r in listed] == sorted(r.id for r in recs[owner]), owner
            assert {r.key.owner for r in listed} == {owner}
        assert store.list(owner="nobody", now=NOW) == []
        assert every_id(store, owner="team") == sorted(r.id for r in recs["team"])

    def test_list_by_state_at_now(self, store: KeyStore) -> None:
        active = record(expires_at=NOW + timedelta(microseconds=1))
        forever = record()
        expired = record(expires_at=NOW)
        long_expired = record(expires_at=NOW - timedelta(days=400))
        revoked = record(revoked_at=NOW - HOUR, disabled_at=NOW - HOUR, expires_at=NOW - HOUR)
        disabled = record(disabled_at=NOW - HOUR, expires_at=NOW - HOUR)
        future_revoked = record(revoked_at=NOW + HOUR)
        recs = [active, forever, expired, long_expired, revoked, disabled, future_revoked]
        store.write(insert=recs)
        for state in KeyState:
            expected = sorted(r.id for r in recs if r.key.state(NOW) is state)
            assert [r.id for r in store.list(state=state, now=NOW)] == expected, state
            assert every_id(store, state=state) == expected, state
        assert {r.id for r in store.list(state=KeyState.ACTIVE, now=NOW)} == {active.id, forever.id}
        later = NOW + timedelta(microseconds=1)
        assert [r.id for r in store.list(state=KeyState.ACTIVE, now=later)] == [forever.id]
        offset = later.astimezone(timezone(timedelta(hours=-5)))
        assert [r.id for r in store.list(state=KeyState.ACTIVE, now=offset)] == [forever.id]

    def test_list_by_owner_and_state(self, store: KeyStore) -> None:
        mine = [record(owner="me"), record(owner="me", revoked_at=NOW)]
        theirs = [record(owner="them"), record(owner="them", revoked_at=NOW)]
        store.write(insert=mine + theirs)
        revoked = store.list(owner="me", state=KeyState.REVOKED, now=NOW)
        assert [r.id for r in revoked] == [mine[1].id]
        active = store.list(owner="them", state=KeyState.ACTIVE, now=NOW)
        assert [r.id for r in active] == [theirs[0].id]

    # --- purge and touch ------------------------------------------------------------

    def test_purge(self, store: KeyStore) -> None:
        keep, drop = record(), record()
        store.write(insert=[keep, drop])
        assert store.purge(drop.id) is True
        assert store.get(drop.id) is None
        assert store.purge(drop.id) is False
        assert store.purge(key_id()) is False
        assert store.get(keep.id) == keep
        store.write(insert=[drop])
        assert store.get(drop.id) == drop

    def test_touch_records_use_without_a_version_bump(self, store: KeyStore) -> None:
        if not isinstance(store, SupportsTouch):
            pytest.skip("the store has no touch capability")
        rec = record()
        store.write(insert=[rec])
        at = NOW + timedelta(minutes=5, microseconds=42)
        store.touch(rec.id, at=at, ip="192.0.2.7")
        got = store.get(rec.id)
        assert got is not None
        assert (got.key.last_used_at, got.key.last_used_ip) == (at, "192.0.2.7")
        assert got.version == rec.version
        store.touch(rec.id, at=at + HOUR, ip=None)
        got = store.get(rec.id)
        assert got is not None
        assert (got.key.last_used_at, got.key.last_used_ip) == (at + HOUR, None)
        store.write(update=[bumped(got, name="still writable")])
        store.touch(key_id(), at=at, ip=None)  # a missing key is ignored
        assert store.list(now=NOW) == [store.get(rec.id)]

    def test_close_after_use(self, store: KeyStore) -> None:
        store.write(insert=[record()])
        store.close()

    # --- through the manager --------------------------------------------------------

    def test_lifecycle_through_the_manager(self, store: KeyStore) -> None:
        clock = ManualClock(NOW)
        keys = KeyManager(store, prefix="acme", hasher=test_hasher(), clock=clock)
        issued = keys.create(owner="team-1", scopes=["orders:read"], expires_in=timedelta(days=1))
        assert keys.verify(issued.plaintext, scopes=["orders:read"]).id == issued.key.id
        successor = keys.rotate(issued.key.id, grace=HOUR)
        assert keys.verify(issued.plaintext).replaced_by == successor.key.id
        assert keys.verify(successor.plaintext).replaces == issued.key.id
        clock.advance(HOUR)
        with pytest.raises(AuthenticationError) as info:
            keys.verify(issued.plaintext)
        assert info.value.code == "expired"
        keys.revoke(successor.key.id, reason="leaked")
        with pytest.raises(AuthenticationError) as info:
            keys.verify(successor.plaintext)
        assert info.value.code == "revoked"
        assert [k.id for k in keys.list(owner="team-1", state="revoked")] == [successor.key.id]
        assert keys.purge(issued.key.id) is True
        assert [k.id for k in keys.list()] == [successor.key.id]
