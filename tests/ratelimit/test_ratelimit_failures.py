"""An unreachable Redis: fail closed (503) by default, or fail open with a warning."""

from __future__ import annotations

import logging

import pytest

from apikeys import AsyncKeyManager, KeyManager, StorageError
from apikeys.hashing import Argon2Hasher
from apikeys.ratelimit import KeyRateLimiter, RedisCounters
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock


def down_limiter(port: int, *, fail_closed: bool, clock: ManualClock) -> KeyRateLimiter:
    return KeyRateLimiter(
        RedisCounters(f"redis://127.0.0.1:{port}/0", timeout=0.5),
        default=["10/minute"],
        fail_closed=fail_closed,
        clock=clock,
    )


def sync_manager(limiter: KeyRateLimiter, clock: ManualClock) -> KeyManager:
    return KeyManager(
        MemoryStore(),
        prefix="acme",
        hasher=Argon2Hasher.for_tests(),
        clock=clock,
        rate_limiter=limiter,
    )


def async_manager(limiter: KeyRateLimiter, clock: ManualClock) -> AsyncKeyManager:
    return AsyncKeyManager(
        MemoryStore(),
        prefix="acme",
        hasher=Argon2Hasher.for_tests(),
        clock=clock,
        rate_limiter=limiter,
    )


def test_fail_closed_is_the_default(closed_port: int, clock: ManualClock) -> None:
    limiter = down_limiter(closed_port, fail_closed=True, clock=clock)
    assert KeyRateLimiter().fail_closed is True
    keys = sync_manager(limiter, clock)
    issued = keys.create(owner="o")
    with pytest.raises(StorageError) as failed:
        keys.verify(issued.plaintext)
    assert failed.value.status == 503
    assert failed.value.__cause__ is not None  # the driver error, chained
    # Inspection never fails open.
    with pytest.raises(StorageError):
        limiter.peek(issued.key)
    with pytest.raises(StorageError):
        limiter.reset(issued.key)
    limiter.close()


def test_fail_open_lets_requests_through_and_warns(
    closed_port: int, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = down_limiter(closed_port, fail_closed=False, clock=clock)
    keys = sync_manager(limiter, clock)
    issued = keys.create(owner="o")
    with caplog.at_level(logging.WARNING, logger="apikeys"):
        for _ in range(20):  # more than the limit: nothing is counted
            assert keys.authenticate(issued.plaintext).rate_limit is None
    warnings = [r for r in caplog.records if "rate-limit storage unavailable" in r.message]
    assert len(warnings) == 1  # not one per request
    assert warnings[0].levelno == logging.WARNING
    limiter.close()


@pytest.mark.anyio
async def test_async_fail_closed(closed_port: int, clock: ManualClock) -> None:
    limiter = down_limiter(closed_port, fail_closed=True, clock=clock)
    keys = async_manager(limiter, clock)
    issued = await keys.create(owner="o")
    with pytest.raises(StorageError):
        await keys.verify(issued.plaintext)
    with pytest.raises(StorageError):
        await limiter.apeek(issued.key)
    await limiter.aclose()


@pytest.mark.anyio
async def test_async_fail_open(
    closed_port: int, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = down_limiter(closed_port, fail_closed=False, clock=clock)
    keys = async_manager(limiter, clock)
    issued = await keys.create(owner="o")
    with caplog.at_level(logging.WARNING, logger="apikeys"):
        verification = await keys.authenticate(issued.plaintext)
    assert verification.rate_limit is None
    assert any("rate-limit storage unavailable" in r.message for r in caplog.records)
    await limiter.aclose()


def test_a_failed_redis_is_not_reported_as_a_rate_limit(
    closed_port: int, clock: ManualClock
) -> None:
    limiter = down_limiter(closed_port, fail_closed=True, clock=clock)
    key = sync_manager(limiter, clock).create(owner="o").key
    with pytest.raises(StorageError) as failed:
        limiter.hit(key, now=clock())
    assert failed.value.code == "storage_unavailable"
    assert "ConnectionError" in failed.value.message
    limiter.close()


def test_redis_counters_need_a_url_or_client() -> None:
    from apikeys.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        RedisCounters()
