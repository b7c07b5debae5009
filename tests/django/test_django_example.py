"""examples/django_project end to end: migrate, issue keys with the management
command, then call a real ``manage.py runserver`` on 127.0.0.1 over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from web_support import free_port, server_process

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "django_project"


def _env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(APIKEYS_EXAMPLE_DB=str(db), DJANGO_DEBUG="0", PYTHONUNBUFFERED="1")
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The example served by ``runserver`` on a free port, with two keys issued."""
    tmp = tmp_path_factory.mktemp("django-example")
    env = _env(tmp / "db.sqlite3")
    _manage(env, "migrate", "--noinput", "-v", "0")
    keys = {
        "reader": _manage(env, "createapikey", "--owner", "demo", "--scope", "orders:read"),
        "writer": _manage(env, "createapikey", "--owner", "ops", "-s", "orders:write"),
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with server_process(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        ready_url=base + "/",
        cwd=PROJECT,
        env=env,
        log=tmp / "server.log",
    ):
        yield base, keys


def test_the_example_serves_keys_end_to_end(server: tuple[str, dict[str, str]]) -> None:
    base, keys = server
    reader, writer = keys["reader"], keys["writer"]
    assert reader.startswith("shop_")
    assert writer.startswith("shop_")
    with httpx.Client(base_url=base, timeout=10) as client:
        index = client.get("/", headers={"X-API-Key": reader})
        assert index.json() == {"shop": "open", "caller": "demo"}
        ok = client.get("/orders/", headers={"Authorization": f"Bearer {reader}"})
        assert ok.status_code == 200
        assert ok.json()["owner"] == "demo"
        assert ok.headers["RateLimit-Policy"] == '"600/minute";q=600;w=60'
        assert client.get("/async/orders/", headers={"X-API-Key": reader}).json()["async"]
        assert client.get("/orders/1/", headers={"X-API-Key": reader}).json()["item"] == "tea"
        denied = client.post("/orders/new/", headers={"X-API-Key": reader}, json={"item": "pot"})
        assert denied.status_code == 403
        assert denied.headers["Content-Type"] == "application/problem+json"
        assert denied.json()["missing_scopes"] == ["orders:write"]
        created = client.post("/orders/new/", headers={"X-API-Key": writer}, json={"item": "pot"})
        assert created.status_code == 201
        assert created.json()["item"] == "pot"
        api = client.get("/api/orders/", headers={"Authorization": f"Bearer {reader}"})
        assert api.status_code == 200
        assert api.json()["owner"] == "demo"
        assert (
            client.post("/api/orders/", headers={"X-API-Key": writer}, json={}).status_code == 201
        )
        missing = client.get("/api/orders/")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_repeated_authorization_header_never_authenticates(
    server: tuple[str, dict[str, str]],
) -> None:
    # Two header lines, both carrying the valid key: the WSGI server joins them.
    base, keys = server
    host, port = base.removeprefix("http://").split(":")
    answers = []
    for path in ("/orders/", "/api/orders/"):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.putrequest("GET", path)
            conn.putheader("Authorization", f"Bearer {keys['reader']}")
            conn.putheader("Authorization", f"Bearer {keys['reader']}")
            conn.endheaders()
            response = conn.getresponse()
            answers.append(
                (response.status, response.getheader("WWW-Authenticate"), response.read())
            )
        finally:
            conn.close()
    for status, challenge, body in answers:
        assert status == 401
        assert challenge == 'Bearer realm="api", error="invalid_token"'
        assert json.loads(body)["code"] == "invalid_token"
    assert answers[0][2] == answers[1][2]  # a plain view and DRF answer alike
