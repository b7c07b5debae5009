"""The CLI on Settings and a wired manager: every lifecycle command lands in the
audit trail, ``memory://`` is refused, and the shared options apply."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cli_support import Runner, assert_one_line_error


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"APIKEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}", "APIKEYS_PREFIX": "acme"}


def ok(result: object) -> object:
    assert getattr(result, "status", None) == 0, result
    return result


def test_every_lifecycle_command_writes_the_audit_trail(cli: Runner, env: dict[str, str]) -> None:
    made = json.loads(cli("create", "--owner", "team-1", "--json", env=env).stdout)
    key_id = made["key"]["id"]
    ok(cli("update", key_id, "--name", "CI", env=env))
    ok(cli("suspend", key_id, "--reason", "checking", env=env))
    ok(cli("enable", key_id, env=env))
    rotated = json.loads(cli("rotate", key_id, "--json", env=env).stdout)
    new_id = rotated["key"]["id"]
    ok(cli("revoke", new_id, "--reason", "leaked", env=env))
    ok(cli("purge", key_id, env=env))
    trail = json.loads(cli("audit", "--json", env=env).stdout)
    of_old = [e["type"] for e in trail if e["key_id"] == key_id]
    assert of_old == [
        "key.created",
        "key.updated",
        "key.suspended",
        "key.enabled",
        "key.rotated",
        "key.purged",
    ]
    assert [e["type"] for e in trail if e["key_id"] == new_id] == ["key.created", "key.revoked"]
    assert made["plaintext"] not in json.dumps(trail)


def test_purge_keeps_the_audit_entries_and_says_so(cli: Runner, env: dict[str, str]) -> None:
    assert "audit trail keeps" in cli("--help").stdout
    assert "entries are kept" in " ".join(cli("purge", "--help").stdout.split())
    key_id = json.loads(cli("create", "--owner", "o", "--json", env=env).stdout)["key"]["id"]
    ok(cli("purge", key_id, env=env))
    assert cli("show", key_id, env=env).status == 1
    types = [e["type"] for e in json.loads(cli("audit", "--key", key_id, "--json", env=env).stdout)]
    assert types == ["key.created", "key.purged"]


@pytest.mark.parametrize("command", [("create", "--owner", "x"), ("list",), ("audit",)])
def test_memory_is_refused_instead_of_losing_keys(cli: Runner, command: tuple[str, ...]) -> None:
    result = cli(*command, "--database-url", "memory://", "--prefix", "acme")
    assert_one_line_error(result, 2, "memory://", "vanish")


def test_shared_options_apply_to_the_cli(cli: Runner, env: dict[str, str]) -> None:
    env = {**env, "APIKEYS_DEFAULT_EXPIRY": "30d", "APIKEYS_ROTATION_GRACE": "1h"}
    made = json.loads(cli("create", "--owner", "o", "--json", env=env).stdout)
    expires = datetime.fromisoformat(made["key"]["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - datetime.now(timezone.utc) - timedelta(days=30)) < timedelta(minutes=1)
    ok(cli("rotate", made["key"]["id"], "--quiet", env=env))
    old = json.loads(cli("show", made["key"]["id"], "--json", env=env).stdout)
    ends = datetime.fromisoformat(old["expires_at"].replace("Z", "+00:00"))
    assert abs(ends - datetime.now(timezone.utc) - timedelta(hours=1)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("variables", "fragment"),
    [
        ({"APIKEYS_PREFX": "acme"}, "APIKEYS_PREFX"),
        ({"APIKEYS_DEFAULT_EXPIRY": "soon"}, "APIKEYS_DEFAULT_EXPIRY"),
        ({"APIKEYS_HASHER": "md5"}, "APIKEYS_HASHER"),
    ],
)
def test_a_bad_setting_is_a_usage_error_naming_it(
    cli: Runner, env: dict[str, str], variables: dict[str, str], fragment: str
) -> None:
    assert_one_line_error(cli("list", env={**env, **variables}), 2, fragment)


def test_monitoring_off_still_reads_usage_and_audit(cli: Runner, env: dict[str, str]) -> None:
    key_id = json.loads(cli("create", "--owner", "o", "--json", env=env).stdout)["key"]["id"]
    quiet = {**env, "APIKEYS_MONITORING": "false"}
    ok(cli("revoke", key_id, env=quiet))
    types = [e["type"] for e in json.loads(cli("audit", "--json", env=quiet).stdout)]
    assert types == ["key.created"]  # the revocation was not recorded, by request
