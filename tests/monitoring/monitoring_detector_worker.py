"""Run by the shared-detector tests in a process of its own: feed one detector a
share of a burst against one key, and report how many times it fired.

``run(url, namespace, key_id, start_iso, offset, events, shared, gate, results)``
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from apikeys.events import VerificationFailed
from apikeys.monitoring import FailedSecretBurst, RedisDetectorState


def run(
    url: str,
    namespace: str,
    key_id: str,
    start_iso: str,
    offset: int,
    events: int,
    shared: bool,
    gate: Any,
    results: Any,
) -> None:
    """Observe ``events`` failures one second apart (this process's start shifted
    by ``offset`` seconds), after every process reached ``gate``."""
    state = RedisDetectorState(url, namespace=namespace) if shared else None
    detector = FailedSecretBurst(threshold=20, window=timedelta(minutes=5), shared=state)
    start = datetime.fromisoformat(start_iso) + timedelta(seconds=offset)
    fired = 0
    try:
        gate.wait(30)
        for n in range(events):
            event = VerificationFailed(
                at=start + timedelta(seconds=2 * n),
                key_id=key_id,
                code="invalid_secret",
                ip=f"198.51.100.{offset}",
            )
            if detector.observe(event) is not None:
                fired += 1
        results.put(fired)
    except BaseException as exc:
        results.put(repr(exc))
        raise
    finally:
        if state is not None:
            state.close()
