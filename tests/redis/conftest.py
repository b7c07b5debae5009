"""Session fixtures: a Redis Cluster (3 masters + 3 replicas, ports 7100-7105) and a
Sentinel set-up (master 6400, replicas 6401-6402, Sentinels 26400-26402), started
from ``redis-server`` in a temporary directory and stopped at the end.

Locally a deployment that cannot start skips its tests with the reason; under CI
(``CI=true``) it fails them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from _redis_servers import (
    Deployment,
    ServerError,
    cluster_url,
    forget,
    sentinel_url,
    start_cluster,
    start_sentinel,
)

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(what: str, exc: ServerError) -> None:
    message = f"could not start the {what}: {exc}"
    if IN_CI:
        pytest.fail(message + " (under CI a missing service is a failure)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The running cluster (its processes, to kill and restart nodes)."""
    try:
        deployment = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    except ServerError as exc:
        _unavailable("Redis Cluster", exc)
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The running Sentinel set-up."""
    try:
        deployment = start_sentinel(tmp_path_factory.mktemp("redis-sentinel"))
    except ServerError as exc:
        _unavailable("Redis Sentinel set-up", exc)
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(params=["cluster", "sentinel"])
def topology(request: pytest.FixtureRequest) -> str:
    """Which deployment a test runs on (the fixture starts it on first use)."""
    request.getfixturevalue(f"redis_{request.param}")
    return str(request.param)


@pytest.fixture
def topology_url(topology: str) -> str:
    """The ``redis+cluster://`` or ``redis+sentinel://`` URL of :func:`topology`."""
    return cluster_url() if topology == "cluster" else sentinel_url()


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix unique to one test; its keys are deleted at teardown from the
    deployment the test used (every master of the cluster)."""
    name = f"apikeys-test:{secrets.token_hex(6)}:"
    yield name
    if "topology_url" in request.fixturenames:
        forget(request.getfixturevalue("topology_url"), name)
    elif "redis_cluster" in request.fixturenames:
        forget(cluster_url(), name)
