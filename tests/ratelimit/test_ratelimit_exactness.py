"""Exactly N requests pass per window, however many threads and processes race.

All hits of one phase carry the same instant, so the result cannot depend on
timing: only on the storage's atomicity.
"""

from __future__ import annotations

import multiprocessing
from datetime import timedelta

import pytest
from _ratelimit_hammer import hammer, run_process

from apikeys import KeyManager
from apikeys.hashing import Argon2Hasher
from apikeys.ratelimit import KeyRateLimiter, MemoryCounters, RedisCounters
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock

LIMIT = 50
SETTINGS = {"default": [f"{LIMIT}/minute"], "owner_limits": ["1000/minute"]}


def issue(clock: ManualClock) -> tuple[KeyManager, str]:
    keys = KeyManager(MemoryStore(), prefix="acme", hasher=Argon2Hasher.for_tests(), clock=clock)
    return keys, keys.create(owner="o", quota="10000").key.id


@pytest.mark.parametrize("algorithm", ["sliding-window", "fixed-window"])
def test_memory_threads(clock: ManualClock, algorithm: str) -> None:
    keys, key_id = issue(clock)
    key = keys.get(key_id)
    limiter = KeyRateLimiter(MemoryCounters(), algorithm=algorithm, **SETTINGS)  # type: ignore[arg-type]
    for window in range(2):
        now = clock() + timedelta(minutes=2 * window)
        assert hammer(limiter, key, now, threads=16, attempts=10) == LIMIT
    usage = limiter.peek(key, now=clock() + timedelta(minutes=2))
    assert usage.quota is not None
    assert usage.quota.remaining == 10000 - 2 * LIMIT
    assert usage.limits[1].remaining == 1000 - LIMIT


@pytest.mark.redis
def test_redis_two_processes_eight_threads_each(
    clock: ManualClock, redis_url: str, redis_namespace: str
) -> None:
    keys, key_id = issue(clock)
    key = keys.get(key_id)
    phases = [(clock() + timedelta(minutes=2 * n)).isoformat() for n in range(2)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=run_process,
            args=(
                redis_url,
                redis_namespace,
                SETTINGS,
                key.model_dump_json(),
                phases,
                8,
                10,
                start,
                results,
            ),
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        counts = [results.get(timeout=60) for _ in range(2 * len(phases))]
    finally:
        for worker in workers:
            worker.join(timeout=30)
    assert all(worker.exitcode == 0 for worker in workers), counts
    per_phase = {phase: sum(c for p, c in counts if p == phase) for phase in phases}
    assert per_phase == dict.fromkeys(phases, LIMIT)
    limiter = KeyRateLimiter(RedisCounters(redis_url, namespace=redis_namespace), **SETTINGS)  # type: ignore[arg-type]
    try:
        usage = limiter.peek(key, now=clock() + timedelta(minutes=2))
        assert usage.quota is not None
        assert usage.quota.remaining == 10000 - 2 * LIMIT
        assert usage.limits[1].remaining == 1000 - LIMIT
        limiter.reset(key, owner=True, now=clock())
        limiter.reset(key, owner=True, now=clock() + timedelta(minutes=2))
    finally:
        limiter.close()
