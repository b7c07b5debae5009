"""The key commands' finer behaviour, in-process on a SQLite file: output formats,
bulk operations, confirmations, and the exit status and one-line error of each failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import Runner, assert_one_line_error

from apikeys import KeyManager, _keyformat
from apikeys.hashing import HmacHasher
from apikeys.storage import store_from_url


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"APIKEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}", "APIKEYS_PREFIX": "acme"}


def create(cli: Runner, *args: str, env: dict[str, str] | None = None) -> str:
    result = cli("create", "--quiet", *args, env=env)
    assert result.status == 0, result
    return result.stdout.strip()


def key_id(plaintext: str) -> str:
    return plaintext.rpartition("_")[2][:16]


def test_create_prints_the_key_once_in_each_format(cli: Runner, env: dict[str, str]) -> None:
    human = cli("create", "--owner", "team-1", "-s", "orders:read,orders:write", env=env)
    assert human.status == 0
    lines = dict(line.split(":", 1) for line in human.stdout.splitlines())
    plaintext = lines["key"].strip()
    assert lines["key id"].strip() == key_id(plaintext)
    assert lines["scopes"].strip() == "orders:read, orders:write"
    assert lines["expires"].strip() == "never"
    assert "only time the key is shown" in human.stderr
    assert plaintext not in human.stderr

    many = cli("create", "--owner", "team-1", "--count", "3", "--quiet")
    keys = many.stdout.split()
    assert len(set(keys)) == 3
    assert all(_keyformat.parse_or_none(k, frozenset({"acme"})) for k in keys)

    as_json = json.loads(cli("create", "--owner", "team-2", "--count", "2", "--json").stdout)
    assert [item["key"]["owner"] for item in as_json] == ["team-2", "team-2"]
    assert all(key_id(item["plaintext"]) == item["key"]["id"] for item in as_json)


def test_default_database_is_apikeys_db_in_the_working_directory(
    cli: Runner, tmp_path: Path
) -> None:
    missing = cli("list")
    assert_one_line_error(missing, 3, "no key database at apikeys.db")
    assert not (tmp_path / "apikeys.db").exists()  # reading never creates it
    create(cli, "--owner", "o", "--prefix", "acme")
    assert (tmp_path / "apikeys.db").is_file()
    assert "o" in cli("list").stdout


def test_unreachable_store_exits_3_without_showing_the_password(cli: Runner) -> None:
    url = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/nowhere"
    result = cli("list", "--database-url", url)
    assert_one_line_error(result, 3)
    assert "hunter2" not in result.stderr


def test_usage_errors_exit_2(cli: Runner, env: dict[str, str]) -> None:
    assert_one_line_error(cli("create", "--owner", "o", env={**env, "APIKEYS_PREFIX": ""}), 2)
    assert_one_line_error(cli("create", "--owner", "o", "-s", "Orders", env=env), 2, "scope")
    assert_one_line_error(cli("create", "--owner", "o", "--expires-in", "soon"), 2, "duration")
    assert_one_line_error(cli("create", "--owner", "o", "--metadata", "[1]"), 2, "object")
    assert_one_line_error(cli("create", "--owner", "o", "--count", "0"), 2, "--count")
    plaintext = create(cli, "--owner", "o")
    assert_one_line_error(cli("update", key_id(plaintext)), 2, "nothing to update")
    assert_one_line_error(cli("revoke"), 2)
    assert_one_line_error(cli("revoke", key_id(plaintext), "--rotate"), 2, "--from-scan")
    assert_one_line_error(cli("purge"), 2)
    assert_one_line_error(cli("list", "--state", "gone"), 2, "invalid choice")
    assert_one_line_error(cli("show", "not-an-id"), 2, "not a key id")
    assert_one_line_error(cli("list", env={"APIKEYS_HASHER": "md5"}), 2, "APIKEYS_HASHER")


def test_refused_operations_exit_1(cli: Runner, env: dict[str, str]) -> None:
    first = create(cli, "--owner", "o", env=env)
    second = create(cli, "--owner", "o")
    assert cli("revoke", key_id(first)).status == 0
    assert_one_line_error(cli("rotate", key_id(first)), 1, "revoked")
    assert_one_line_error(cli("update", key_id(first), "--name", "x"), 1, "revoked")
    assert_one_line_error(cli("show", "AAAAAAAAAAAAAAAA"), 1, "AAAAAAAAAAAAAAAA")
    assert_one_line_error(cli("purge", "AAAAAAAAAAAAAAAA"), 1, "AAAAAAAAAAAAAAAA")
    # One unknown id among several: the others are still revoked.
    mixed = cli("revoke", "AAAAAAAAAAAAAAAA", key_id(second))
    assert mixed.status == 1
    assert key_id(second) in mixed.stdout
    assert "AAAAAAAAAAAAAAAA" in mixed.stderr
    assert json.loads(cli("show", key_id(second), "--json").stdout)["state"] == "revoked"


def test_bulk_revoke_and_purge_show_their_targets_and_need_yes(
    cli: Runner, env: dict[str, str]
) -> None:
    keys = cli("create", "--owner", "leaky", "--count", "3", "--quiet", env=env).stdout.split()
    other = create(cli, "--owner", "other")
    preview = cli("revoke", "--owner", "leaky")
    assert preview.status == 2
    assert sorted(line.split()[0] for line in preview.stdout.splitlines()[1:]) == sorted(
        key_id(k) for k in keys
    )
    assert "add --yes" in preview.stderr
    assert {k["state"] for k in json.loads(cli("list", "--json").stdout)} == {"active"}

    done = cli("revoke", "--owner", "leaky", "--reason", "offboarded", "--yes", "--json")
    assert done.status == 0
    assert {(k["state"], k["revoke_reason"]) for k in json.loads(done.stdout)} == {
        ("revoked", "offboarded")
    }
    assert cli("purge", "--state", "revoked").status == 2
    assert cli("purge", "--state", "revoked", "--older-than", "1d", "--yes").stdout == ""
    purged = cli("purge", "--state", "revoked", "--yes", "--json")
    assert sorted(json.loads(purged.stdout)["purged"]) == sorted(key_id(k) for k in keys)
    assert [k["id"] for k in json.loads(cli("list", "--all", "--json").stdout)] == [key_id(other)]


def test_list_pages(cli: Runner, env: dict[str, str]) -> None:
    cli("create", "--owner", "o", "--count", "5", "--quiet", env=env)
    page = cli("list", "--limit", "2")
    assert len(page.stdout.splitlines()) == 3  # header and two rows
    assert page.stdout.splitlines()[0].split() == [
        "ID", "PREFIX", "OWNER", "NAME", "STATE", "SCOPES", "EXPIRES", "LAST", "USED", "ROTATION",
    ]  # fmt: skip
    last = page.stdout.splitlines()[2].split()[0]
    assert f"--after {last}" in page.stderr
    rest = json.loads(cli("list", "--after", last, "--json").stdout)
    assert len(rest) == 3
    assert len(json.loads(cli("list", "--all", "--json").stdout)) == 5


def test_verify_reports_each_failure_code(cli: Runner, env: dict[str, str]) -> None:
    plaintext = create(
        cli, "--owner", "o", "-s", "orders:read", "--allow-ip", "10.0.0.0/8", env=env
    )
    ok = cli("verify", "-", "--ip", "10.1.2.3", input=plaintext)
    assert ok.status == 0
    for args, code in [
        (("--ip", "192.0.2.1"), "ip_not_allowed"),
        (("--ip", "10.1.2.3", "-s", "orders:write"), "insufficient_scope"),
    ]:
        result = cli("verify", *args, input=plaintext)
        assert (result.status, result.stdout.split(":")[1].strip()) == (1, code)
    malformed = cli("verify", "--json", input="acme_nope")
    assert json.loads(malformed.stdout) == {
        "valid": False, "code": "malformed", "message": "Invalid API key.", "key_id": None,
    }  # fmt: skip
    wrong = _keyformat.format_key("acme", key_id(plaintext), _keyformat.random_base62(32))
    mismatch = cli("verify", "--json", input=wrong)
    assert json.loads(mismatch.stdout)["code"] == "invalid_secret"
    assert wrong.rpartition("_")[2][16:] not in mismatch.stdout


def test_update_settings(cli: Runner, env: dict[str, str]) -> None:
    plaintext = create(cli, "--owner", "o", "--name", "CI", "--expires-in", "1d", env=env)
    kid = key_id(plaintext)

    def update(*args: str) -> dict[str, object]:
        result = cli("update", kid, *args, "--json")
        assert result.status == 0, result
        data: dict[str, object] = json.loads(result.stdout)
        return data

    assert update("--no-expiry", "--clear-name")["expires_at"] is None
    assert update("-s", "a:read", "-s", "b:*")["scopes"] == ["a:read", "b:*"]
    assert update("--remove-scope", "a:read")["scopes"] == ["b:*"]
    assert update("--allow-ip", "10.0.0.0/8")["allowed_ips"] == ["10.0.0.0/8"]
    assert update("--allow-anywhere")["allowed_ips"] == []
    assert update("--metadata", '{"team": "billing"}')["metadata"] == {"team": "billing"}
    assert update("--expires-at", "2099-01-01")["expires_at"] == "2099-01-01T00:00:00Z"
    assert update("--quota", "1000/month", "--rate-limit", "10/second")["quota"] == "1000/month"
    assert update("--no-quota", "--clear-rate-limits")["rate_limits"] == []


def test_a_whole_key_is_accepted_for_an_id_and_never_echoed(
    cli: Runner, env: dict[str, str]
) -> None:
    plaintext = create(cli, "--owner", "o", env=env)
    shown = cli("show", plaintext)
    assert shown.status == 0
    secret = plaintext.rpartition("_")[2][16:]
    assert secret not in shown.stdout + shown.stderr
    broken = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
    refused = cli("show", broken)
    assert_one_line_error(refused, 2)
    assert secret not in refused.stderr


def test_hmac_hasher_matches_the_application(cli: Runner, env: dict[str, str]) -> None:
    pepper = "p" * 40
    plaintext = create(
        cli, "--owner", "o", env={**env, "APIKEYS_HASHER": "hmac", "APIKEYS_HMAC_PEPPERS": pepper}
    )
    app = KeyManager(store_from_url(env["APIKEYS_DATABASE_URL"]), prefix="acme",
                     hasher=HmacHasher([pepper]))  # fmt: skip
    try:
        assert app.verify(plaintext).owner == "o"
    finally:
        app.close()
    assert_one_line_error(cli("list", env={"APIKEYS_HMAC_PEPPERS": "short"}), 2, "pepper")


def test_rotate_prints_the_successor(cli: Runner, env: dict[str, str]) -> None:
    plaintext = create(cli, "--owner", "o", env=env)
    rotated = cli("rotate", key_id(plaintext), "--grace", "2h")
    assert rotated.status == 0
    new = dict(line.split(":", 1) for line in rotated.stdout.splitlines())["key"].strip()
    assert key_id(new) != key_id(plaintext)
    assert f"key {key_id(plaintext)} is replaced by {key_id(new)}; it works until" in (
        rotated.stderr
    )
    assert cli("rotate", key_id(new), "--quiet").stdout.count("\n") == 1


def test_revoke_from_scan_human_report(cli: Runner, env: dict[str, str], tmp_path: Path) -> None:
    live = create(cli, "--owner", "team-42", env=env)
    gone = create(cli, "--owner", "team-7")
    assert cli("revoke", key_id(gone)).status == 0
    (tmp_path / "dump.txt").write_text(f"{live}\n{gone}\n")
    result = cli("revoke", "--from-scan", "dump.txt", "--rotate", "--reason", "pastebin")
    assert result.status == 0
    table, _, new_keys = result.stdout.partition("\n\n")
    rows = [line.split() for line in table.splitlines()]
    assert rows[0] == ["KEY", "ID", "OWNER", "FOUND", "AT", "WAS", "ACTION", "REPLACEMENT"]
    replacement = rows[1][5]
    assert rows[1] == [key_id(live), "team-42", "dump.txt:1:1", "live", "revoked", replacement]
    assert rows[2] == [key_id(gone), "team-7", "dump.txt:2:1", "revoked", "already", "revoked", "-"]
    lines = new_keys.splitlines()
    assert lines[0] == "New keys, shown only this once (hand each to its owner):"
    new_id, owner, new_plaintext = lines[2].split()
    assert (new_id, owner, key_id(new_plaintext)) == (replacement, "team-42", replacement)
    assert "revoked 1 key(s)" in result.stderr
    record = json.loads(cli("show", key_id(live), "--json").stdout)
    assert (record["revoke_reason"], record["replaced_by"]) == ("pastebin", replacement)
    # The successor works; running the response again changes nothing more.
    assert cli("verify", input=new_plaintext).status == 0
    again = cli("revoke", "--from-scan", "dump.txt", "--json")
    assert [k["action"] for k in json.loads(again.stdout)["keys"]] == ["already revoked"] * 2
