"""Fixtures for the rate-limit tests: one limiter factory per counter storage."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apikeys.ratelimit import KeyRateLimiter, MemoryCounters, RedisCounters
from apikeys.testing import ManualClock

MakeLimiter = Callable[..., KeyRateLimiter]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_limiter(
    backend: str, request: pytest.FixtureRequest, clock: ManualClock
) -> Iterator[MakeLimiter]:
    """Build limiters on the parametrized storage (Redis: this test's namespace).

    Every limiter shares one storage, as separate processes would share Redis.
    """
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        namespace = request.getfixturevalue("redis_namespace")
        storage: Any = RedisCounters(url, namespace=namespace)
    else:
        storage = MemoryCounters()

    def make(**kwargs: Any) -> KeyRateLimiter:
        kwargs.setdefault("clock", clock)
        return KeyRateLimiter(storage, **kwargs)

    yield make
    if backend == "redis":
        import redis

        client = redis.Redis.from_url(url)
        try:
            names = list(client.scan_iter(match=namespace + "*"))
            if names:
                client.delete(*names)
        finally:
            client.close()
        storage.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
