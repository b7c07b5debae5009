"""Hammer one key from many threads (and, through ``run_process``, processes)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from apikeys import APIKey, RateLimited
from apikeys.ratelimit import KeyRateLimiter, RedisCounters


def hammer(
    limiter: KeyRateLimiter,
    key: APIKey,
    now: datetime,
    *,
    threads: int,
    attempts: int,
    start: threading.Barrier | None = None,
) -> int:
    """``threads`` threads each hit ``attempts`` times at ``now``; return how many
    hits were allowed. Any error other than RateLimited is re-raised."""
    allowed = [0] * threads
    errors: list[BaseException] = []
    gate = threading.Barrier(threads)

    def work(slot: int) -> None:
        try:
            gate.wait()
            for _ in range(attempts):
                try:
                    limiter.hit(key, now=now)
                except RateLimited:
                    continue
                allowed[slot] += 1
        except BaseException as exc:  # reported to the test, not swallowed
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(slot,)) for slot in range(threads)]
    if start is not None:
        start.wait()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return sum(allowed)


def run_process(
    url: str,
    namespace: str,
    settings: dict[str, Any],
    key_json: str,
    phases: list[str],
    threads: int,
    attempts: int,
    start: Any,
    results: Any,
) -> None:
    """One worker process: for each phase (an ISO instant), wait for every
    process at ``start``, hammer, and put the count allowed on ``results``."""
    limiter = KeyRateLimiter(RedisCounters(url, namespace=namespace), **settings)
    key = APIKey.model_validate_json(key_json)
    try:
        for phase in phases:
            count = hammer(
                limiter,
                key,
                datetime.fromisoformat(phase),
                threads=threads,
                attempts=attempts,
                start=start,
            )
            results.put((phase, count))
    except BaseException as exc:
        results.put(("error", repr(exc)))
        raise
    finally:
        limiter.close()
