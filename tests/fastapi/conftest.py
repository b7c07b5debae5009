"""Fixtures of the FastAPI adapter tests (helpers live in ``fastapi_support``).

Every test that takes ``env`` runs twice: with an AsyncKeyManager and a KeyManager.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.register_assert_rewrite("web_battery")

from fastapi_support import Env, PeerAt, TestClient, build_app  # noqa: E402

from apikeys import AsyncKeyManager, KeyManager  # noqa: E402
from apikeys.fastapi import APIKeyAuth  # noqa: E402
from web_battery import env, kind, make_env_fixture  # noqa: E402, F401  (shared fixtures)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """Build an APIKeyAuth on a manager and a TestClient on the demo app."""
    clients: list[TestClient] = []

    def make(
        manager: KeyManager | AsyncKeyManager,
        client: tuple[str, int] = ("203.0.113.9", 40000),
        **auth_args: Any,
    ) -> TestClient:
        test_client = TestClient(
            PeerAt(build_app(APIKeyAuth(manager, **auth_args)), client),
            raise_server_exceptions=False,
        )
        clients.append(test_client)
        return test_client

    yield make
    for test_client in clients:
        test_client.close()


@pytest.fixture
def client(env: Env, make_client: Callable[..., TestClient]) -> TestClient:  # noqa: F811
    return make_client(env.manager)
