"""CachedStore against the real servers: its own process sees a change at once;
a second process sees a revocation within ``max_staleness`` (never an accept
later than that), also while its listener's connection is killed or its Redis
restarts; without a live channel every read goes to the store."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy

from apikeys import AuthenticationError, KeyManager
from apikeys.errors import ConfigurationError
from apikeys.hashing import HmacHasher
from apikeys.storage import (
    AsyncCachedStore,
    AsyncSQLAlchemyStore,
    CachedStore,
    KeyStore,
    MemoryStore,
    SQLAlchemyStore,
)
from apikeys.testing import StoreConformance, blocking_store

WORKER = Path(__file__).with_name("_cache_worker.py")
PEPPER = b"cache-worker-pepper-0123456789abcdef"
STALENESS = 0.100
OWN_REDIS_PORT = 6390


def _channel() -> str:
    return f"apikeys_t_{secrets.token_hex(4)}"


def _wait_live(store: CachedStore | AsyncCachedStore, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not store.live:
        assert time.monotonic() < deadline, "the cache channel never came up"
        time.sleep(0.005)


def _pg_invalidation(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# --- conformance: a CachedStore is a store like any other ---------------------------------


@pytest.mark.postgres
class TestCachedStorePostgres(StoreConformance):
    @pytest.fixture
    def store(self, pg: str) -> Iterator[KeyStore]:
        store = CachedStore(
            SQLAlchemyStore(pg), invalidation=_pg_invalidation(pg), channel=_channel()
        )
        _wait_live(store)
        yield store
        store.close()


@pytest.mark.redis
class TestCachedStoreRedis(StoreConformance):
    @pytest.fixture
    def store(self, redis_url: str) -> Iterator[KeyStore]:
        store = CachedStore(MemoryStore(), invalidation=redis_url, channel=_channel())
        _wait_live(store)
        yield store
        store.close()


@pytest.mark.postgres
class TestAsyncCachedStorePostgres(StoreConformance):
    @pytest.fixture
    def store(self, pg: str) -> Iterator[KeyStore]:
        def make() -> AsyncCachedStore:
            cache = AsyncCachedStore(
                AsyncSQLAlchemyStore(pg), invalidation=_pg_invalidation(pg), channel=_channel()
            )
            _wait_live(cache)
            return cache

        with blocking_store(make) as store:
            yield store


def test_the_twins_have_the_same_methods() -> None:
    import inspect

    def methods(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(getattr(cls, name))
            for name in vars(cls)
            if not name.startswith("_") and callable(getattr(cls, name))
        }

    sync, async_ = methods(CachedStore), methods(AsyncCachedStore)
    assert {"a" + name for name in sync} == set(async_)
    for name, signature in sync.items():
        twin = async_["a" + name]
        assert list(signature.parameters) == list(twin.parameters)
        assert inspect.iscoroutinefunction(getattr(AsyncCachedStore, "a" + name))


# --- one process ------------------------------------------------------------------------


def _manager(store: KeyStore) -> KeyManager:
    return KeyManager(store, prefix="acme", hasher=HmacHasher([PEPPER]), touch_interval=None)


@pytest.mark.redis
def test_serves_from_memory_only_while_live(redis_url: str) -> None:
    inner = MemoryStore()
    store = CachedStore(inner, invalidation=redis_url, channel=_channel())
    try:
        _wait_live(store)
        keys = _manager(store)
        issued = keys.create(owner="o")
        first = store.get(issued.key.id)
        assert first is not None
        # A change behind the cache's back (no announcement) is not seen while live...
        inner.purge(issued.key.id)
        assert store.get(issued.key.id) is first
        # ...and is seen at once when the channel is down.
        store._listener.stop()
        store.lost()
        assert not store.live
        assert store.get(issued.key.id) is None
    finally:
        store.close()


def test_never_serves_from_memory_without_a_channel() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # a port nobody listens on
    inner = MemoryStore()
    store = CachedStore(inner, invalidation=f"redis://127.0.0.1:{port}/0", channel=_channel())
    try:
        keys = _manager(store)
        issued = keys.create(owner="o")
        assert store.get(issued.key.id) is not None
        inner.purge(issued.key.id)
        assert not store.live
        assert store.get(issued.key.id) is None
    finally:
        store.close()


@pytest.mark.redis
def test_the_writing_process_sees_its_change_at_once(redis_url: str) -> None:
    store = CachedStore(MemoryStore(), invalidation=redis_url, channel=_channel())
    try:
        _wait_live(store)
        keys = _manager(store)
        issued = keys.create(owner="o")
        keys.verify(issued.plaintext)
        keys.revoke(issued.key.id)
        with pytest.raises(AuthenticationError):
            keys.verify(issued.plaintext)
    finally:
        store.close()


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        CachedStore(MemoryStore(), invalidation="memcached://127.0.0.1")
    with pytest.raises(ConfigurationError):
        CachedStore(MemoryStore(), invalidation="redis://x", max_staleness=timedelta(0))
    with pytest.raises(ConfigurationError):
        CachedStore(MemoryStore(), invalidation="redis://x", channel="a;b")


@pytest.mark.postgres
def test_notify_rides_in_the_write_transaction(pg: str) -> None:
    """A write that fails (a conflict) announces nothing: the NOTIFY is in its
    transaction, so a cache sees a change exactly when it commits."""
    import psycopg

    channel = _channel()
    inner = SQLAlchemyStore(pg)
    keys = _manager(inner)
    issued = keys.create(owner="o")
    with psycopg.connect(_pg_invalidation(pg), autocommit=True) as listener:
        listener.execute(f"LISTEN {channel}")
        stale = inner.get(issued.key.id)
        assert stale is not None
        inner.write(
            update=[
                stale.__class__(stale.key.model_copy(update={"version": 2}), stale.secret_hash)
            ],
            notify=channel,
        )
        with pytest.raises(Exception, match="changed since"):
            inner.write(
                update=[
                    stale.__class__(stale.key.model_copy(update={"version": 2}), stale.secret_hash)
                ],
                notify=channel,
            )
        got = [n.payload for n in listener.notifies(timeout=0.5)]
    assert got == [issued.key.id]
    inner.close()


# --- two processes ----------------------------------------------------------------------


@dataclass
class Trials:
    latencies: list[float] = field(default_factory=list)
    late: int = 0

    def report(self, label: str) -> str:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (
            f"{label}: {len(ordered)} trials, revocation seen after median "
            f"{statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms; accepts later than max_staleness: {self.late}"
        )


def run_trials(
    db_url: str,
    invalidation: str,
    n: int,
    *,
    disturb: Callable[[str], None] | None = None,
    min_seconds: float = 0.0,
) -> Trials:
    """Revoke ``n`` keys (more until ``min_seconds`` have passed) in this process
    while a worker process verifies each; ``disturb`` runs every 50-150 ms."""
    channel = _channel()
    name = f"apikeys-worker-{secrets.token_hex(4)}"
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), db_url, invalidation, channel, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )
    store = CachedStore(SQLAlchemyStore(db_url), invalidation=invalidation, channel=channel)
    keys = _manager(store)
    trials = Trials()
    stop = threading.Event()
    disturber = None
    try:
        assert worker.stdin is not None
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
        if disturb is not None:

            def loop() -> None:
                while not stop.wait(0.05 + secrets.randbelow(100) / 1000):
                    disturb(name)

            disturber = threading.Thread(target=loop, daemon=True)
            disturber.start()
        until = time.monotonic() + min_seconds
        while len(trials.latencies) < n or time.monotonic() < until:
            issued = keys.create(owner="o")
            worker.stdin.write(issued.plaintext + "\n")
            worker.stdin.flush()
            assert worker.stdout.readline().strip() == "warm"
            time.sleep(secrets.randbelow(5) / 1000)
            keys.revoke(issued.key.id)
            revoked = time.monotonic()
            result = json.loads(worker.stdout.readline())
            trials.latencies.append(result["refused"] - revoked)
            if result["last_accept"] > revoked + STALENESS:
                trials.late += 1
            store.purge(issued.key.id)
    finally:
        stop.set()
        if disturber is not None:
            disturber.join()
        if worker.stdin is not None:
            worker.stdin.close()
        worker.wait(timeout=30)
        if worker.stdout is not None:
            worker.stdout.close()
        store.close()
    return trials


@pytest.mark.postgres
def test_revocation_reaches_a_second_process_postgres(pg: str) -> None:
    trials = run_trials(pg, _pg_invalidation(pg), 60)
    print(trials.report("PostgreSQL LISTEN/NOTIFY"))
    assert trials.late == 0


@pytest.mark.redis
@pytest.mark.postgres
def test_revocation_reaches_a_second_process_redis(pg: str, redis_url: str) -> None:
    trials = run_trials(pg, redis_url, 60)
    print(trials.report("Redis pub/sub"))
    assert trials.late == 0


@pytest.mark.postgres
def test_no_late_accept_while_the_listener_is_killed(pg: str) -> None:
    engine = sqlalchemy.create_engine(pg)
    killed = []

    def kill(name: str) -> None:
        with engine.connect() as conn:
            killed.append(
                conn.execute(
                    sqlalchemy.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": name},
                ).scalar()
            )

    try:
        trials = run_trials(pg, _pg_invalidation(pg), 60, disturb=kill, min_seconds=2)
    finally:
        engine.dispose()
    print(trials.report("PostgreSQL, listener killed every 50-150 ms"))
    assert sum(k or 0 for k in killed) >= 3
    assert trials.late == 0


class OwnRedis:
    """A redis-server of our own on port 6390 (never the shared one), restartable."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed") if os.environ.get(
                "CI"
            ) == "true" else pytest.skip("redis-server is not installed")
        self.binary = str(binary)
        self.dir = tempfile.mkdtemp(prefix="apikeys-redis-")
        self.url = f"redis://127.0.0.1:{OWN_REDIS_PORT}/0"
        self.restarts = 0
        self.start()

    def start(self) -> None:
        subprocess.run(
            [
                self.binary,
                "--port",
                str(OWN_REDIS_PORT),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--dir",
                self.dir,
                "--pidfile",
                f"{self.dir}/redis.pid",
            ],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", OWN_REDIS_PORT), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "own redis-server did not start"
                time.sleep(0.01)

    def stop(self) -> None:
        pid = int(Path(self.dir, "redis.pid").read_text())
        os.kill(pid, 15)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.005)

    def restart(self, _name: str) -> None:
        self.stop()
        time.sleep(0.02)
        self.start()
        self.restarts += 1

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    yield server
    server.close()


@pytest.mark.postgres
def test_no_late_accept_while_redis_restarts(pg: str, own_redis: OwnRedis) -> None:
    trials = run_trials(pg, own_redis.url, 60, disturb=own_redis.restart, min_seconds=3)
    print(trials.report("Redis restarted every 50-150 ms"))
    assert own_redis.restarts >= 2
    assert trials.late == 0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("backend", ["postgresql", "redis"])
def test_revocation_distribution_over_1000_trials(backend: str, pg: str, redis_url: str) -> None:
    invalidation = _pg_invalidation(pg) if backend == "postgresql" else redis_url
    trials = run_trials(pg, invalidation, 1000)
    print(trials.report(f"{backend}, 1000 trials"))
    assert trials.late == 0


@pytest.mark.redis
def test_a_forked_child_listens_for_itself(redis_url: str) -> None:
    """After fork() the child has no listener thread: it starts its own and
    serves nothing from memory until that one is proven alive."""
    store = CachedStore(MemoryStore(), invalidation=redis_url, channel=_channel())
    try:
        _wait_live(store)
        read, write = os.pipe()
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() with threads running (the listener).
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            ok = not store.live
            deadline = time.monotonic() + 10
            while not store.live and time.monotonic() < deadline:
                time.sleep(0.005)
            os.write(write, b"1" if ok and store.live else b"0")
            os._exit(0)
        os.close(write)
        answer = os.read(read, 1)
        os.close(read)
        os.waitpid(pid, 0)
        assert answer == b"1"
    finally:
        store.close()
