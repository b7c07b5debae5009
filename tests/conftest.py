"""Shared fixtures: real services, each test session in its own fresh database.

A service-backed test skips with a reason when its server is absent, except under
CI (``CI=true``), where an absent server fails the test instead.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from apikeys import KeyManager
from apikeys.hashing import Argon2Hasher
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock
from redis_support import forget_redis_namespace

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_HOST, PG_PORT = "127.0.0.1", 5432
MARIADB_HOST, MARIADB_PORT = "127.0.0.1", 3306
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (under CI) when a server is not listening."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(message + " (under CI a missing service is a failure)")
    pytest.skip(message)


def _unique_name() -> str:
    return f"apikeys_t{os.getpid()}_{secrets.token_hex(4)}"


@contextmanager
def _postgres_database() -> Iterator[str]:
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    import psycopg

    name = _unique_name()
    admin = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL (psycopg 3) of a fresh PostgreSQL database, dropped afterwards."""
    with _postgres_database() as url:
        yield url


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """Like :func:`postgres_url`, but one database per test (for a test that needs
    to see no other test's tables)."""
    with _postgres_database() as url:
        yield url


def _mariadb_admin(statement: str) -> None:
    import pymysql

    conn = pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user="root", password="")
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


@contextmanager
def _mariadb_database() -> Iterator[str]:
    require_service("MariaDB", MARIADB_HOST, MARIADB_PORT)
    name = _unique_name()
    _mariadb_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield f"mysql+pymysql://root@{MARIADB_HOST}:{MARIADB_PORT}/{name}"
    finally:
        _mariadb_admin(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A SQLAlchemy URL (PyMySQL) of a fresh MariaDB database, dropped afterwards."""
    with _mariadb_database() as url:
        yield url


@pytest.fixture
def fresh_mariadb_url() -> Iterator[str]:
    """Like :func:`mariadb_url`, but one database per test."""
    with _mariadb_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of the Redis server (use :func:`redis_namespace` to keep keys apart)."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


# A run checking that tests leave no Redis key behind gives its own root here
# (tests/test_redis_hygiene.py); TEST_REDIS_KEEP_KEYS=1 skips the cleanup there.
REDIS_NAMESPACE_ROOT = os.environ.get("TEST_REDIS_NAMESPACE_ROOT", "apikeys-test:")


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    """A key prefix unique to one test, so parallel runs never share counters.
    Every key under it is deleted at teardown (the counters carry TTLs of up to
    about two years, so the shared server would keep them)."""
    namespace = f"{REDIS_NAMESPACE_ROOT}{secrets.token_hex(6)}:"
    yield namespace
    if os.environ.get("TEST_REDIS_KEEP_KEYS") != "1" and _reachable(REDIS_HOST, REDIS_PORT):
        forget_redis_namespace(f"redis://{REDIS_HOST}:{REDIS_PORT}/0", namespace)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fast_hasher() -> Argon2Hasher:
    return Argon2Hasher.for_tests()


@pytest.fixture
def manager(clock: ManualClock, fast_hasher: Argon2Hasher) -> KeyManager:
    """A KeyManager on a MemoryStore with a cheap hasher and a manual clock."""
    return KeyManager(MemoryStore(), prefix="acme", hasher=fast_hasher, clock=clock)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio only."""
    return "asyncio"
