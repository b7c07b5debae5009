"""One operator layer: ``apikeys``, ``flask apikeys`` and ``manage.py apikeys`` print
the same document for the same database, and share the exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from e2e_support import APPS, apikeys, apikeys_json, child_env


def _run(cwd: Path, *argv: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = child_env(database_url)
    del env["APIKEYS_DATABASE_URL"], env["APIKEYS_PREFIX"]  # the app's settings decide
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def flask_apikeys(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ("-m", "flask", "--app", "flask_app", "apikeys", *args)
    return _run(APPS, *argv, database_url=database_url)


def django_apikeys(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(APPS / "django_site", "manage.py", "apikeys", *args, database_url=database_url)


def test_the_three_command_lines_print_the_same_list(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    apikeys(url, "create", "--owner", "alpha", "-s", "orders:read", "--quiet")
    apikeys(url, "create", "--owner", "beta", "--count", "2", "--quiet")
    core = apikeys(url, "list", "--json").stdout
    assert len(json.loads(core)) == 3
    flask = flask_apikeys(url, "list", "--json")
    django = django_apikeys(url, "list", "--json")
    assert (flask.returncode, django.returncode) == (0, 0), flask.stderr + django.stderr
    assert flask.stdout == core
    assert django.stdout == core


def test_lifecycle_through_a_framework_lands_in_the_shared_audit_trail(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    made = django_apikeys(url, "create", "--owner", "gamma", "--json")
    assert made.returncode == 0, made.stderr
    key_id = json.loads(made.stdout)["key"]["id"]
    assert flask_apikeys(url, "revoke", key_id, "--reason", "leaked").returncode == 0
    assert django_apikeys(url, "purge", key_id).returncode == 0
    types = [e["type"] for e in apikeys_json(url, "audit", "--key", key_id)]
    assert types == ["key.created", "key.revoked", "key.purged"]  # purge keeps the trail
    missing = [run(url, "revoke", key_id) for run in (flask_apikeys, django_apikeys)]
    missing.append(apikeys(url, "revoke", key_id, check=False))
    assert {m.returncode for m in missing} == {1}
    frameworks = (flask_apikeys, django_apikeys)
    refused = [run(url, "list", "--database-url", "memory://") for run in frameworks]
    assert {r.returncode for r in refused} == {2}
