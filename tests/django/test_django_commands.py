"""The management commands: createapikey, revokeapikey, rotateapikey, listapikeys."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from dj_support import Env, configured
from django.core.management import CommandError, call_command

from apikeys.errors import AuthenticationError


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_createapikey_prints_only_the_plaintext_on_stdout(apikeys_env: Env) -> None:
    out, err = run(
        "createapikey", "--owner", "team-42", "-s", "orders:read", "--scope", "orders:write",
        "--name", "CI", "--expires-in", "30d", "--allowed-ip", "10.0.0.0/8",
    )  # fmt: skip
    plaintext = out.strip()
    key = apikeys_env.manager.verify(plaintext, scopes=["orders:write"], ip="10.1.1.1")
    assert key.name == "CI"
    assert key.allowed_ips == ("10.0.0.0/8",)
    assert key.expires_at == apikeys_env.clock.now + timedelta(days=30)
    assert key.id in err
    assert plaintext not in err


def test_createapikey_uses_the_default_expiry_unless_told_otherwise(apikeys_env: Env) -> None:
    with configured(apikeys_env, DEFAULT_EXPIRY="7d"):
        default = apikeys_env.manager.verify(run("createapikey", "--owner", "a")[0].strip())
        never = apikeys_env.manager.verify(
            run("createapikey", "--owner", "a", "--no-expiry")[0].strip()
        )
    assert default.expires_at == apikeys_env.clock.now + timedelta(days=7)
    assert never.expires_at is None


def test_createapikey_json(apikeys_env: Env) -> None:
    out, _ = run("createapikey", "--owner", "team-42", "--json", "--rate-limit", "10/second")
    data = json.loads(out)
    assert apikeys_env.manager.verify(data["key"]).id == data["id"]
    assert data["state"] == "active"
    assert data["rate_limits"] == ["10/second"]


@pytest.mark.parametrize(
    "args",
    [
        ("createapikey", "--owner", "x", "--scope", "bad scope"),
        ("createapikey", "--owner", "x", "--expires-in", "soon"),
        ("createapikey", "--owner", "x", "--prefix", "other"),
        ("revokeapikey", "0000000000000000"),
        ("rotateapikey", "0000000000000000"),
        ("listapikeys", "--limit", "0"),
    ],
)
def test_bad_input_is_a_command_error(apikeys_env: Env, args: tuple[str, ...]) -> None:
    with pytest.raises(CommandError):
        run(*args)
    assert apikeys_env.manager.list() == []


def test_revokeapikey(apikeys_env: Env) -> None:
    plaintext = apikeys_env.issue()
    key_id = apikeys_env.manager.list()[0].id
    out, _ = run("revokeapikey", key_id, "--reason", "leaked")
    assert "state=revoked" in out
    with pytest.raises(AuthenticationError) as caught:
        apikeys_env.manager.verify(plaintext)
    assert caught.value.code == "revoked"
    assert apikeys_env.manager.get(key_id).revoke_reason == "leaked"


def test_rotateapikey(apikeys_env: Env) -> None:
    old = apikeys_env.issue("orders:read")
    key_id = apikeys_env.manager.list()[0].id
    out, err = run("rotateapikey", key_id, "--grace", "1h")
    new = out.strip()
    assert apikeys_env.manager.verify(new).scopes == ("orders:read",)
    assert apikeys_env.manager.verify(old).replaced_by == apikeys_env.manager.verify(new).id
    assert new not in err
    apikeys_env.clock.advance(timedelta(hours=2))
    with pytest.raises(AuthenticationError):
        apikeys_env.manager.verify(old)


def test_listapikeys(apikeys_env: Env) -> None:
    m = apikeys_env.manager
    a = m.create(owner="alpha", scopes=["orders:read"], name="CI")
    b = m.create(owner="beta")
    m.revoke(b.key.id)
    table, _ = run("listapikeys")
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["ID", "PREFIX", "OWNER"]
    assert len(lines) == 3
    assert a.plaintext not in table
    assert b.plaintext not in table
    assert "argon2" not in table
    out, _ = run("listapikeys", "--owner", "alpha", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [a.key.id]
    out, _ = run("listapikeys", "--state", "revoked", "--json")
    assert [json.loads(line)["state"] for line in out.splitlines()] == ["revoked"]
    _, err = run("listapikeys", "--owner", "nobody")
    assert "No keys." in err


def test_commands_fail_closed_when_the_database_is_down(apikeys_env: Env) -> None:
    with configured(apikeys_env, DATABASE="down"), pytest.raises(CommandError, match="failed"):
        run("listapikeys")


def test_manage_py_apikeys_is_the_apikeys_command(
    apikeys_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    issued = apikeys_env.manager.create(owner="team-42", scopes=["orders:read"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        call_command("apikeys", "show", "AAAAAAAAAAAAAAAA")
    assert done.value.code == 1
    call_command("apikeys", "list", "--json")
    listed = json.loads(capsys.readouterr().out)
    assert [(k["id"], k["owner"], k["state"]) for k in listed] == [
        (issued.key.id, "team-42", "active")
    ]
    call_command("apikeys", "revoke", issued.key.id, "--reason", "leaked")
    with pytest.raises(AuthenticationError):
        apikeys_env.manager.verify(issued.plaintext)
    with pytest.raises(SystemExit) as refused:
        call_command("apikeys", "list", "--prefix", "other")
    assert refused.value.code == 2


def test_manage_py_apikeys_reports_a_bad_setting_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from django.test import override_settings

    bad = {"PREFIX": "acme", "DEFAULT_EXPIRY": "soon"}
    with override_settings(APIKEYS=bad), pytest.raises(SystemExit) as done:
        call_command("apikeys", "list")
    assert done.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "apikeys: error: invalid apikeys option default_expiry (APIKEYS_DEFAULT_EXPIRY): "
        "invalid duration 'soon': use e.g. 90d, 1d12h, a number of seconds or ISO 8601 (P90D)"
    ]
