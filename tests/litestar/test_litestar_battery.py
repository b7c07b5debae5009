"""The shared ASGI adapter battery (``tests/web_battery.py``) on
``apikeys.litestar``, plus what is particular to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar_demo import build_app as build_demo_app

from apikeys.errors import ConfigurationError
from apikeys.litestar import APIKeyPlugin
from web_battery import *  # noqa: F403  (the shared tests and their fixtures)


@pytest.fixture
def demo_app() -> tuple[str, Path]:
    return "litestar_demo", Path(__file__).resolve().parent


@pytest.fixture
def build_app() -> Any:
    return build_demo_app


def test_the_plugin_needs_a_manager() -> None:
    with pytest.raises(ConfigurationError):
        APIKeyPlugin("not a manager")  # type: ignore[arg-type]
