"""Plain Django views: ``require_key`` (sync and async), the class-based mixin, the
middleware's lazy ``request.api_key``, problem responses, usage reporting and
rate-limit headers — on SQLite and PostgreSQL, through Django's test clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from dj_support import UNPROVEN_DETAIL, Env, bearer, configured, json_body, problem
from django.db import connections
from django.test import AsyncClient, Client, override_settings

from apikeys.django.views import require_key
from apikeys.errors import InvalidArgument
from apikeys.events import RequestCompleted
from apikeys.ratelimit import KeyRateLimiter
from core_support import unknown_key, with_wrong_secret

WITHOUT_OUR_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]


@pytest.fixture
async def aclient() -> AsyncIterator[AsyncClient]:
    yield AsyncClient()
    # The ORM ran in asgiref's executor thread: close that thread's connections.
    await sync_to_async(connections.close_all)()


def _split(plaintext: str) -> str:
    return with_wrong_secret(plaintext, ("test",))


# --- the decorator ----------------------------------------------------------------------


def test_a_granted_key_reaches_the_view(apikeys_env: Env, client: Client) -> None:
    key = apikeys_env.issue("orders:read")
    response = client.get("/orders/", headers=bearer(key))
    assert response.status_code == 200
    assert json_body(response)["owner"] == "team-42"


def test_the_api_key_header_works_too(apikeys_env: Env, client: Client) -> None:
    key = apikeys_env.issue("orders:read")
    response = client.get("/orders/", headers={"X-API-Key": key})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(lambda key: bearer(_split(key)), id="wrong-secret"),
        pytest.param(lambda key: bearer(unknown_key("test")), id="unknown"),
        pytest.param(lambda key: bearer(key[:-1]), id="malformed"),
        pytest.param(lambda key: {"Authorization": f"Basic {key}"}, id="other-scheme"),
        pytest.param(lambda key: {**bearer(key), "X-API-Key": key}, id="two-methods"),
        pytest.param(lambda key: {"Authorization": f"Bearer {key},Bearer {key}"}, id="joined"),
        pytest.param(lambda key: {"X-API-Key": f"{key}, {key}"}, id="joined-api-key"),
    ],
)
def test_every_bad_key_gets_the_same_401(
    apikeys_env: Env, client: Client, make_headers: Any
) -> None:
    key = apikeys_env.issue("orders:read")
    response = client.get("/orders/", headers=make_headers(key))
    body = problem(response, 401)
    assert body["detail"] == UNPROVEN_DETAIL
    assert body["code"] == "invalid_token"
    assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'


def test_revoked_and_expired_keys_answer_exactly_like_unknown_ones(
    apikeys_env: Env, client: Client
) -> None:
    revoked = apikeys_env.issue("orders:read")
    apikeys_env.manager.revoke(apikeys_env.manager.list()[0].id)
    expired = apikeys_env.issue("orders:read", expires_in=timedelta(minutes=5))
    apikeys_env.clock.advance(timedelta(minutes=6))
    answers = [
        client.get("/orders/", headers=bearer(plaintext))
        for plaintext in (revoked, expired, unknown_key("test"))
    ]
    assert answers[0].status_code == 401
    assert len({(a.status_code, a.content, a["WWW-Authenticate"]) for a in answers}) == 1
    codes = [e.code for e in apikeys_env.sink.events if e.type == "key.verification_failed"]
    assert codes == ["revoked", "expired", "not_found"]


def test_no_key_is_a_401_without_an_error_code(apikeys_env: Env, client: Client) -> None:
    response = client.get("/orders/")
    body = problem(response, 401)
    assert body["code"] == "missing_credentials"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_missing_scope_is_a_403_naming_it(apikeys_env: Env, client: Client) -> None:
    key = apikeys_env.issue("orders:read")
    response = client.post("/orders/create/", headers=bearer(key))
    body = problem(response, 403)
    assert body["missing_scopes"] == ["orders:write"]
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]
    assert 'scope="orders:write"' in response["WWW-Authenticate"]


def test_protected_views_need_no_csrf_token(apikeys_env: Env) -> None:
    client = Client(enforce_csrf_checks=True)
    key = apikeys_env.issue("orders:write")
    assert client.post("/orders/create/", headers=bearer(key)).status_code == 200


def test_an_allowlist_refuses_other_addresses(apikeys_env: Env, client: Client) -> None:
    key = apikeys_env.issue("orders:read", allowed_ips=["10.0.0.0/8"])
    assert client.get("/orders/", headers=bearer(key), REMOTE_ADDR="10.1.2.3").status_code == 200
    response = client.get("/orders/", headers=bearer(key), REMOTE_ADDR="192.0.2.1")
    assert problem(response, 403)["code"] == "ip_not_allowed"


def test_forwarded_for_is_believed_only_from_trusted_proxies(
    apikeys_env: Env, client: Client
) -> None:
    key = apikeys_env.issue("orders:read", allowed_ips=["198.51.100.7"])
    spoofed = {**bearer(key), "X-Forwarded-For": "198.51.100.7"}
    assert client.get("/orders/", headers=spoofed, REMOTE_ADDR="203.0.113.1").status_code == 403
    with configured(apikeys_env, TRUSTED_PROXIES=["203.0.113.0/24"]):
        response = client.get("/orders/", headers=spoofed, REMOTE_ADDR="203.0.113.1")
    assert response.status_code == 200


def test_the_database_down_is_a_503_never_a_pass(apikeys_env: Env, client: Client) -> None:
    key = apikeys_env.issue("orders:read")
    with configured(apikeys_env, DATABASE="down"):
        response = client.get("/orders/", headers=bearer(key))
        lazy = client.get("/lazy/", headers=bearer(key))
    assert problem(response, 503)["code"] == "service_unavailable"
    assert problem(lazy, 503)["code"] == "service_unavailable"


def test_require_key_without_parentheses_needs_any_valid_key(
    apikeys_env: Env, client: Client
) -> None:
    key = apikeys_env.issue()
    assert client.get("/anyone/", headers=bearer(key)).status_code == 200
    problem(client.get("/anyone/"), 401)


def test_an_invalid_scope_fails_at_decoration() -> None:
    with pytest.raises(InvalidArgument):
        require_key("not a scope")


# --- usage reporting and rate-limit headers ---------------------------------------------


def _completed(env: Env) -> list[RequestCompleted]:
    return [e for e in env.sink.events if isinstance(e, RequestCompleted)]


@pytest.mark.parametrize("middleware", [True, False], ids=["middleware", "decorator-alone"])
def test_each_authenticated_request_is_reported_once_with_its_route(
    apikeys_env: Env, client: Client, middleware: bool
) -> None:
    key = apikeys_env.issue("orders:read")
    key_id = apikeys_env.manager.list()[0].id
    overrides = {} if middleware else {"MIDDLEWARE": WITHOUT_OUR_MIDDLEWARE}
    with override_settings(**overrides):
        client.get("/orders/41/", headers=bearer(key), REMOTE_ADDR="192.0.2.8")
        client.get("/orders/create/", headers=bearer(key))  # 403: not authenticated
        client.get("/orders/")  # 401
        with pytest.raises(RuntimeError):
            client.get("/boom/", headers=bearer(key))
    reported = _completed(apikeys_env)
    assert [(e.key_id, e.method, e.route, e.status, e.ip) for e in reported] == [
        (key_id, "GET", "orders/<int:pk>/", 200, "192.0.2.8"),
        (key_id, "GET", "boom/", 500, "127.0.0.1"),
    ]


@pytest.mark.parametrize("middleware", [True, False], ids=["middleware", "decorator-alone"])
def test_rate_limit_headers_on_success_and_429(
    apikeys_env: Env, client: Client, middleware: bool
) -> None:
    limiter = KeyRateLimiter(default=["2/minute"])
    overrides = {} if middleware else {"MIDDLEWARE": WITHOUT_OUR_MIDDLEWARE}
    with configured(apikeys_env, RATE_LIMITER=limiter), override_settings(**overrides):
        key = apikeys_env.issue("orders:read")
        first = client.get("/orders/", headers=bearer(key))
        second = client.get("/orders/", headers=bearer(key))
        third = client.get("/orders/", headers=bearer(key))
    assert first["RateLimit-Policy"] == '"2/minute";q=2;w=60'
    assert first["RateLimit"].startswith('"2/minute";r=1;t=')
    assert second["RateLimit"].startswith('"2/minute";r=0;t=')
    body = problem(third, 429)
    assert body["code"] == "rate_limited"
    assert int(third["Retry-After"]) >= 1
    assert third["RateLimit"] == f'"2/minute";r=0;t={third["Retry-After"]}'
    assert len(_completed(apikeys_env)) == 2


# --- class-based views ------------------------------------------------------------------


def test_the_mixin_checks_scopes_per_method(apikeys_env: Env) -> None:
    client = Client(enforce_csrf_checks=True)
    reader = apikeys_env.issue("orders:read")
    writer = apikeys_env.issue("orders:write")
    assert json_body(client.get("/cbv/orders/", headers=bearer(reader)))["method"] == "GET"
    problem(client.post("/cbv/orders/", headers=bearer(reader)), 403)
    assert client.post("/cbv/orders/", headers=bearer(writer)).status_code == 200
    problem(client.get("/cbv/orders/"), 401)


# --- the middleware's lazy key ----------------------------------------------------------


def test_request_api_key_is_lazy_and_none_without_a_valid_key(
    apikeys_env: Env, client: Client
) -> None:
    key = apikeys_env.issue()
    assert json_body(client.get("/public/", headers=bearer(key))) == {"public": True}
    assert apikeys_env.sink.types == ["key.created"]  # never looked at: never verified
    assert json_body(client.get("/lazy/", headers=bearer(key)))["owner"] == "team-42"
    assert json_body(client.get("/lazy/")) == {"owner": None, "plain": True}
    assert json_body(client.get("/lazy/", headers=bearer(_split(key))))["owner"] is None
    assert apikeys_env.sink.types.count("key.verified") == 1  # once per request


def test_an_apikeys_error_escaping_a_view_is_answered_as_a_problem(
    apikeys_env: Env, client: Client
) -> None:
    body = problem(client.get("/lookup/0000000000000000/"), 404)
    assert body["code"] == "key_not_found"


# --- async views ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_views_use_the_async_manager(apikeys_env: Env, aclient: AsyncClient) -> None:
    key = await sync_to_async(apikeys_env.issue)("orders:read")
    response = await aclient.get("/async/orders/", headers=bearer(key))
    assert response.status_code == 200
    assert json_body(response)["kind"] == "async"
    cbv = await aclient.get("/async/cbv/orders/", headers=bearer(key))
    assert json_body(cbv)["kind"] == "async-cbv"
    problem(await aclient.get("/async/orders/", headers=bearer(_split(key))), 401)
    problem(await aclient.get("/async/cbv/orders/"), 401)
    lazy = await aclient.get("/async/lazy/", headers=bearer(key))
    assert json_body(lazy)["owner"] == "team-42"
    routes = [e.route for e in _completed(apikeys_env)]
    assert routes == ["async/orders/", "async/cbv/orders/", "async/lazy/"]


@pytest.mark.anyio
async def test_async_views_answer_the_same_problems(
    apikeys_env: Env, aclient: AsyncClient, client: Client
) -> None:
    key = await sync_to_async(apikeys_env.issue)("orders:write")
    for headers in ({}, bearer(_split(key)), bearer(key)):
        sync_answer = await sync_to_async(client.get)("/orders/", headers=headers)
        async_answer = await aclient.get("/async/orders/", headers=headers)
        assert async_answer.status_code == sync_answer.status_code
        assert async_answer.content == sync_answer.content
        assert async_answer["WWW-Authenticate"] == sync_answer["WWW-Authenticate"]


@pytest.mark.anyio
async def test_async_views_fail_closed_when_the_database_is_down(
    apikeys_env: Env, aclient: AsyncClient
) -> None:
    key = await sync_to_async(apikeys_env.issue)("orders:read")
    with configured(apikeys_env, DATABASE="down"):
        response = await aclient.get("/async/orders/", headers=bearer(key))
    problem(response, 503)
