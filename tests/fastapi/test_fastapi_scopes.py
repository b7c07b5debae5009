"""Scopes through SecurityScopes, the module-level verbs, and set-up mistakes.

(No ``from __future__ import annotations``: routes here annotate with local names.)
"""

import logging
import subprocess
import sys
from collections.abc import Callable
from typing import Annotated

import pytest
from fastapi import FastAPI, Security
from fastapi_support import Env, TestClient, WindowLimiter

from apikeys import APIKey, ConfigurationError, InvalidArgument, KeyManager
from apikeys.events import VerificationFailed
from apikeys.fastapi import APIKeyAuth, RequiredKey, require_key
from apikeys.testing import auth_headers, make_manager


@pytest.mark.parametrize(
    ("granted", "status", "missing"),
    [
        (["orders:read", "orders:refund"], 200, None),
        (["orders:*"], 200, None),
        (["orders:read"], 403, ["orders:refund"]),
        (["orders:refund"], 403, ["orders:read"]),
        ([], 403, ["orders:read", "orders:refund"]),
    ],
)
def test_scopes_of_nested_dependencies_add_up(
    env: Env, client: TestClient, granted: list[str], status: int, missing: list[str] | None
) -> None:
    raw = env.issue(granted)
    response = client.post("/orders/5/refund", headers=auth_headers(raw))
    assert response.status_code == status
    if missing is not None:
        assert response.json()["missing_scopes"] == missing
    else:
        assert response.json() == {"refunded": 5}


def test_the_manager_sees_the_accumulated_scopes(env: Env, client: TestClient) -> None:
    raw = env.issue(["orders:read"])
    client.post("/orders/5/refund", headers=auth_headers(raw))
    [failure] = [e for e in env.recorder.events if isinstance(e, VerificationFailed)]
    assert failure.code == "insufficient_scope"
    assert set(failure.scopes) == {"orders:read", "orders:refund"}


def test_a_request_is_authenticated_and_charged_once(
    make_env: Callable[..., Env], make_client: Callable[..., TestClient]
) -> None:
    limiter = WindowLimiter(limit=100)
    env = make_env(limiter=limiter)
    client = make_client(env.manager)
    both = env.issue(["orders:read", "orders:write"])
    assert client.get("/both", headers=auth_headers(both)).status_code == 200
    assert limiter.hits == 1
    # The second dependency only checks its extra scope, and refuses it.
    read_only = env.issue(["orders:read"])
    response = client.get("/both", headers=auth_headers(read_only))
    assert response.status_code == 403
    assert response.json()["missing_scopes"] == ["orders:write"]
    assert limiter.hits == 2


def test_module_level_verbs_use_the_installed_auth(env: Env, client: TestClient) -> None:
    plain = env.issue()
    admin = env.issue(["admin:all"])
    assert client.get("/me", headers=auth_headers(plain)).status_code == 200
    assert client.get("/me").status_code == 401
    assert client.get("/admin", headers=auth_headers(plain)).status_code == 403
    assert client.get("/admin", headers=auth_headers(admin)).json() == {"admin": True}


def test_required_key_inside_a_scoped_dependency_gets_the_scopes(env: Env) -> None:
    auth = APIKeyAuth(env.manager)
    app = FastAPI()
    auth.install(app)

    async def owner_of(key: RequiredKey) -> str:
        return key.owner

    @app.get("/owner")
    async def owner(name: Annotated[str, Security(owner_of, scopes=["owners:read"])]) -> str:
        return name

    with TestClient(app) as client:
        assert client.get("/owner", headers=auth_headers(env.issue())).status_code == 403
        granted = auth_headers(env.issue(["owners:read"]))
        assert client.get("/owner", headers=granted).json() == "team-1"


def test_invalid_scopes_fail_at_declaration() -> None:
    auth = APIKeyAuth(_manager())
    with pytest.raises(InvalidArgument):
        auth.require_key("Orders Read")
    with pytest.raises(InvalidArgument):
        require_key("orders:*")


def test_an_invalid_route_scope_is_a_server_error_not_a_client_one(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    auth = APIKeyAuth(env.manager)
    app = FastAPI()
    auth.install(app)

    @app.get("/bad")
    async def bad(key: Annotated[APIKey, Security(auth, scopes=["not a scope"])]) -> None:
        return None

    with TestClient(app) as client, caplog.at_level(logging.WARNING, "apikeys"):
        response = client.get("/bad", headers=auth_headers(env.issue(["*"])))
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "invalid scope" in caplog.text


def _app_with_required_key(*auths: APIKeyAuth) -> FastAPI:
    app = FastAPI()
    for auth in auths:
        auth.install(app)

    @app.get("/me")
    async def me(key: RequiredKey) -> str:
        return key.owner

    return app


def test_required_key_without_an_installed_auth_fails_closed(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(_app_with_required_key()) as client, caplog.at_level(logging.ERROR):
        response = client.get("/me", headers=auth_headers(env.issue()))
    assert response.status_code == 500
    assert "need exactly one APIKeyAuth installed" in caplog.text


def test_required_key_with_two_installed_auths_fails_closed(env: Env) -> None:
    app = _app_with_required_key(APIKeyAuth(env.manager), APIKeyAuth(env.manager, realm="b"))
    with TestClient(app) as client:
        response = client.get("/me", headers=auth_headers(env.issue()))
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"


def test_required_key_refuses_an_auth_it_would_document_wrongly(env: Env) -> None:
    app = _app_with_required_key(APIKeyAuth(env.manager, api_key_header="X-Token"))
    with TestClient(app) as client:
        response = client.get("/me", headers={"X-Token": env.issue()})
    assert response.status_code == 500
    # The realm alone changes nothing in OpenAPI: fine.
    app = _app_with_required_key(APIKeyAuth(env.manager, realm="shop"))
    with TestClient(app) as client:
        assert client.get("/me", headers={"X-API-Key": env.issue()}).json() == "team-1"


def test_without_install_statuses_and_challenges_are_still_right(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    auth = APIKeyAuth(env.manager)
    app = FastAPI()

    @app.get("/orders")
    async def orders(key: Annotated[APIKey, Security(auth, scopes=["orders:read"])]) -> str:
        return key.owner

    with TestClient(app) as client, caplog.at_level(logging.WARNING, "apikeys"):
        missing = client.get("/orders")
        forbidden = client.get("/orders", headers=auth_headers(env.issue()))
        ok = client.get("/orders", headers=auth_headers(env.issue(["orders:read"])))
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="api"'
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"]["missing_scopes"] == ["orders:read"]
    assert ok.status_code == 200
    assert caplog.text.count("without auth.install(app)") == 1


def test_a_manager_is_required() -> None:
    with pytest.raises(ConfigurationError):
        APIKeyAuth(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        APIKeyAuth(_manager(), authorization_header=None, api_key_header=None)
    with pytest.raises(ConfigurationError):
        APIKeyAuth(_manager(), trusted_proxies=["not-an-address"])


def _manager() -> KeyManager:
    return make_manager(prefix="acme")


def test_without_fastapi_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"
        "import apikeys\n"
        "try:\n"
        "    import apikeys.fastapi\n"
        "except apikeys.ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'apikeys[fastapi]'" in result.stdout


def test_importing_apikeys_does_not_import_fastapi() -> None:
    code = "import sys, apikeys, apikeys.testing; print('fastapi' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"
