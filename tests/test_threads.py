"""Threads: verifications racing a revocation; revocation wins for every call that
starts after ``revoke()`` returns."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from apikeys import AuthenticationError, KeyManager
from apikeys.hashing import Argon2Hasher
from apikeys.storage import MemoryStore
from core_support import with_wrong_secret

THREADS = 8


@dataclass
class Log:
    started_ns: list[int] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)


def _verifier(
    keys: KeyManager,
    plaintext: str,
    log: Log,
    warmed: threading.Barrier,
    busy: threading.Event,
    revoked: threading.Event,
) -> None:
    keys.verify(plaintext)
    warmed.wait()
    after_revoke = 0
    # Keep going until well after the revocation, so late starters are observed too.
    while after_revoke < 200:
        if revoked.is_set():
            after_revoke += 1
        start = time.perf_counter_ns()
        try:
            keys.verify(plaintext)
        except AuthenticationError as exc:
            outcome = exc.code
        else:
            outcome = "ok"
        log.started_ns.append(start)
        log.outcomes.append(outcome)
        if len(log.outcomes) == 50:
            busy.set()


@pytest.mark.parametrize("cache_size", [10_000, 0], ids=["warm", "cold"])
def test_no_verify_starting_after_revoke_succeeds(cache_size: int) -> None:
    keys = KeyManager(
        MemoryStore(),
        prefix="acme",
        hasher=Argon2Hasher.for_tests(),
        cache_size=cache_size,
        max_concurrent_hashes=THREADS,
        hash_wait=30,
    )
    issued = keys.create(owner="o")
    logs = [Log() for _ in range(THREADS)]
    warmed = threading.Barrier(THREADS + 1)
    busy = [threading.Event() for _ in range(THREADS)]
    revoked = threading.Event()
    workers = [
        threading.Thread(
            target=_verifier, args=(keys, issued.plaintext, log, warmed, ready, revoked)
        )
        for log, ready in zip(logs, busy, strict=True)
    ]
    for worker in workers:
        worker.start()
    warmed.wait(timeout=30)
    # Revoke while every verifier is in full swing.
    for ready in busy:
        assert ready.wait(timeout=30)
    keys.revoke(issued.key.id, reason="leaked")
    revoked_ns = time.perf_counter_ns()
    revoked.set()
    for worker in workers:
        worker.join(timeout=60)
        assert not worker.is_alive()

    late_successes = [
        start
        for log in logs
        for start, outcome in zip(log.started_ns, log.outcomes, strict=True)
        if outcome == "ok" and start > revoked_ns
    ]
    assert late_successes == []
    outcomes = [o for log in logs for o in log.outcomes]
    assert set(outcomes) <= {"ok", "revoked"}
    assert outcomes.count("ok") >= 50 * THREADS
    late = sum(s > revoked_ns for log in logs for s in log.started_ns)
    assert late >= 200 * THREADS  # every thread verified after the revocation
    # The record stays revoked for every later caller, right or wrong secret.
    with pytest.raises(AuthenticationError) as info:
        keys.verify(issued.plaintext)
    assert info.value.code == "revoked"
    with pytest.raises(AuthenticationError) as info:
        keys.verify(with_wrong_secret(issued.plaintext))
    assert info.value.code == "invalid_secret"


def _revoke(keys: KeyManager, key_id: str, barrier: threading.Barrier) -> None:
    barrier.wait()
    keys.revoke(key_id, reason="leaked")


def _rotate(
    keys: KeyManager, key_id: str, barrier: threading.Barrier, errors: list[Exception]
) -> None:
    barrier.wait()
    try:
        keys.rotate(key_id)
    except Exception as exc:  # the test inspects it
        errors.append(exc)


def test_concurrent_revoke_and_rotate_lose_no_write() -> None:
    for _ in range(20):
        store = MemoryStore()
        keys = KeyManager(store, prefix="acme", hasher=Argon2Hasher.for_tests())
        issued = keys.create(owner="o")
        barrier = threading.Barrier(2)
        errors: list[Exception] = []
        threads = [
            threading.Thread(target=_revoke, args=(keys, issued.key.id, barrier)),
            threading.Thread(target=_rotate, args=(keys, issued.key.id, barrier, errors)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        old = keys.get(issued.key.id)
        assert old.revoked_at is not None
        assert old.revoke_reason == "leaked"
        if errors:
            # The rotation lost the race and saw the revoked key: nothing was issued.
            assert [type(e).__name__ for e in errors] == ["InvalidKeyState"]
            assert old.replaced_by is None
            assert len(store) == 1
        else:
            assert old.replaced_by is not None
            assert len(store) == 2
