"""KeyManager: the synchronous shell around the policy core and a store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from apikeys import _keyformat, _policy
from apikeys._base import Clock, ManagerBase
from apikeys._hooks import RateLimiter, Verification
from apikeys._issuance import LIVE_STATES, IssuancePolicy
from apikeys._models import APIKey, IssuedKey, KeyRecord, KeyState
from apikeys._policy import UNSET
from apikeys.errors import (
    ConfigurationError,
    ConflictError,
    RateLimited,
    StorageError,
)
from apikeys.events import (
    EventSink,
    KeyCreated,
    KeyEnabled,
    KeyPurged,
    KeyRevoked,
    KeyRotated,
    KeySuspended,
    KeyUpdated,
)
from apikeys.hashing import Hasher
from apikeys.storage._protocol import KeyStore, SupportsTouch

logger = logging.getLogger("apikeys")


class KeyManager(ManagerBase):
    """Issues, verifies, authorizes, rotates and revokes API keys (synchronous).

    Args:
        store: Where records live (any :class:`~apikeys.storage.KeyStore`).
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
        issuance: Rules every issued key must satisfy: a required expiry, a maximum
            lifetime, a cap on live keys per owner (see
            :class:`~apikeys.monitoring.IssuancePolicy`).

    Raises:
        ConfigurationError: an invalid prefix or setting.
    """

    def __init__(
        self,
        store: KeyStore,
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
        rate_limiter: RateLimiter | None = None,
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
        if not isinstance(store, KeyStore):
            raise ConfigurationError(f"{store!r} does not implement apikeys.storage.KeyStore")
        if rate_limiter is not None and not isinstance(rate_limiter, RateLimiter):
            raise ConfigurationError(f"{rate_limiter!r} does not implement RateLimiter")
        self.store = store
        self.rate_limiter = rate_limiter
        self._toucher = store if isinstance(store, SupportsTouch) else None

    def __repr__(self) -> str:
        return f"KeyManager(store={self.store!r}, prefix={self.prefix!r})"

    # --- verification ------------------------------------------------------------------

    def verify(self, raw: str, *, scopes: Iterable[str] = (), ip: str | None = None) -> APIKey:
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
        return self.authenticate(raw, scopes=scopes, ip=ip).key

    def authenticate(
        self, raw: str, *, scopes: Iterable[str] = (), ip: str | None = None
    ) -> Verification:
        """Like :meth:`verify`, but also return the rate-limit status (for headers).

        Raises:
            The same errors as :meth:`verify`.
        """
        required, parsed = self._parse(raw, ip, scopes)
        record = self.store.get(parsed.key_id)
        record, digest, cold = self._precheck(parsed, record, ip, required)
        if cold:
            if not self._slots.try_acquire():
                self._busy(record.id, ip, required)
            ok = self._slow_verify(record, parsed.secret)
            self._after_slow(record, digest, ok, ip, required)
            record = self._save_rehash(record, parsed.secret)
        key = record.key
        now = self.now()
        self._authorize_proven(key, now, ip, required)
        status = None
        if self.rate_limiter is not None:
            try:
                status = self.rate_limiter.hit(key, now=now)
            except RateLimited as exc:
                self._limited(exc, key, ip, required)
        if self._toucher is not None and self._should_touch(key, now):
            self._touch(self._toucher, key.id, now, ip)
        self._verified(key, now, ip, required)
        return Verification(key, status)

    def _save_rehash(self, record: KeyRecord, secret: str) -> KeyRecord:
        fresh = self._rehashed(record, secret)
        if fresh is None:
            return record
        try:
            self.store.write(update=[fresh])
        except StorageError as exc:
            logger.warning("apikeys: could not save the re-hash of key %s: %s", record.id, exc.code)
            return record
        self._cache.forget(record.id)
        return fresh

    def _touch(self, toucher: SupportsTouch, key_id: str, now: datetime, ip: str | None) -> None:
        try:
            toucher.touch(key_id, at=now, ip=ip)
        except StorageError as exc:
            logger.warning("apikeys: could not record the use of key %s: %s", key_id, exc.code)

    # --- lifecycle ---------------------------------------------------------------------

    def create(
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
            InvalidArgument: a bad scope, address, expiry, limit or metadata, or
                the key breaks the manager's issuance policy.
            StorageError: the store failed; no key was issued.
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
                found = self.store.list(owner=key.owner, state=state, now=key.created_at, limit=cap)
                live += len(found)
            self._check_live_keys(key.owner, live)
        self.store.write(insert=[KeyRecord(key, self.hasher.hash(parts.secret))])
        self._emit(
            KeyCreated(
                at=key.created_at,
                key_id=key.id,
                owner=key.owner,
                scopes=key.scopes,
                expires_at=key.expires_at,
            )
        )
        return IssuedKey(key, plaintext)

    def get(self, key_id: str) -> APIKey:
        """The record of ``key_id``.

        Raises:
            KeyNotFound: no such key.
            StorageError: the store failed.
        """
        return self._require(self.store.get(key_id), key_id).key

    def list(
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
            InvalidArgument: an unknown state or a limit outside 1-10000.
            StorageError: the store failed.
        """
        records = self.store.list(
            owner=owner,
            state=self._state_filter(state),
            now=self.now(),
            limit=self._check_limit(limit),
            after=after,
        )
        return [record.key for record in records]

    def update(
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

        ``expires_at=None`` removes the expiry; ``name=None`` clears the name.

        Raises:
            KeyNotFound: no such key.
            InvalidKeyState: the key is revoked.
            InvalidArgument: an invalid value.
            StorageError: the store failed (``ConflictError`` after one retry).
        """
        changes = {
            "scopes": scopes,
            "name": name,
            "metadata": metadata,
            "allowed_ips": allowed_ips,
            "expires_at": expires_at,
            "rate_limits": rate_limits,
            "quota": quota,
        }

        def plan(key: APIKey) -> APIKey | None:
            return _policy.plan_update(key, self.now(), changes)

        before, after = self._mutate(key_id, plan)
        if after is not before:
            fields = tuple(
                name for name in changes if getattr(before, name) != getattr(after, name)
            )
            self._emit(KeyUpdated(at=self.now(), key_id=key_id, owner=after.owner, fields=fields))
        return after

    def revoke(self, key_id: str, *, reason: str | None = None) -> APIKey:
        """Revoke a key at once, for every process sharing the store. Final.

        Revoking a revoked key changes nothing (the first reason is kept).

        Raises:
            KeyNotFound: no such key.
            StorageError: the store failed; the key is *not* revoked.
        """
        before, after = self._mutate(
            key_id, lambda key: _policy.plan_revoke(key, self.now(), reason)
        )
        if after is not before:
            self._cache.forget(key_id)
            self._emit(
                KeyRevoked(
                    at=after.revoked_at or self.now(),
                    key_id=key_id,
                    owner=after.owner,
                    reason=after.revoke_reason,
                )
            )
        return after

    def suspend(self, key_id: str, *, reason: str | None = None) -> APIKey:
        """Suspend a key (reversible with :meth:`enable`); it fails as ``disabled``.

        Raises:
            KeyNotFound: no such key.
            InvalidKeyState: the key is revoked.
            StorageError: the store failed.
        """
        before, after = self._mutate(
            key_id, lambda key: _policy.plan_suspend(key, self.now(), reason)
        )
        if after is not before:
            self._emit(
                KeySuspended(
                    at=self.now(), key_id=key_id, owner=after.owner, reason=after.disabled_reason
                )
            )
        return after

    def enable(self, key_id: str) -> APIKey:
        """Lift a suspension.

        Raises:
            KeyNotFound: no such key.
            InvalidKeyState: the key is revoked.
            StorageError: the store failed.
        """
        before, after = self._mutate(key_id, _policy.plan_enable)
        if after is not before:
            self._emit(KeyEnabled(at=self.now(), key_id=key_id, owner=after.owner))
        return after

    def rotate(
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
            InvalidArgument: the successor would break the issuance policy.
            StorageError: the store failed; nothing was written.
        """
        for attempt in range(2):
            old = self._require(self.store.get(key_id), key_id)
            parts, plaintext = _keyformat.generate(old.key.prefix)
            now = self.now()
            ended, successor = _policy.plan_rotation(
                old.key, successor_id=parts.key_id, now=now, grace=grace, expires_in=expires_in
            )
            self._check_issuance(now, successor.expires_at)
            new_record = KeyRecord(successor, self.hasher.hash(parts.secret))
            try:
                self.store.write(insert=[new_record], update=[KeyRecord(ended, old.secret_hash)])
            except ConflictError:
                if attempt:
                    raise
                continue
            break
        self._emit(
            KeyCreated(
                at=now,
                key_id=successor.id,
                owner=successor.owner,
                scopes=successor.scopes,
                expires_at=successor.expires_at,
                replaces=old.id,
            )
        )
        self._emit(
            KeyRotated(
                at=now,
                key_id=old.id,
                owner=old.key.owner,
                successor_id=successor.id,
                ends_at=ended.expires_at or now,
            )
        )
        return IssuedKey(successor, plaintext)

    def purge(self, key_id: str) -> bool:
        """Delete a key's record for good (the audit trail loses it too).

        Returns:
            Whether a record existed.

        Raises:
            StorageError: the store failed.
        """
        record = self.store.get(key_id)
        existed = self.store.purge(key_id)
        self._cache.forget(key_id)
        if existed:
            self._emit(
                KeyPurged(at=self.now(), key_id=key_id, owner=record.key.owner if record else None)
            )
        return existed

    def close(self) -> None:
        """Close the store (and, on a wired manager, its monitor and limiter)."""
        self._close_owned()
        self.store.close()

    def __enter__(self) -> KeyManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _mutate(
        self, key_id: str, plan: Callable[[APIKey], APIKey | None]
    ) -> tuple[APIKey, APIKey]:
        """Read, plan, write with a version check; retry once on a conflict.

        Returns:
            The record before and after (the same object when nothing changed).
        """
        for attempt in range(2):
            record = self._require(self.store.get(key_id), key_id)
            changed = plan(record.key)
            if changed is None:
                return record.key, record.key
            try:
                self.store.write(update=[KeyRecord(changed, record.secret_hash)])
            except ConflictError:
                if attempt:
                    raise
                continue
            return record.key, changed
        raise AssertionError("unreachable")  # pragma: no cover
