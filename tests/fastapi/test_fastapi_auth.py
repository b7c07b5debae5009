"""Every answer of a protected FastAPI route: 200, 401, 403, 429, 503; header
variants; duplicate credentials; client addresses behind proxies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi_support import Env, TestClient, WindowLimiter

from apikeys import KeyManager
from apikeys._keyformat import format_key, random_base62
from apikeys.hashing import Argon2Hasher
from apikeys.storage import MemoryStore
from apikeys.testing import auth_headers

PROBLEM = "application/problem+json"
INVALID_TOKEN = 'Bearer realm="api", error="invalid_token"'


def test_a_valid_key_with_the_scope_gets_200(env: Env, client: TestClient) -> None:
    raw = env.issue(["orders:read"])
    response = client.get("/orders/7", headers=auth_headers(raw))
    assert response.status_code == 200
    assert response.json() == {"order": 7, "owner": "team-1"}


def test_public_routes_need_no_key(client: TestClient) -> None:
    assert client.get("/public").json() == {"hello": "world", "current": None}


def test_no_key_is_401_with_a_bare_challenge(client: TestClient) -> None:
    response = client.get("/orders/7")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    body = response.json()
    assert body["status"] == 401
    assert body["code"] == "missing_credentials"


def _unknown_key() -> str:
    other = KeyManager(MemoryStore(), prefix="acme", hasher=Argon2Hasher.for_tests())
    return other.create(owner="x").plaintext


def test_every_invalid_key_gets_the_same_401(env: Env, client: TestClient) -> None:
    good = env.admin.create(owner="team-1", scopes=["orders:read"])
    revoked = env.admin.create(owner="team-1", scopes=["orders:read"])
    env.admin.revoke(revoked.key.id, reason="leaked")
    expiring = env.admin.create(
        owner="team-1", scopes=["orders:read"], expires_in=timedelta(hours=1)
    )
    suspended = env.admin.create(owner="team-1", scopes=["orders:read"])
    env.admin.suspend(suspended.key.id)
    env.clock.advance(timedelta(hours=2))
    candidates = {
        "malformed": "acme_not-a-key",
        "not_found": _unknown_key(),
        "invalid_secret": format_key("acme", good.key.id, random_base62(32)),
        "revoked": revoked.plaintext,
        "expired": expiring.plaintext,
        "disabled": suspended.plaintext,
    }
    answers = set()
    for raw in candidates.values():
        response = client.get("/orders/7", headers=auth_headers(raw))
        assert response.status_code == 401
        answers.add(
            (
                response.content,
                response.headers["content-type"],
                response.headers["www-authenticate"],
            )
        )
    assert len(answers) == 1
    body, content_type, challenge = answers.pop()
    assert content_type == PROBLEM
    assert challenge == INVALID_TOKEN
    assert b"invalid_token" in body
    # Each request really failed for its own reason (the events say which).
    assert env.recorder.failure_codes() == list(candidates)
    # And the good key still works.
    assert client.get("/orders/7", headers=auth_headers(good.plaintext)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda k: [("Authorization", f"Bearer {k}")] * 2, id="two-authorization"),
        pytest.param(lambda k: {"Authorization": f"Bearer {k}, Bearer {k}"}, id="comma-joined"),
        pytest.param(lambda k: {"Authorization": f"Bearer {k}", "X-API-Key": k}, id="both-headers"),
        pytest.param(lambda k: [("X-API-Key", k), ("X-API-Key", k)], id="two-x-api-key"),
        pytest.param(
            lambda k: [("Authorization", f"Bearer {k}"), ("Authorization", "Bearer acme_junk")],
            id="valid-plus-junk",
        ),
    ],
)
def test_more_than_one_credential_never_authenticates(
    env: Env, client: TestClient, headers: Callable[[str], Any]
) -> None:
    raw = env.issue(["orders:read"])
    response = client.get("/orders/7", headers=headers(raw))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    assert response.json()["code"] == "invalid_token"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda k: {"Authorization": f"Bearer {k}"}, id="bearer"),
        pytest.param(lambda k: {"authorization": f"bearer {k}"}, id="lower-case"),
        pytest.param(lambda k: {"AUTHORIZATION": f"BEARER   {k}  "}, id="upper-case-spaces"),
        pytest.param(lambda k: {"X-API-Key": k}, id="x-api-key"),
        pytest.param(lambda k: {"x-api-key": f" {k} "}, id="x-api-key-lower"),
    ],
)
def test_header_variants_are_accepted(
    env: Env, client: TestClient, headers: Callable[[str], dict[str, str]]
) -> None:
    raw = env.issue(["orders:read"])
    assert client.get("/orders/7", headers=headers(raw)).status_code == 200


@pytest.mark.parametrize(
    "value", ["Basic dXNlcjpwYXNz", "Token {k}", "{k}", "Bearer", "Bearer acme_{k}"]
)
def test_bad_authorization_values_are_401(env: Env, client: TestClient, value: str) -> None:
    raw = env.issue(["orders:read"])
    response = client.get("/orders/7", headers={"Authorization": value.format(k=raw)})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID_TOKEN


def test_configured_header_names(env: Env, make_client: Callable[..., TestClient]) -> None:
    raw = env.issue(["orders:read"])
    client = make_client(env.manager, api_key_header="X-Token", authorization_header=None)
    assert client.get("/orders/7", headers={"X-Token": raw}).status_code == 200
    # The disabled and the default names are not read at all: no credential.
    for headers in (auth_headers(raw), {"X-API-Key": raw}):
        response = client.get("/orders/7", headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "missing_credentials"


def test_query_parameter_only_when_enabled(
    env: Env, make_client: Callable[..., TestClient]
) -> None:
    raw = env.issue(["orders:read"])
    default = make_client(env.manager)
    assert default.get("/orders/7", params={"api_key": raw}).status_code == 401
    opted_in = make_client(env.manager, query_param="api_key")
    assert opted_in.get("/orders/7", params={"api_key": raw}).status_code == 200
    both = opted_in.get("/orders/7", params={"api_key": raw}, headers=auth_headers(raw))
    assert both.status_code == 401


def test_missing_scope_is_403_naming_it(env: Env, client: TestClient) -> None:
    raw = env.issue(["orders:read"])
    response = client.post("/orders", headers=auth_headers(raw))
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", scope="orders:write"'
    )
    body = response.json()
    assert body["code"] == "insufficient_scope"
    assert body["missing_scopes"] == ["orders:write"]


def test_wildcard_grants_pass(env: Env, client: TestClient) -> None:
    raw = env.issue(["orders:*"])
    response = client.post("/orders", headers=auth_headers(raw))
    assert response.status_code == 200
    assert response.json() == {"created_by": "team-1"}


def test_the_realm_is_configurable(env: Env, make_client: Callable[..., TestClient]) -> None:
    client = make_client(env.manager, realm="shop")
    assert client.get("/me").headers["www-authenticate"] == 'Bearer realm="shop"'


def test_rate_limited_is_429_with_retry_after(
    make_env: Callable[..., Env], make_client: Callable[..., TestClient]
) -> None:
    env = make_env(limiter=WindowLimiter(limit=2))
    client = make_client(env.manager)
    raw = env.issue(["orders:read"])
    assert [client.get("/orders/1", headers=auth_headers(raw)).status_code for _ in range(2)] == [
        200,
        200,
    ]
    response = client.get("/orders/1", headers=auth_headers(raw))
    assert response.status_code == 429
    assert response.headers["content-type"] == PROBLEM
    # ManualClock starts at 12:00:00: the 60 s window resets in 60 s.
    assert response.headers["retry-after"] == "60"
    assert response.json()["code"] == "rate_limited"
    env.clock.advance(timedelta(seconds=60))
    assert client.get("/orders/1", headers=auth_headers(raw)).status_code == 200


def test_store_down_fails_closed_with_503(
    env: Env, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    raw = env.issue(["orders:read"])
    assert client.get("/orders/7", headers=auth_headers(raw)).status_code == 200
    env.store.down = True
    with caplog.at_level(logging.WARNING, "apikeys"):
        response = client.get("/orders/7", headers=auth_headers(raw))
    assert "GET /orders/7 answered 503 (storage_unavailable)" in caplog.text
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert "www-authenticate" not in response.headers
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert "connection refused" not in response.text
    env.store.down = False
    assert client.get("/orders/7", headers=auth_headers(raw)).status_code == 200


def test_raw_errors_from_handlers_become_problems(env: Env, client: TestClient) -> None:
    raw = env.issue(["orders:read"])
    response = client.get("/check", headers=auth_headers(raw))
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["missing_scopes"] == ["orders:delete"]


def test_the_handler_and_request_state_get_the_key(env: Env, client: TestClient) -> None:
    issued = env.admin.create(owner="team-9")
    response = client.get("/me", headers={"X-API-Key": issued.plaintext})
    assert response.json() == {"owner": "team-9", "state_key": issued.key.id, "current": "team-9"}


# --- client address ------------------------------------------------------------------------


def test_allowlisted_key_uses_the_peer_address(
    env: Env, make_client: Callable[..., TestClient]
) -> None:
    raw = env.issue(["orders:read"], allowed_ips=["198.51.100.0/24"])
    inside = make_client(env.manager, client=("198.51.100.4", 5000))
    outside = make_client(env.manager, client=("192.0.2.1", 5000))
    assert inside.get("/orders/1", headers=auth_headers(raw)).status_code == 200
    refused = outside.get("/orders/1", headers=auth_headers(raw))
    assert refused.status_code == 403
    assert refused.json()["code"] == "ip_not_allowed"


def test_forwarded_for_is_ignored_by_default(
    env: Env, make_client: Callable[..., TestClient]
) -> None:
    raw = env.issue(["orders:read"], allowed_ips=["198.51.100.0/24"])
    client = make_client(env.manager, client=("10.0.0.5", 5000))
    response = client.get(
        "/orders/1", headers={**auth_headers(raw), "X-Forwarded-For": "198.51.100.4"}
    )
    assert response.status_code == 403


def test_forwarded_for_is_believed_from_trusted_proxies_only(
    env: Env, make_client: Callable[..., TestClient]
) -> None:
    raw = env.issue(["orders:read"], allowed_ips=["198.51.100.0/24"])
    via_proxy = make_client(env.manager, client=("10.0.0.5", 5000), trusted_proxies=["10.0.0.0/8"])
    direct = make_client(env.manager, client=("192.0.2.1", 5000), trusted_proxies=["10.0.0.0/8"])
    forwarded = {**auth_headers(raw), "X-Forwarded-For": "198.51.100.4"}
    assert via_proxy.get("/orders/1", headers=forwarded).status_code == 200
    # A client spoofing the header while not coming through the proxy is not believed.
    assert direct.get("/orders/1", headers=forwarded).status_code == 403
    # The right-most untrusted hop is the client: a spoofed left-most entry is ignored.
    spoofed = {**auth_headers(raw), "X-Forwarded-For": "198.51.100.4, 192.0.2.66"}
    assert via_proxy.get("/orders/1", headers=spoofed).status_code == 403
    chained = {**auth_headers(raw), "X-Forwarded-For": "198.51.100.4, 10.1.1.1"}
    assert via_proxy.get("/orders/1", headers=chained).status_code == 200
