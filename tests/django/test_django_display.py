"""Django prints what the other tools print (issue 18): ``manage.py apikeys``,
``listapikeys`` and the admin show rotation, ``suspended`` and the two date
formats."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from dj_support import Env
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from apikeys._display import human_utc, iso_utc

CHANGELIST = "/admin/apikeys/apikeyrecord/"


def _keys(env: Env) -> tuple[str, str, str]:
    m = env.manager
    old = m.create(owner="o").key
    new = m.rotate(old.id, grace=timedelta(hours=2)).key
    other = m.create(owner="o").key
    m.suspend(other.id)
    return old.id, new.id, other.id


def _call(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_manage_py_apikeys_list(apikeys_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    old, new, other = _keys(apikeys_env)
    ends = apikeys_env.clock.now + timedelta(hours=2)
    capsys.readouterr()
    call_command("apikeys", "list", "--json")
    by_id = {k["id"]: k for k in json.loads(capsys.readouterr().out)}
    assert by_id[old]["grace_ends_at"] == iso_utc(ends)
    assert by_id[old]["created_at"] == iso_utc(apikeys_env.clock.now)
    assert by_id[other]["state"] == "disabled"
    call_command("apikeys", "list")
    table = capsys.readouterr().out
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert rows[old].endswith(f"replaced by {new}, grace ends {human_utc(ends)}")
    assert " suspended " in rows[other]


def test_listapikeys_prints_the_same_table(apikeys_env: Env) -> None:
    old, new, other = _keys(apikeys_env)
    ends = human_utc(apikeys_env.clock.now + timedelta(hours=2))
    table = _call("listapikeys")
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert rows[old].endswith(f"replaced by {new}, grace ends {ends}")
    assert " suspended " in rows[other]
    assert not re.search(r"\d\dT\d\d:", table)
    listed = [json.loads(line) for line in _call("listapikeys", "--json").splitlines()]
    assert {k["id"]: k["created_at"] for k in listed}[old] == iso_utc(apikeys_env.clock.now)


def test_the_admin_shows_suspended_rotation_and_readable_dates(apikeys_env: Env) -> None:
    user, _ = User.objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    old, new, other = _keys(apikeys_env)
    created = human_utc(apikeys_env.clock.now)
    page = client.get(CHANGELIST).content.decode()
    assert created in page
    assert ">suspended<" in page
    assert ">disabled<" not in page  # the machine name only in the filter's URL
    detail = client.get(CHANGELIST + f"{old}/change/").content.decode()
    assert human_utc(apikeys_env.clock.now + timedelta(hours=2)) in detail
    assert "grace ends" in detail.lower()
    assert new in detail
    suspended = client.get(CHANGELIST + f"{other}/change/").content.decode()
    assert "Suspend reason" in suspended or "suspend reason" in suspended
