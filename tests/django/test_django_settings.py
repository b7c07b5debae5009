"""The ``APIKEYS`` setting and the process-wide managers built from it."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings

from apikeys import AsyncKeyManager, KeyManager
from apikeys.django import DjangoStore, get_async_manager, get_manager
from apikeys.django.conf import load_settings, parse_duration
from apikeys.errors import ConfigurationError
from apikeys.hashing import Argon2Hasher, HmacHasher
from settings_table import NATIVE_CASES, TEXT_CASES, outcome


def test_the_managers_are_built_once_and_rebuilt_when_the_setting_changes() -> None:
    first = get_manager()
    assert get_manager() is first
    assert isinstance(first, KeyManager)
    assert isinstance(first.store, DjangoStore)
    assert isinstance(get_async_manager(), AsyncKeyManager)
    with override_settings(APIKEYS={"PREFIX": ["acme_live", "acme"], "DATABASE": "postgres"}):
        other = get_manager()
        assert other is not first
        assert other.prefix == "acme_live"
        assert other.prefixes == {"acme_live", "acme"}
        assert isinstance(other.store, DjangoStore)
        assert other.store.using == "postgres"
        assert isinstance(other.hasher, Argon2Hasher)
        assert get_async_manager().prefixes == other.prefixes
    assert get_manager() is not other


def test_every_key_is_read() -> None:
    sink = _Sink()
    with override_settings(
        APIKEYS={
            "PREFIX": "acme",
            "AUTHORIZATION_HEADER": None,
            "API_KEY_HEADER": "X-Acme-Key",
            "QUERY_PARAM": "key",
            "TRUSTED_PROXIES": ["10.0.0.0/8"],
            "REALM": "acme",
            "HASHER": "apikeys.testing.test_hasher",
            "DEFAULT_EXPIRY": 86400,
            "ROTATION_GRACE": "P2D",
            "EVENTS": [sink],
            "MANAGER_OPTIONS": {"cache_size": 0, "touch_interval": None},
        }
    ):
        conf = load_settings()
        manager = get_manager()
    assert conf.http.authorization_header is None
    assert conf.http.api_key_header == "X-Acme-Key"
    assert conf.http.query_param == "key"
    assert conf.http.client_ip("10.1.1.1", ["192.0.2.5"]) == "192.0.2.5"
    assert conf.http.realm == "acme"
    assert conf.default_expiry == timedelta(days=1)
    assert conf.rotation_grace == timedelta(days=2)
    assert manager.touch_interval is None
    assert isinstance(manager.hasher, Argon2Hasher)
    assert conf.events == (sink,)


class _Sink:
    def emit(self, event: Any) -> None:
        pass


@pytest.mark.parametrize(
    "apikeys",
    [
        None,
        {},
        {"PREFIX": "Not Valid"},
        {"PREFIX": "acme", "PREFIXES": ["acme"]},
        {"PREFIX": "acme", "AUTHORIZATION_HEADER": None, "API_KEY_HEADER": None},
        {"PREFIX": "acme", "TRUSTED_PROXIES": 10},
        {"PREFIX": "acme", "TRUSTED_PROXIES": ["not-an-address"]},
        {"PREFIX": "acme", "HASHER": "no.such.Hasher"},
        {"PREFIX": "acme", "HASHER": object()},
        {"PREFIX": "acme", "DEFAULT_EXPIRY": "soon"},
        {"PREFIX": "acme", "DEFAULT_EXPIRY": 0},
        {"PREFIX": "acme", "DATABASE": "nowhere"},
        {"PREFIX": "acme", "MANAGER_OPTIONS": {"prefix": "other"}},
        {"PREFIX": "acme", "MANAGER_OPTIONS": {"touch_interval": timedelta(seconds=-1)}},
        {"PREFIX": "acme", "MANAGER_OPTIONS": {"no_such_option": 1}},
    ],
)
def test_a_bad_setting_is_a_configuration_error(apikeys: Any) -> None:
    with override_settings(APIKEYS=apikeys), pytest.raises(ConfigurationError):
        get_manager()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2W", timedelta(weeks=2)),
        ("0s", timedelta(0)),
        ("P90D", timedelta(days=90)),
        ("1 12:00:00", timedelta(days=1, hours=12)),
        (timedelta(minutes=5), timedelta(minutes=5)),
        (30, timedelta(seconds=30)),
    ],
)
def test_durations(text: Any, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "-1d", "90x", True, None, -5])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ConfigurationError):
        parse_duration(text)


def test_the_hmac_hasher_can_be_configured_as_an_instance() -> None:
    hasher = HmacHasher(["a-pepper-that-is-long-enough-for-hmac-0123456789"])
    with override_settings(APIKEYS={"PREFIX": "acme", "HASHER": hasher}):
        assert get_manager().hasher is hasher


def test_importing_the_package_loads_no_model() -> None:
    # Django imports the app package before the registry is ready.
    code = (
        "import sys, apikeys.django; "
        "print(sorted(m for m in sys.modules if m.startswith('apikeys.django')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "['apikeys.django']"


def test_the_committed_migrations_match_the_model() -> None:
    from django.core.management import call_command

    call_command("makemigrations", "apikeys", "--check", "--dry-run", verbosity=0)


def _django(name: str, value: Any) -> Any:
    apikeys = {"PREFIX": "acme", name.upper(): value}
    with override_settings(APIKEYS=apikeys):
        return load_settings().settings


@pytest.mark.parametrize(("name", "value"), TEXT_CASES + NATIVE_CASES)
def test_django_accepts_and_refuses_what_every_front_end_does(name: str, value: Any) -> None:
    from apikeys.flask._config import load_settings as load_flask

    def flask(name: str, value: Any) -> Any:
        return load_flask({"APIKEYS_PREFIX": "acme", f"APIKEYS_{name.upper()}": value}).settings

    assert outcome(_django, name, value) == outcome(flask, name, value)


def test_a_database_url_puts_keys_usage_and_audit_outside_django(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    apikeys = {"PREFIX": "acme", "DATABASE_URL": url, "HASHER": "argon2-test"}
    with override_settings(APIKEYS=apikeys):
        manager = get_manager()
        assert not isinstance(manager.store, DjangoStore)
        issued = manager.create(owner="team-1")
        assert manager.monitor is not None
        assert [e.type for e in manager.monitor.audit(key_id=issued.key.id)] == ["key.created"]
    manager.close()
