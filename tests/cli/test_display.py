"""What every tool prints for instants, states and rotation (issue 18): ISO 8601
UTC for machines, ``YYYY-MM-DD HH:MM:SS UTC`` for people, ``suspended`` for the
state whose machine name is ``disabled``, and a rotated key's successor and grace
end in ``list``."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cli_support import Runner

from apikeys import KeyManager
from apikeys._display import human_utc, iso_utc, key_row, state_label
from apikeys._models import KeyState
from apikeys.hashing import Argon2Hasher
from apikeys.storage import MemoryStore

MACHINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
HUMAN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def test_the_two_formats() -> None:
    at = datetime(2026, 12, 2, 18, 55, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert iso_utc(at) == "2026-12-02T17:55:00Z"
    assert human_utc(at) == "2026-12-02 17:55:00 UTC"
    assert human_utc(None) == "-"
    assert human_utc(None, "never") == "never"
    assert state_label(KeyState.DISABLED) == "suspended"
    assert state_label(KeyState.REVOKED) == "revoked"


def test_a_rotated_key_row_names_its_successor_and_grace_end() -> None:
    keys = KeyManager(MemoryStore(), prefix="acme", hasher=Argon2Hasher.for_tests())
    old = keys.create(owner="o").key
    new = keys.rotate(old.id, grace=timedelta(hours=24)).key
    row = key_row(keys.get(old.id), keys.now())
    ends = human_utc(keys.get(old.id).expires_at)
    assert row[-1] == f"replaced by {new.id}, grace ends {ends}"
    assert key_row(new, keys.now())[-1] == "-"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"APIKEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}", "APIKEYS_PREFIX": "acme"}


def _id(plaintext: str) -> str:
    return plaintext.rsplit("_", 1)[1][:16]


def test_list_shows_rotation_suspension_and_one_date_format(
    cli: Runner, env: dict[str, str]
) -> None:
    old = _id(cli("create", "--owner", "o", "--quiet", "--expires-in", "30d", env=env).stdout)
    other = _id(cli("create", "--owner", "o", "--quiet", env=env).stdout)
    rotated = cli("rotate", old, "--grace", "24h", "--json", env=env)
    assert rotated.status == 0, rotated.stderr
    assert cli("suspend", other, env=env).stdout.strip() == f"{other}: suspended"

    listed = {k["id"]: k for k in json.loads(cli("list", "--json", env=env).stdout)}
    new = listed[old]["replaced_by"]
    assert listed[new]["replaces"] == old
    assert MACHINE.match(listed[old]["grace_ends_at"])
    assert listed[old]["grace_ends_at"] == listed[old]["expires_at"]
    assert listed[new]["grace_ends_at"] is None
    assert listed[other]["state"] == "disabled"  # the machine name, kept stable
    for key in listed.values():
        assert MACHINE.match(key["created_at"])

    table = cli("list", env=env).stdout
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    grace = listed[old]["grace_ends_at"].replace("T", " ").replace("Z", " UTC")
    assert rows[old].endswith(f"replaced by {new}, grace ends {grace}")
    assert " suspended " in rows[other]
    assert "disabled" not in table
    assert HUMAN.search(rows[old])
    assert not re.search(r"\d\dT\d\d:", table)  # no machine format for people

    only = cli("list", "--state", "suspended", "--json", env=env).stdout
    assert [k["id"] for k in json.loads(only)] == [other]
    details = cli("show", old, env=env).stdout
    assert f"grace ends:     {grace}" in details
    assert re.search(r"^created: +" + HUMAN.pattern + "$", details, re.MULTILINE)
