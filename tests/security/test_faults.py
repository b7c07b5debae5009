"""Real faults, injected into real servers while keys are verified.

For each fault: no wrong key is ever accepted, a good key is either accepted or
refused with a typed 503 (never reported as an invalid key), and the time from
the end of the fault to the first success is measured and reported (asserted only
against a generous sanity bound).

Only the battery's own parts are hurt: PostgreSQL backends with this test's
``application_name`` in the session's own database, clients of a redis-server the
test starts on port 6392, a SQLite file in a temporary folder.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _faults import OwnRedis, Tally, recovery_ms
from _tier import TIER, budget, heavy

from apikeys import KeyManager
from apikeys.errors import AuthenticationError, StorageError
from apikeys.hashing import Argon2Hasher
from apikeys.ratelimit import KeyRateLimiter, RedisCounters
from apikeys.storage import MemoryStore, SQLiteStore
from apikeys.testing import ManualClock
from core_support import with_wrong_secret

pytestmark = heavy


def _manager(store: Any, **kwargs: Any) -> KeyManager:
    # failure_limit=0: the wrong keys verified below would otherwise throttle the id.
    return KeyManager(
        store, prefix="acme", hasher=Argon2Hasher.for_tests(), failure_limit=0, **kwargs
    )


def _hammer(keys: KeyManager, good: str, wrong: str, tally: Tally, until: threading.Event) -> None:
    """Verify the good and the wrong key in turn until ``until`` is set."""
    while not until.is_set():
        tally.verify(keys, good, good=True)
        tally.verify(keys, wrong, good=False)


def _record(battery: Any, part: str, checked: str, tally: Tally, recovery: str) -> None:
    battery.record(
        part,
        checked,
        count=tally.attempts,
        false_accepts=tally.false_accepts,
        typed_errors=tally.typed_503,
        measured=f"{tally.accepted} good accepted; recovery {recovery} ({TIER})",
    )


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture
def pg_victim(postgres_url: str) -> tuple[str, str]:
    """(URL, application_name): the name marks the backends this test may hurt."""
    from apikeys.storage import SQLAlchemyStore

    store = SQLAlchemyStore(postgres_url)
    store.create_schema()
    store.close()
    return postgres_url, f"apikeys_battery_{secrets.token_hex(4)}"


def _admin(url: str) -> Any:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(dsn, autocommit=True)


_TERMINATE_OWN = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid()"
)


@pytest.mark.postgres
def test_pg_backends_terminated_in_a_loop(pg_victim: tuple[str, str], battery: Any) -> None:
    from apikeys.storage import SQLAlchemyStore

    url, name = pg_victim
    store = SQLAlchemyStore(url, engine_options={"connect_args": {"application_name": name}})
    keys = _manager(store)
    issued = keys.create(owner="victim")
    good, wrong = issued.plaintext, with_wrong_secret(issued.plaintext)
    assert keys.verify(good).id == issued.key.id
    tally, stop = Tally(), threading.Event()
    killed = 0
    worker = threading.Thread(target=_hammer, args=(keys, good, wrong, tally, stop))
    with _admin(url) as admin:
        worker.start()
        deadline = time.monotonic() + budget(0, 4, 40)
        while time.monotonic() < deadline:
            killed += admin.execute(_TERMINATE_OWN, (name,)).fetchone()[0]
            time.sleep(0.02)
        stop.set()
        worker.join()
    recovery = recovery_ms(lambda: Tally().verify(keys, good, good=True))
    _record(
        battery,
        "fault: PostgreSQL pg_terminate_backend loop",
        f"own backends killed every 20 ms ({killed} kills)",
        tally,
        f"{recovery:.0f} ms",
    )
    keys.close()
    tally.check()
    assert killed > 0
    assert tally.typed_503 > 0, "no verification ever met a killed connection"


@pytest.mark.postgres
def test_pg_table_lock_and_statement_timeout(pg_victim: tuple[str, str], battery: Any) -> None:
    from apikeys.storage import SQLAlchemyStore

    url, name = pg_victim
    store = SQLAlchemyStore(
        url,
        engine_options={
            "connect_args": {"application_name": name, "options": "-c statement_timeout=300"}
        },
    )
    keys = _manager(store, touch_interval=None)
    issued = keys.create(owner="victim")
    good, wrong = issued.plaintext, with_wrong_secret(issued.plaintext)
    keys.verify(good)
    tally = Tally()
    with _admin(url) as admin:
        admin.execute("BEGIN")
        admin.execute("LOCK TABLE apikeys_keys IN ACCESS EXCLUSIVE MODE")
        for _ in range(budget(0, 6, 60)):
            tally.verify(keys, good, good=True)
            tally.verify(keys, wrong, good=False)
        with pytest.raises(StorageError):
            keys.revoke(issued.key.id)
        released = time.perf_counter()
        admin.execute("COMMIT")
    recovery = recovery_ms(lambda: Tally().verify(keys, good, good=True))
    after = (time.perf_counter() - released) * 1000
    _record(
        battery,
        "fault: PostgreSQL LOCK TABLE + statement_timeout=300ms",
        "every statement blocked by an ACCESS EXCLUSIVE lock until the timeout",
        tally,
        f"{recovery:.0f} ms ({after:.0f} ms after COMMIT)",
    )
    keys.close()
    tally.check()
    assert tally.accepted == 0, "a read went through an ACCESS EXCLUSIVE lock"
    assert tally.typed_503 == tally.attempts


# --- Redis (the battery's own server) -------------------------------------------------------

CLIENT = "apikeys-battery-victim"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _limited_manager(server: OwnRedis, namespace: str) -> KeyManager:
    counters = RedisCounters(f"{server.url}?client_name={CLIENT}", namespace=namespace, timeout=0.3)
    limiter = KeyRateLimiter(counters, default=["1000000/hour"])
    return _manager(MemoryStore(), rate_limiter=limiter, clock=ManualClock())


def _counted(server: OwnRedis, namespace: str) -> int:
    import redis

    with redis.Redis.from_url(server.url) as admin:
        names = list(admin.scan_iter(match=namespace + "*"))
        return sum(int(admin.get(name) or 0) for name in names)


def _admin_redis(server: OwnRedis) -> Any:
    import redis

    return redis.Redis.from_url(server.url, socket_timeout=10)


@pytest.mark.parametrize("fault", ["client-kill", "debug-sleep", "restart"])
def test_redis_counters_fail_closed(fault: str, own_redis: OwnRedis, battery: Any) -> None:
    """Every accepted request was counted (accepted <= counter, per server life): the
    limiter never fails open; a request Redis could not count is a typed 503."""
    namespace = f"battery:{secrets.token_hex(4)}:"
    keys = _limited_manager(own_redis, namespace)
    issued = keys.create(owner="victim")
    good, wrong = issued.plaintext, with_wrong_secret(issued.plaintext)
    tally, stop = Tally(), threading.Event()
    recoveries: list[float] = []
    phases: list[tuple[int, int]] = []  # (accepted, counted) per life of the server
    keys.verify(good)
    phase_start = 0
    worker = threading.Thread(target=_hammer, args=(keys, good, wrong, tally, stop))
    worker.start()
    try:
        admin = _admin_redis(own_redis)
        for _ in range(budget(0, 3, 20)):
            time.sleep(0.2)
            if fault == "client-kill":
                victims = [c for c in admin.client_list() if c.get("name") == CLIENT]
                for client in victims:
                    admin.execute_command("CLIENT", "KILL", "ID", client["id"])
            elif fault == "debug-sleep":
                admin.execute_command("DEBUG", "SLEEP", "1")
            else:
                # Accepted first, then counted: every accept read was counted before.
                accepted = tally.accepted - phase_start
                phases.append((accepted, _counted(own_redis, namespace)))
                admin.close()
                own_redis.stop()
                time.sleep(0.5)
                own_redis.start()
                admin = _admin_redis(own_redis)
                phase_start = tally.accepted
            ended = tally.accepted
            start = time.perf_counter()
            while tally.accepted == ended and time.perf_counter() - start < 30:
                time.sleep(0.002)
            recoveries.append((time.perf_counter() - start) * 1000)
        admin.close()
    finally:
        stop.set()
        worker.join()
    phases.append((tally.accepted - phase_start, _counted(own_redis, namespace)))
    recoveries.sort()
    _record(
        battery,
        f"fault: Redis {fault} (own server :6392)",
        "rate-limit counters fail closed; accepted <= counted",
        tally,
        f"median {recoveries[len(recoveries) // 2]:.0f} ms, max {recoveries[-1]:.0f} ms",
    )
    keys.close()
    tally.check()
    assert max(recoveries) < 30_000
    for accepted, counted in phases:
        assert accepted <= counted, "a request was accepted that Redis never counted"
    if fault != "client-kill":  # a killed idle connection may be re-made before use
        assert tally.typed_503 > 0


# --- SQLite --------------------------------------------------------------------------------

_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE apikeys_keys SET name = name")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def test_sqlite_write_lock_held_by_another_process(tmp_path: Path, battery: Any) -> None:
    path = tmp_path / "keys.db"
    keys = _manager(SQLiteStore(path, timeout=0.2), touch_interval=timedelta(0))
    issued = keys.create(owner="victim")
    spare = keys.create(owner="victim")
    good, wrong = issued.plaintext, with_wrong_secret(issued.plaintext)
    keys.verify(good)
    tally = Tally()
    writes_refused = 0
    locker = subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout is not None
        assert locker.stdin is not None
        assert locker.stdout.readline().strip() == "locked"
        for _ in range(budget(0, 10, 100)):
            tally.verify(keys, good, good=True)  # a read (WAL) and a touch that may fail
            tally.verify(keys, wrong, good=False)
        for call in (
            lambda: keys.revoke(spare.key.id),
            lambda: keys.create(owner="victim"),
            lambda: keys.rotate(issued.key.id),
        ):
            with pytest.raises(StorageError) as info:
                call()
            assert info.value.status == 503
            writes_refused += 1
        released = time.perf_counter()
        locker.stdin.write("\n")
        locker.stdin.flush()
        assert locker.wait(timeout=10) == 0
    finally:
        if locker.poll() is None:
            locker.kill()
            locker.wait()
        for pipe in (locker.stdin, locker.stdout):
            if pipe is not None:
                pipe.close()

    def revoked() -> bool:
        try:
            keys.revoke(spare.key.id)
        except StorageError:
            return False
        return True

    recovery = recovery_ms(revoked)
    after = (time.perf_counter() - released) * 1000
    tally.typed_503 += writes_refused
    _record(
        battery,
        "fault: SQLite write lock held by another process",
        "reads go on (WAL); revoke/create/rotate are typed 503 until the lock goes",
        tally,
        f"first write {recovery:.0f} ms ({after:.0f} ms after release)",
    )
    tally.check()
    with pytest.raises(AuthenticationError) as refused:
        keys.verify(spare.plaintext)
    assert refused.value.code == "revoked"
    keys.close()


# --- hashing capacity -----------------------------------------------------------------------


def test_hashing_capacity_exhausted_by_a_flood_of_cold_checks(battery: Any) -> None:
    """Production Argon2, one hashing slot, no waiting, no verified-secret cache:
    a flood from 6 threads meets ServiceBusy (typed 503), never a false accept."""
    keys = KeyManager(
        MemoryStore(),
        prefix="acme",
        hasher=Argon2Hasher(),
        failure_limit=0,
        cache_size=0,
        max_concurrent_hashes=1,
        hash_wait=0.0,
    )
    issued = keys.create(owner="victim")
    good, wrong = issued.plaintext, with_wrong_secret(issued.plaintext)
    tallies = [Tally() for _ in range(6)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=_hammer, args=(keys, good, wrong, tally, stop)) for tally in tallies
    ]
    for thread in threads:
        thread.start()
    time.sleep(budget(0, 2, 20))
    stop.set()
    for thread in threads:
        thread.join()
    total = Tally()
    for tally in tallies:
        total.accepted += tally.accepted
        total.false_accepts += tally.false_accepts
        total.typed_503 += tally.typed_503
        total.good_refused_as_invalid += tally.good_refused_as_invalid
        total.other += tally.other
    recovery = recovery_ms(lambda: Tally().verify(keys, good, good=True))
    _record(
        battery,
        "fault: hashing slots exhausted (1 slot, 6 threads)",
        "ServiceBusy instead of queueing; no wrong key accepted",
        total,
        f"{recovery:.0f} ms",
    )
    total.check()
    assert total.typed_503 > 0
    assert total.accepted > 0
