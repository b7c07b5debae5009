"""AsyncKeyManager: the asyncio shell around the policy core and an async store.

It holds no decision of its own: every check, plan and event comes from the base
and the policy module. Slow hashes run in worker threads (capped by
``max_concurrent_hashes``), so the event loop stays free.

This is the hand-kept source of both managers: ``tools/unasync.py`` writes
``_manager.py`` (KeyManager) from it, and ``nox -s generate -- --check`` fails when
that file is stale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from apikeys import _keyformat, _policy
from apikeys._base import Clock, ManagerBase, arun_blocking
from apikeys._hooks import AsyncRateLimiter
from apikeys._issuance import LIVE_STATES, IssuancePolicy
from apikeys._models import APIKey, IssuedKey, KeyRecord, KeyState, Verification
from apikeys._policy import UNSET
from apikeys.errors import ConfigurationError, ConflictError, RateLimited, StorageError
from apikeys.events import EventSink
from apikeys.hashing import Hasher
from apikeys.storage._protocol import AsyncKeyStore, AsyncSupportsTouch

logger = logging.getLogger("apikeys")


class AsyncKeyManager(ManagerBase):
    """Issues, verifies, authorizes, rotates and revokes API keys (asyncio).

    ``authorize``, ``is_authorized`` and ``record_request`` do no I/O and are plain
    calls; every other call is awaitable.

    Args:
        store: Where records live (any :class:`~apikeys.storage.AsyncKeyStore`).
        prefix: The prefix new keys get, or a list of accepted prefixes (new keys
            get the first), e.g. ``["acme_live", "acme"]``.
        hasher: How secrets are hashed; :class:`~apikeys.hashing.Argon2Hasher` by default.
        clock: Returns the current time as an aware datetime (inject one in tests).
        cache_size: Verified secrets remembered per process for the fast path (0: none).
        max_concurrent_hashes: Slow-hash computations at once (default: CPU count, ≥ 2).
        hash_wait: Seconds a verification waits for a hashing slot before
            :class:`~apikeys.errors.ServiceBusy`.
        failure_limit: Failed secrets per key id per ``failure_window`` before cold
            checks of that id pause (0: never). Warm holders are not affected.
        failure_window: The window of ``failure_limit``.
        touch_interval: How often at most ``last_used_at``/``last_used_ip`` are
            written per key (``None``: never). Needs a store with ``touch``.
        events: Event sinks (see :mod:`apikeys.events`).
        rate_limiter: Charges each verified request (see :mod:`apikeys.ratelimit`).
            Without one, a key's own ``rate_limits`` and ``quota`` are still
            enforced, with counters in this process; keys without limits pay nothing.
        issuance: Rules every issued key must satisfy: a required expiry, a maximum
            lifetime, a cap on live keys per owner (see :class:`~apikeys.IssuancePolicy`).

    Raises:
        ConfigurationError: an invalid prefix or setting.
    """

    def __init__(
        self,
        store: AsyncKeyStore,
        *,
        prefix: str | Sequence[str],
        hasher: Hasher | None = None,
        clock: Clock | None = None,
        cache_size: int = 10_000,
        max_concurrent_hashes: int | None = None,
        hash_wait: float = 0.1,
        failure_limit: int = 10,
        failure_window: timedelta = timedelta(minutes=1),
        touch_interval: timedelta | None = timedelta(minutes=1),
        events: EventSink | Sequence[EventSink] | None = None,
        rate_limiter: AsyncRateLimiter | None = None,
        issuance: IssuancePolicy | None = None,
    ) -> None:
        super().__init__(
            prefix=prefix,
            hasher=hasher,
            clock=clock,
            cache_size=cache_size,
            max_concurrent_hashes=max_concurrent_hashes,
            hash_wait=hash_wait,
            failure_limit=failure_limit,
            failure_window=failure_window,
            touch_interval=touch_interval,
            events=events,
            issuance=issuance,
        )
        if not isinstance(store, AsyncKeyStore):
            raise ConfigurationError(f"{store!r} does not implement apikeys.storage.AsyncKeyStore")
        if rate_limiter is not None and not isinstance(rate_limiter, AsyncRateLimiter):
            raise ConfigurationError(f"{rate_limiter!r} does not implement AsyncRateLimiter")
        self.store = store
        self.rate_limiter = rate_limiter
        self._toucher = store if isinstance(store, AsyncSupportsTouch) else None

    def __repr__(self) -> str:
        return f"AsyncKeyManager(store={self.store!r}, prefix={self.prefix!r})"

    # --- verification ------------------------------------------------------------------

    async def verify(
        self, raw: str, *, scopes: Iterable[str] = (), ip: str | None = None
    ) -> APIKey:
        """Verify a presented key and authorize it; return its record or raise.

        Checks, in order: format and checksum → record → secret → state (revoked,
        suspended, expired) → client address → scopes → rate limit. Nothing about
        the key's state is revealed before its secret is proven.

        Args:
            raw: The key as presented by the client.
            scopes: Scopes the caller needs; every one must be granted.
            ip: The client address, required for keys with an allowlist.

        Returns:
            The key's record.

        Raises:
            AuthenticationError: 401; ``code`` says why.
            InsufficientScope: a required scope is not granted.
            IPNotAllowed: ``ip`` is outside the key's allowlist (or missing).
            RateLimited: a rate limit or quota refused the request, or too many
                failed secrets for this key id (``TooManyFailures``).
            ServiceBusy: every hashing slot stayed busy for ``hash_wait``.
            StorageError: the store failed: fail closed.
            InvalidArgument: a required scope is not a valid concrete scope.
        """
        return (await self.authenticate(raw, scopes=scopes, ip=ip)).key

    async def authenticate(
        self, raw: str, *, scopes: Iterable[str] = (), ip: str | None = None
    ) -> Verification:
        """Like :meth:`verify`, but also return the rate-limit status (for headers).

        It raises the same errors as :meth:`verify`.
        """
        required, parsed = self._parse(raw, ip, scopes)
        record = await self.store.aget(parsed.key_id)
        record, digest, cold = self._precheck(parsed, record, ip, required)
        if cold:
            if not await self._aacquire_slot():
                self._busy(record.id, ip, required)
            ok = await arun_blocking(self._slow_verify, record, parsed.secret)
            self._after_slow(record, digest, ok, ip, required)
            record = await self._save_rehash(record, parsed.secret)
        key = record.key
        now = self.now()
        self._authorize_proven(key, now, ip, required)
        status = None
        limiter = self.rate_limiter
        if limiter is None and (key.rate_limits or key.quota is not None):
            limiter = self._default_limiter()
        if limiter is not None:
            try:
                status = await limiter.ahit(key, now=now)
            except RateLimited as exc:
                self._limited(exc, key, ip, required)
        if self._toucher is not None and self._should_touch(key, now):
            await self._touch(self._toucher, key.id, now, ip)
        self._verified(key, now, ip, required)
        return Verification(key, status)

    async def _save_rehash(self, record: KeyRecord, secret: str) -> KeyRecord:
        if not self.hasher.needs_rehash(record.secret_hash):
            return record  # the common case: no hop to a worker thread
        fresh = await arun_blocking(self._rehashed, record, secret)
        if fresh is None:
            return record
        try:
            await self.store.awrite(update=[fresh])
        except StorageError as exc:
            logger.warning("apikeys: could not save the re-hash of key %s: %s", record.id, exc.code)
            return record
        return self._rehash_saved(fresh)

    async def _touch(
        self, toucher: AsyncSupportsTouch, key_id: str, now: datetime, ip: str | None
    ) -> None:
        try:
            await toucher.atouch(key_id, at=now, ip=ip)
        except StorageError as exc:
            logger.warning("apikeys: could not record the use of key %s: %s", key_id, exc.code)

    # --- lifecycle ---------------------------------------------------------------------

    async def create(
        self,
        *,
        owner: str,
        scopes: Iterable[str] = (),
        name: str | None = None,
        expires_in: timedelta | None = None,
        expires_at: datetime | None = None,
        allowed_ips: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
        rate_limits: Iterable[str] = (),
        quota: str | int | None = None,
        prefix: str | None = None,
    ) -> IssuedKey:
        """Issue a new key. Its plaintext is in the result, and nowhere else, ever.

        Args:
            owner: Who the key belongs to.
            scopes: Granted scopes (``orders:read``, ``orders:*``, ``*``).
            name: A human label.
            expires_in: Lifetime from now (or give ``expires_at``).
            expires_at: Absolute expiry (aware datetime).
            allowed_ips: Addresses/CIDR networks the key may be used from.
            metadata: JSON-serialisable data of the application's.
            rate_limits: Per-key limits such as ``"100/minute"``.
            quota: Uses allowed, optionally refilled: ``"1000"``, ``"1000/month"``.
            prefix: One of the manager's prefixes (default: the first).

        Returns:
            The record and the plaintext key.

        Raises:
            InvalidArgument: a bad owner, name, scope, address, expiry, limit or
                metadata, or the key breaks the manager's issuance policy.
            StorageError: the store failed. If the write may have landed all the
                same, ``error.issued`` holds the key (see
                :attr:`~apikeys.errors.StorageError.issued`); otherwise nothing
                was issued.
        """
        key, parts, plaintext = self._issue(
            owner=owner,
            scopes=scopes,
            name=name,
            expires_in=expires_in,
            expires_at=expires_at,
            allowed_ips=allowed_ips,
            metadata=metadata,
            rate_limits=rate_limits,
            quota=quota,
            prefix=prefix,
        )
        cap = self._live_key_cap()
        if cap is not None:
            live = 0
            for state in LIVE_STATES:
                found = await self.store.alist(
                    owner=key.owner, state=state, now=key.created_at, limit=cap
                )
                live += len(found)
            self._check_live_keys(key.owner, live)
        secret_hash = await arun_blocking(self.hasher.hash, parts.secret)
        await self._insert(key, plaintext, insert=[KeyRecord(key, secret_hash)])
        self._created(key)
        return IssuedKey(key, plaintext)

    async def get(self, key_id: str) -> APIKey:
        """The record of ``key_id``.

        Raises:
            KeyNotFound: no such key.
            InvalidArgument: ``key_id`` is not printable text of at most 256 characters.
            StorageError: the store failed.
        """
        key_id = self._key_id(key_id)
        return self._require(await self.store.aget(key_id), key_id).key

    async def list(
        self,
        *,
        owner: str | None = None,
        state: KeyState | str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[APIKey]:
        """Records ordered by id, optionally of one ``owner`` and in one ``state`` now.

        Page with ``after=<last id of the previous page>``.

        Raises:
            InvalidArgument: an unknown state, a limit outside 1-10000, or an
                ``owner``/``after`` that is not printable text.
            StorageError: the store failed.
        """
        query = self._list_query(owner, state, limit, after)
        return [record.key for record in await self.store.alist(**query)]

    async def update(
        self,
        key_id: str,
        *,
        scopes: Iterable[str] = UNSET,
        name: str | None = UNSET,
        metadata: Mapping[str, Any] | None = UNSET,
        allowed_ips: Iterable[str] = UNSET,
        expires_at: datetime | None = UNSET,
        rate_limits: Iterable[str] = UNSET,
        quota: str | int | None = UNSET,
    ) -> APIKey:
        """Change a key's settings; arguments not given stay as they are.

        ``expires_at=None`` removes the expiry; ``name=None`` clears the name. A
        rotated-out key's expiry can only be brought forward.

        Raises:
            KeyNotFound: no such key.
            InvalidKeyState: the key is revoked, or rotated out and the change would
                remove or push back its expiry.
            InvalidArgument: an invalid value.
            StorageError: the store failed (``ConflictError`` after one retry).
        """
        key_id = self._key_id(key_id)
        changes = {
            "scopes": scopes,
            "name": name,
            "metadata": metadata,
            "allowed_ips": allowed_ips,
            "expires_at": expires_at,
            "rate_limits": rate_limits,
            "quota": quota,
        }
        self._check_label(name, "name")

        def plan(key: APIKey) -> APIKey | None:
            return _policy.plan_update(key, self.now(), changes)

        before, after = await self._mutate(key_id, plan)
        self._updated(before, after, changes)
        return after

    async def revoke(self, key_id: str, *, reason: str | None = None) -> APIKey:
        """Revoke a key at once, for every process sharing the store. Final.

        Revoking a revoked key changes nothing (the first reason is kept). Every key
        this one replaced that is still in its rotation grace period stops working
        too (its expiry becomes now), in the same write.

        Raises:
            KeyNotFound: no such key.
            InvalidArgument: ``key_id`` or ``reason`` is not printable text.
            StorageError: the store failed; the key is *not* revoked.
        """
        key_id = self._key_id(key_id)
        self._check_label(reason, "reason")
        for attempt in range(2):
            record = self._require(await self.store.aget(key_id), key_id)
            revoked = _policy.plan_revoke(record.key, self.now(), reason)
            if revoked is None:
                return record.key
            ended = await self._graces_to_end(record.key)
            try:
                await self.store.awrite(update=[KeyRecord(revoked, record.secret_hash), *ended])
            except ConflictError:
                if attempt:
                    raise
                continue
            self._revoked(record.key, revoked, [r.key for r in ended])
            return revoked
        raise AssertionError("unreachable")  # pragma: no cover

    async def suspend(self, key_id: str, *, reason: str | None = None) -> APIKey:
        """Suspend a key (reversible with :meth:`enable`); it fails as ``disabled``.

        Raises:
            KeyNotFound: no such key.
            InvalidKeyState: the key is revoked.
            InvalidArgument: ``key_id`` or ``reason`` is not printable text.
            StorageError: the store failed.
        """
        key_id = self._key_id(key_id)
        self._check_label(reason, "reason")
        before, after = await self._mutate(
            key_id, lambda key: _policy.plan_suspend(key, self.now(), reason)
        )
        self._suspended(before, after)
        return after

    async def enable(self, key_id: str) -> APIKey:
        """Lift a suspension.

        Raises:
            KeyNotFound: no such key.
            InvalidKeyState: the key is revoked.
            InvalidArgument: ``key_id`` is not printable text.
            StorageError: the store failed.
        """
        before, after = await self._mutate(self._key_id(key_id), _policy.plan_enable)
        self._enabled(before, after)
        return after

    async def rotate(
        self,
        key_id: str,
        *,
        grace: timedelta = timedelta(0),
        expires_in: timedelta | None = None,
    ) -> IssuedKey:
        """Issue a successor with the same owner, scopes and settings; the old key
        keeps working until ``min(its expiry, now + grace)``.

        Both records are written in one atomic store write, or neither is.

        Args:
            key_id: The key to replace.
            grace: How long the old key keeps working (0: stops at once).
            expires_in: The successor's lifetime (default: the old key's lifetime).

        Returns:
            The successor and its plaintext.

        Raises:
            KeyNotFound: no such key.
            InvalidKeyState: the key is not active, or was already rotated.
            InvalidArgument: the successor would break the issuance policy, or
                ``key_id`` is not printable text.
            StorageError: the store failed. If the write may have landed all the
                same, ``error.issued`` holds the successor (see
                :attr:`~apikeys.errors.StorageError.issued`); otherwise nothing
                was written.
        """
        key_id = self._key_id(key_id)
        for attempt in range(2):
            old = self._require(await self.store.aget(key_id), key_id)
            parts, plaintext = _keyformat.generate(old.key.prefix)
            now = self.now()
            ended, successor = _policy.plan_rotation(
                old.key, successor_id=parts.key_id, now=now, grace=grace, expires_in=expires_in
            )
            self._check_issuance(now, successor.expires_at)
            secret_hash = await arun_blocking(self.hasher.hash, parts.secret)
            try:
                await self._insert(
                    successor,
                    plaintext,
                    insert=[KeyRecord(successor, secret_hash)],
                    update=[KeyRecord(ended, old.secret_hash)],
                )
            except ConflictError:
                if attempt:
                    raise
                continue
            self._rotated(ended, successor)
            return IssuedKey(successor, plaintext)
        raise AssertionError("unreachable")  # pragma: no cover

    async def purge(self, key_id: str) -> bool:
        """Delete a key's record for good (audit entries about it are kept).

        Returns:
            Whether a record existed.

        Raises:
            InvalidArgument: ``key_id`` is not printable text.
            StorageError: the store failed.
        """
        if not self._may_exist(key_id):
            return False
        record = await self.store.aget(key_id)
        existed = await self.store.apurge(key_id)
        self._purged(key_id, record, existed)
        return existed

    async def aclose(self) -> None:
        """Close the store (and, on a wired manager, its monitor and limiter)."""
        await self._aclose_owned()
        await self.store.aclose()

    async def __aenter__(self) -> AsyncKeyManager:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _insert(
        self,
        key: APIKey,
        plaintext: str,
        *,
        insert: Sequence[KeyRecord],
        update: Sequence[KeyRecord] = (),
    ) -> None:
        """Write a new key; when the write fails, find out whether it landed.

        Raises:
            ConflictError: the write was refused (nothing landed).
            StorageError: nothing landed, or the store cannot tell: then the error
                carries the key in ``issued``.
        """
        try:
            await self.store.awrite(insert=insert, update=update)
        except ConflictError:
            raise
        except StorageError as error:
            try:
                landed = await self.store.aget(key.id) is not None
            except StorageError:
                raise self._pending(error, key, plaintext)  # noqa: B904  # keep its own cause
            if not landed:
                raise
            logger.warning("apikeys: the write of key %s landed despite an error", key.id)

    async def _graces_to_end(self, key: APIKey) -> tuple[KeyRecord, ...]:
        """The keys ``key`` replaced, directly or not, that are still in their grace
        period, each ending now."""
        now = self.now()
        ended: tuple[KeyRecord, ...] = ()
        successor, predecessor = key.id, key.replaces
        for _ in range(_policy.MAX_LINEAGE):
            if predecessor is None:
                break
            record = await self.store.aget(predecessor)
            if record is None:
                break
            end = _policy.plan_end_grace(record.key, successor, now)
            if end is not None:
                ended += (KeyRecord(end, record.secret_hash),)
            successor, predecessor = predecessor, record.key.replaces
        return ended

    async def _mutate(
        self, key_id: str, plan: Callable[[APIKey], APIKey | None]
    ) -> tuple[APIKey, APIKey]:
        """Read, plan, write with a version check; retry once on a conflict.

        Returns:
            The record before and after (the same object when nothing changed).
        """
        for attempt in range(2):
            record = self._require(await self.store.aget(key_id), key_id)
            changed = plan(record.key)
            if changed is None:
                return record.key, record.key
            try:
                await self.store.awrite(update=[KeyRecord(changed, record.secret_hash)])
            except ConflictError:
                if attempt:
                    raise
                continue
            return record.key, changed
        raise AssertionError("unreachable")  # pragma: no cover
