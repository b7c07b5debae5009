"""Extension points the managers call on the verify path: rate limiting.

The managers only call these protocols; implementations live in
:mod:`apikeys.ratelimit`, or in the application.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from apikeys._models import APIKey


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """Where a key stands against its tightest limit, after a request was charged.

    Adapters turn it into the IETF ``RateLimit``/``RateLimit-Policy`` headers.

    Attributes:
        limit: Requests allowed per window.
        remaining: Requests left in the current window.
        reset_after: Seconds until the window resets.
        policy: The limit as written (``"100/minute"``).
        window: The window length in seconds.
    """

    limit: int
    remaining: int
    reset_after: float
    policy: str
    window: float


@runtime_checkable
class RateLimiter(Protocol):
    """Charges verified requests against per-key limits (sync)."""

    def hit(self, key: APIKey, *, now: datetime) -> RateLimitStatus | None:
        """Charge one request to ``key``.

        Returns:
            The tightest limit's status, or ``None`` when no limit applies.

        Raises:
            RateLimited: (or ``QuotaExceeded``) when the request is refused.
            StorageError: the counter backend failed and the limiter fails closed.
        """
        ...


@runtime_checkable
class AsyncRateLimiter(Protocol):
    """The awaitable twin of :class:`RateLimiter` (``ahit``)."""

    async def ahit(self, key: APIKey, *, now: datetime) -> RateLimitStatus | None: ...


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of a successful ``authenticate``: the key and its rate-limit status."""

    key: APIKey
    rate_limit: RateLimitStatus | None = None
