"""Type-checked by ``nox -s typing`` (mypy --strict), never run: Settings and the
wired managers (``from_url`` / ``from_settings``) as users write them."""

from __future__ import annotations

from datetime import timedelta

from typing_extensions import assert_type

from apikeys import AsyncKeyManager, KeyManager, Settings
from apikeys._http import HTTPSettings


class MyManager(KeyManager):
    pass


def wired() -> None:
    keys = KeyManager.from_url("sqlite:///apikeys.db", prefix="acme", rate_limits=["1/second"])
    assert_type(keys, KeyManager)
    assert_type(MyManager.from_url("memory://", prefix=["a", "b"]), MyManager)
    settings = Settings.from_env()
    assert_type(KeyManager.from_settings(settings), KeyManager)
    assert_type(AsyncKeyManager.from_settings(settings), AsyncKeyManager)
    assert_type(AsyncKeyManager.from_url("memory://", prefix="acme"), AsyncKeyManager)
    assert_type(settings.http, HTTPSettings)
    assert_type(settings.default_expiry, timedelta | None)
    assert_type(settings.prefix, tuple[str, ...])
    keys.close()
