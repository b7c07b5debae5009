"""Every answer of a protected Flask route: 200, 401, 403, 429, 503, with the right
headers and RFC 9457 bodies; header variants and duplicate credentials."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_support import Env, build_app, make_env

from apikeys import _keyformat
from apikeys.flask import APIKeyRefused, APIKeys
from apikeys.testing import auth_headers

PROBLEM = "application/problem+json"
INVALID_401 = {
    "type": "about:blank",
    "title": "Unauthorized",
    "status": 401,
    "detail": "The API key is malformed, unknown, expired or revoked.",
    "code": "invalid_token",
}
INVALID_CHALLENGE = 'Bearer realm="api", error="invalid_token"'


def _client(env: Env, **config: Any) -> FlaskClient:
    client = build_app(APIKeys(env.manager), **config).test_client()
    client.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    return client


def test_bearer_and_x_api_key_both_authenticate(env: Env, client: FlaskClient) -> None:
    key = env.issue("orders:read")
    bearer = client.get("/orders/7", headers=auth_headers(key))
    assert bearer.status_code == 200
    assert bearer.json == {"order": 7, "owner": "team-1"}
    assert "RateLimit" not in bearer.headers  # no limiter, no rate-limit headers
    header = client.get("/orders/7", headers={"X-API-Key": key})
    assert header.status_code == 200
    assert header.json == {"order": 7, "owner": "team-1"}
    assert client.get("/orders/7", headers={"Authorization": f"bearer {key}"}).status_code == 200


def test_a_route_without_scopes_takes_any_valid_key(env: Env, client: FlaskClient) -> None:
    key = env.issue("reports:read", "orders:read")
    response = client.get("/me", headers=auth_headers(key))
    assert response.json == {"owner": "team-1", "scopes": ["orders:read", "reports:read"]}


def test_no_key_is_a_401_without_an_error_code_in_the_challenge(client: FlaskClient) -> None:
    response = client.get("/orders/7")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == PROBLEM
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "An API key is required.",
        "code": "missing_credentials",
    }


def test_every_invalid_key_gets_the_same_401(env: Env, client: FlaskClient) -> None:
    good = env.issue("orders:read")
    parsed = _keyformat.parse(good, frozenset({"acme"}))
    _, wrong_secret = _keyformat.generate("acme", key_id=parsed.key_id)
    _, unknown = _keyformat.generate("acme")
    revoked = env.issue("orders:read")
    env.admin.revoke(_keyformat.parse(revoked, frozenset({"acme"})).key_id, reason="leaked")
    suspended = env.issue("orders:read")
    env.admin.suspend(_keyformat.parse(suspended, frozenset({"acme"})).key_id)
    expiring = env.issue("orders:read", expires_in=timedelta(hours=1))
    assert client.get("/orders/1", headers=auth_headers(expiring)).status_code == 200
    env.clock.advance(timedelta(hours=2))
    cases = {
        "malformed": "not-a-key",
        "typo": good[:-1] + ("A" if good[-1] != "A" else "B"),
        "not_found": unknown,
        "invalid_secret": wrong_secret,
        "revoked": revoked,
        "disabled": suspended,
        "expired": expiring,
    }
    answers = []
    for raw in cases.values():
        response = client.get("/orders/1", headers=auth_headers(raw))
        assert response.status_code == 401
        answers.append(
            (
                response.headers["WWW-Authenticate"],
                response.headers["Content-Type"],
                response.get_data(),
            )
        )
    assert len(set(answers)) == 1, answers
    assert answers[0][0] == INVALID_CHALLENGE
    assert answers[0][1] == PROBLEM
    response = client.get("/orders/1", headers={"X-API-Key": wrong_secret})
    assert response.json == INVALID_401
    # The reasons differ only where the operator looks: the events (and logs).
    assert env.recorder.failure_codes() == [
        "malformed",
        "malformed",
        "not_found",
        "invalid_secret",
        "revoked",
        "disabled",
        "expired",
        "invalid_secret",
    ]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param("two-authorization-lines", id="two Authorization lines"),
        pytest.param("comma-joined", id="comma-joined Authorization"),
        pytest.param("authorization+x-api-key", id="Authorization and X-API-Key"),
        pytest.param("two-x-api-key-lines", id="two X-API-Key lines"),
        pytest.param("basic", id="non-Bearer scheme"),
        pytest.param("empty-bearer", id="Bearer without a key"),
    ],
)
def test_a_request_with_several_credentials_never_authenticates(
    env: Env, client: FlaskClient, headers: str
) -> None:
    key = env.issue("orders:read")
    sent: list[tuple[str, str]] = {
        "two-authorization-lines": [("Authorization", f"Bearer {key}")] * 2,
        "comma-joined": [("Authorization", f"Bearer {key}, Bearer {key}")],
        "authorization+x-api-key": [("Authorization", f"Bearer {key}"), ("X-API-Key", key)],
        "two-x-api-key-lines": [("X-API-Key", key)] * 2,
        "basic": [("Authorization", f"Basic {key}")],
        "empty-bearer": [("Authorization", "Bearer ")],
    }[headers]
    response = client.get("/orders/7", headers=sent)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == INVALID_CHALLENGE
    assert response.json == INVALID_401


def test_a_missing_scope_is_a_403_naming_it(env: Env, client: FlaskClient) -> None:
    key = env.issue("orders:read")
    response = client.post("/orders", headers=auth_headers(key))
    assert response.status_code == 403
    assert response.headers["Content-Type"] == PROBLEM
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", scope="orders:write"'
    )
    assert response.json == {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": "Missing scope(s): orders:write.",
        "code": "insufficient_scope",
        "missing_scopes": ["orders:write"],
    }
    wildcard = env.issue("orders:*")
    assert client.post("/orders", headers=auth_headers(wildcard)).status_code == 201


def test_scopes_known_only_in_the_view(env: Env, client: FlaskClient) -> None:
    key = env.issue("projects:read")
    assert client.get("/projects/read", headers=auth_headers(key)).json == {
        "action": "read",
        "owner": "team-1",
    }
    refused = client.get("/projects/delete", headers=auth_headers(key))
    assert refused.status_code == 403
    assert refused.json["missing_scopes"] == ["projects:delete"]
    assert client.get("/projects/read").status_code == 401


def test_an_address_outside_the_allowlist_is_a_403(env: Env, client: FlaskClient) -> None:
    key = env.issue("orders:read", allowed_ips=["10.0.0.0/8"])
    response = client.get("/orders/7", headers=auth_headers(key))
    assert response.status_code == 403
    assert response.headers["Content-Type"] == PROBLEM
    assert response.json["code"] == "ip_not_allowed"
    assert "WWW-Authenticate" not in response.headers
    inside = client.get(
        "/orders/7", headers=auth_headers(key), environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert inside.status_code == 200


def test_rate_limit_headers_then_a_429_with_retry_after() -> None:
    env = make_env(limits=["2/minute"])
    client = _client(env)
    key = env.issue("orders:read")
    first = client.get("/orders/7", headers=auth_headers(key))
    second = client.get("/orders/7", headers=auth_headers(key))
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["RateLimit-Policy"] == '"2/minute";q=2;w=60'
    assert first.headers["RateLimit"].startswith('"2/minute";r=1;t=')
    assert second.headers["RateLimit"].startswith('"2/minute";r=0;t=')
    refused = client.get("/orders/7", headers=auth_headers(key))
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == PROBLEM
    retry = int(refused.headers["Retry-After"])
    assert 1 <= retry <= 61  # a minute window, rounded up
    assert refused.headers["RateLimit"] == f'"2/minute";r=0;t={retry}'
    assert refused.headers["RateLimit-Policy"].startswith('"2/minute";q=2')
    assert refused.json["status"] == 429
    assert refused.json["code"] == "rate_limited"
    # The window passes (on the injected clock): requests are served again.
    env.clock.advance(timedelta(minutes=2))
    assert client.get("/orders/7", headers=auth_headers(key)).status_code == 200


def test_a_store_that_is_down_fails_closed_with_503(
    env: Env, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    key = env.issue("orders:read")
    env.store.down = True
    with caplog.at_level(logging.WARNING, logger="apikeys"):
        response = client.get("/orders/7", headers=auth_headers(key))
    assert response.status_code == 503
    assert response.headers["Content-Type"] == PROBLEM
    assert "WWW-Authenticate" not in response.headers
    assert response.json == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The API key service is temporarily unavailable.",
        "code": "service_unavailable",
    }
    assert "GET /orders/7 answered 503 (storage_unavailable)" in caplog.text
    env.store.down = False
    assert client.get("/orders/7", headers=auth_headers(key)).status_code == 200


def test_async_views_answer_alike(env: Env, client: FlaskClient) -> None:
    key = env.issue("orders:read")
    response = client.get("/async/orders/3", headers={"X-API-Key": key})
    assert response.status_code == 200
    assert response.json == {"order": 3, "owner": "team-1", "async": True}
    assert client.get("/async/orders/3").status_code == 401
    other = env.issue("reports:read")
    refused = client.get("/async/orders/3", headers=auth_headers(other))
    assert refused.status_code == 403
    assert refused.json["missing_scopes"] == ["orders:read"]


def test_header_names_and_realm_come_from_the_config(env: Env) -> None:
    client = _client(
        env,
        APIKEYS_AUTHORIZATION_HEADER=None,
        APIKEYS_API_KEY_HEADER="X-Token",
        APIKEYS_REALM="shop",
    )
    key = env.issue("orders:read")
    assert client.get("/orders/7", headers={"X-Token": key}).status_code == 200
    ignored = client.get("/orders/7", headers=auth_headers(key))
    assert ignored.status_code == 401
    assert ignored.headers["WWW-Authenticate"] == 'Bearer realm="shop"'
    assert client.get("/orders/7", headers={"X-API-Key": key}).status_code == 401


def test_query_parameter_only_when_enabled(env: Env, client: FlaskClient) -> None:
    key = env.issue("orders:read")
    assert client.get(f"/orders/7?api_key={key}").status_code == 401
    enabled = _client(env, APIKEYS_QUERY_PARAM="api_key")
    assert enabled.get(f"/orders/7?api_key={key}").status_code == 200
    both = enabled.get(f"/orders/7?api_key={key}", headers=auth_headers(key))
    assert both.status_code == 401
    assert both.json == INVALID_401


def test_apikeys_errors_raised_by_a_view_become_problems(env: Env, client: FlaskClient) -> None:
    key = env.issue("keys:read")
    own_id = _keyformat.parse(key, frozenset({"acme"})).key_id
    assert client.get(f"/keys/{own_id}", headers=auth_headers(key)).json == {"owner": "team-1"}
    missing = client.get("/keys/AAAAAAAAAAAAAAAA", headers=auth_headers(key))
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == PROBLEM
    assert missing.json["code"] == "key_not_found"


def test_an_app_errorhandler_may_answer_refusals_its_own_way(env: Env) -> None:
    app = build_app(APIKeys(env.manager))

    @app.errorhandler(APIKeyRefused)
    def refused(error: APIKeyRefused) -> tuple[str, int, dict[str, str]]:
        response = error.get_response()
        challenge = response.headers.get("WWW-Authenticate", "")
        return f"refused: {error.error.code}", response.status_code, {"X-Challenge": challenge}

    response = app.test_client().get("/orders/7")
    assert response.status_code == 401
    assert response.get_data(as_text=True) == "refused: missing"
    assert response.headers["X-Challenge"] == 'Bearer realm="api"'
