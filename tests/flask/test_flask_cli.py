"""``flask apikeys ...``: the ``apikeys`` command on the app's own manager (Flask's
CLI runner), same subcommands, output and exit statuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from flask_support import Env, build_app

from apikeys import AuthenticationError, KeyManager
from apikeys.flask import APIKeys, get_manager
from apikeys.hashing import Argon2Hasher
from apikeys.testing import ManualClock


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["apikeys", *args])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sqlite_app(tmp_path: Path, clock: ManualClock) -> Iterator[Flask]:
    """An app built from config alone on a SQLite file (a wired manager)."""
    app = build_app(
        APIKeys(),
        APIKEYS_DATABASE_URL=f"sqlite:///{tmp_path / 'keys.db'}",
        APIKEYS_PREFIX="acme",
        APIKEYS_DEFAULT_EXPIRY="90d",
        APIKEYS_MANAGER_OPTIONS={"hasher": Argon2Hasher.for_tests(), "clock": clock},
    )
    yield app
    get_manager(app).close()


def keys_of(app: Flask) -> KeyManager:
    manager: KeyManager = get_manager(app)
    return manager


def test_the_command_is_on_the_app_cli_unless_turned_off(env: Env, app: Flask) -> None:
    result = run(app, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("usage: flask apikeys")
    for command in ("create", "list", "revoke", "rotate", "usage", "audit", "purge"):
        assert command in result.stdout
    quiet = build_app(APIKeys(env.manager, cli=False))
    assert quiet.test_cli_runner().invoke(args=["apikeys", "--help"]).exit_code != 0


def test_create_uses_the_app_settings_and_writes_the_audit_trail(
    sqlite_app: Flask, clock: ManualClock
) -> None:
    result = run(sqlite_app, "create", "--owner", "team-7", "-s", "orders:read", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    keys = keys_of(sqlite_app)
    assert keys.verify(data["plaintext"]).owner == "team-7"
    expires = (clock.now + timedelta(days=90)).isoformat().replace("+00:00", "Z")
    assert data["key"]["expires_at"] == expires  # APIKEYS_DEFAULT_EXPIRY
    quiet = run(sqlite_app, "create", "--owner", "team-8", "--quiet")
    assert quiet.stdout.count("\n") == 1
    assert keys.verify(quiet.stdout.strip()).owner == "team-8"
    trail = json.loads(run(sqlite_app, "audit", "--json").stdout)
    assert [e["type"] for e in trail if e["type"] == "key.created"] == ["key.created"] * 2


def test_lifecycle_commands_and_their_exit_statuses(sqlite_app: Flask) -> None:
    keys = keys_of(sqlite_app)
    old = keys.create(owner="team-3", scopes=["orders:read"])
    rotated = run(sqlite_app, "rotate", old.key.id, "--grace", "1h", "--quiet")
    assert rotated.exit_code == 0, rotated.output
    successor = keys.verify(rotated.stdout.strip())
    assert successor.replaces == old.key.id
    revoked = run(sqlite_app, "revoke", successor.id, "--reason", "leaked")
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(AuthenticationError):
        keys.verify(rotated.stdout.strip())
    assert run(sqlite_app, "revoke", "AAAAAAAAAAAAAAAA").exit_code == 1
    assert run(sqlite_app, "revoke", "acme_not-a-key").exit_code == 2
    assert run(sqlite_app, "create", "--owner", "x", "--expires-in", "soon").exit_code == 2
    types = [e["type"] for e in json.loads(run(sqlite_app, "audit", "--json").stdout)]
    lifecycle = [t for t in types if t in ("key.rotated", "key.revoked")]
    assert types[0] == "key.created"
    assert lifecycle == ["key.rotated", "key.revoked"]


def test_the_app_configuration_decides_the_store(sqlite_app: Flask) -> None:
    result = run(sqlite_app, "list", "--database-url", "sqlite:///elsewhere.db")
    assert result.exit_code == 2
    assert "app's configuration" in result.stderr


def test_a_memory_store_refuses_to_issue_keys(env: Env, app: Flask) -> None:
    result = run(app, "create", "--owner", "team-7")
    assert result.exit_code == 2
    assert "memory://" in result.stderr
    assert "vanish" in result.stderr
    assert env.admin.list() == []
    assert run(app, "list", "--json").exit_code == 0  # reading is harmless


def test_a_store_that_is_down_exits_3(env: Env, app: Flask) -> None:
    key_id = env.admin.verify(env.issue()).id
    env.store.down = True
    result = run(app, "revoke", key_id)
    assert result.exit_code == 3
    assert "unavailable" in result.stderr
