"""apikeys.Settings: one model, loaded the same by the environment, the CLI and
Flask (Django: tests/django/test_django_settings.py, on the same table)."""

from __future__ import annotations

import argparse
import io
from datetime import timedelta
from typing import Any

import pytest

from apikeys import Settings
from apikeys._cli._context import Context
from apikeys._cli.output import Output
from apikeys._http import HTTPSettings
from apikeys.errors import ConfigurationError
from settings_table import NAMED, NATIVE_CASES, TEXT_CASES, outcome


def _env(name: str, value: Any) -> Settings:
    return Settings.from_env({f"APIKEYS_{name.upper()}": value})


def _cli(name: str, value: Any) -> Settings:
    out = Output(io.StringIO(), io.StringIO())
    return Context(argparse.Namespace(), out, env={f"APIKEYS_{name.upper()}": value}).settings


def _flask(name: str, value: Any) -> Settings:
    from apikeys.flask._config import load_settings

    return load_settings({f"APIKEYS_{name.upper()}": value}).settings


def _direct(name: str, value: Any) -> Settings:
    return Settings(**{name: value})


@pytest.mark.parametrize(("name", "value"), TEXT_CASES)
def test_environment_cli_and_flask_agree_on_text(name: str, value: str) -> None:
    results = {load.__name__: outcome(load, name, value) for load in (_env, _cli, _flask)}
    assert len(set(map(repr, results.values()))) == 1, results
    assert results["_env"][0] == "ok" or results["_env"] == NAMED
    if name != "no_such_option":
        assert outcome(_direct, name, value) == results["_env"]


@pytest.mark.parametrize(("name", "value"), NATIVE_CASES)
def test_flask_and_the_model_agree_on_python_values(name: str, value: Any) -> None:
    assert outcome(_flask, name, value) == outcome(_direct, name, value)


def test_the_table_has_both_outcomes_for_most_options() -> None:
    refused = {name for name, value in TEXT_CASES if outcome(_env, name, value)[0] == "refused"}
    accepted = {name for name, value in TEXT_CASES if outcome(_env, name, value)[0] == "ok"}
    assert {"prefix", "default_expiry", "rate_limits", "trusted_proxies"} <= refused & accepted


def test_values_are_parsed_once_for_everyone() -> None:
    settings = Settings.from_env(
        {
            "APIKEYS_PREFIX": "acme_live,acme,acme_live",
            "APIKEYS_DEFAULT_EXPIRY": "1d12h",
            "APIKEYS_ROTATION_GRACE": "P2D",
            "APIKEYS_QUERY_PARAM": "",
            "APIKEYS_MONITORING": "off",
            "APIKEYS_CACHE_MAX_STALENESS": "0.25",
            "APIKEYS_DATABASE_URL": "",
            "APIKEYS_USAGE_URL": "redis://127.0.0.1",  # the CLI's own
            "HOME": "/root",
        }
    )
    assert settings.prefix == ("acme_live", "acme")
    assert settings.issuing_prefix == "acme_live"
    assert settings.default_expiry == timedelta(days=1, hours=12)
    assert settings.rotation_grace == timedelta(days=2)
    assert settings.query_param is None
    assert settings.monitoring is False
    assert settings.cache_max_staleness == timedelta(milliseconds=250)
    assert settings.database_url == "sqlite:///apikeys.db"


def test_flags_win_over_the_environment() -> None:
    env = {"APIKEYS_PREFIX": "acme", "APIKEYS_DATABASE_URL": "sqlite:///a.db"}
    settings = Settings.from_env(env, prefix="other", database_url=None)
    assert (settings.prefix, settings.database_url) == (("other",), "sqlite:///a.db")


def test_settings_are_frozen_and_hide_peppers() -> None:
    pepper = "pepper-" * 8
    settings = Settings(hasher="hmac", hmac_peppers=[pepper])
    assert pepper not in repr(settings) + str(settings)
    assert settings.make_hasher().verify(settings.make_hasher().hash("s" * 30), "s" * 30)
    with pytest.raises(Exception, match="frozen"):
        settings.realm = "x"  # type: ignore[misc]


def test_http_settings_come_from_the_request_fields() -> None:
    settings = Settings(
        authorization_header=None,
        api_key_header="X-Acme-Key",
        query_param="key",
        trusted_proxies="10.0.0.0/8",
        realm="acme",
    )
    assert settings.http == HTTPSettings(
        authorization_header=None,
        api_key_header="X-Acme-Key",
        query_param="key",
        trusted_proxies=("10.0.0.0/8",),
        realm="acme",
    )
    assert settings.http.client_ip("10.1.1.1", ["192.0.2.5"]) == "192.0.2.5"
    assert Settings(require_https=True).http.require_https is True
    assert Settings(https_exempt_loopback=False).http.https_exempt_loopback is False


def test_the_hmac_hasher_needs_good_peppers_and_only_it_takes_them() -> None:
    with pytest.raises(ConfigurationError, match="hmac_peppers"):
        Settings(hasher="hmac")
    with pytest.raises(ConfigurationError, match="hmac_peppers"):
        Settings(hasher="hmac", hmac_peppers="short")
    with pytest.raises(ConfigurationError, match="hmac_peppers"):
        Settings(hmac_peppers="p" * 40)


def test_an_error_names_the_option_and_its_variable() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings(default_expiry="soon", realm='"')
    message = info.value.message
    assert "default_expiry (APIKEYS_DEFAULT_EXPIRY)" in message
    assert "realm (APIKEYS_REALM)" in message


ACCEPTED_HTTP_CASES = [
    (name, value)
    for name, value in TEXT_CASES
    if name in HTTPSettings.__dataclass_fields__ and outcome(_env, name, value)[0] == "ok"
]


@pytest.mark.parametrize(("name", "value"), ACCEPTED_HTTP_CASES)
def test_fastapi_takes_the_request_options_as_they_are(name: str, value: str) -> None:
    from apikeys import AsyncKeyManager
    from apikeys.fastapi import APIKeyAuth

    settings = _env(name, value)
    keys = AsyncKeyManager.from_url("memory://", prefix="acme", monitoring=False)
    auth = APIKeyAuth(keys, settings=settings.http)
    assert auth.settings == settings.http
