"""The rate-limit decisions, pure (no I/O): parsing limits and quotas, laying out
the counters one request is checked against, and reading the verdict from their
values.

A request is checked against a *plan*: one :class:`Counter` per window (the key's
own limits or the default, then the owner's) plus one for the key's quota. A
counter storage reads every counter of a plan and, only if all of them allow it,
charges them all, atomically (:data:`allows` is the rule it applies). Nothing here
reads a clock: every function takes the instant ``at`` (POSIX seconds) that the
manager passed in, so windows move with an injected clock.

Windows are aligned to the epoch (a ``"5000/day"`` window starts at 00:00 UTC). The
sliding-window counter weighs the previous window's count by the share of it
still inside the sliding window: ``floor(previous * weight) + current < limit``.
Quota periods are aligned to the key's creation instant instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, NamedTuple, Protocol

from apikeys._hooks import RateLimitStatus
from apikeys._models import APIKey
from apikeys._redis import hash_tag
from apikeys.errors import QuotaExceeded, RateLimited

Algorithm = Literal["sliding-window", "fixed-window"]
Kind = Literal["key", "owner", "quota"]

UNITS: dict[str, int] = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86_400,
    "week": 7 * 86_400,
    "month": 30 * 86_400,
    "year": 365 * 86_400,
}
_UNIT = "(second|minute|hour|day|week|month|year)s?"
# The same language as apikeys._policy's validators (a test keeps them in step).
_RATE_RE = re.compile(
    rf"\s*([1-9][0-9]{{0,11}})\s*(?:/|per)\s*(?:([1-9][0-9]{{0,5}})\s*)?{_UNIT}\s*",
    re.IGNORECASE,
)
_QUOTA_RE = re.compile(rf"\s*([1-9][0-9]{{0,11}})\s*(?:(?:/|per)\s*{_UNIT})?\s*", re.IGNORECASE)
_SCOPE_PREFIX = {"key": "", "owner": "owner:", "quota": "quota:"}

# A retry is computed to the instant a request becomes allowed; a request at that
# very instant is still refused (the comparison is strict), so add a millisecond.
_EPSILON = 0.001


@dataclass(frozen=True, slots=True)
class Rate:
    """A parsed rate limit: ``count`` requests per ``window`` seconds.

    Attributes:
        count: Requests allowed per window.
        window: The window length in seconds.
        text: The limit as written (``"100/minute"``).
    """

    count: int
    window: int
    text: str


@dataclass(frozen=True, slots=True)
class QuotaRule:
    """A parsed quota: ``uses`` in total, refilled every ``period`` seconds if set.

    Attributes:
        uses: Uses granted (per period, when there is one).
        period: Seconds between refills, or ``None`` for a quota that is refilled
            only by hand.
        text: The quota as written (``"1000/month"``).
    """

    uses: int
    period: int | None
    text: str


@lru_cache(maxsize=1024)
def parse_rate(text: str) -> Rate:
    """Parse ``"100/minute"``, ``"5000 per day"``, ``"10/5 seconds"``.

    Months are 30 days, years 365 days, weeks 7 days.

    Raises:
        ValueError: not ``<count>/[<multiple>] <unit>``.
    """
    match = _RATE_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"invalid rate limit {text!r}: use e.g. '100/minute'")
    count, multiple, unit = match.groups()
    return Rate(int(count), int(multiple or 1) * UNITS[unit.lower()], text.strip())


@lru_cache(maxsize=1024)
def parse_quota(text: str) -> QuotaRule:
    """Parse ``"1000"`` (refilled by hand only) or ``"1000/month"`` (refilled each period).

    Raises:
        ValueError: not ``<count>[/<unit>]``.
    """
    match = _QUOTA_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"invalid quota {text!r}: use e.g. '1000' or '1000/month'")
    uses, unit = match.groups()
    return QuotaRule(int(uses), UNITS[unit.lower()] if unit else None, text.strip())


@lru_cache(maxsize=4096)
def parse_rates(texts: tuple[str, ...]) -> tuple[Rate, ...]:
    """Parse several limits and keep, per window length, only the tightest.

    Raises:
        ValueError: a limit does not parse.
    """
    tightest: dict[int, Rate] = {}
    for text in texts:
        rate = parse_rate(text)
        kept = tightest.get(rate.window)
        if kept is None or rate.count < kept.count:
            tightest[rate.window] = rate
    return tuple(sorted(tightest.values(), key=lambda rate: rate.window))


def policy_window(policy: str) -> int | None:
    """The window in seconds of a policy name made by :func:`plan`, if it has one."""
    for prefix in ("owner:", "quota:"):
        if policy.startswith(prefix):
            policy = policy[len(prefix) :]
            break
    try:
        return parse_rate(policy).window
    except ValueError:
        return None


class Counter(NamedTuple):
    """One counter a request is checked against and charged to (a named tuple:
    one is built per counter per request).

    Attributes:
        kind: ``key`` (the key's limits or the default), ``owner`` or ``quota``.
        limit: Requests (or uses) allowed.
        current: Storage key of the current window (or quota period).
        previous: Storage key of the previous window, for the sliding window.
        weight: The share of the previous window still counted (0 without one).
        ttl: Seconds the current counter must live after its first charge
            (``0``: forever, for a quota refilled only by hand).
        window: Window (or period) length in seconds; ``inf`` for no period.
        ends_in: Seconds until the current window (or period) ends; ``inf`` for none.
        policy: The policy's name for headers and errors (``"100/minute"``,
            ``"owner:1000/hour"``, ``"quota:1000/month"``).
    """

    kind: Kind
    limit: int
    current: str
    previous: str | None
    weight: float
    ttl: float
    window: float
    ends_in: float
    policy: str


Plan = tuple[Counter, ...]
Counts = Sequence[tuple[int, int]]
"""Per counter of a plan: (current count, previous window's count), before charging."""


def used(counter: Counter, current: int, previous: int) -> int:
    """The requests counted against ``counter``, the previous window weighted in."""
    return math.floor(previous * counter.weight) + current


def allows(plan: Plan, counts: Counts) -> bool:
    """Whether one more request fits under every counter (the rule storages apply)."""
    return all(
        used(counter, current, previous) < counter.limit
        for counter, (current, previous) in zip(plan, counts, strict=True)
    )


def _window(kind: Kind, subject: str, rate: Rate, at: float, sliding: bool) -> Counter:
    size = rate.window
    index = math.floor(at / size)
    ends_in = (index + 1) * size - at
    stem = f"{subject}:{size}:"
    policy = _SCOPE_PREFIX[kind] + rate.text
    # Positional (this runs per counter per request): kind, limit, current,
    # previous, weight, ttl, window, ends_in, policy.
    if sliding:
        # Kept through the next window, where it is the previous one.
        return Counter(
            kind, rate.count, f"{stem}{index}", f"{stem}{index - 1}",
            ends_in / size, ends_in + size, float(size), ends_in, policy,
        )  # fmt: skip
    return Counter(
        kind, rate.count, f"{stem}{index}", None, 0.0, ends_in, float(size), ends_in, policy
    )


def _quota(key: APIKey, rule: QuotaRule, at: float, tag: str) -> Counter:
    policy = _SCOPE_PREFIX["quota"] + rule.text
    if rule.period is None:
        return Counter(
            kind="quota",
            limit=rule.uses,
            current=f"{tag}q:{key.id}",
            previous=None,
            weight=0.0,
            ttl=0.0,
            window=math.inf,
            ends_in=math.inf,
            policy=policy,
        )
    elapsed = at - key.created_at.timestamp()
    index = math.floor(elapsed / rule.period)
    ends_in = (index + 1) * rule.period - elapsed
    return Counter(
        kind="quota",
        limit=rule.uses,
        current=f"{tag}q:{key.id}:{rule.period}:{index}",
        previous=None,
        weight=0.0,
        ttl=ends_in,
        window=float(rule.period),
        ends_in=ends_in,
        policy=policy,
    )


def plan(
    key: APIKey,
    at: float,
    *,
    default: tuple[Rate, ...],
    owner: tuple[Rate, ...],
    algorithm: Algorithm,
    quota: bool = True,
) -> Plan:
    """The counters a request with ``key`` at ``at`` is checked against.

    The key's own limits replace ``default``; ``owner`` limits apply on top, shared
    by all keys of the owner; the key's quota (when ``quota``) comes last.

    Raises:
        ValueError: the key carries a limit or quota that does not parse.
    """
    own = parse_rates(key.rate_limits) if key.rate_limits else default
    sliding = algorithm == "sliding-window"
    # Every name starts with the owner's hash tag: one Redis Cluster slot holds
    # all the counters one request charges, so a script charges them atomically.
    tag = hash_tag(key.owner)
    counters = [_window("key", f"{tag}k:{key.id}", rate, at, sliding) for rate in own]
    counters += [_window("owner", f"{tag}o", rate, at, sliding) for rate in owner]
    if quota and key.quota is not None:
        counters.append(_quota(key, parse_quota(key.quota), at, tag))
    return tuple(counters)


def _status(counter: Counter, remaining: int) -> RateLimitStatus:
    # limit, remaining, reset_after, policy, window
    return RateLimitStatus(
        counter.limit, max(0, remaining), counter.ends_in, counter.policy, counter.window
    )


def statuses(plan: Plan, counts: Counts, *, charged: bool) -> tuple[RateLimitStatus, ...]:
    """Where the request stands against each counter (after the charge, if ``charged``)."""
    spent = 1 if charged else 0
    return tuple(
        _status(counter, counter.limit - used(counter, current, previous) - spent)
        for counter, (current, previous) in zip(plan, counts, strict=True)
    )


def charged_status(plan: Plan, counts: Counts) -> RateLimitStatus:
    """The tightest counter's status after charging one request (as :func:`tightest`
    picks it), building one status only: this runs on every allowed request."""
    best: Counter | None = None
    best_remaining = 0
    for counter, (current, previous) in zip(plan, counts, strict=True):
        remaining = counter.limit - used(counter, current, previous) - 1
        if (
            best is None
            or remaining < best_remaining
            or (remaining == best_remaining and counter.ends_in > best.ends_in)
        ):
            best, best_remaining = counter, remaining
    if best is None:
        raise ValueError("charged_status() needs a plan with at least one counter")
    return _status(best, best_remaining)


def tightest(found: Iterable[RateLimitStatus]) -> RateLimitStatus | None:
    """The status with the fewest requests left (the longest wait on a tie)."""
    return min(found, key=lambda s: (s.remaining, -s.reset_after), default=None)


def retry_after(counter: Counter, current: int, previous: int, exhausted: float) -> float:
    """Seconds until ``counter`` lets one more request through, if nothing else
    is charged meanwhile; ``exhausted`` for a quota that only refills by hand."""
    if counter.kind == "quota":
        return exhausted if math.isinf(counter.ends_in) else counter.ends_in
    size, limit = counter.window, counter.limit
    if current < limit and previous > 0 and counter.weight > 0:
        # Still in this window, once enough of the previous one has slid out:
        # floor(previous * (size - elapsed) / size) < limit - current.
        elapsed = size - counter.ends_in
        return max(0.0, size - (limit - current) * size / previous - elapsed) + _EPSILON
    if counter.previous is None or current <= 0:
        return counter.ends_in
    # In the next window, where this window's count is the previous one.
    return counter.ends_in + max(0.0, size - limit * size / current) + _EPSILON


def refusal(plan: Plan, counts: Counts, exhausted: float) -> RateLimited:
    """The error for a refused request: the refusing counter that keeps it
    refused longest (a quota, :class:`QuotaExceeded`, wins a tie)."""
    rows = [
        (counter.limit - used(counter, current, previous), counter, current, previous)
        for counter, (current, previous) in zip(plan, counts, strict=True)
    ]
    refusing = [row for row in rows if row[0] <= 0]
    if not refusing:  # unreachable (storages apply allows() to these counts); be total
        refusing = [min(rows, key=lambda row: row[0])]
    wait, counter = max(
        (
            (retry_after(counter, current, previous, exhausted), counter)
            for _, counter, current, previous in refusing
        ),
        key=lambda pair: (pair[0], pair[1].kind == "quota"),
    )
    if counter.kind == "quota":
        return QuotaExceeded(
            "API key quota used up.",
            retry_after=wait,
            limit=counter.limit,
            remaining=0,
            policy=counter.policy,
        )
    return RateLimited(
        f"Rate limit {counter.policy} exceeded; retry after {math.ceil(wait)}s.",
        retry_after=wait,
        limit=counter.limit,
        remaining=0,
        policy=counter.policy,
    )


class CounterStorage(Protocol):
    """Where counters live. Both operations must be atomic for a whole plan.

    ``apply`` returns whether :func:`allows` held and the counts read *before*
    charging; with ``charge`` it then adds one to every ``current`` counter (setting
    its time to live on creation), only when allowed. Storages raise
    :class:`~apikeys.errors.StorageError` when they cannot answer.
    """

    def apply(self, plan: Plan, at: float, charge: bool) -> tuple[bool, Counts]: ...

    async def aapply(self, plan: Plan, at: float, charge: bool) -> tuple[bool, Counts]: ...

    def clear(self, names: Sequence[str], at: float) -> None: ...

    async def aclear(self, names: Sequence[str], at: float) -> None: ...

    def give_back(self, name: str, uses: int, at: float) -> None: ...

    async def agive_back(self, name: str, uses: int, at: float) -> None: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...
