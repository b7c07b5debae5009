"""Test helpers for the core suites: instrumented hasher and store wrappers, a sync
facade that drives an AsyncKeyManager with the same calls as a KeyManager, and
small key-forging helpers.

The wrappers are real parts with counters (and, where a test asks, one injected
fault or a pause); they delegate every decision to the real hasher and store.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from anyio.from_thread import BlockingPortal

from apikeys import AsyncKeyManager, KeyManager
from apikeys._keyformat import ALPHABET, SECRET_LENGTH, format_key, parse
from apikeys._models import KeyRecord, KeyState
from apikeys.events import Event
from apikeys.hashing import Argon2Hasher, Hasher
from apikeys.storage import MemoryStore

# --- keys -------------------------------------------------------------------------------


def split(plaintext: str, prefixes: Sequence[str] = ("acme",)) -> tuple[str, str, str]:
    """(prefix, key id, secret) of a valid key."""
    parsed = parse(plaintext, frozenset(prefixes))
    return parsed.prefix, parsed.key_id, parsed.secret


def with_wrong_secret(plaintext: str, prefixes: Sequence[str] = ("acme",)) -> str:
    """The same prefix and key id with another random secret and a correct checksum:
    a well-formed key that names a real id but does not prove it."""
    prefix, key_id, secret = split(plaintext, prefixes)
    while True:
        other = "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
        if other != secret:
            return format_key(prefix, key_id, other)


def unknown_key(prefix: str = "acme") -> str:
    """A well-formed key (correct checksum) whose id no store holds."""
    key_id = "".join(secrets.choice(ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
    return format_key(prefix, key_id, secret)


# --- hashers ----------------------------------------------------------------------------


class CountingHasher:
    """A :class:`~apikeys.hashing.Hasher` that counts the calls it passes on.

    ``block_verify``/``block_hash``: the call signals ``entered`` and then waits for
    ``release`` (set by the test), to hold a hashing slot or a rotation mid-hash.
    """

    def __init__(self, inner: Hasher | None = None) -> None:
        self.inner: Hasher = inner if inner is not None else Argon2Hasher.for_tests()
        self.calls: Counter[str] = Counter()
        self.block_verify = False
        self.block_hash = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def __repr__(self) -> str:
        return f"CountingHasher({self.inner!r})"

    def _pause(self) -> None:
        self.entered.set()
        if not self.release.wait(timeout=20):
            raise RuntimeError("test never released the blocked hasher")

    def hash(self, secret: str) -> str:
        self.calls["hash"] += 1
        if self.block_hash:
            self._pause()
        return self.inner.hash(secret)

    def verify(self, stored_hash: str, secret: str) -> bool:
        self.calls["verify"] += 1
        if self.block_verify:
            self._pause()
        return self.inner.verify(stored_hash, secret)

    def supports(self, stored_hash: str) -> bool:
        self.calls["supports"] += 1
        return self.inner.supports(stored_hash)

    def needs_rehash(self, stored_hash: str) -> bool:
        self.calls["needs_rehash"] += 1
        return self.inner.needs_rehash(stored_hash)


# --- stores -----------------------------------------------------------------------------


class RecordingStore:
    """Wraps a :class:`MemoryStore`, implementing both store protocols and touch.

    ``calls`` counts reads and writes (sync and async alike). ``before_write`` holds
    one-shot callables run (and removed) before the next writes reach the store: a
    test uses them to make another "process" change the record in between, so the
    write meets a real version conflict.
    """

    def __init__(self, inner: MemoryStore | None = None) -> None:
        self.inner = inner if inner is not None else MemoryStore()
        self.calls: Counter[str] = Counter()
        self.before_write: builtins.list[Callable[[], None]] = []
        self.fail_get: Exception | None = None
        self.fail_touch: Exception | None = None
        self.writes: builtins.list[tuple[tuple[KeyRecord, ...], tuple[KeyRecord, ...]]] = []

    def __repr__(self) -> str:
        return f"RecordingStore({self.inner!r})"

    def get(self, key_id: str) -> KeyRecord | None:
        self.calls["get"] += 1
        if self.fail_get is not None:
            raise self.fail_get
        return self.inner.get(key_id)

    def write(self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()) -> None:
        self.calls["write"] += 1
        if self.before_write:
            self.before_write.pop(0)()
        self.inner.write(insert=insert, update=update)
        self.writes.append((tuple(insert), tuple(update)))

    def list(
        self,
        *,
        owner: str | None = None,
        state: KeyState | None = None,
        now: datetime,
        limit: int = 100,
        after: str | None = None,
    ) -> builtins.list[KeyRecord]:
        self.calls["list"] += 1
        return self.inner.list(owner=owner, state=state, now=now, limit=limit, after=after)

    def purge(self, key_id: str) -> bool:
        self.calls["purge"] += 1
        return self.inner.purge(key_id)

    def touch(self, key_id: str, *, at: datetime, ip: str | None) -> None:
        self.calls["touch"] += 1
        if self.fail_touch is not None:
            raise self.fail_touch
        self.inner.touch(key_id, at=at, ip=ip)

    def close(self) -> None:
        self.calls["close"] += 1

    async def aget(self, key_id: str) -> KeyRecord | None:
        return self.get(key_id)

    async def awrite(
        self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()
    ) -> None:
        self.write(insert=insert, update=update)

    async def alist(
        self,
        *,
        owner: str | None = None,
        state: KeyState | None = None,
        now: datetime,
        limit: int = 100,
        after: str | None = None,
    ) -> builtins.list[KeyRecord]:
        return self.list(owner=owner, state=state, now=now, limit=limit, after=after)

    async def apurge(self, key_id: str) -> bool:
        return self.purge(key_id)

    async def atouch(self, key_id: str, *, at: datetime, ip: str | None) -> None:
        self.touch(key_id, at=at, ip=ip)

    async def aclose(self) -> None:
        self.close()


# --- events -----------------------------------------------------------------------------


class ListSink:
    """An event sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    @property
    def types(self) -> list[str]:
        return [event.type for event in self.events]


# --- one body, two managers -------------------------------------------------------------


class SyncFacade:
    """Drives an :class:`AsyncKeyManager` with blocking calls: each coroutine method
    runs to completion on the portal's event loop; plain methods pass through.

    So one test body exercises both managers, and the async one for real (its
    awaits, worker threads and slot polling all run on a live loop).
    """

    def __init__(self, manager: AsyncKeyManager, portal: BlockingPortal) -> None:
        self.manager = manager
        self._portal = portal

    def __repr__(self) -> str:
        return f"SyncFacade({self.manager!r})"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.manager, name)
        if inspect.iscoroutinefunction(attr):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self._portal.call(functools.partial(attr, *args, **kwargs))

            return call
        return attr

    def close(self) -> None:
        self._portal.call(self.manager.aclose)


AnyManager = KeyManager | SyncFacade
