"""Every key command through the real entry point (a subprocess), on a SQLite file
and on PostgreSQL; then the finer behaviour in-process on SQLite."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cli_support import Runner, assert_one_line_error

from apikeys import KeyManager, _keyformat
from apikeys.hashing import Argon2Hasher
from apikeys.storage import store_from_url
from apikeys.testing import ManualClock

KEY_RE = re.compile(_keyformat.key_regex(["acme"]))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keys.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def library(database_url: str) -> Iterator[KeyManager]:
    """The library on the same store as the command (to set up states directly)."""
    manager = KeyManager(
        store_from_url(database_url), prefix="acme", hasher=Argon2Hasher.for_tests()
    )
    yield manager
    manager.close()


def owner_name() -> str:
    return f"team-{secrets.token_hex(4)}"


def id_of(plaintext: str) -> str:
    return plaintext.rpartition("_")[2][:16]


def test_every_key_command_through_the_entry_point(run_cli: Runner, database_url: str) -> None:
    env = {"APIKEYS_DATABASE_URL": database_url, "APIKEYS_PREFIX": "acme"}
    owner = owner_name()

    created = run_cli(
        "create", "--owner", owner, "--scope", "orders:read", "--name", "CI",
        "--expires-in", "90d", "--quiet", env=env,
    )  # fmt: skip
    assert (created.status, created.stderr) == (0, "")
    plaintext = created.stdout.strip()
    assert created.stdout == plaintext + "\n"  # the key, and nothing else
    assert KEY_RE.fullmatch(plaintext)
    key_id = id_of(plaintext)

    listed = run_cli("list", "--owner", owner, "--json", env=env)
    assert listed.status == 0
    [record] = json.loads(listed.stdout)
    assert (record["id"], record["name"], record["scopes"], record["state"]) == (
        key_id, "CI", ["orders:read"], "active",
    )  # fmt: skip
    assert plaintext not in listed.stdout

    updated = run_cli("update", key_id, "--add-scope", "orders:write", "--json", env=env)
    assert json.loads(updated.stdout)["scopes"] == ["orders:read", "orders:write"]

    verified = run_cli("verify", "--scope", "orders:write", env=env, input=plaintext + "\n")
    assert verified.status == 0
    assert verified.stdout.startswith(f"valid: key {key_id} of {owner}")

    rotated = run_cli("rotate", key_id, "--grace", "1h", "--json", env=env)
    assert rotated.status == 0
    successor = json.loads(rotated.stdout)
    new_plaintext, new_id = successor["plaintext"], successor["key"]["id"]
    assert KEY_RE.fullmatch(new_plaintext)
    assert successor["key"]["replaces"] == key_id

    shown = run_cli("show", key_id, env=env)
    assert shown.status == 0
    assert re.search(rf"^replaced by: +{new_id}$", shown.stdout, re.MULTILINE)
    assert re.search(r"^state: +active$", shown.stdout, re.MULTILINE)  # within its grace

    revoked = run_cli("revoke", new_id, "--reason", "leaked", env=env)
    assert revoked.status == 0
    assert new_id in revoked.stdout

    refused = run_cli("verify", new_plaintext, env=env)
    assert refused.status == 1
    assert refused.stdout.startswith("invalid: revoked:")

    purged = run_cli("purge", new_id, env=env)
    assert (purged.status, purged.stdout) == (0, new_id + "\n")

    gone = run_cli("show", new_id, env=env)
    assert_one_line_error(gone, 1, new_id)


def test_scan_check_store_and_revoke_from_scan(
    run_cli: Runner, database_url: str, library: KeyManager, tmp_path: Path
) -> None:
    owner = owner_name()
    live = library.create(owner=owner, scopes=["orders:read"])
    revoked = library.create(owner=owner)
    library.revoke(revoked.key.id)
    suspended = library.create(owner=owner)
    library.suspend(suspended.key.id)
    past = KeyManager(
        library.store, prefix="acme", hasher=library.hasher,
        clock=ManualClock(library.now() - timedelta(days=2)),
    )  # fmt: skip
    expired = past.create(owner=owner, expires_in=timedelta(days=1))
    unknown = _keyformat.generate("acme")[1]
    mismatch = _keyformat.format_key("acme", live.key.id, _keyformat.random_base62(32))
    leaks = tmp_path / "leaks"
    leaks.mkdir()
    (leaks / "app.log").write_text(
        "\n".join(
            f"token={k}"
            for k in (
                live.plaintext,
                revoked.plaintext,
                suspended.plaintext,
                expired.plaintext,
                unknown,
                mismatch,
                live.plaintext,
            )
        )
        + "\n"
    )
    env = {"APIKEYS_DATABASE_URL": database_url, "APIKEYS_PREFIX": "acme"}

    scanned = run_cli("scan", "--check-store", "leaks", env=env)
    assert scanned.status == 1
    assert scanned.stdout.splitlines() == [
        f"leaks/app.log:1:7: acme key {live.key.id} [live]",
        f"leaks/app.log:2:7: acme key {revoked.key.id} [revoked]",
        f"leaks/app.log:3:7: acme key {suspended.key.id} [suspended]",
        f"leaks/app.log:4:7: acme key {expired.key.id} [expired]",
        f"leaks/app.log:5:7: acme key {id_of(unknown)} [unknown] (not in the store)",
        f"leaks/app.log:6:7: acme key {live.key.id} [unknown] "
        "(the id exists but the secret does not match)",
        f"leaks/app.log:7:7: acme key {live.key.id} [live]",
    ]

    responded = run_cli("revoke", "--from-scan", "leaks", "--rotate", "--json", env=env)
    assert responded.status == 0, responded.stderr
    report = {(k["key_id"], k["state"]): k for k in json.loads(responded.stdout)["keys"]}
    assert len(report) == 6  # the live key found twice is handled once
    assert report[live.key.id, "live"]["locations"] == ["leaks/app.log:1:7", "leaks/app.log:7:7"]
    assert {k: v["action"] for k, v in report.items()} == {
        (live.key.id, "live"): "revoked",
        (revoked.key.id, "revoked"): "already revoked",
        (suspended.key.id, "suspended"): "revoked",
        (expired.key.id, "expired"): "revoked",
        (id_of(unknown), "unknown"): "none (unknown)",
        (live.key.id, "unknown"): "none (unknown)",
    }
    replacement = report[live.key.id, "live"]["replacement"]
    assert replacement["key"]["replaces"] == live.key.id
    assert library.verify(replacement["plaintext"]).owner == owner
    assert library.get(live.key.id).revoke_reason == "leaked: found by apikeys scan at " + (
        "leaks/app.log:1:7"
    )

    after = run_cli("scan", "--check-store", "leaks", "--json", env=env)
    assert after.status == 0  # nothing found can work any more
    states = [f["state"] for f in json.loads(after.stdout)["findings"]]
    assert states == ["revoked"] * 4 + ["unknown"] * 2 + ["revoked"]
