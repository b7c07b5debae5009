"""``flask apikeys create|list|revoke|rotate`` on the app's CLI (Flask's CLI runner)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import Result
from flask import Flask
from flask_support import Env, build_app

from apikeys import AuthenticationError
from apikeys.flask import APIKeys


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["apikeys", *args])


def test_the_group_is_on_the_app_cli_unless_turned_off(env: Env, app: Flask) -> None:
    result = run(app, "--help")
    assert result.exit_code == 0
    for command in ("create", "list", "revoke", "rotate"):
        assert command in result.output
    quiet = build_app(APIKeys(env.manager, cli=False))
    assert quiet.test_cli_runner().invoke(args=["apikeys", "--help"]).exit_code != 0


def test_create_prints_the_key_alone_on_stdout(env: Env, app: Flask) -> None:
    result = run(
        app,
        "create",
        "--owner",
        "team-7",
        "-s",
        "orders:read,orders:write",
        "--scope",
        "reports:read",
        "--name",
        "CI",
        "--expires-in",
        "30d",
        "--allow-ip",
        "10.0.0.0/8",
    )
    assert result.exit_code == 0, result.output
    plaintext = result.stdout.strip()
    assert "\n" not in plaintext
    key = env.admin.verify(plaintext, ip="10.1.1.1")
    assert key.owner == "team-7"
    assert key.name == "CI"
    assert key.scopes == ("orders:read", "orders:write", "reports:read")
    assert key.allowed_ips == ("10.0.0.0/8",)
    assert key.expires_at == env.clock.now + timedelta(days=30)
    assert key.id in result.stderr
    assert "shown once" in result.stderr
    assert plaintext not in result.stderr


def test_create_json_and_the_default_expiry_from_config(env: Env) -> None:
    app = build_app(APIKeys(env.manager), APIKEYS_DEFAULT_EXPIRY="90d")
    data = json.loads(run(app, "create", "--owner", "team-7", "--json").stdout)
    assert data["key"]["owner"] == "team-7"
    assert data["key"]["state"] == "active"
    assert env.admin.verify(data["plaintext"]).id == data["key"]["id"]
    assert data["key"]["expires_at"] == (env.clock.now + timedelta(days=90)).isoformat().replace(
        "+00:00", "Z"
    )
    forever = json.loads(run(app, "create", "--owner", "team-7", "--no-expiry", "--json").stdout)
    assert forever["key"]["expires_at"] is None


def test_list_shows_records_never_secrets(env: Env, app: Flask) -> None:
    first = env.issue("orders:read", owner="alpha")
    second = env.issue("orders:write", owner="beta")
    env.admin.revoke(env.admin.verify(second).id)
    table = run(app, "list")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "PREFIX", "OWNER"]
    assert len(lines) == 3
    assert first not in table.output
    assert second not in table.output
    only_alpha = json.loads(run(app, "list", "--owner", "alpha", "--json").stdout)
    assert [k["owner"] for k in only_alpha] == ["alpha"]
    revoked = json.loads(run(app, "list", "--state", "revoked", "--json").stdout)
    assert [(k["owner"], k["state"]) for k in revoked] == [("beta", "revoked")]
    assert "argon2" not in table.output + json.dumps(only_alpha)
    nobody = run(app, "list", "--owner", "nobody")
    assert (nobody.exit_code, nobody.stdout, nobody.stderr.strip()) == (0, "", "no keys")


def test_revoke_by_id_or_by_the_whole_key(env: Env, app: Flask) -> None:
    by_id = env.issue("orders:read")
    key_id = env.admin.verify(by_id).id
    result = run(app, "revoke", key_id, "--reason", "leaked")
    assert result.exit_code == 0
    assert f"revoked {key_id}" in result.stdout
    with pytest.raises(AuthenticationError) as caught:
        env.admin.verify(by_id)
    assert caught.value.code == "revoked"
    assert env.admin.get(key_id).revoke_reason == "leaked"
    pasted = env.issue("orders:read")
    result = run(app, "revoke", pasted, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["state"] == "revoked"
    assert pasted not in result.output  # the secret is never echoed


def test_rotate_prints_the_successor_and_keeps_the_old_key_for_the_grace(
    env: Env, app: Flask
) -> None:
    old = env.issue("orders:read", owner="team-3")
    old_id = env.admin.verify(old).id
    result = run(app, "rotate", old_id, "--grace", "1h")
    assert result.exit_code == 0, result.output
    new = result.stdout.strip()
    successor = env.admin.verify(new)
    assert (successor.owner, successor.scopes, successor.replaces) == (
        "team-3",
        ("orders:read",),
        old_id,
    )
    env.admin.verify(old)  # still inside the grace period
    env.clock.advance(timedelta(hours=2))
    with pytest.raises(AuthenticationError):
        env.admin.verify(old)
    again = run(app, "rotate", old_id)
    assert again.exit_code == 1
    assert "Error:" in again.stderr


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (("revoke", "AAAAAAAAAAAAAAAA"), 1, "No API key with id 'AAAAAAAAAAAAAAAA'"),
        (("revoke", "acme_not-a-key"), 2, "not a key id"),
        (("create", "--owner", "x", "--expires-in", "soon"), 2, "invalid duration"),
        (("create", "--owner", "x", "-s", "not a scope"), 2, "scope"),
        (("create", "--owner", "x", "--expires-in", "1d", "--no-expiry"), 2, "not both"),
        (("list", "--state", "sleeping"), 2, "sleeping"),
    ],
)
def test_errors_are_one_line_with_the_cli_exit_status(
    app: Flask, args: tuple[str, ...], exit_code: int, message: str
) -> None:
    result = run(app, *args)
    assert result.exit_code == exit_code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_store_that_is_down_exits_3(env: Env, app: Flask) -> None:
    key_id = env.admin.verify(env.issue()).id
    env.store.down = True
    result = run(app, "revoke", key_id)
    assert result.exit_code == 3
    assert "connection refused" in result.stderr or "unavailable" in result.stderr.lower()
