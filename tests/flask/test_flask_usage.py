"""After each response of a key-authenticated request the manager hears of it
(``record_request``: method, URL rule, status, client address); trusted proxies."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from flask_support import CLIENT_IP, Env, build_app

from apikeys.flask import APIKeys
from apikeys.testing import auth_headers


def _reported(env: Env) -> list[tuple[str, str, int, str | None]]:
    return [(e.method, e.route, e.status, e.ip) for e in env.recorder.completed()]


def test_each_authenticated_request_is_reported_with_its_url_rule(
    env: Env, client: FlaskClient
) -> None:
    key = env.issue("orders:read", "orders:write", "admin:read")
    client.get("/orders/7", headers=auth_headers(key))
    client.get("/orders/8", headers={"X-API-Key": key})
    client.post("/orders", headers=auth_headers(key))
    client.get("/async/orders/9", headers=auth_headers(key))
    client.get("/gone/1", headers=auth_headers(key))
    client.post("/admin/purge", headers=auth_headers(key))  # blueprint ok, route 403
    assert _reported(env) == [
        ("GET", "/orders/<int:order_id>", 200, CLIENT_IP),
        ("GET", "/orders/<int:order_id>", 200, CLIENT_IP),
        ("POST", "/orders", 201, CLIENT_IP),
        ("GET", "/async/orders/<int:order_id>", 200, CLIENT_IP),
        ("GET", "/gone/<int:order_id>", 404, CLIENT_IP),
        ("POST", "/admin/purge", 403, CLIENT_IP),
    ]
    assert {e.key_id for e in env.recorder.completed()} == {env.admin.verify(key).id}


def test_refused_and_public_requests_are_not_reported(env: Env, client: FlaskClient) -> None:
    reader = env.issue("orders:read")
    client.get("/orders/7")
    client.get("/orders/7", headers=auth_headers("acme_nonsense"))
    client.post("/orders", headers=auth_headers(reader))  # 403 at the first layer
    client.get("/public", headers=auth_headers(reader))
    assert _reported(env) == []


@pytest.mark.parametrize("propagate", [False, True])
def test_a_view_that_raises_is_reported_as_500(env: Env, propagate: bool) -> None:
    app = build_app(APIKeys(env.manager))
    app.config["PROPAGATE_EXCEPTIONS"] = propagate
    client = app.test_client()
    key = env.issue()
    if propagate:
        with pytest.raises(RuntimeError, match="the view failed"):
            client.get("/boom", headers=auth_headers(key))
    else:
        assert client.get("/boom", headers=auth_headers(key)).status_code == 500
    assert _reported(env) == [("GET", "/boom", 500, "127.0.0.1")]


def test_a_failing_event_sink_does_not_fail_the_request(env: Env, client: FlaskClient) -> None:
    class Broken:
        def emit(self, event: object) -> None:
            raise OSError("sink down")

    env.manager.add_sink(Broken())
    key = env.issue("orders:read")
    assert client.get("/orders/7", headers=auth_headers(key)).status_code == 200
    assert _reported(env) == [("GET", "/orders/<int:order_id>", 200, CLIENT_IP)]


def test_x_forwarded_for_is_ignored_by_default(env: Env, client: FlaskClient) -> None:
    key = env.issue("orders:read", allowed_ips=["198.51.100.0/24"])
    spoofed = client.get(
        "/orders/7", headers={**auth_headers(key), "X-Forwarded-For": "198.51.100.7"}
    )
    assert spoofed.status_code == 403
    assert spoofed.json["code"] == "ip_not_allowed"


def test_trusted_proxies_are_believed_and_only_they(env: Env) -> None:
    app = build_app(APIKeys(env.manager), APIKEYS_TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.1")
    client = app.test_client()
    key = env.issue("orders:read", allowed_ips=["198.51.100.0/24"])
    via_proxies = client.get(
        "/orders/7",
        headers={**auth_headers(key), "X-Forwarded-For": "6.6.6.6, 198.51.100.7, 192.0.2.1"},
        environ_base={"REMOTE_ADDR": "10.0.0.5"},
    )
    assert via_proxies.status_code == 200
    # Walked from the right past trusted hops: the first untrusted one is the client.
    assert _reported(env)[-1][3] == "198.51.100.7"
    repeated = client.get(
        "/orders/7",
        headers=[
            *auth_headers(key).items(),
            ("X-Forwarded-For", "198.51.100.8"),
            ("X-Forwarded-For", "192.0.2.1"),
        ],
        environ_base={"REMOTE_ADDR": "10.0.0.5"},
    )
    assert repeated.status_code == 200
    assert _reported(env)[-1][3] == "198.51.100.8"
    not_a_proxy = client.get(
        "/orders/7",
        headers={**auth_headers(key), "X-Forwarded-For": "198.51.100.7"},
        environ_base={"REMOTE_ADDR": "203.0.113.50"},
    )
    assert not_a_proxy.status_code == 403
    spoof_behind_proxy = client.get(
        "/orders/7",
        headers={**auth_headers(key), "X-Forwarded-For": "198.51.100.7, 203.0.113.50"},
        environ_base={"REMOTE_ADDR": "10.0.0.5"},
    )
    assert spoof_behind_proxy.status_code == 403
