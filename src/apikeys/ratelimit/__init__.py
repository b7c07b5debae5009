"""Rate limits and quotas per key, counted in process or shared through Redis.

Plug a :class:`KeyRateLimiter` into a manager; it is charged once per request that
passed authentication and authorization (a rejected request costs nothing)::

    from apikeys import KeyManager
    from apikeys.ratelimit import KeyRateLimiter

    limiter = KeyRateLimiter(default=["100/minute"], owner_limits=["1000/minute"])
    keys = KeyManager(store, prefix="acme", rate_limiter=limiter)
    keys.create(owner="team-42", rate_limits=["10/second", "5000/day"], quota="100000/month")

- Limits: a key's own ``rate_limits`` (``"100/minute"``, ``"5000 per day"``,
  ``"10/5 seconds"``) replace the limiter's ``default``; ``owner_limits`` apply on
  top, one count shared by all keys of an owner.
- Quota: a key's ``quota`` (``"1000"``, or ``"1000/month"`` to refill each period,
  periods counted from the key's creation) is a number of uses; at zero requests
  fail with :class:`~apikeys.errors.QuotaExceeded`. :meth:`KeyRateLimiter.peek`
  reads without charging, :meth:`KeyRateLimiter.refill` gives uses back.
- A request is charged to every counter or to none: a request refused by one
  limit does not use up another, nor the quota.
- Storage: in-process (:class:`MemoryCounters`, the default) or Redis
  (:class:`RedisCounters`, ``pip install 'apikeys[redis]'``) so every worker and
  host shares one count.
- Algorithm: a sliding-window counter (default; the previous window is weighed
  in, so no burst of twice the limit at a window edge) or fixed windows.
- Time comes from the manager (``now``), so an injected clock moves windows.

Adapters turn the status or error into headers with :func:`rate_limit_headers`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from apikeys._hooks import RateLimitStatus
from apikeys._http import rate_limit_headers
from apikeys._models import APIKey
from apikeys._redis import is_redis_url
from apikeys.errors import ConfigurationError, InvalidArgument, StorageError
from apikeys.ratelimit import _rules as rules
from apikeys.ratelimit._memory import MemoryCounters
from apikeys.ratelimit._redis import RedisCounters
from apikeys.ratelimit._rules import Algorithm, CounterStorage, Plan, Rate

__all__ = [
    "KeyRateLimiter",
    "MemoryCounters",
    "RedisCounters",
    "Usage",
    "rate_limit_headers",
]

logger = logging.getLogger("apikeys")

OwnerLimits = Iterable[str] | Callable[[str], Iterable[str]]
"""Limits shared by all keys of an owner: the same for every owner, or per owner."""

_WARN_EVERY = 10.0


@dataclass(frozen=True, slots=True)
class Usage:
    """Where a key stands, read without charging it (:meth:`KeyRateLimiter.peek`).

    Attributes:
        limits: Every window that applies (the key's or the default, then the
            owner's), with the requests left in it.
        quota: The key's quota and the uses left, or ``None`` without a quota.
        allowed: Whether a request now would pass.
        retry_after: Seconds until a request can pass (0 when ``allowed``).
    """

    limits: tuple[RateLimitStatus, ...]
    quota: RateLimitStatus | None
    allowed: bool
    retry_after: float


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _storage(storage: str | CounterStorage) -> CounterStorage:
    if not isinstance(storage, str):
        if not (hasattr(storage, "apply") and hasattr(storage, "aapply")):
            raise ConfigurationError(f"{storage!r} is not a rate-limit counter storage")
        return storage
    scheme = storage.partition("://")[0].lower()
    if scheme == "memory":
        return MemoryCounters()
    if is_redis_url(storage):
        return RedisCounters(storage)
    raise ConfigurationError(
        f"unknown rate-limit storage {scheme!r}: use 'memory://', 'redis://host:port/db', "
        "'redis+sentinel://host:port/service' or 'redis+cluster://host:port'"
    )


def _rates(limits: Iterable[str], what: str) -> tuple[Rate, ...]:
    if isinstance(limits, str):
        raise ConfigurationError(f"{what} must be a list of strings, not one string")
    try:
        return rules.parse_rates(tuple(limits))
    except ValueError as exc:
        raise ConfigurationError(f"{what}: {exc}") from exc


class KeyRateLimiter:
    """Rate limits and quotas per key; the manager calls :meth:`hit` (or
    :meth:`ahit`) for every authenticated, authorized request.

    Implements both :class:`~apikeys.RateLimiter` and
    :class:`~apikeys.AsyncRateLimiter`, so one limiter serves a
    :class:`~apikeys.KeyManager` and an :class:`~apikeys.AsyncKeyManager`.

    Args:
        storage: ``"memory://"`` (the default: counts per process), a Redis URL
            (``"redis://host:port/db"``, ``"rediss://…"``,
            ``"redis+sentinel://host:port[,host:port]/service[/db]"``,
            ``"redis+cluster://host:port[,host:port]"``), or a :class:`MemoryCounters` /
            :class:`RedisCounters` instance.
        default: Limits for keys that have no ``rate_limits`` of their own.
        owner_limits: Limits shared by all keys of one owner: a list applied to
            every owner (each owner counted apart), or a function
            ``owner -> list`` (e.g. looking up the owner's plan; called per request,
            so keep it fast).
        algorithm: ``"sliding-window"`` (default) or ``"fixed-window"``.
        fail_closed: When the storage fails, refuse requests with
            :class:`~apikeys.errors.StorageError` (503; the default). ``False``
            lets requests through unlimited and logs a warning (at most every 10 s).
        exhausted_retry_after: ``retry_after`` (seconds) reported when a quota
            that is only refilled by hand is used up.
        clock: The time for :meth:`peek`, :meth:`reset` and :meth:`refill` when
            no ``now`` is given; pass the manager's clock if it has its own.

    Raises:
        ConfigurationError: an invalid limit, storage or setting.
    """

    def __init__(
        self,
        storage: str | CounterStorage = "memory://",
        *,
        default: Iterable[str] = (),
        owner_limits: OwnerLimits = (),
        algorithm: Algorithm = "sliding-window",
        fail_closed: bool = True,
        exhausted_retry_after: float = 3600.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if algorithm not in ("sliding-window", "fixed-window"):
            raise ConfigurationError("algorithm must be 'sliding-window' or 'fixed-window'")
        if exhausted_retry_after < 0:
            raise ConfigurationError("exhausted_retry_after must be >= 0")
        self.storage: CounterStorage = _storage(storage)
        self.default: tuple[Rate, ...] = _rates(default, "default")
        if callable(owner_limits):
            self._owner_fn: Callable[[str], Iterable[str]] | None = owner_limits
            self._owner_rates: tuple[Rate, ...] = ()
        else:
            self._owner_fn = None
            self._owner_rates = _rates(owner_limits, "owner_limits")
        self.algorithm: Algorithm = algorithm
        self.fail_closed = fail_closed
        self.exhausted_retry_after = float(exhausted_retry_after)
        self._clock = clock or _utc_now
        self._warned_at = -_WARN_EVERY

    def __repr__(self) -> str:
        return (
            f"KeyRateLimiter(storage={self.storage!r}, algorithm={self.algorithm!r}, "
            f"fail_closed={self.fail_closed})"
        )

    # --- planning -----------------------------------------------------------------------

    def _owner(self, owner: str) -> tuple[Rate, ...]:
        if self._owner_fn is None:
            return self._owner_rates
        return _rates(self._owner_fn(owner), f"owner_limits({owner!r})")

    def _plan(self, key: APIKey, at: float, *, quota: bool = True) -> Plan:
        try:
            return rules.plan(
                key,
                at,
                default=self.default,
                owner=self._owner(key.owner),
                algorithm=self.algorithm,
                quota=quota,
            )
        except ValueError as exc:
            raise ConfigurationError(f"key {key.id}: {exc}") from exc

    def _at(self, now: datetime | None) -> float:
        return (now if now is not None else self._clock()).timestamp()

    def _verdict(self, plan: Plan, allowed: bool, counts: rules.Counts) -> RateLimitStatus:
        if not allowed:
            raise rules.refusal(plan, counts, self.exhausted_retry_after)
        return rules.charged_status(plan, counts)

    def _unavailable(self, exc: StorageError) -> None:
        if self.fail_closed:
            raise exc
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            logger.warning(
                "apikeys: rate-limit storage unavailable (%s); letting requests through "
                "unlimited (fail_closed=False)",
                exc.message,
            )

    # --- the verify path ----------------------------------------------------------------

    def hit(self, key: APIKey, *, now: datetime) -> RateLimitStatus | None:
        """Charge one request to ``key`` against every limit and its quota.

        Args:
            key: The authenticated, authorized key.
            now: The manager's current time.

        Returns:
            The status of the tightest limit after the charge, or ``None`` when no
            limit applies (or the storage failed and the limiter fails open).

        Raises:
            RateLimited: a limit refuses the request (nothing is charged).
            QuotaExceeded: the key's quota is used up (nothing is charged).
            StorageError: the storage failed and the limiter fails closed.
            ConfigurationError: the key or ``owner_limits`` gave an invalid limit.
        """
        at = now.timestamp()
        plan = self._plan(key, at)
        if not plan:
            return None
        try:
            allowed, counts = self.storage.apply(plan, at, True)
        except StorageError as exc:
            self._unavailable(exc)
            return None
        return self._verdict(plan, allowed, counts)

    async def ahit(self, key: APIKey, *, now: datetime) -> RateLimitStatus | None:
        """The awaitable twin of :meth:`hit` (same arguments, result and errors)."""
        at = now.timestamp()
        plan = self._plan(key, at)
        if not plan:
            return None
        try:
            allowed, counts = await self.storage.aapply(plan, at, True)
        except StorageError as exc:
            self._unavailable(exc)
            return None
        return self._verdict(plan, allowed, counts)

    # --- inspection and management ------------------------------------------------------

    def _usage(self, plan: Plan, allowed: bool, counts: rules.Counts) -> Usage:
        found = rules.statuses(plan, counts, charged=False)
        quota = next((s for c, s in zip(plan, found, strict=True) if c.kind == "quota"), None)
        return Usage(
            limits=tuple(s for c, s in zip(plan, found, strict=True) if c.kind != "quota"),
            quota=quota,
            allowed=allowed,
            retry_after=0.0
            if allowed
            else rules.refusal(plan, counts, self.exhausted_retry_after).retry_after,
        )

    def peek(self, key: APIKey, *, now: datetime | None = None) -> Usage:
        """Where ``key`` stands against its limits and quota, without charging it.

        Args:
            key: The key (from ``manager.get(key_id)`` or a verification).
            now: The instant to read at (default: the limiter's clock).

        Raises:
            StorageError: the storage failed (whatever ``fail_closed`` says).
        """
        at = self._at(now)
        plan = self._plan(key, at)
        if not plan:
            return Usage((), None, True, 0.0)
        allowed, counts = self.storage.apply(plan, at, False)
        return self._usage(plan, allowed, counts)

    async def apeek(self, key: APIKey, *, now: datetime | None = None) -> Usage:
        """The awaitable twin of :meth:`peek`."""
        at = self._at(now)
        plan = self._plan(key, at)
        if not plan:
            return Usage((), None, True, 0.0)
        allowed, counts = await self.storage.aapply(plan, at, False)
        return self._usage(plan, allowed, counts)

    def _reset_names(self, key: APIKey, at: float, owner: bool) -> list[str]:
        return [
            name
            for counter in self._plan(key, at)
            if owner or counter.kind != "owner"
            for name in (counter.current, counter.previous)
            if name is not None
        ]

    def reset(self, key: APIKey, *, owner: bool = False, now: datetime | None = None) -> None:
        """Forget what ``key`` used in its current windows and its quota.

        Args:
            key: The key.
            owner: Also forget the owner's shared windows.
            now: The instant whose windows to clear (default: the limiter's clock).

        Raises:
            StorageError: the storage failed.
        """
        at = self._at(now)
        self.storage.clear(self._reset_names(key, at, owner), at)

    async def areset(
        self, key: APIKey, *, owner: bool = False, now: datetime | None = None
    ) -> None:
        """The awaitable twin of :meth:`reset`."""
        at = self._at(now)
        await self.storage.aclear(self._reset_names(key, at, owner), at)

    def _quota_counter(self, key: APIKey, at: float, uses: int | None) -> rules.Counter:
        if key.quota is None:
            raise InvalidArgument(f"key {key.id!r} has no quota")
        if uses is not None and (isinstance(uses, bool) or not isinstance(uses, int) or uses < 1):
            raise InvalidArgument("uses must be a positive integer (or None for all)")
        return self._plan(key, at, quota=True)[-1]

    def refill(self, key: APIKey, uses: int | None = None, *, now: datetime | None = None) -> None:
        """Give ``key`` back ``uses`` of its quota (all of it when ``None``), in the
        current period; never more than the quota.

        Raises:
            InvalidArgument: the key has no quota, or ``uses`` is not positive.
            StorageError: the storage failed.
        """
        at = self._at(now)
        counter = self._quota_counter(key, at, uses)
        if uses is None:
            self.storage.clear([counter.current], at)
        else:
            self.storage.give_back(counter.current, uses, at)

    async def arefill(
        self, key: APIKey, uses: int | None = None, *, now: datetime | None = None
    ) -> None:
        """The awaitable twin of :meth:`refill`."""
        at = self._at(now)
        counter = self._quota_counter(key, at, uses)
        if uses is None:
            await self.storage.aclear([counter.current], at)
        else:
            await self.storage.agive_back(counter.current, uses, at)

    def close(self) -> None:
        """Release the storage's connections."""
        self.storage.close()

    async def aclose(self) -> None:
        """Release the storage's connections (the asyncio ones too)."""
        await self.storage.aclose()
