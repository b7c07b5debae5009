"""Extension points the managers call on the verify path: rate limiting.

The managers only call these protocols; implementations live in
:mod:`apikeys.ratelimit`, or in the application.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

# RateLimitStatus and Verification live with the other records; imported from here too.
from apikeys._models import APIKey, RateLimitStatus, Verification

__all__ = ["AsyncRateLimiter", "RateLimitStatus", "RateLimiter", "Verification"]


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
