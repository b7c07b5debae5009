"""The shared ASGI adapter battery (``tests/web_battery.py``) on
``apikeys.litestar``, plus what is particular to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar_demo import build_app as build_demo_app

from apikeys.errors import ConfigurationError
from apikeys.litestar import APIKeyPlugin
from apikeys.testing import auth_headers
from web_battery import *  # noqa: F403  (the shared tests and their fixtures)
from web_battery import MakeClient
from web_support import Env


@pytest.fixture
def demo_app() -> tuple[str, Path]:
    return "litestar_demo", Path(__file__).resolve().parent


@pytest.fixture
def build_app() -> Any:
    return build_demo_app


def test_current_key_is_none_until_authenticated(env: Env, make_client: MakeClient) -> None:
    client = make_client(env.manager)
    raw = env.issue()
    assert client.get("/public", headers=auth_headers(raw)).json()["current"] is True
    assert client.get("/me", headers=auth_headers(raw)).json() == {"owner": "team-1"}


def test_the_plugin_needs_a_manager() -> None:
    with pytest.raises(ConfigurationError):
        APIKeyPlugin("not a manager")  # type: ignore[arg-type]
