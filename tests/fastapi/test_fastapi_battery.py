"""The shared ASGI adapter battery (``tests/web_battery.py``) on the FastAPI adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi_support import build_app as build_demo_app

from apikeys import AsyncKeyManager, KeyManager
from apikeys.fastapi import APIKeyAuth
from apikeys.http import HTTPSettings
from web_battery import *  # noqa: F403  (the shared tests and their fixtures)


@pytest.fixture
def demo_app() -> tuple[str, Path]:
    return "fastapi_support", Path(__file__).resolve().parent


@pytest.fixture
def build_app() -> Any:
    def build(manager: KeyManager | AsyncKeyManager, settings: HTTPSettings) -> FastAPI:
        return build_demo_app(APIKeyAuth(manager, settings=settings))

    return build
