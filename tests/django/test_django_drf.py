"""Django REST framework: the authentication class, ``HasAPIKey`` with per-view
and per-action scopes, and problem+json answers identical to plain views."""

from __future__ import annotations

import pytest
from dj_support import UNPROVEN_DETAIL, Env, bearer, configured, json_body, problem
from django.test import Client, override_settings
from rest_framework.test import APIClient

from apikeys.django.rest_framework import APIKeyUser
from apikeys.events import RequestCompleted
from apikeys.ratelimit import KeyRateLimiter
from core_support import unknown_key, with_wrong_secret


@pytest.fixture
def api() -> APIClient:
    return APIClient(enforce_csrf_checks=True)


def test_request_auth_is_the_key_and_user_its_owner(apikeys_env: Env, api: APIClient) -> None:
    plaintext = apikeys_env.issue("orders:read")
    key = apikeys_env.manager.list()[0]
    response = api.get("/drf/orders/", headers=bearer(plaintext))
    assert response.status_code == 200
    assert response.json() == {"owner": "team-42", "user": f"api-key:{key.id}"}


def test_scopes_per_method_and_per_action(apikeys_env: Env, api: APIClient) -> None:
    reader = apikeys_env.issue("orders:read")
    writer = apikeys_env.issue("orders:write")
    assert api.post("/drf/orders/", headers=bearer(writer)).status_code == 201
    body = problem(api.post("/drf/orders/", headers=bearer(reader)), 403)
    assert body["missing_scopes"] == ["orders:write"]
    assert api.get("/drf/viewset/", headers=bearer(reader)).status_code == 200
    problem(api.get("/drf/viewset/", headers=bearer(writer)), 403)
    assert api.post("/drf/viewset/", headers=bearer(writer)).status_code == 201
    problem(api.post("/drf/viewset/", headers=bearer(reader)), 403)


@pytest.mark.parametrize("path", ["/drf/orders/", "/drf/authenticated/"])
def test_no_key_is_a_401_with_the_bearer_challenge(
    apikeys_env: Env, api: APIClient, path: str
) -> None:
    response = api.get(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_drf_answers_byte_for_byte_like_plain_views(apikeys_env: Env, api: APIClient) -> None:
    plain = Client()
    key = apikeys_env.issue("orders:write")
    cases = [
        {},
        bearer(with_wrong_secret(key, ("test",))),
        bearer(unknown_key("test")),
        {**bearer(key), "X-API-Key": key},
        {"Authorization": f"Bearer {key}, Bearer {key}"},
        bearer(key),  # valid, but orders:read is missing: 403
    ]
    for headers in cases:
        drf = api.get("/drf/orders/", headers=headers)
        django = plain.get("/orders/", headers=headers)
        assert (drf.status_code, drf.content) == (django.status_code, django.content)
        assert drf["Content-Type"] == django["Content-Type"] == "application/problem+json"
        assert drf["WWW-Authenticate"] == django["WWW-Authenticate"]
    wrong = problem(api.get("/drf/orders/", headers=cases[1]), 401)
    assert wrong["detail"] == UNPROVEN_DETAIL


def test_has_api_key_composes_with_another_permission(apikeys_env: Env, api: APIClient) -> None:
    reader = apikeys_env.issue("orders:read")
    writer = apikeys_env.issue("orders:write")
    ticket = {"X-Ticket": "valid-ticket"}
    assert api.get("/drf/either/", headers=bearer(reader)).json() == {"owner": "team-42"}
    assert api.get("/drf/either/", headers=ticket).json() == {"owner": None}
    assert problem(api.get("/drf/either/"), 401)["code"] == "missing_credentials"
    # A key that fails never falls back to the other permission.
    bad = bearer(with_wrong_secret(reader, ("test",)))
    problem(api.get("/drf/either/", headers={**bad, **ticket}), 401)
    problem(api.get("/drf/either/", headers={**bearer(writer), **ticket}), 403)


def test_another_authorization_scheme_is_left_to_other_classes(
    apikeys_env: Env, api: APIClient
) -> None:
    response = api.get("/drf/orders/", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    body = problem(response, 401)
    assert body["code"] == "missing_credentials"  # not ours: as if no key was sent


def test_without_the_exception_handler_statuses_and_headers_hold(
    apikeys_env: Env, api: APIClient
) -> None:
    from django.conf import settings

    key = apikeys_env.issue("orders:write")
    rest = {**settings.REST_FRAMEWORK}
    del rest["EXCEPTION_HANDLER"]
    with override_settings(REST_FRAMEWORK=rest):
        wrong = api.get("/drf/orders/", headers=bearer(with_wrong_secret(key, ("test",))))
        scope = api.get("/drf/orders/", headers=bearer(key))
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'
    assert wrong.json()["detail"] == UNPROVEN_DETAIL
    assert wrong.json()["status"] == 401  # numbers stay numbers
    assert scope.status_code == 403
    assert scope.json()["missing_scopes"] == ["orders:read"]


def test_the_database_down_is_a_503(apikeys_env: Env, api: APIClient) -> None:
    key = apikeys_env.issue("orders:read")
    with configured(apikeys_env, DATABASE="down"):
        response = api.get("/drf/orders/", headers=bearer(key))
    assert problem(response, 503)["code"] == "service_unavailable"


def test_an_apikeys_error_raised_in_a_drf_view_is_a_problem(
    apikeys_env: Env, api: APIClient
) -> None:
    key = apikeys_env.issue()
    assert problem(api.get("/drf/raises/", headers=bearer(key)), 404)["code"] == "key_not_found"


def test_rate_limits_and_usage_reporting_through_the_middleware(
    apikeys_env: Env, api: APIClient
) -> None:
    with configured(apikeys_env, RATE_LIMITER=KeyRateLimiter(default=["1/minute"])):
        key = apikeys_env.issue("orders:read")
        first = api.get("/drf/orders/", headers=bearer(key))
        second = api.get("/drf/orders/", headers=bearer(key))
    assert first.status_code == 200
    assert first["RateLimit"].startswith('"1/minute";r=0;t=')
    problem(second, 429)
    assert int(second["Retry-After"]) >= 1
    reported = [e for e in apikeys_env.sink.events if isinstance(e, RequestCompleted)]
    assert [(e.route, e.status) for e in reported] == [("drf/orders/", 200)]


def test_the_user_object_has_no_database_rights(apikeys_env: Env) -> None:
    issued = apikeys_env.manager.create(owner="team-7")
    user = APIKeyUser(issued.key)
    assert user.is_authenticated
    assert not user.is_staff
    assert not user.is_superuser
    assert user.get_username() == "team-7"
    assert not user.has_perm("apikeys.change_apikeyrecord")
    assert issued.plaintext not in repr(user) + str(user)


def test_a_viewset_action_sees_the_key(apikeys_env: Env, api: APIClient) -> None:
    key = apikeys_env.issue("orders:read")
    assert json_body(api.get("/drf/viewset/", headers=bearer(key))) == [{"owner": "team-42"}]
