"""The storage protocols. Third-party stores implement them without importing
or subclassing anything from apikeys (structural typing)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from apikeys._models import KeyRecord, KeyState


@runtime_checkable
class KeyStore(Protocol):
    """A synchronous key store.

    Contract, for every implementation:

    - ``get`` is one indexed read by key id; it returns ``None`` for an unknown id.
    - ``write`` is atomic: all of ``insert`` and ``update`` land, or none does.
      An inserted id that exists raises :class:`~apikeys.errors.ConflictError`.
      Each updated record carries ``version == stored version + 1``; any other
      stored version (or a missing record) raises ``ConflictError``.
    - ``list`` returns records ordered by id, after the id ``after`` (keyset
      pagination), filtered by ``owner`` and by state at ``now``, at most ``limit``.
    - ``purge`` deletes a record for good; it returns whether one existed.
    - Driver errors surface as :class:`~apikeys.errors.StorageError` (raised
      ``from`` the driver's exception), never as ``None`` or a wrong answer.
    - No plaintext secret ever reaches a store: records carry only the hash.
    """

    def get(self, key_id: str) -> KeyRecord | None: ...

    def write(
        self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()
    ) -> None: ...

    def list(
        self,
        *,
        owner: str | None = None,
        state: KeyState | None = None,
        now: datetime,
        limit: int = 100,
        after: str | None = None,
    ) -> list[KeyRecord]: ...

    def purge(self, key_id: str) -> bool: ...

    def close(self) -> None: ...


@runtime_checkable
class SupportsTouch(Protocol):
    """Optional capability: record a use without a version bump.

    ``touch`` sets ``last_used_at``/``last_used_ip`` of one key and leaves its
    ``version`` alone, so it never conflicts with a lifecycle write. A missing key
    is ignored. The manager calls it at most once per ``touch_interval`` per key.
    """

    def touch(self, key_id: str, *, at: datetime, ip: str | None) -> None: ...


@runtime_checkable
class SupportsNotify(Protocol):
    """Optional capability: announce a change inside the write's own transaction.

    For :class:`~apikeys.storage.CachedStore` with PostgreSQL invalidation. When
    ``supports_notify()`` is true, ``write`` and ``purge`` accept ``notify=``, a
    PostgreSQL channel name: the store then runs ``pg_notify(channel, payload)``
    in the same transaction as the change (payload: the changed ids, see
    ``apikeys.storage._changes``), so the announcement is delivered if and only
    if the change commits, and in commit order.
    """

    def supports_notify(self) -> bool: ...


@runtime_checkable
class AsyncKeyStore(Protocol):
    """The awaitable twin of :class:`KeyStore`: the same contract, methods with an
    ``a`` prefix (as Django's async ORM), so one class can implement both."""

    async def aget(self, key_id: str) -> KeyRecord | None: ...

    async def awrite(
        self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()
    ) -> None: ...

    async def alist(
        self,
        *,
        owner: str | None = None,
        state: KeyState | None = None,
        now: datetime,
        limit: int = 100,
        after: str | None = None,
    ) -> list[KeyRecord]: ...

    async def apurge(self, key_id: str) -> bool: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class AsyncSupportsTouch(Protocol):
    """The awaitable twin of :class:`SupportsTouch`."""

    async def atouch(self, key_id: str, *, at: datetime, ip: str | None) -> None: ...
