"""What a rate limiter adds to a warm ``KeyManager.verify`` (memory key store).

Cases, measured side by side in one run: no limiter; the in-process limiter; the
Redis limiter (127.0.0.1:6379). Each with one limit, and with the heavier plan of
two key limits + an owner limit + a quota (four counters, still one Redis round
trip). Limits are set high enough never to refuse. For reference, the last rows
time the ``limits`` library on the same Redis doing what one request needs for
headers (``hit`` + ``get_window_stats``) — the measurement behind building our
own one-script storage (see docs/ratelimits.md).

Run: ``nox -s bench -- ratelimit`` (or ``python benchmarks/bench_ratelimit.py``).
"""

from __future__ import annotations

import secrets
import socket
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Result, measure, table

from apikeys import KeyManager
from apikeys.ratelimit import KeyRateLimiter, RedisCounters
from apikeys.storage import MemoryStore

REDIS_URL = "redis://127.0.0.1:6379/0"
BIG = "999999999999"
ONE = [f"{BIG}/minute"]
HEAVY = {"rate_limits": [f"{BIG}/second", f"{BIG}/day"], "quota": BIG}


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0):
            return True
    except OSError:
        return False


def _verify(limiter: KeyRateLimiter | None, **key_settings: object) -> Callable[[], object]:
    keys = KeyManager(MemoryStore(), prefix="acme", failure_limit=0, rate_limiter=limiter)
    raw = keys.create(owner="bench", **key_settings).plaintext  # type: ignore[arg-type]
    keys.verify(raw)  # warm: the Argon2 check is cached from here on
    return lambda: keys.verify(raw)


def _limits_library(namespace: str) -> list[Result]:
    try:
        from limits import parse
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
    except ImportError:
        return []
    storage = RedisStorage(REDIS_URL, key_prefix=namespace + "limits")
    minute, day = parse(f"{BIG}/minute"), parse(f"{BIG}/day")
    results = []
    for name, strategy in (
        ("sliding-window counter", SlidingWindowCounterRateLimiter(storage)),
        ("moving window", MovingWindowRateLimiter(storage)),
    ):
        ident = secrets.token_hex(4)

        def one(strategy: object = strategy, ident: str = ident) -> None:
            strategy.hit(minute, ident)  # type: ignore[attr-defined]
            strategy.get_window_stats(minute, ident)  # type: ignore[attr-defined]

        def two(strategy: object = strategy, ident: str = ident) -> None:
            for item in (minute, day):
                strategy.hit(item, ident)  # type: ignore[attr-defined]
                strategy.get_window_stats(item, ident)  # type: ignore[attr-defined]

        results.append(measure(f"`limits` {name}: hit + stats, 1 limit", one, n=3_000))
        results.append(measure(f"`limits` {name}: hit + stats, 2 limits", two, n=3_000))
    storage.reset()
    return results


def main() -> None:
    namespace = f"apikeys-bench:{secrets.token_hex(4)}:"
    results: list[Result] = [
        measure("verify, no limiter", _verify(None), n=20_000, batch=5),
        measure(
            "verify + memory limiter, 1 limit",
            _verify(KeyRateLimiter(default=ONE)),
            n=20_000,
            batch=5,
        ),
        measure(
            "verify + memory limiter, 2 key limits + owner limit + quota",
            _verify(KeyRateLimiter(owner_limits=ONE), **HEAVY),
            n=20_000,
            batch=5,
        ),
    ]
    limiters: list[KeyRateLimiter] = []
    if _redis_up():
        one = KeyRateLimiter(RedisCounters(REDIS_URL, namespace=namespace), default=ONE)
        heavy = KeyRateLimiter(RedisCounters(REDIS_URL, namespace=namespace), owner_limits=ONE)
        limiters += [one, heavy]
        results += [
            measure("verify + Redis limiter, 1 limit", _verify(one), n=5_000),
            measure(
                "verify + Redis limiter, 2 key limits + owner limit + quota",
                _verify(heavy, **HEAVY),
                n=5_000,
            ),
        ]
        results += _limits_library(namespace)
    else:
        print("Redis is not reachable on 127.0.0.1:6379: Redis cases skipped.\n")
    print(
        table(
            "Rate limiting: KeyManager.verify on MemoryStore, warm key",
            results,
            command="nox -s bench -- ratelimit",
        )
    )
    if limiters:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        names = list(client.scan_iter(match=namespace + "*"))
        if names:
            client.delete(*names)
        client.close()
        for limiter in limiters:
            limiter.close()


if __name__ == "__main__":
    main()
