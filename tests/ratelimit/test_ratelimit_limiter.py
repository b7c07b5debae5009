"""KeyRateLimiter on each counter storage (memory; the real Redis), alone and in
both managers. Time comes from a ManualClock: no sleeps."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta

import pytest

from apikeys import (
    APIKey,
    AsyncKeyManager,
    AsyncRateLimiter,
    KeyManager,
    QuotaExceeded,
    RateLimited,
    RateLimiter,
)
from apikeys.errors import ConfigurationError, InvalidArgument
from apikeys.events import Event, KeyVerified, RateLimitExceeded
from apikeys.hashing import Argon2Hasher
from apikeys.ratelimit import KeyRateLimiter, Usage
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock

MakeLimiter = Callable[..., KeyRateLimiter]


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)


def manager(clock: ManualClock, limiter: KeyRateLimiter, **kwargs: object) -> KeyManager:
    return KeyManager(
        MemoryStore(),
        prefix="acme",
        hasher=Argon2Hasher.for_tests(),
        clock=clock,
        rate_limiter=limiter,
        **kwargs,  # type: ignore[arg-type]
    )


def charge(limiter: KeyRateLimiter, key: APIKey, clock: ManualClock, times: int) -> int:
    """Hit ``times`` times; return how many were allowed."""
    allowed = 0
    for _ in range(times):
        try:
            limiter.hit(key, now=clock())
        except RateLimited:
            continue
        allowed += 1
    return allowed


def test_it_implements_both_protocols_and_its_twins_match() -> None:
    limiter = KeyRateLimiter()
    assert isinstance(limiter, RateLimiter)
    assert isinstance(limiter, AsyncRateLimiter)
    public = {n for n in dir(KeyRateLimiter) if not n.startswith("_")}
    methods = {n for n in public if callable(getattr(KeyRateLimiter, n))}
    sync = {n for n in methods if not inspect.iscoroutinefunction(getattr(KeyRateLimiter, n))}
    asyncs = methods - sync
    assert {"a" + n for n in sync} == asyncs
    for name in sync:
        ours = inspect.signature(getattr(KeyRateLimiter, name))
        twin = inspect.signature(getattr(KeyRateLimiter, "a" + name))
        assert list(ours.parameters) == list(twin.parameters), name


def test_no_limit_means_no_status(make_limiter: MakeLimiter, clock: ManualClock) -> None:
    limiter = make_limiter()
    keys = manager(clock, limiter)
    issued = keys.create(owner="o")
    assert keys.authenticate(issued.plaintext).rate_limit is None
    assert limiter.peek(issued.key) == Usage((), None, True, 0.0)


def test_per_key_limits_win_over_the_default(make_limiter: MakeLimiter, clock: ManualClock) -> None:
    limiter = make_limiter(default=["5/minute"])
    keys = manager(clock, limiter)
    own = keys.create(owner="o", rate_limits=["2/minute"]).key
    plain = keys.create(owner="o").key
    assert charge(limiter, own, clock, 10) == 2
    assert charge(limiter, plain, clock, 10) == 5


def test_owner_limits_are_shared_by_all_keys_of_an_owner(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(default=["100/minute"], owner_limits=["3/minute"])
    keys = manager(clock, limiter)
    first, second = (keys.create(owner="team-a").key for _ in range(2))
    other = keys.create(owner="team-b").key
    assert charge(limiter, first, clock, 2) == 2
    assert charge(limiter, second, clock, 5) == 1
    with pytest.raises(RateLimited) as refused:
        limiter.hit(first, now=clock())
    assert refused.value.policy == "owner:3/minute"
    assert charge(limiter, other, clock, 5) == 3


def test_owner_limits_can_depend_on_the_owner(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    plans = {"big": ["10/minute"], "small": ["1/minute"]}
    limiter = make_limiter(owner_limits=lambda owner: plans.get(owner, []))
    keys = manager(clock, limiter)
    assert charge(limiter, keys.create(owner="big").key, clock, 20) == 10
    assert charge(limiter, keys.create(owner="small").key, clock, 20) == 1
    assert limiter.hit(keys.create(owner="none").key, now=clock()) is None


def test_fixed_window_edges(make_limiter: MakeLimiter, clock: ManualClock) -> None:
    limiter = make_limiter(default=["3/minute"], algorithm="fixed-window")
    key = manager(clock, limiter).create(owner="o").key
    clock.advance(timedelta(seconds=59.999))  # the last millisecond of a window
    assert charge(limiter, key, clock, 3) == 3
    with pytest.raises(RateLimited) as refused:
        limiter.hit(key, now=clock())
    assert refused.value.retry_after == pytest.approx(0.001, abs=1e-6)
    clock.advance(timedelta(milliseconds=1))  # the first instant of the next one
    status = limiter.hit(key, now=clock())
    assert status is not None
    assert (status.remaining, status.reset_after, status.window) == (2, 60, 60)


def test_sliding_window_weighs_the_previous_window(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(default=["10/minute"])
    key = manager(clock, limiter).create(owner="o").key
    assert charge(limiter, key, clock, 10) == 10
    clock.advance(timedelta(seconds=60))  # next window: the previous one weighs 100 %
    with pytest.raises(RateLimited) as refused:
        limiter.hit(key, now=clock())
    wait = timedelta(seconds=refused.value.retry_after)
    clock.advance(wait - timedelta(milliseconds=2))
    with pytest.raises(RateLimited):
        limiter.hit(key, now=clock())
    clock.advance(timedelta(milliseconds=2))
    status = limiter.hit(key, now=clock())
    assert status is not None
    assert status.remaining == 0
    # Half-way through, half the previous window (5) and this one (1) count: 4 more fit.
    clock.advance(timedelta(seconds=30) - wait)
    assert charge(limiter, key, clock, 10) == 4
    clock.advance(timedelta(seconds=90))  # two windows on: nothing counts
    assert charge(limiter, key, clock, 20) == 10


def test_a_refused_request_is_charged_nowhere(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(owner_limits=["2/minute"])
    keys = manager(clock, limiter)
    key = keys.create(owner="o", rate_limits=["5/minute"], quota="10").key
    assert charge(limiter, key, clock, 6) == 2
    usage = limiter.peek(key)
    assert [s.remaining for s in usage.limits] == [3, 0]
    assert usage.quota is not None
    assert usage.quota.remaining == 8
    assert not usage.allowed
    assert usage.retry_after > 0


def test_quota_runs_out_and_peek_does_not_charge(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(exhausted_retry_after=120)
    keys = manager(clock, limiter)
    issued = keys.create(owner="o", quota="3")
    for _ in range(5):
        usage = limiter.peek(issued.key)
    assert usage.quota is not None
    assert usage.quota.remaining == 3
    assert usage.allowed
    statuses = [keys.authenticate(issued.plaintext).rate_limit for _ in range(3)]
    assert [s.remaining for s in statuses if s is not None] == [2, 1, 0]
    assert statuses[0] is not None
    assert statuses[0].policy == "quota:3"
    with pytest.raises(QuotaExceeded) as refused:
        keys.verify(issued.plaintext)
    assert (refused.value.status, refused.value.retry_after) == (429, 120)
    assert (refused.value.limit, refused.value.remaining) == (3, 0)
    clock.advance(timedelta(days=400))  # a quota without a period never refills itself
    with pytest.raises(QuotaExceeded):
        keys.verify(issued.plaintext)
    usage = limiter.peek(issued.key)
    assert usage.quota is not None
    assert usage.quota.remaining == 0
    assert (usage.allowed, usage.retry_after) == (False, 120)


def test_refill(make_limiter: MakeLimiter, clock: ManualClock) -> None:
    limiter = make_limiter()
    keys = manager(clock, limiter)
    key = keys.create(owner="o", quota="4").key
    assert charge(limiter, key, clock, 9) == 4
    limiter.refill(key, 1)
    assert charge(limiter, key, clock, 9) == 1
    limiter.refill(key, 100)  # never more than the quota
    assert charge(limiter, key, clock, 9) == 4
    limiter.refill(key)
    assert charge(limiter, key, clock, 9) == 4
    with pytest.raises(InvalidArgument):
        limiter.refill(key, 0)
    with pytest.raises(InvalidArgument):
        limiter.refill(keys.create(owner="o").key)


def test_a_periodic_quota_refills_each_period_from_creation(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter()
    keys = manager(clock, limiter)
    clock.advance(timedelta(hours=6))
    key = keys.create(owner="o", quota="2/day").key
    clock.advance(timedelta(hours=20))
    assert charge(limiter, key, clock, 5) == 2
    with pytest.raises(QuotaExceeded) as refused:
        limiter.hit(key, now=clock())
    assert refused.value.retry_after == pytest.approx(4 * 3600)
    clock.advance(timedelta(hours=4))
    assert charge(limiter, key, clock, 5) == 2


def test_a_quota_change_keeps_what_was_used(make_limiter: MakeLimiter, clock: ManualClock) -> None:
    limiter = make_limiter()
    keys = manager(clock, limiter)
    key = keys.create(owner="o", quota="3").key
    assert charge(limiter, key, clock, 3) == 3
    raised = keys.update(key.id, quota="5")
    assert charge(limiter, raised, clock, 9) == 2


def test_reset(make_limiter: MakeLimiter, clock: ManualClock) -> None:
    limiter = make_limiter(default=["2/minute"], owner_limits=["3/minute"])
    keys = manager(clock, limiter)
    key = keys.create(owner="o", quota="10").key
    assert charge(limiter, key, clock, 5) == 2
    limiter.reset(key)
    assert charge(limiter, key, clock, 5) == 1  # the owner's window still counts
    limiter.reset(key, owner=True)
    assert charge(limiter, key, clock, 5) == 2
    usage = limiter.peek(key)
    assert usage.quota is not None
    assert usage.quota.remaining == 8


def test_through_the_manager_with_events(make_limiter: MakeLimiter, clock: ManualClock) -> None:
    sink = Sink()
    limiter = make_limiter(default=["2/minute"])
    keys = manager(clock, limiter, events=sink)
    issued = keys.create(owner="o")
    verification = keys.authenticate(issued.plaintext)
    assert verification.key.id == issued.key.id
    assert verification.rate_limit is not None
    assert verification.rate_limit.remaining == 1
    keys.verify(issued.plaintext)
    with pytest.raises(RateLimited) as refused:
        keys.verify(issued.plaintext)
    assert refused.value.status == 429
    assert refused.value.policy == "2/minute"
    limited = [e for e in sink.events if isinstance(e, RateLimitExceeded)]
    assert len(limited) == 1
    assert (limited[0].key_id, limited[0].policy) == (issued.key.id, "2/minute")
    assert len([e for e in sink.events if isinstance(e, KeyVerified)]) == 2


def test_rejected_requests_cost_nothing(make_limiter: MakeLimiter, clock: ManualClock) -> None:
    limiter = make_limiter(default=["2/minute"])
    keys = manager(clock, limiter)
    issued = keys.create(owner="o", scopes=["orders:read"])
    for _ in range(5):
        with pytest.raises(Exception, match="scope"):
            keys.verify(issued.plaintext, scopes=["orders:write"])
    assert limiter.peek(issued.key).limits[0].remaining == 2


@pytest.mark.anyio
async def test_through_the_async_manager(make_limiter: MakeLimiter, clock: ManualClock) -> None:
    limiter = make_limiter(default=["3/minute"])
    keys = AsyncKeyManager(
        MemoryStore(),
        prefix="acme",
        hasher=Argon2Hasher.for_tests(),
        clock=clock,
        rate_limiter=limiter,
    )
    try:
        issued = await keys.create(owner="o", quota="10")
        first = await keys.authenticate(issued.plaintext)
        assert first.rate_limit is not None
        assert first.rate_limit.remaining == 2
        await keys.verify(issued.plaintext)
        await keys.verify(issued.plaintext)
        with pytest.raises(RateLimited):
            await keys.verify(issued.plaintext)
        usage = await limiter.apeek(issued.key)
        assert usage.quota is not None
        assert usage.quota.remaining == 7
        await limiter.areset(issued.key)
        await keys.verify(issued.plaintext)
        await limiter.arefill(issued.key, 5)
        usage = await limiter.apeek(issued.key)
        assert usage.quota is not None
        assert usage.quota.remaining == 10
        await limiter.arefill(issued.key)
        # The sync and async paths share one count.
        assert limiter.hit(issued.key, now=clock()) is not None
        usage = await limiter.apeek(issued.key)
        assert usage.limits[0].remaining == 1
    finally:
        await limiter.aclose()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default": "100/minute"},
        {"default": ["100/fortnight"]},
        {"owner_limits": ["0/minute"]},
        {"algorithm": "leaky-bucket"},
        {"exhausted_retry_after": -1},
        {"storage": "memcached://127.0.0.1"},
        {"storage": object()},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        KeyRateLimiter(**kwargs)  # type: ignore[arg-type]


def test_a_bad_owner_limit_from_the_function_is_a_configuration_error(
    clock: ManualClock,
) -> None:
    limiter = KeyRateLimiter(owner_limits=lambda owner: ["lots"])
    key = manager(clock, limiter).create(owner="o").key
    with pytest.raises(ConfigurationError, match="owner_limits"):
        limiter.hit(key, now=clock())


def test_memory_counters_stay_bounded(clock: ManualClock) -> None:
    from apikeys.ratelimit import MemoryCounters

    counters = MemoryCounters(sweep_every=50)
    limiter = KeyRateLimiter(counters, default=["5/second"], clock=clock)
    keys = manager(clock, limiter)
    issued = [keys.create(owner="o").key for _ in range(20)]
    for _ in range(30):
        for key in issued:
            limiter.hit(key, now=clock())
        clock.advance(timedelta(seconds=1))
    # Only the last two windows of each key can still be alive.
    assert len(counters) <= 2 * len(issued)


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_from_a_url_or_your_own_clients(
    redis_url: str, redis_namespace: str, clock: ManualClock
) -> None:
    import redis
    import redis.asyncio

    from apikeys.ratelimit import RedisCounters

    client = redis.Redis.from_url(redis_url)
    async_client = redis.asyncio.Redis.from_url(redis_url)
    ours = KeyRateLimiter(
        RedisCounters(client=client, async_client=async_client, namespace=redis_namespace),
        default=["3/minute"],
        clock=clock,
    )
    from_url = KeyRateLimiter(redis_url, default=["3/minute"], clock=clock)
    assert from_url.storage.namespace == "apikeys:rl:"  # type: ignore[attr-defined]
    key = manager(clock, ours).create(owner="o").key
    try:
        assert ours.hit(key, now=clock()) is not None
        assert await ours.ahit(key, now=clock()) is not None
        assert ours.peek(key).limits[0].remaining == 1
        assert from_url.peek(key).limits[0].remaining == 3  # another namespace
    finally:
        ours.reset(key)
        await ours.aclose()
        await from_url.aclose()
    # Clients given by the caller stay open.
    assert client.ping()
    assert await async_client.ping()
    client.close()
    await async_client.aclose()


def test_a_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from apikeys.ratelimit import RedisCounters

    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigurationError, match=r"apikeys\[redis\]"):
        RedisCounters("redis://127.0.0.1:6379/0")
