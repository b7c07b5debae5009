"""What ``auth.install(app)`` adds after the handler: one ``record_request`` per
request made with a key (route template and final status), and rate-limit headers."""

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi_support import Env, TestClient, WindowLimiter

from apikeys.fastapi import APIKeyAuth, RequiredKey
from apikeys.ratelimit import KeyRateLimiter
from apikeys.testing import auth_headers


def test_a_request_is_recorded_with_its_route_template(env: Env, client: TestClient) -> None:
    issued = env.admin.create(owner="team-3", scopes=["orders:read"])
    assert client.get("/orders/42", headers=auth_headers(issued.plaintext)).status_code == 200
    [done] = env.recorder.completed()
    assert done.key_id == issued.key.id
    assert done.owner == "team-3"
    assert (done.method, done.route, done.status, done.ip) == (
        "GET",
        "/orders/{order_id}",
        200,
        "203.0.113.9",
    )


@pytest.mark.parametrize(
    ("method", "path", "scopes", "route", "status"),
    [
        ("GET", "/missing/abc", [], "/missing/{thing}", 404),
        ("GET", "/boom", [], "/boom", 500),
        ("GET", "/both", ["orders:read"], "/both", 403),
        ("POST", "/orders", ["orders:write"], "/orders", 200),
    ],
)
def test_the_final_status_is_recorded(
    env: Env,
    client: TestClient,
    method: str,
    path: str,
    scopes: list[str],
    route: str,
    status: int,
) -> None:
    raw = env.issue(scopes)
    assert client.request(method, path, headers=auth_headers(raw)).status_code == status
    assert [(d.method, d.route, d.status) for d in env.recorder.completed()] == [
        (method, route, status)
    ]


def test_requests_without_a_proven_key_are_not_recorded(env: Env, client: TestClient) -> None:
    client.get("/public")
    client.get("/orders/1")
    client.get("/orders/1", headers=auth_headers("acme_junk"))
    # Refused for a scope at the first check: proven, but nothing was authenticated.
    client.get("/orders/1", headers=auth_headers(env.issue()))
    assert env.recorder.completed() == []


def test_streaming_responses_stream_and_are_recorded_once(env: Env, client: TestClient) -> None:
    raw = env.issue()
    with client.stream("GET", "/stream", headers=auth_headers(raw)) as response:
        chunks = list(response.iter_bytes())
    assert b"".join(chunks) == b"chunk0;chunk1;chunk2;"
    assert [(d.route, d.status) for d in env.recorder.completed()] == [("/stream", 200)]


def test_installing_twice_records_once(env: Env) -> None:
    auth = APIKeyAuth(env.manager)
    inner = FastAPI()
    auth.install(inner)
    auth.install(inner)

    @inner.get("/me")
    async def me(key: RequiredKey) -> str:
        return key.owner

    outer = FastAPI()
    auth.install(outer)
    outer.mount("/v1", inner)
    with TestClient(outer) as client:
        assert client.get("/v1/me", headers=auth_headers(env.issue())).json() == "team-1"
    assert [(d.route, d.status) for d in env.recorder.completed()] == [("/me", 200)]


def test_without_install_nothing_is_recorded(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    auth = APIKeyAuth(env.manager)
    app = FastAPI()

    @app.get("/orders")
    async def orders(key=auth.require_key()) -> str:  # noqa: B008  (FastAPI's idiom)
        return str(key.owner)

    with TestClient(app) as client, caplog.at_level(logging.WARNING, "apikeys"):
        assert client.get("/orders", headers=auth_headers(env.issue())).status_code == 200
    assert env.recorder.completed() == []
    assert "without auth.install(app)" in caplog.text


def test_a_failing_event_sink_does_not_fail_the_request(
    env: Env, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def emit(self, event: object) -> None:
            raise RuntimeError("sink down")

    env.manager.add_sink(Broken())
    with caplog.at_level(logging.ERROR, "apikeys"):
        response = client.get("/orders/1", headers=auth_headers(env.issue(["orders:read"])))
    assert response.status_code == 200
    assert "sink" in caplog.text


# --- rate-limit headers --------------------------------------------------------------------


def test_rate_limit_headers_on_success_and_on_429(
    make_env: Callable[..., Env], make_client: Callable[..., TestClient]
) -> None:
    env = make_env(limiter=WindowLimiter(limit=2))
    client = make_client(env.manager)
    raw = env.issue(["orders:read"])
    first = client.get("/orders/1", headers=auth_headers(raw))
    assert first.headers["ratelimit-policy"] == '"2/minute";q=2;w=60'
    assert first.headers["ratelimit"] == '"2/minute";r=1;t=60'
    second = client.get("/orders/1", headers=auth_headers(raw))
    assert second.headers["ratelimit"] == '"2/minute";r=0;t=60'
    refused = client.get("/orders/1", headers=auth_headers(raw))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert refused.headers["ratelimit"] == '"2/minute";r=0;t=60'
    assert refused.headers["ratelimit-policy"] == '"2/minute";q=2;w=60'
    # No limit configured: no headers.
    plain = make_client(make_env().manager)
    assert "ratelimit" not in plain.get("/public").headers


def test_with_the_library_rate_limiter(
    make_env: Callable[..., Env], make_client: Callable[..., TestClient]
) -> None:
    limiter = KeyRateLimiter(default=["3/minute"], algorithm="fixed-window")
    env = make_env(limiter=limiter)
    client = make_client(env.manager)
    raw = env.issue(["orders:read"])
    statuses = [client.get("/orders/1", headers=auth_headers(raw)) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert [r.headers["ratelimit"].split(";")[1] for r in statuses] == ["r=2", "r=1", "r=0", "r=0"]
    assert int(statuses[-1].headers["retry-after"]) > 0
    # Streaming responses get the headers too (they are added when the response starts).
    env.clock.advance(timedelta(minutes=1))
    with client.stream("GET", "/stream", headers=auth_headers(raw)) as response:
        assert response.headers["ratelimit"].startswith('"3/minute";r=2')
