"""Fixtures of the monitoring tests: a monitored manager on a manual clock, and
audit/usage stores of every backend (SQL ones against real files and servers)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from apikeys import KeyManager
from apikeys.monitoring import (
    AuditStore,
    MemoryAuditStore,
    MemoryUsageStore,
    Monitor,
    RedisUsageStore,
    SQLAlchemyAuditStore,
    SQLAlchemyUsageStore,
    SQLiteAuditStore,
    SQLiteUsageStore,
    UsageStore,
)

AUDIT_BACKENDS = [
    "memory",
    "sqlite",
    "sqlalchemy-sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]
USAGE_BACKENDS = [*AUDIT_BACKENDS, pytest.param("redis", marks=pytest.mark.redis)]


def _prefix() -> str:
    return f"t{secrets.token_hex(4)}_"


def make_store(
    kind: str, what: str, request: pytest.FixtureRequest, tmp_path: Path, **options: Any
) -> Any:
    """An audit (``what="audit"``) or usage store of backend ``kind``, with tables
    (or Redis keys) of its own."""
    if kind == "memory":
        return MemoryAuditStore() if what == "audit" else MemoryUsageStore(**options)
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        return RedisUsageStore(url, namespace=request.getfixturevalue("redis_namespace"), **options)
    if kind == "sqlite":
        path = tmp_path / "monitoring.db"
        cls: Any = SQLiteAuditStore if what == "audit" else SQLiteUsageStore
        return cls(path, table_prefix=_prefix(), **options)
    url = {
        "sqlalchemy-sqlite": lambda: f"sqlite:///{tmp_path / 'monitoring-sa.db'}",
        "postgres": lambda: request.getfixturevalue("postgres_url"),
        "mariadb": lambda: request.getfixturevalue("mariadb_url"),
    }[kind]()
    cls = SQLAlchemyAuditStore if what == "audit" else SQLAlchemyUsageStore
    return cls(url, table_prefix=_prefix(), **options)


@pytest.fixture(params=AUDIT_BACKENDS)
def audit_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditStore]:
    store = make_store(request.param, "audit", request, tmp_path)
    yield store
    store.close()


@pytest.fixture(params=USAGE_BACKENDS)
def usage_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UsageStore]:
    store = make_store(request.param, "usage", request, tmp_path)
    yield store
    store.close()


@pytest.fixture
def make_monitor(manager: KeyManager) -> Iterator[Callable[..., Monitor]]:
    """Build monitors on the ``manager`` fixture (closed at the end)."""
    made: list[Monitor] = []

    def make(**options: Any) -> Monitor:
        monitor = Monitor(manager, **options)
        made.append(monitor)
        return monitor

    yield make
    for monitor in made:
        monitor.close()


@pytest.fixture
def monitor(make_monitor: Callable[..., Monitor]) -> Monitor:
    """A Monitor on the ``manager`` fixture with memory stores, no detectors."""
    return make_monitor()
