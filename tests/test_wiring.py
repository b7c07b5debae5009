"""KeyManager.from_url / from_settings (and the async twins): store, monitor with
usage and audit in the same database, rate limiter; the bare constructor unwired."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from apikeys import (
    AsyncKeyManager,
    KeyManager,
    QuotaExceeded,
    RateLimited,
    Settings,
)
from apikeys.errors import AuthenticationError, ConfigurationError
from apikeys.monitoring import AsyncMonitor, Monitor, SQLiteAuditStore, SQLiteUsageStore
from apikeys.ratelimit import KeyRateLimiter, RedisCounters
from apikeys.storage import (
    AsyncCachedStore,
    CachedStore,
    MemoryStore,
    SQLiteStore,
    register_store,
)
from apikeys.testing import ManualClock


def test_memory_url_for_tests() -> None:
    with KeyManager.from_url("memory://", prefix="acme", hasher="argon2-test") as keys:
        assert isinstance(keys.store, MemoryStore)
        assert isinstance(keys.monitor, Monitor)
        assert isinstance(keys.rate_limiter, KeyRateLimiter)
        issued = keys.create(owner="team-1")
        assert keys.verify(issued.plaintext).owner == "team-1"
        assert [e.type for e in keys.monitor.audit()] == ["key.created"]


def test_usage_and_audit_reach_the_same_database_at_close(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    keys = KeyManager.from_url(f"sqlite:///{path}", prefix="acme", hasher="argon2-test")
    assert isinstance(keys.store, SQLiteStore)
    issued = keys.create(owner="team-1")
    key = keys.verify(issued.plaintext)
    for _ in range(3):
        keys.record_request(key, method="GET", route="/orders", status=200)
    keys.revoke(key.id)
    keys.close()
    audit, usage = SQLiteAuditStore(str(path)), SQLiteUsageStore(str(path))
    try:
        reader = KeyManager(MemoryStore(), prefix="acme")
        with Monitor(reader, audit_store=audit, usage_store=usage, attach=False) as monitor:
            assert [e.type for e in monitor.audit(key_id=key.id)] == [
                "key.created",
                "key.revoked",
            ]
            assert monitor.usage(key.id).total == 3
    finally:
        audit.close()
        usage.close()


def test_per_key_limits_and_quotas_are_enforced_by_default() -> None:
    clock = ManualClock()
    with KeyManager.from_url("memory://", prefix="acme", hasher="argon2-test", clock=clock) as keys:
        limited = keys.create(owner="o", rate_limits=["2/hour"]).plaintext
        keys.verify(limited)
        keys.verify(limited)
        with pytest.raises(RateLimited):
            keys.verify(limited)
        clock.advance(timedelta(hours=2))
        keys.verify(limited)  # the window moved with the manager's clock
        quota = keys.create(owner="o", quota="1").plaintext
        keys.verify(quota)
        with pytest.raises(QuotaExceeded):
            keys.verify(quota)


def test_default_limits_and_redis_counters_from_settings() -> None:
    settings = Settings(prefix="acme", database_url="memory://", rate_limits="1/minute")
    with KeyManager.from_settings(settings, hasher=None) as keys:
        plaintext = keys.create(owner="o").plaintext
        keys.verify(plaintext)
        with pytest.raises(RateLimited):
            keys.verify(plaintext)
    redis = KeyManager.from_url("memory://", prefix="acme", redis_url="redis://127.0.0.1:6379/0")
    assert isinstance(redis.rate_limiter, KeyRateLimiter)
    assert isinstance(redis.rate_limiter.storage, RedisCounters)
    redis.close()  # no counter was written


def test_monitoring_off_and_the_bare_constructor_are_unwired() -> None:
    with KeyManager.from_url("memory://", prefix="acme", monitoring=False) as keys:
        assert keys.monitor is None
        assert keys.rate_limiter is not None
    bare = KeyManager(MemoryStore(), prefix="acme")
    assert (bare.monitor, bare.rate_limiter) == (None, None)


def test_closing_closes_what_the_manager_owns() -> None:
    keys = KeyManager.from_url("memory://", prefix="acme", hasher="argon2-test")
    monitor = keys.monitor
    keys.create(owner="o")
    keys.close()
    keys.close()  # twice is harmless
    assert monitor is not None
    assert monitor.dropped == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": ()}, "prefix"),
        ({"prefix": "acme", "default_expiry": "soon"}, "APIKEYS_DEFAULT_EXPIRY"),
        ({"prefix": "acme", "no_such_option": 1}, "no_such_option"),
        ({"prefix": "acme", "store": MemoryStore()}, "store"),
    ],
)
def test_bad_options_are_configuration_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        KeyManager.from_url("memory://", **kwargs)  # type: ignore[arg-type]


def test_a_third_party_store_needs_monitoring_off() -> None:
    register_store("thirdparty", lambda url, **options: MemoryStore())
    with pytest.raises(ConfigurationError, match="monitoring=False"):
        KeyManager.from_url("thirdparty://x", prefix="acme")
    KeyManager.from_url("thirdparty://x", prefix="acme", monitoring=False).close()


def test_from_settings_wants_settings() -> None:
    with pytest.raises(ConfigurationError, match="Settings"):
        KeyManager.from_settings({"prefix": "acme"})  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_the_async_manager_is_wired_the_same(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    keys = AsyncKeyManager.from_url(f"sqlite:///{path}", prefix="acme", hasher="argon2-test")
    assert isinstance(keys.monitor, AsyncMonitor)
    issued = await keys.create(owner="o", quota="1")
    await keys.verify(issued.plaintext)
    with pytest.raises(QuotaExceeded):
        await keys.verify(issued.plaintext)
    await keys.aclose()
    with KeyManager.from_url(f"sqlite:///{path}", prefix="acme") as reader:
        assert reader.monitor is not None
        types = [e.type for e in reader.monitor.audit(key_id=issued.key.id)]
    assert types == ["key.created", "key.rate_limited"]


def _wait_live(store: CachedStore | AsyncCachedStore) -> None:
    deadline = time.monotonic() + 10
    while not store.live:
        assert time.monotonic() < deadline, "the invalidation channel never came up"
        time.sleep(0.01)  # waiting for the listener's first heartbeat


@pytest.mark.redis
def test_cache_invalidation_puts_a_cached_store_in_front(tmp_path: Path, redis_url: str) -> None:
    """Two processes' managers on one database, each behind a record cache: a revoke
    by one is seen by the other once announced (within max_staleness)."""
    options = {
        "prefix": "acme",
        "hasher": "argon2-test",
        "monitoring": False,
        "cache_invalidation": redis_url,
        "cache_max_staleness": "100ms",
    }
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    with (
        KeyManager.from_url(url, **options) as writer,
        KeyManager.from_url(url, **options) as reader,
    ):
        assert isinstance(reader.store, CachedStore)
        assert isinstance(reader.store.store, SQLiteStore)
        assert reader.store.max_staleness == timedelta(milliseconds=100)
        _wait_live(reader.store)
        issued = writer.create(owner="team-1")
        reader.verify(issued.plaintext)
        assert reader.store.get(issued.key.id) is reader.store.get(issued.key.id)  # from memory
        writer.revoke(issued.key.id)
        deadline = time.monotonic() + 10
        while reader.store.get(issued.key.id).key.revoked_at is None:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the revocation never reached the reader"
            time.sleep(0.005)  # the announcement is on its way
        with pytest.raises(AuthenticationError, match="revoked") as refused:
            reader.verify(issued.plaintext)
        assert refused.value.code == "revoked"


@pytest.mark.anyio
@pytest.mark.redis
async def test_the_async_manager_gets_the_async_cache(redis_url: str) -> None:
    keys = AsyncKeyManager.from_url(
        "memory://", prefix="acme", monitoring=False, cache_invalidation=redis_url
    )
    try:
        assert isinstance(keys.store, AsyncCachedStore)
        assert isinstance(keys.store.store, MemoryStore)
    finally:
        await keys.aclose()


def test_no_cache_without_a_channel() -> None:
    with KeyManager.from_url("memory://", prefix="acme", monitoring=False) as keys:
        assert isinstance(keys.store, MemoryStore)
