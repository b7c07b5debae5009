"""What :class:`KeyManager` and :class:`AsyncKeyManager` share: configuration and
every step of their calls that does no I/O. The two shells only add the store,
hasher and limiter calls, one blocking, one awaitable."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NoReturn

from typing_extensions import Self

from apikeys import _keyformat, _policy
from apikeys._hotpath import FailureThrottle, HashSlots, VerifiedCache
from apikeys._issuance import IssuancePolicy
from apikeys._keyformat import ParsedKey
from apikeys._models import APIKey, KeyRecord, KeyState
from apikeys.errors import (
    APIKeyError,
    AuthenticationError,
    ConfigurationError,
    InsufficientScope,
    InvalidArgument,
    KeyNotFound,
    RateLimited,
    ServiceBusy,
    TooManyFailures,
)
from apikeys.events import (
    Event,
    EventSink,
    KeyVerified,
    RateLimitExceeded,
    RequestCompleted,
    VerificationFailed,
)
from apikeys.hashing import Argon2Hasher, Hasher

if TYPE_CHECKING:
    from apikeys._settings import Settings

logger = logging.getLogger("apikeys")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: the current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


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
        self._throttle = FailureThrottle(failure_limit, failure_window.total_seconds())
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
            logger.info(
                "apikeys: verification failed (key_id=%s code=%s ip=%s)",
                key_id,
                error.code,
                ip,
                extra={"apikeys_key_id": key_id, "apikeys_code": error.code, "apikeys_ip": ip},
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
            self._fail(
                AuthenticationError("not_found", key_id=key_id),
                key_id=key_id,
                ip=ip,
                required=required,
            )
        digest = self._cache.digest(parsed.secret)
        match = self._cache.check(key_id, record.secret_hash, digest)
        if match == "match":
            return record, digest, False
        if match == "mismatch":
            self._throttle.record_failure(key_id)
            self._fail(
                AuthenticationError("invalid_secret", key_id=key_id),
                key_id=key_id,
                ip=ip,
                required=required,
            )
        # Only the cold path needs this: a cached digest was proven against this very hash.
        if not self.hasher.supports(record.secret_hash):
            logger.warning(
                "apikeys: stored hash of key %s is of an unsupported scheme or outside the "
                "accepted parameter range; refusing it without hashing",
                key_id,
            )
            self._fail(
                AuthenticationError("invalid_secret", key_id=key_id),
                key_id=key_id,
                ip=ip,
                required=required,
            )
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
        return record, digest, True

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
