"""The same tests for every ASGI adapter (FastAPI, generic ASGI, Litestar): import
``*`` from here in an adapter's test module, and give it these fixtures:

- ``demo_app``: ``(module, folder)`` of the module whose ``app`` serves the demo
  app on ``served_manager()`` (for uvicorn).
- ``build_app(manager, settings)``: the adapter's demo app (an ASGI app) on
  ``manager`` with :class:`~apikeys.http.HTTPSettings` ``settings``, whose routes are
  ``/public`` (no key, answers ``{"current": <current_key's owner or None>}``),
  ``/orders/{order_id}`` (``orders:read``), ``/me`` (any key, answers
  ``{"owner": ..., "current": <current_key's owner>}``), ``/boom`` (any key, raises) and ``/check``
  (any key; the handler itself raises ``InsufficientScope``).

The battery brings ``env`` (sync and async managers), ``make_env`` and
``make_client(manager, *, client=(host, port), base_url=..., **http_settings)``.
Every answer is the request layer's, so the bodies are byte-identical across
adapters; these tests pin them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apikeys import KeyState
from apikeys.events import KeyExposed
from apikeys.http import HTTPSettings
from apikeys.monitoring import Monitor, PlaintextTransport
from apikeys.testing import auth_headers
from web_support import Env, PeerAt, WindowLimiter, make_env, uvicorn_server

with warnings.catch_warnings():
    # Starlette 1.x deprecates running its TestClient on httpx (it wants httpx2).
    warnings.filterwarnings("ignore", message=".*starlette.testclient.*", category=Warning)
    from starlette.testclient import TestClient

__all__ = [
    "env",
    "kind",
    "make_client",
    "make_env_fixture",
    "test_401_bodies_are_identical_whatever_the_reason",
    "test_403_names_the_missing_scope",
    "test_429_and_rate_limit_headers",
    "test_503_when_the_store_is_down_is_logged",
    "test_a_non_ip_forwarded_hop_is_an_unknown_client",
    "test_a_real_uvicorn_server",
    "test_apikey_errors_raised_by_a_handler_are_problems",
    "test_current_key_is_none_until_authenticated",
    "test_empty_list_elements_and_unicode_whitespace_are_malformed",
    "test_one_credential_per_request",
    "test_plain_http_is_refused_after_the_secret_is_proven",
    "test_plaintext_transport_detector_suspends_the_key",
    "test_usage_is_reported_once_with_the_route_template",
]

MakeClient = Callable[..., Any]


@pytest.fixture(params=["async", "sync"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def env(kind: str) -> Env:
    return make_env(kind)


@pytest.fixture(name="make_env")
def make_env_fixture(kind: str) -> Callable[..., Env]:
    """``make_env(limiter=..., **manager_args)`` for the parametrized kind."""
    return lambda **kwargs: make_env(kind, **kwargs)


@pytest.fixture
def make_client(build_app: Callable[..., Any]) -> Iterator[MakeClient]:
    clients: list[TestClient] = []

    def make(
        manager: Any,
        *,
        client: tuple[str, int] = ("203.0.113.9", 40000),
        base_url: str = "http://testserver",
        **settings: Any,
    ) -> TestClient:
        app = PeerAt(build_app(manager, HTTPSettings(**settings)), client)
        test_client = TestClient(app, base_url=base_url, raise_server_exceptions=False)
        clients.append(test_client)
        return test_client

    yield make
    for test_client in clients:
        test_client.close()


INVALID = {
    "type": "about:blank",
    "title": "Unauthorized",
    "status": 401,
    "detail": "The API key is malformed, unknown, expired or revoked.",
    "code": "invalid_token",
}


def test_401_bodies_are_identical_whatever_the_reason(env: Env, make_client: MakeClient) -> None:
    client = make_client(env.manager)
    missing = client.get("/orders/1")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"] == 'Bearer realm="api"'
    assert missing.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "An API key is required.",
        "code": "missing_credentials",
    }
    revoked = env.admin.create(owner="team-1", scopes=["orders:read"])
    env.admin.revoke(revoked.key.id)
    answers = [
        client.get("/orders/1", headers=auth_headers(raw))
        for raw in ("acme_junk", env.issue(["orders:read"])[:-3] + "AAA", revoked.plaintext)
    ]
    assert {a.status_code for a in answers} == {401}
    assert {a.content for a in answers} == {answers[0].content}
    assert answers[0].json() == INVALID
    assert answers[0].headers["www-authenticate"] == 'Bearer realm="api", error="invalid_token"'


def test_current_key_is_none_until_authenticated(env: Env, make_client: MakeClient) -> None:
    client = make_client(env.manager)
    raw = env.issue()
    assert client.get("/public", headers=auth_headers(raw)).json()["current"] is None
    assert client.get("/me", headers=auth_headers(raw)).json()["owner"] == "team-1"
    assert client.get("/me", headers=auth_headers(raw)).json()["current"] == "team-1"


def test_403_names_the_missing_scope(env: Env, make_client: MakeClient) -> None:
    client = make_client(env.manager)
    refused = client.get("/orders/1", headers=auth_headers(env.issue(["orders:write"])))
    assert refused.status_code == 403
    assert refused.json() == {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": "Missing scope(s): orders:read.",
        "code": "insufficient_scope",
        "missing_scopes": ["orders:read"],
    }
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    granted = client.get("/orders/7", headers=auth_headers(env.issue(["orders:read"])))
    assert granted.status_code == 200
    assert granted.json()["order"] == 7


def test_apikey_errors_raised_by_a_handler_are_problems(env: Env, make_client: MakeClient) -> None:
    client = make_client(env.manager)
    answer = client.get("/check", headers=auth_headers(env.issue()))
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["missing_scopes"] == ["orders:delete"]


def test_429_and_rate_limit_headers(make_env: Callable[..., Env], make_client: MakeClient) -> None:
    env = make_env(limiter=WindowLimiter(2))
    client = make_client(env.manager)
    raw = env.issue()
    first = client.get("/me", headers=auth_headers(raw))
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == '"2/minute";q=2;w=60'
    assert first.headers["ratelimit"].startswith('"2/minute";r=1;t=')
    client.get("/me", headers=auth_headers(raw))
    limited = client.get("/me", headers=auth_headers(raw))
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit"] == f'"2/minute";r=0;t={limited.headers["retry-after"]}'


def test_503_when_the_store_is_down_is_logged(
    env: Env, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(env.manager)
    raw = env.issue()
    env.store.down = True
    with caplog.at_level(logging.WARNING, logger="apikeys"):
        answer = client.get("/me", headers=auth_headers(raw))
    assert answer.status_code == 503
    assert answer.json() == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The API key service is temporarily unavailable.",
        "code": "service_unavailable",
    }
    assert "GET /me answered 503 (storage_unavailable)" in caplog.text


def test_one_credential_per_request(env: Env, make_client: MakeClient) -> None:
    client = make_client(env.manager)
    raw = env.issue()
    assert client.get("/me", headers={"X-API-Key": raw}).json()["owner"] == "team-1"
    assert client.get("/me", headers=[("X-API-Key", raw)] * 2).status_code == 401
    both = client.get("/me", headers={"X-API-Key": raw, "Authorization": f"Bearer {raw}"})
    assert both.status_code == 401
    assert client.get("/me", headers={"X-API-Key": f"{raw},{raw}"}).status_code == 401


@pytest.mark.parametrize(
    "value",
    [",{raw}", "{raw},", "{raw}, ", "\xa0{raw}", "{raw}\x85", "Bearer {raw}", ""],
)
def test_empty_list_elements_and_unicode_whitespace_are_malformed(
    env: Env, make_client: MakeClient, value: str
) -> None:
    client = make_client(env.manager)
    raw = env.issue()
    refused = client.get("/me", headers={"X-API-Key": value.format(raw=raw).encode("latin-1")})
    assert refused.status_code == 401
    assert refused.json() == INVALID
    # RFC 9110 optional whitespace (SP, HTAB) is trimmed, nothing else.
    assert client.get("/me", headers={"X-API-Key": f" \t{raw}\t "}).status_code == 200
    assert client.get("/me", headers={"Authorization": f"Bearer  {raw}\t"}).status_code == 200


def test_usage_is_reported_once_with_the_route_template(env: Env, make_client: MakeClient) -> None:
    client = make_client(env.manager)
    issued = env.admin.create(owner="team-3", scopes=["orders:read"])
    assert client.get("/orders/42", headers=auth_headers(issued.plaintext)).status_code == 200
    assert client.get("/boom", headers=auth_headers(issued.plaintext)).status_code == 500
    client.get("/public")
    client.get("/orders/1", headers=auth_headers("acme_junk"))
    assert [(d.key_id, d.method, d.route, d.status, d.ip) for d in env.recorder.completed()] == [
        (issued.key.id, "GET", "/orders/{order_id}", 200, "203.0.113.9"),
        (issued.key.id, "GET", "/boom", 500, "203.0.113.9"),
    ]


def test_a_non_ip_forwarded_hop_is_an_unknown_client(env: Env, make_client: MakeClient) -> None:
    client = make_client(env.manager, client=("10.0.0.2", 5000), trusted_proxies=["10.0.0.0/8"])
    raw = env.admin.create(owner="team-1", allowed_ips=["198.51.100.0/24"]).plaintext
    hop = "198.51.100.7"
    assert client.get("/me", headers={"X-API-Key": raw, "X-Forwarded-For": hop}).status_code == 200
    for planted in ("evil-host", "<script>x</script>", "198.51.100.7 x", "unknown"):
        refused = client.get(
            "/me", headers={"X-API-Key": raw, "X-Forwarded-For": f"{hop}, {planted}"}
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "ip_not_allowed"
        assert planted.encode() not in refused.content
    assert [e.ip for e in env.recorder.completed()] == [hop]


def test_plain_http_is_refused_after_the_secret_is_proven(
    env: Env, make_client: MakeClient
) -> None:
    client = make_client(env.manager, require_https=True)
    issued = env.admin.create(owner="team-1")
    refused = client.get("/me", headers=auth_headers(issued.plaintext))
    assert refused.status_code == 403
    assert refused.json()["code"] == "insecure_transport"
    assert issued.plaintext.encode() not in refused.content
    exposed = [e for e in env.recorder.events if isinstance(e, KeyExposed)]
    assert [(e.key_id, e.reason, e.ip) for e in exposed] == [
        (issued.key.id, "plaintext_transport", "203.0.113.9")
    ]
    # An unproven key over HTTP is an ordinary 401, and reports nothing.
    wrong = client.get("/me", headers=auth_headers(issued.plaintext[:-3] + "AAA"))
    assert wrong.status_code == 401
    assert len([e for e in env.recorder.events if isinstance(e, KeyExposed)]) == 1

    https = make_client(env.manager, require_https=True, base_url="https://testserver")
    assert https.get("/me", headers=auth_headers(issued.plaintext)).status_code == 200
    loopback = make_client(env.manager, require_https=True, client=("127.0.0.1", 5000))
    assert loopback.get("/me", headers=auth_headers(issued.plaintext)).status_code == 200
    strict = make_client(
        env.manager, require_https=True, https_exempt_loopback=False, client=("127.0.0.1", 5000)
    )
    assert strict.get("/me", headers=auth_headers(issued.plaintext)).status_code == 403
    proxied = make_client(
        env.manager, require_https=True, client=("10.0.0.2", 5000), trusted_proxies=["10.0.0.2"]
    )
    ok = {**auth_headers(issued.plaintext), "X-Forwarded-Proto": "https"}
    assert proxied.get("/me", headers=ok).status_code == 200
    downgraded = {**auth_headers(issued.plaintext), "X-Forwarded-Proto": "https, http"}
    assert proxied.get("/me", headers=downgraded).status_code == 403
    # X-Forwarded-Proto from an untrusted peer is not believed.
    assert client.get("/me", headers=ok).status_code == 403


def test_plaintext_transport_detector_suspends_the_key(env: Env, make_client: MakeClient) -> None:
    monitor = Monitor(env.admin, detectors=[PlaintextTransport(action="suspend")], attach=False)
    env.manager.add_sink(monitor)
    try:
        client = make_client(env.manager, require_https=True)
        issued = env.admin.create(owner="team-1")
        assert client.get("/me", headers=auth_headers(issued.plaintext)).status_code == 403
        monitor.flush()
        https = make_client(env.manager, require_https=True, base_url="https://testserver")
        assert https.get("/me", headers=auth_headers(issued.plaintext)).status_code == 401
        key = env.admin.get(issued.key.id)
        assert key.state(env.clock.now) is KeyState.DISABLED
        assert key.disabled_reason == "anomaly: plaintext_transport"
    finally:
        monitor.close()


def test_a_real_uvicorn_server(tmp_path: Path, demo_app: tuple[str, Path]) -> None:
    """Traffic over a real socket to the demo app served by uvicorn on 127.0.0.1 on a
    SQLite file with a monitor wired, then the usage read back with the ``apikeys``
    CLI in a subprocess."""
    from apikeys import KeyManager
    from apikeys.hashing import Argon2Hasher
    from apikeys.storage import SQLiteStore

    database = tmp_path / "keys.db"
    keys = KeyManager(SQLiteStore(str(database)), prefix="acme", hasher=Argon2Hasher.for_tests())
    reader = keys.create(owner="team-1", scopes=["orders:read"])
    module, app_dir = demo_app
    try:
        with (
            uvicorn_server(
                f"{module}:app",
                cwd=tmp_path,
                log=tmp_path / "uvicorn.log",
                env={"APIKEYS_TEST_DB": str(database)},
                app_dir=app_dir,
            ) as base,
            httpx.Client(base_url=base, timeout=10) as http,
        ):
            assert http.get("/public").status_code == 200
            missing = http.get("/orders/1")
            assert missing.status_code == 401
            assert missing.headers["content-type"] == "application/problem+json"
            ok = http.get("/orders/5", headers=auth_headers(reader.plaintext))
            assert ok.json() == {"order": 5, "owner": "team-1"}
            assert http.get("/me", headers={"X-API-Key": reader.plaintext}).status_code == 200
            twice = http.get("/me", headers=[("X-API-Key", reader.plaintext)] * 2)
            assert (twice.status_code, twice.json()) == (401, INVALID)
            empty = http.get("/me", headers={"X-API-Key": f",{reader.plaintext}"})
            assert empty.content == twice.content
            keys.revoke(reader.key.id, reason="test")
            assert http.get("/me", headers=auth_headers(reader.plaintext)).content == twice.content
            report = _usage_when_flushed(reader.key.id, database, tmp_path, total=2)
    finally:
        keys.close()
    assert report["total"] == 2
    assert {(c["route"], c["count"]) for c in report["counts"]} == {
        ("/orders/{order_id}", 1),
        ("/me", 1),
    }


def _usage_when_flushed(key_id: str, database: Path, workdir: Path, total: int) -> Any:
    """``apikeys usage KEY --json --by route`` once it counts ``total`` requests
    (the server's monitor flushes in the background), or after 30 s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APIKEYS_")}
    env.update(APIKEYS_DATABASE_URL=f"sqlite:///{database}", APIKEYS_PREFIX="acme")
    env.update(APIKEYS_HASHER="argon2-test")
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(
            [sys.executable, "-m", "apikeys", "usage", key_id, "--json", "--by", "route"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        if report["total"] >= total or time.monotonic() > deadline:
            return report
        time.sleep(0.1)  # waiting for the server's monitor to flush, not for time to pass
