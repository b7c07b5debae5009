"""What :class:`KeyManager` and :class:`AsyncKeyManager` share: configuration and
every step of their calls that does no I/O. The two shells only add the store,
hasher and limiter calls, one blocking, one awaitable."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

from typing_extensions import Self

from apikeys import _keyformat, _policy
from apikeys._hotpath import FailureThrottle, HashSlots, VerifiedCache
from apikeys._issuance import IssuancePolicy
from apikeys._keyformat import ParsedKey
from apikeys._logsafe import log_safe
from apikeys._models import APIKey, IssuedKey, KeyRecord, KeyState
from apikeys.errors import (
    APIKeyError,
    AuthenticationError,
    ConfigurationError,
    InsufficientScope,
    InvalidArgument,
    KeyNotFound,
    RateLimited,
    ServiceBusy,
    StorageError,
    TooManyFailures,
)
from apikeys.events import (
    Event,
    EventSink,
    KeyCreated,
    KeyEnabled,
    KeyExposed,
    KeyPurged,
    KeyRevoked,
    KeyRotated,
    KeySuspended,
    KeyUpdated,
    KeyVerified,
    RateLimitExceeded,
    RequestCompleted,
    VerificationFailed,
)
from apikeys.hashing import Argon2Hasher, Hasher

if TYPE_CHECKING:
    from apikeys._settings import Settings
    from apikeys.ratelimit import KeyRateLimiter

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("apikeys")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: the current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def run_blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work in the calling thread (the sync twins' spelling of
    :func:`arun_blocking`, which ``tools/unasync.py`` writes in its place)."""
    return fn(*args, **kwargs)


async def arun_blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work (a hash, a SQLite query) in a worker thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def _takes(sink: EventSink, event_type: str) -> bool:
    wanted = getattr(sink, "event_types", None)
    return wanted is None or event_type in wanted


class ManagerBase:
    """Configuration and the pure steps of every manager call."""

    monitor: Any = None
    """The :class:`~apikeys.monitoring.Monitor` (or ``AsyncMonitor``) a wired manager
    (:meth:`from_url`, :meth:`from_settings`) records usage and the audit trail
    with; ``None`` for a bare manager or with ``monitoring=False``."""
    _owned: tuple[Any, ...] = ()

    @classmethod
    def from_url(cls, url: str, *, prefix: str | Sequence[str], **options: Any) -> Self:
        """A manager on the store ``url`` names, wired: by default a monitor whose
        usage counts and audit trail live in the same database, and a rate limiter
        (in-process counters, Redis with ``redis_url``) enforcing per-key limits
        and quotas. Closing the manager closes all of them (the monitor flushes).

        Args:
            url: The store (see :func:`~apikeys.storage.store_from_url`;
                ``memory://`` for tests).
            prefix: The prefix of new keys, or a list of accepted prefixes.
            **options: Any :class:`~apikeys.Settings` option (``monitoring=False``,
                ``rate_limits=["100/minute"]``, ``redis_url``, ``hasher="hmac"``...)
                and any constructor argument (``clock``, ``events``, a ``hasher``
                or ``rate_limiter`` instance...).

        Raises:
            ConfigurationError: an invalid option or URL.
            StorageError: the database cannot be opened.
        """
        from apikeys import _wiring

        settings, options = _wiring.settings_and_options(url, prefix, options)
        manager: Self = _wiring.build(cls, settings, **options)
        return manager

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Self:
        """A manager wired as ``settings`` say (see :meth:`from_url`).

        Args:
            settings: The options (e.g. ``Settings.from_env()``).
            **options: Constructor arguments (``clock``, ``events``...).

        Raises:
            ConfigurationError: no prefix, or an invalid option.
            StorageError: the database cannot be opened.
        """
        from apikeys import _wiring
        from apikeys._settings import Settings

        if not isinstance(settings, Settings):
            raise ConfigurationError(f"{settings!r} is not an apikeys.Settings")
        manager: Self = _wiring.build(cls, settings, **options)
        return manager

    def _close_owned(self) -> None:
        """Close what :meth:`from_url` built besides the store (monitor first)."""
        owned, self._owned = self._owned, ()
        for resource in owned:
            resource.close()

    async def _aclose_owned(self) -> None:
        """The awaitable twin of :meth:`_close_owned`."""
        owned, self._owned = self._owned, ()
        for resource in owned:
            await resource.aclose()

    def __init__(
        self,
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
        issuance: IssuancePolicy | None = None,
    ) -> None:
        prefixes = [prefix] if isinstance(prefix, str) else list(prefix)
        if not prefixes:
            raise ConfigurationError("a manager needs at least one key prefix")
        try:
            for p in prefixes:
                _keyformat.validate_prefix(p)
        except InvalidArgument as exc:
            raise ConfigurationError(str(exc)) from exc
        self.prefix: str = prefixes[0]
        """The prefix new keys are issued with."""
        self.prefixes: frozenset[str] = frozenset(prefixes)
        """Every prefix a presented key may carry."""
        self.hasher: Hasher = hasher if hasher is not None else Argon2Hasher()
        if not isinstance(self.hasher, Hasher):
            raise ConfigurationError("hasher must implement apikeys.hashing.Hasher")
        self._clock: Clock = clock or utc_now
        capacity = (
            max(2, os.cpu_count() or 2) if max_concurrent_hashes is None else max_concurrent_hashes
        )
        if capacity < 1 or hash_wait < 0:
            raise ConfigurationError("max_concurrent_hashes must be >= 1, hash_wait >= 0")
        self._cache = VerifiedCache(cache_size)
        self._throttle = FailureThrottle(
            failure_limit, failure_window.total_seconds(), clock=lambda: self.now().timestamp()
        )
        self._slots = HashSlots(capacity, hash_wait)
        if touch_interval is not None and touch_interval < timedelta(0):
            raise ConfigurationError("touch_interval must be >= 0 or None")
        self.touch_interval = touch_interval
        if events is None:
            self._sinks: tuple[EventSink, ...] = ()
        elif isinstance(events, EventSink):
            self._sinks = (events,)
        elif isinstance(events, Iterable):
            self._sinks = tuple(events)
        else:
            raise ConfigurationError(f"{events!r} is not an event sink (it has no emit())")
        for sink in self._sinks:
            if not isinstance(sink, EventSink):
                raise ConfigurationError(f"{sink!r} is not an event sink (it has no emit())")
        self._routes: dict[str, tuple[EventSink, ...]] = {}
        if issuance is not None and not isinstance(issuance, IssuancePolicy):
            raise ConfigurationError(f"{issuance!r} is not an IssuancePolicy")
        self.issuance = issuance
        """Rules every issued key must satisfy (``None``: none)."""
        self._own_limiter: KeyRateLimiter | None = None

    # --- time and events --------------------------------------------------------------

    def now(self) -> datetime:
        """The manager's clock (timezone-aware)."""
        value = self._clock()
        if value.tzinfo is None:
            raise ConfigurationError("the clock must return timezone-aware datetimes")
        return value

    def add_sink(self, sink: EventSink) -> None:
        """Deliver every later event to ``sink`` too."""
        if not isinstance(sink, EventSink):
            raise ConfigurationError(f"{sink!r} is not an event sink (it has no emit())")
        self._sinks = (*self._sinks, sink)
        self._routes = {}

    def _sinks_for(self, event_type: str) -> tuple[EventSink, ...]:
        """The sinks that take events of ``event_type``: a sink may list the types it
        wants in an ``event_types`` attribute (read when it is added; absent or
        ``None``: all), so no event is built on the request path for nobody."""
        sinks = self._routes.get(event_type)
        if sinks is None:
            sinks = tuple(s for s in self._sinks if _takes(s, event_type))
            self._routes[event_type] = sinks
        return sinks

    def _emit(self, event: Event) -> None:
        for sink in self._sinks_for(event.type):
            try:
                sink.emit(event)
            except Exception:
                logger.exception("apikeys: event sink %r failed on %s", sink, event.type)

    # --- no-I/O calls, the same on both managers ------------------------------------

    def authorize(self, key: APIKey, *scopes: str) -> None:
        """Raise unless ``key`` is granted every one of ``scopes``.

        Raises:
            InsufficientScope: naming the missing scopes.
            InvalidArgument: a scope is not a valid concrete scope.
        """
        _policy.check_scopes(key, _policy.required_scopes(scopes))

    def is_authorized(self, key: APIKey, *scopes: str) -> bool:
        """Whether ``key`` is granted every one of ``scopes`` (a convenience; prefer
        :meth:`authorize`, which cannot be forgotten silently)."""
        try:
            self.authorize(key, *scopes)
        except InsufficientScope:
            return False
        return True

    def record_request(
        self, key: APIKey, *, method: str, route: str, status: int, ip: str | None = None
    ) -> None:
        """Report a finished request made with ``key`` (adapters call this) as a
        :class:`~apikeys.events.RequestCompleted` event for usage tracking."""
        if self._sinks_for(RequestCompleted.type):
            self._emit(
                RequestCompleted(
                    at=self.now(),
                    key_id=key.id,
                    owner=key.owner,
                    method=method,
                    route=route,
                    status=status,
                    ip=ip,
                )
            )

    # --- exposure reports (adapters call this) ------------------------------------------

    def report_exposed(self, key: APIKey, *, reason: str, ip: str | None = None) -> None:
        """Report that ``key`` was exposed (e.g. sent over plain HTTP) as a
        :class:`~apikeys.events.KeyExposed` event; a detector may suspend it.

        No I/O. Call it only for a key whose secret was just proven (a record
        from :meth:`verify`/``authenticate``): a report must not be forgeable.

        Args:
            key: The exposed key.
            reason: Why, e.g. ``"plaintext_transport"``.
            ip: The client address, when known.
        """
        logger.warning(
            "apikeys: key %s exposed (%s) from ip=%s",
            key.id,
            reason,
            ip,
            extra={"apikeys_key_id": key.id, "apikeys_code": reason, "apikeys_ip": ip},
        )
        if self._sinks_for(KeyExposed.type):
            self._emit(
                KeyExposed(at=self.now(), key_id=key.id, owner=key.owner, reason=reason, ip=ip)
            )

    # --- verification steps -------------------------------------------------------------

    def _fail(
        self,
        error: APIKeyError,
        *,
        key_id: str | None,
        ip: str | None,
        required: tuple[str, ...],
        owner: str | None = None,
    ) -> NoReturn:
        """Log and emit a failed verification, then raise ``error``."""
        if logger.isEnabledFor(logging.INFO):
            logged_ip = None if ip is None else log_safe(ip)  # the caller's text, maybe hostile
            logger.info(
                "apikeys: verification failed (key_id=%s code=%s ip=%s)",
                key_id,
                error.code,
                logged_ip,
                extra={
                    "apikeys_key_id": key_id,
                    "apikeys_code": error.code,
                    "apikeys_ip": logged_ip,
                },
            )
        if self._sinks:
            now = self.now()
            if isinstance(error, RateLimited) and owner is not None:
                self._emit(
                    RateLimitExceeded(
                        at=now,
                        key_id=key_id,
                        owner=owner,
                        code=error.code,
                        policy=error.policy,
                        retry_after=error.retry_after,
                        ip=ip,
                    )
                )
            else:
                self._emit(
                    VerificationFailed(
                        at=now, key_id=key_id, owner=owner, code=error.code, ip=ip, scopes=required
                    )
                )
        raise error

    def _parse(
        self, raw: object, ip: str | None, scopes: Iterable[str]
    ) -> tuple[tuple[str, ...], ParsedKey]:
        parsed = _keyformat.parse_or_none(raw, self.prefixes)
        if parsed is None:
            error = AuthenticationError("malformed")
            if self._sinks or logger.isEnabledFor(logging.INFO):
                self._fail(error, key_id=None, ip=ip, required=_policy.required_scopes(scopes))
            raise error
        return _policy.required_scopes(scopes), parsed

    def _precheck(
        self,
        parsed: ParsedKey,
        record: KeyRecord | None,
        ip: str | None,
        required: tuple[str, ...],
    ) -> tuple[KeyRecord, bytes, bool]:
        """Everything before the slow hash.

        Returns:
            The record, the digest of the presented secret, and whether the slow
            hash must still decide (``False``: the cache proved the secret).
        """
        key_id = parsed.key_id
        if record is None:
            self._unproven(AuthenticationError("not_found", key_id=key_id), key_id, ip, required)
        digest = self._cache.digest(parsed.secret)
        match = self._cache.check(key_id, record.secret_hash, digest)
        if match == "match":
            return record, digest, False
        if match == "mismatch":
            self._unproven(
                AuthenticationError("invalid_secret", key_id=key_id), key_id, ip, required
            )
        # Only the cold path needs this: a cached digest was proven against this very hash.
        if not self.hasher.supports(record.secret_hash):
            logger.warning(
                "apikeys: stored hash of key %s is of an unsupported scheme or outside the "
                "accepted parameter range; refusing it without hashing",
                key_id,
            )
            self._unproven(
                AuthenticationError("invalid_secret", key_id=key_id), key_id, ip, required
            )
        self._check_throttle(key_id, ip, required)
        return record, digest, True

    def _check_throttle(self, key_id: str, ip: str | None, required: tuple[str, ...]) -> None:
        retry_after = self._throttle.retry_after(key_id)
        if retry_after > 0:
            self._fail(
                TooManyFailures(
                    "Too many failed attempts for this key; retry later.",
                    retry_after=retry_after,
                ),
                key_id=key_id,
                ip=ip,
                required=required,
            )

    def _unproven(
        self, error: AuthenticationError, key_id: str, ip: str | None, required: tuple[str, ...]
    ) -> NoReturn:
        """Refuse a secret that was not proven without hashing it: while its id is
        throttled the same 429 as a cold check, else count the failure and raise
        ``error``. A known and an unknown id thus answer alike, attempt after attempt."""
        self._check_throttle(key_id, ip, required)
        self._throttle.record_failure(key_id)
        self._fail(error, key_id=key_id, ip=ip, required=required)

    def _busy(self, key_id: str, ip: str | None, required: tuple[str, ...]) -> NoReturn:
        self._fail(
            ServiceBusy("Every key-hashing slot is busy; retry shortly."),
            key_id=key_id,
            ip=ip,
            required=required,
        )

    def _slow_verify(self, record: KeyRecord, secret: str) -> bool:
        """Run the slow hash; the caller holds a slot, released here."""
        try:
            return self.hasher.verify(record.secret_hash, secret)
        finally:
            self._slots.release()

    def _after_slow(
        self,
        record: KeyRecord,
        digest: bytes,
        ok: bool,
        ip: str | None,
        required: tuple[str, ...],
    ) -> None:
        key_id = record.id
        if not ok:
            self._throttle.record_failure(key_id)
            self._fail(
                AuthenticationError("invalid_secret", key_id=key_id),
                key_id=key_id,
                ip=ip,
                required=required,
            )
        self._cache.remember(key_id, record.secret_hash, digest)

    def _rehashed(self, record: KeyRecord, secret: str) -> KeyRecord | None:
        """The record to save with a fresh hash, if the stored one is outdated."""
        if not self.hasher.needs_rehash(record.secret_hash):
            return None
        return KeyRecord(_policy.bump(record.key), self.hasher.hash(secret))

    def _authorize_proven(
        self, key: APIKey, now: datetime, ip: str | None, required: tuple[str, ...]
    ) -> None:
        """State, address and scope checks, once the secret is proven."""
        try:
            _policy.check_usable(key, now)
            _policy.check_ip(key, ip)
            _policy.check_scopes(key, required)
        except APIKeyError as exc:
            self._fail(exc, key_id=key.id, ip=ip, required=required, owner=key.owner)

    def _should_touch(self, key: APIKey, now: datetime) -> bool:
        interval = self.touch_interval
        return interval is not None and (
            key.last_used_at is None or now - key.last_used_at >= interval
        )

    def _verified(
        self, key: APIKey, now: datetime, ip: str | None, required: tuple[str, ...]
    ) -> None:
        if self._sinks_for(KeyVerified.type):
            self._emit(KeyVerified(at=now, key_id=key.id, owner=key.owner, ip=ip, scopes=required))

    def _limited(
        self, error: RateLimited, key: APIKey, ip: str | None, required: tuple[str, ...]
    ) -> NoReturn:
        self._fail(error, key_id=key.id, ip=ip, required=required, owner=key.owner)

    # --- lifecycle steps ----------------------------------------------------------------

    def _issue(
        self,
        *,
        owner: str,
        scopes: Iterable[str],
        name: str | None,
        expires_in: timedelta | None,
        expires_at: datetime | None,
        allowed_ips: Iterable[str],
        metadata: Mapping[str, Any] | None,
        rate_limits: Iterable[str],
        quota: str | int | None,
        prefix: str | None,
    ) -> tuple[APIKey, ParsedKey, str]:
        """Validate and build a new record; returns it, its parts and the plaintext."""
        now = self.now()
        if prefix is None:
            prefix = self.prefix
        elif prefix not in self.prefixes:
            raise InvalidArgument(f"prefix {prefix!r} is not one of this manager's prefixes")
        parts, plaintext = _keyformat.generate(prefix)
        resolved_expiry = _policy.resolve_expiry(now, expires_in, expires_at)
        self._check_issuance(now, resolved_expiry)
        key = _policy.new_key(
            key_id=parts.key_id,
            prefix=prefix,
            owner=owner,
            now=now,
            scopes=scopes,
            name=name,
            expires_at=resolved_expiry,
            allowed_ips=allowed_ips,
            metadata=metadata,
            rate_limits=rate_limits,
            quota=quota,
        )
        return key, parts, plaintext

    def _check_issuance(self, now: datetime, expires_at: datetime | None) -> None:
        if self.issuance is not None:
            self.issuance.check_expiry(now, expires_at)

    def _live_key_cap(self) -> int | None:
        """The per-owner cap on live keys that ``create`` must count against, if any."""
        return None if self.issuance is None else self.issuance.max_live_keys_per_owner

    def _check_live_keys(self, owner: str, live: int) -> None:
        if self.issuance is not None:
            self.issuance.check_live_keys(owner, live)

    @staticmethod
    def _require(record: KeyRecord | None, key_id: str) -> KeyRecord:
        if record is None:
            raise KeyNotFound(key_id)
        return record

    @staticmethod
    def _state_filter(state: KeyState | str | None) -> KeyState | None:
        if state is None or isinstance(state, KeyState):
            return state
        try:
            return KeyState(state)
        except ValueError:
            raise InvalidArgument(
                f"unknown state {state!r}; use one of {', '.join(s.value for s in KeyState)}"
            ) from None

    @staticmethod
    def _check_limit(limit: int) -> int:
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidArgument("limit must be between 1 and 10000")
        return limit

    # --- argument checks, before any I/O ------------------------------------------------

    @staticmethod
    def _key_id(key_id: str) -> str:
        """``key_id`` if it can name a key.

        Raises:
            InvalidArgument: not printable text of at most 256 characters.
            KeyNotFound: printable text that is not shaped like a key id (no store
                is asked: ids are always 16 base62 characters).
        """
        checked = _keyformat.key_id_argument(key_id)
        if checked is None:
            raise KeyNotFound(key_id)
        return checked

    @staticmethod
    def _may_exist(key_id: str) -> bool:
        """Whether ``key_id`` is shaped like a key id (``purge`` answers ``False``
        without I/O otherwise).

        Raises:
            InvalidArgument: not printable text of at most 256 characters.
        """
        return _keyformat.key_id_argument(key_id) is not None

    @staticmethod
    def _check_label(value: str | None, what: str) -> None:
        """Check a name or reason before any I/O (``UNSET``/``None``: nothing to check).

        Raises:
            InvalidArgument: not printable text of at most 200 characters.
        """
        if value is not None and value is not _policy.UNSET:
            _policy.validate_name(value, what)

    def _list_query(
        self, owner: str | None, state: KeyState | str | None, limit: int, after: str | None
    ) -> dict[str, Any]:
        """The checked arguments of a store ``list`` call (``now`` included)."""
        return {
            "owner": None
            if owner is None
            else _policy.validate_text(owner, "owner", _policy.MAX_OWNER_LENGTH),
            "state": self._state_filter(state),
            "now": self.now(),
            "limit": self._check_limit(limit),
            "after": _policy.validate_cursor(after),
        }

    # --- hashing slots: blocking, or polled without blocking the event loop -------------

    def _acquire_slot(self) -> bool:
        """Take a hashing slot, waiting at most ``hash_wait``."""
        return self._slots.try_acquire()

    async def _aacquire_slot(self) -> bool:
        """Take a hashing slot without blocking the loop, waiting at most ``hash_wait``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._slots.timeout
        while not self._slots.try_acquire(block=False):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.002)
        return True

    def _default_limiter(self) -> KeyRateLimiter:
        """The in-process limiter that enforces a key's own ``rate_limits`` and
        ``quota`` when the manager was given no ``rate_limiter`` (made on first use,
        so keys without limits never pay for it)."""
        if self._own_limiter is None:
            from apikeys.ratelimit import KeyRateLimiter

            self._own_limiter = KeyRateLimiter(clock=self._clock)
        return self._own_limiter

    # --- after a write: what it means, which event says so ------------------------------

    @staticmethod
    def _pending(error: StorageError, key: APIKey, plaintext: str) -> StorageError:
        """``error`` carrying the key whose write may have landed (see
        :attr:`~apikeys.errors.StorageError.issued`)."""
        error.issued = IssuedKey(key, plaintext)
        return error

    def _created(self, key: APIKey) -> None:
        self._emit(
            KeyCreated(
                at=key.created_at,
                key_id=key.id,
                owner=key.owner,
                scopes=key.scopes,
                expires_at=key.expires_at,
                replaces=key.replaces,
            )
        )

    def _rotated(self, ended: APIKey, successor: APIKey) -> None:
        self._created(successor)
        now = successor.created_at
        self._emit(
            KeyRotated(
                at=now,
                key_id=ended.id,
                owner=ended.owner,
                successor_id=successor.id,
                ends_at=ended.expires_at or now,
            )
        )

    def _updated(self, before: APIKey, after: APIKey, fields: Iterable[str]) -> None:
        if after is before:
            return
        changed = tuple(name for name in fields if getattr(before, name) != getattr(after, name))
        self._emit(KeyUpdated(at=self.now(), key_id=after.id, owner=after.owner, fields=changed))

    def _revoked(self, before: APIKey, after: APIKey, ended: Sequence[APIKey]) -> None:
        # The verified digest stays cached: the stored hash is unchanged, so a revoked
        # key presented again costs a digest compare (and a 401), never Argon2.
        if after is before:
            return
        now = after.revoked_at or self.now()
        self._emit(
            KeyRevoked(at=now, key_id=after.id, owner=after.owner, reason=after.revoke_reason)
        )
        for key in ended:
            self._emit(KeyUpdated(at=now, key_id=key.id, owner=key.owner, fields=("expires_at",)))

    def _suspended(self, before: APIKey, after: APIKey) -> None:
        if after is not before:
            self._emit(
                KeySuspended(
                    at=self.now(), key_id=after.id, owner=after.owner, reason=after.disabled_reason
                )
            )

    def _enabled(self, before: APIKey, after: APIKey) -> None:
        if after is not before:
            self._emit(KeyEnabled(at=self.now(), key_id=after.id, owner=after.owner))

    def _purged(self, key_id: str, record: KeyRecord | None, existed: bool) -> None:
        self._cache.forget(key_id)
        if existed:
            self._emit(
                KeyPurged(at=self.now(), key_id=key_id, owner=record.key.owner if record else None)
            )

    def _rehash_saved(self, fresh: KeyRecord) -> KeyRecord:
        self._cache.forget(fresh.id)
        return fresh
