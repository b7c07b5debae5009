"""The shared ASGI adapter battery (``tests/web_battery.py``) on ``apikeys.asgi``,
plus what is particular to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asgi_demo import build_app as build_demo_app

from apikeys import KeyManager
from apikeys.asgi import APIKeyMiddleware
from apikeys.errors import ConfigurationError
from apikeys.testing import auth_headers
from web_battery import *  # noqa: F403  (the shared tests and their fixtures)
from web_battery import MakeClient
from web_support import Env


@pytest.fixture
def demo_app() -> tuple[str, Path]:
    return "asgi_demo", Path(__file__).resolve().parent


@pytest.fixture
def build_app() -> Any:
    return build_demo_app


def test_the_middleware_needs_a_manager() -> None:
    with pytest.raises(ConfigurationError):
        APIKeyMiddleware(app=None, manager="not a manager")  # type: ignore[arg-type]


def test_a_sync_endpoint_needs_a_sync_manager(env: Env, make_client: MakeClient) -> None:
    client = make_client(env.manager)
    answer = client.get("/sync", headers=auth_headers(env.issue(["orders:read"])))
    if isinstance(env.manager, KeyManager):
        assert answer.json() == {"owner": "team-1"}
    else:
        assert answer.status_code == 500
        assert answer.json()["code"] == "internal_error"
    unscoped = client.get("/sync", headers=auth_headers(env.issue()))
    assert unscoped.status_code == (403 if isinstance(env.manager, KeyManager) else 500)
