"""Setting the extension up: with or without the app, app factories, config-only,
config errors, blueprint protection, and ``current_key``."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_support import Env, build_app

from apikeys import AsyncKeyManager, ConfigurationError, InvalidArgument, KeyManager
from apikeys.events import KeyVerified
from apikeys.flask import APIKeys, current_key, get_current_key, get_manager, require_key
from apikeys.hashing import Argon2Hasher
from apikeys.storage import MemoryStore
from apikeys.testing import auth_headers


def test_extension_with_the_app_or_later_with_init_app(env: Env) -> None:
    key = env.issue("orders:read")
    direct = Flask("direct")
    ext = APIKeys(direct, env.manager)
    direct.add_url_rule(
        "/orders", "orders", require_key("orders:read")(lambda: {"owner": current_key.owner})
    )
    assert direct.test_client().get("/orders", headers=auth_headers(key)).json == {
        "owner": "team-1"
    }
    assert get_manager(direct) is env.manager
    assert ext.manager is env.manager
    later = build_app()
    APIKeys(env.manager).init_app(later)
    assert later.test_client().get("/orders/1", headers=auth_headers(key)).status_code == 200


def test_one_extension_serves_every_app_of_a_factory(env: Env) -> None:
    ext = APIKeys(env.manager)

    def create_app(realm: str) -> Flask:
        return build_app(ext, APIKEYS_REALM=realm)

    first, second = create_app("one"), create_app("two")
    key = env.issue("orders:read")
    for app, realm in ((first, "one"), (second, "two")):
        client = app.test_client()
        assert client.get("/orders/1", headers=auth_headers(key)).status_code == 200
        assert client.get("/orders/1").headers["WWW-Authenticate"] == f'Bearer realm="{realm}"'
        assert get_manager(app) is env.manager


def test_init_app_twice_is_harmless_and_a_second_extension_is_refused(env: Env) -> None:
    ext = APIKeys(env.manager)
    app = build_app(ext)
    ext.init_app(app)
    key = env.issue("orders:read")
    app.test_client().get("/orders/1", headers=auth_headers(key))
    assert len(env.recorder.completed()) == 1  # hooks registered once
    with pytest.raises(ConfigurationError, match="another APIKeys"):
        APIKeys(env.manager).init_app(app)


def test_config_alone_builds_the_manager() -> None:
    hasher = Argon2Hasher.for_tests()
    app = build_app(
        APIKeys(),
        APIKEYS_DATABASE_URL="memory://",
        APIKEYS_PREFIX="shop_live, shop",
        APIKEYS_MANAGER_OPTIONS={"hasher": hasher, "cache_size": 10},
    )
    manager = get_manager(app)
    assert isinstance(manager, KeyManager)
    assert manager.prefix == "shop_live"
    assert manager.prefixes == {"shop_live", "shop"}
    assert manager.hasher is hasher
    old = manager.create(owner="team-9", scopes=["orders:read"], prefix="shop").plaintext
    client = app.test_client()
    assert client.get("/orders/5", headers=auth_headers(old)).json == {
        "order": 5,
        "owner": "team-9",
    }
    # Each app built from config has its own manager (and store).
    other = build_app(
        APIKeys(),
        APIKEYS_DATABASE_URL="memory://",
        APIKEYS_PREFIX="shop",
        APIKEYS_MANAGER_OPTIONS={"hasher": hasher},
    )
    assert get_manager(other) is not manager
    assert other.test_client().get("/orders/5", headers=auth_headers(old)).status_code == 401


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "APIKEYS_DATABASE_URL and APIKEYS_PREFIX"),
        ({"APIKEYS_DATABASE_URL": "memory://"}, "APIKEYS_DATABASE_URL and APIKEYS_PREFIX"),
        (
            {"APIKEYS_TRUSTED_PROXY": ["10.0.0.0/8"]},
            "unknown apikeys option.*APIKEYS_TRUSTED_PROXY",
        ),
        ({"APIKEYS_TRUSTED_PROXIES": ["not-a-network"]}, "APIKEYS_TRUSTED_PROXIES.*not an address"),
        ({"APIKEYS_TRUSTED_PROXIES": 10}, "APIKEYS_TRUSTED_PROXIES.*must be a list"),
        (
            {"APIKEYS_AUTHORIZATION_HEADER": None, "APIKEYS_API_KEY_HEADER": None},
            "at least one place",
        ),
        ({"APIKEYS_REALM": 'a"b'}, "realm"),
        ({"APIKEYS_DEFAULT_EXPIRY": "soon"}, "APIKEYS_DEFAULT_EXPIRY"),
        ({"APIKEYS_DATABASE_URL": "memory://", "APIKEYS_PREFIX": "Bad Prefix"}, "prefix"),
        (
            {
                "APIKEYS_DATABASE_URL": "memory://",
                "APIKEYS_PREFIX": "shop",
                "APIKEYS_MANAGER_OPTIONS": {"cache_sise": 1},
            },
            "APIKEYS_MANAGER_OPTIONS",
        ),
        ({"APIKEYS_DATABASE_URL": "nosuch://x", "APIKEYS_PREFIX": "shop"}, "nosuch"),
    ],
)
def test_config_errors_are_reported_at_init_app(config: dict[str, Any], message: str) -> None:
    app = Flask("bad")
    app.config.update(config)
    with pytest.raises(ConfigurationError, match=message):
        APIKeys(app)


def test_a_passed_manager_wins_over_the_store_url(env: Env) -> None:
    app = build_app(APIKeys(env.manager), APIKEYS_DATABASE_URL="nosuch://x", APIKEYS_PREFIX="x")
    assert get_manager(app) is env.manager


def test_only_a_sync_key_manager_is_accepted(env: Env) -> None:
    with pytest.raises(ConfigurationError, match="synchronous KeyManager"):
        APIKeys(AsyncKeyManager(MemoryStore(), prefix="acme"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs a KeyManager"):
        APIKeys(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not an app"):
        APIKeys(env.manager, env.manager)  # type: ignore[arg-type]


def test_invalid_scopes_fail_when_the_view_is_declared() -> None:
    with pytest.raises(InvalidArgument):
        require_key("not a scope")
    with pytest.raises(InvalidArgument):
        APIKeys().protect_blueprint(Flask("x"), "orders")


def test_a_protected_view_on_an_app_without_the_extension_fails_loudly(env: Env) -> None:
    app = build_app()  # no extension
    app.testing = True
    with pytest.raises(ConfigurationError, match="not set up for apikeys"):
        app.test_client().get("/orders/1", headers=auth_headers(env.issue("orders:read")))


def test_current_key_outside_a_protected_view(env: Env, client: FlaskClient) -> None:
    key = env.issue("orders:read")
    # A public route: nothing authenticated, even though a key was sent.
    assert client.get("/public", headers=auth_headers(key)).json == {
        "hello": "world",
        "key": None,
        "bound": False,
    }
    assert get_current_key() is None  # no request at all
    assert not current_key
    with pytest.raises(RuntimeError, match="no API key authenticated this request"):
        _ = current_key.owner


def test_protect_a_whole_blueprint_in_one_line(env: Env, client: FlaskClient) -> None:
    reader = env.issue("admin:read")
    outsider = env.issue("orders:read")
    assert client.get("/admin/stats", headers=auth_headers(reader)).json == {"owner": "team-1"}
    missing = client.get("/admin/stats")
    assert missing.status_code == 401
    assert missing.json["code"] == "missing_credentials"
    refused = client.get("/admin/stats", headers=auth_headers(outsider))
    assert refused.status_code == 403
    assert refused.json["missing_scopes"] == ["admin:read"]
    # Nested blueprints are covered too.
    assert client.get("/reports/daily", headers=auth_headers(reader)).status_code == 404
    assert client.get("/admin/reports/daily").status_code == 401
    assert client.get("/admin/reports/daily", headers=auth_headers(reader)).json == {
        "report": "daily",
        "owner": "team-1",
    }
    # Routes outside the blueprint are untouched.
    assert client.get("/public").status_code == 200


def test_a_route_adds_scopes_to_its_blueprint_and_verifies_once(
    env: Env, client: FlaskClient
) -> None:
    reader = env.issue("admin:read")
    writer = env.issue("admin:read", "admin:write")
    refused = client.post("/admin/purge", headers=auth_headers(reader))
    assert refused.status_code == 403
    assert refused.json["missing_scopes"] == ["admin:write"]
    env.recorder.events.clear()
    assert client.post("/admin/purge", headers=auth_headers(writer)).json == {"purged": True}
    assert len([e for e in env.recorder.events if isinstance(e, KeyVerified)]) == 1


def test_automatic_options_pass_a_protected_blueprint(client: FlaskClient) -> None:
    response = client.options("/admin/stats")
    assert response.status_code == 200
    assert "GET" in response.headers["Allow"]
