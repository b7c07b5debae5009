"""Test helpers of the FastAPI adapter: headers, issuing a key in one line, acting
as a key without sending one; and the async path through httpx's ASGI transport."""

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi_support import Env, TestClient, build_app, make_env

from apikeys import AsyncKeyManager, ConfigurationError
from apikeys.fastapi import APIKeyAuth, RequiredKey, current_key


def test_headers_follow_the_configuration(env: Env) -> None:
    assert APIKeyAuth(env.manager).headers("acme_x") == {"Authorization": "Bearer acme_x"}
    header_only = APIKeyAuth(env.manager, authorization_header=None, api_key_header="X-Token")
    assert header_only.headers("acme_x") == {"X-Token": "acme_x"}
    query_only = APIKeyAuth(
        env.manager, authorization_header=None, api_key_header=None, query_param="k"
    )
    with pytest.raises(ConfigurationError):
        query_only.headers("acme_x")


def test_issue_headers_in_one_line(env: Env) -> None:
    auth = APIKeyAuth(env.manager, authorization_header=None)
    with TestClient(build_app(auth)) as client:
        headers = auth.issue_headers(scopes=["orders:read"])
        assert list(headers) == ["X-API-Key"]
        assert client.get("/orders/1", headers=headers).json()["owner"] == "test-owner"
        assert client.post("/orders", headers=headers).status_code == 403


@pytest.mark.anyio
async def test_issue_headers_refuses_to_nest_event_loops() -> None:
    auth = APIKeyAuth(make_env("async").manager)
    with pytest.raises(ConfigurationError, match="aissue_headers"):
        auth.issue_headers()


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_async_client_through_the_asgi_transport(kind: str) -> None:
    env = make_env(kind)
    auth = APIKeyAuth(env.manager)
    app = build_app(auth)
    headers = await auth.aissue_headers(owner="team-7", scopes=["orders:read"])
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/orders/9", headers=headers)).json() == {
            "order": 9,
            "owner": "team-7",
        }
        assert (await client.get("/orders/9")).status_code == 401
    [done] = env.recorder.completed()
    assert (done.route, done.ip) == ("/orders/{order_id}", "198.51.100.7")


def test_override_acts_as_a_key_and_still_checks_scopes(env: Env) -> None:
    auth = APIKeyAuth(env.manager)
    app = build_app(auth)
    reader = env.admin.create(owner="team-5", scopes=["orders:read"]).key
    with TestClient(app) as client:
        with auth.override(app, reader) as key:
            assert key is reader
            assert client.get("/orders/1").json() == {"order": 1, "owner": "team-5"}
            assert client.get("/me").json()["state_key"] == reader.id  # RequiredKey too
            refused = client.post("/orders")
            assert refused.status_code == 403
            assert refused.json()["missing_scopes"] == ["orders:write"]
        assert client.get("/orders/1").status_code == 401  # restored
    assert [(d.key_id, d.route, d.status) for d in env.recorder.completed()] == [
        (reader.id, "/orders/{order_id}", 200),
        (reader.id, "/me", 200),
    ]


def test_override_restores_the_app_s_own_overrides(env: Env) -> None:
    auth = APIKeyAuth(env.manager)
    app = build_app(auth)

    def mine() -> None:
        return None

    app.dependency_overrides[auth] = mine
    with auth.override(app, env.admin.create(owner="o").key):
        assert app.dependency_overrides[auth] is not mine
    assert app.dependency_overrides == {auth: mine}


def test_current_key_is_none_on_unprotected_routes(env: Env) -> None:
    auth = APIKeyAuth(env.manager)
    app = FastAPI()
    auth.install(app)

    @app.get("/open")
    async def open_route(request: Request) -> bool:
        return current_key(request) is None

    @app.get("/closed")
    async def closed(request: Request, key: RequiredKey) -> bool:
        return current_key(request) == key

    with TestClient(app) as client:
        assert client.get("/open", headers=auth.issue_headers()).json() is True
        assert client.get("/closed", headers=auth.issue_headers()).json() is True


def test_async_manager_issue_headers_from_sync_code() -> None:
    env = make_env("async")
    assert isinstance(env.manager, AsyncKeyManager)
    auth = APIKeyAuth(env.manager)
    with TestClient(build_app(auth)) as client:
        assert client.get("/me", headers=auth.issue_headers(owner="team-8")).json()["owner"] == (
            "team-8"
        )


def test_use_manager_swaps_the_manager_for_the_block(env: Env) -> None:
    auth = APIKeyAuth(env.manager)
    other = make_env(env.kind).manager
    outside = auth.issue_headers(scopes=["orders:read"])
    with TestClient(build_app(auth)) as client:
        with auth.use_manager(other) as used:
            assert used is other
            assert auth.manager is other
            inside = auth.issue_headers(scopes=["orders:read"])
            assert client.get("/orders/1", headers=inside).status_code == 200
            assert client.get("/orders/1", headers=outside).status_code == 401
        assert auth.manager is env.manager
        assert client.get("/orders/1", headers=outside).status_code == 200
        assert client.get("/orders/1", headers=inside).status_code == 401
    with pytest.raises(ConfigurationError), auth.use_manager(object()):  # type: ignore[arg-type]
        pass
