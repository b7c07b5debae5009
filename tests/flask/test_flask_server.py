"""A real WSGI server on 127.0.0.1 (werkzeug's, in a thread) called with httpx over
a socket: repeated header lines arrive merged by the server, and are still refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from flask_support import Env, build_app
from werkzeug.serving import make_server

from apikeys.flask import APIKeys
from apikeys.testing import auth_headers


@pytest.fixture
def server(env: Env) -> Iterator[str]:
    app = build_app(APIKeys(env.manager))
    http_server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http_server.server_port}"
    finally:
        http_server.shutdown()
        thread.join(timeout=10)
        http_server.server_close()


def test_a_real_server_on_loopback(env: Env, server: str) -> None:
    key = env.issue("orders:read")
    with httpx.Client(base_url=server, timeout=10) as http:
        ok = http.get("/orders/7", headers=auth_headers(key))
        assert ok.status_code == 200
        assert ok.json() == {"order": 7, "owner": "team-1"}
        assert http.get("/async/orders/7", headers={"X-API-Key": key}).json()["async"] is True

        missing = http.get("/orders/7")
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["www-authenticate"] == 'Bearer realm="api"'

        # Two header lines on the wire; the WSGI server joins them with a comma.
        twice = http.get("/orders/7", headers=[("Authorization", f"Bearer {key}")] * 2)
        assert twice.status_code == 401
        assert twice.json()["code"] == "invalid_token"
        both = http.get("/orders/7", headers={**auth_headers(key), "X-API-Key": key})
        assert both.status_code == 401
        assert both.json() == twice.json()

        refused = http.post("/orders", headers=auth_headers(key))
        assert refused.status_code == 403
        assert refused.json()["missing_scopes"] == ["orders:write"]

    reported = [(e.route, e.status, e.ip) for e in env.recorder.completed()]
    assert reported == [
        ("/orders/<int:order_id>", 200, "127.0.0.1"),
        ("/async/orders/<int:order_id>", 200, "127.0.0.1"),
    ]
