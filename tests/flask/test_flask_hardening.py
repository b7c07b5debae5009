"""Issue 15 on Flask (items 3, 7 and 9): header leniency, client addresses taken
only from IP addresses, and ``APIKEYS_REQUIRE_HTTPS``. The same request layer
answers every adapter; these pin that Flask goes through it too."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_support import Env, build_app

from apikeys.events import KeyExposed
from apikeys.flask import APIKeys
from apikeys.testing import auth_headers


def _client(env: Env, peer: str = "203.0.113.9", **config: Any) -> FlaskClient:
    client = build_app(APIKeys(env.manager), **config).test_client()
    client.environ_base["REMOTE_ADDR"] = peer
    return client


@pytest.mark.parametrize("value", [",{raw}", "{raw},", "\xa0{raw}", "{raw}\x85", ""])
def test_empty_elements_and_unicode_whitespace_are_malformed(
    env: Env, client: FlaskClient, value: str
) -> None:
    raw = env.issue()
    refused = client.get("/me", headers={"X-API-Key": value.format(raw=raw)})
    assert refused.status_code == 401
    assert refused.json is not None
    assert refused.json["code"] == "invalid_token"
    assert client.get("/me", headers={"X-API-Key": f"\t{raw} "}).status_code == 200


def test_a_non_ip_forwarded_hop_is_never_the_client(env: Env) -> None:
    client = _client(env, peer="10.0.0.2", APIKEYS_TRUSTED_PROXIES=["10.0.0.0/8"])
    raw = env.issue(allowed_ips=["198.51.100.0/24"])
    hop = "198.51.100.7"
    assert client.get("/me", headers={"X-API-Key": raw, "X-Forwarded-For": hop}).status_code == 200
    planted = "<b>evil</b>"
    refused = client.get("/me", headers={"X-API-Key": raw, "X-Forwarded-For": f"{hop}, {planted}"})
    assert refused.status_code == 403
    assert planted.encode() not in refused.data
    assert [e.ip for e in env.recorder.completed()] == [hop]


def test_require_https_refuses_a_proven_key_over_http_and_reports_it(env: Env) -> None:
    client = _client(env, APIKEYS_REQUIRE_HTTPS=True)
    issued = env.admin.create(owner="team-1")
    refused = client.get("/me", headers=auth_headers(issued.plaintext))
    assert refused.status_code == 403
    assert refused.json is not None
    assert refused.json["code"] == "insecure_transport"
    assert client.get("/me", headers=auth_headers("acme_junk")).status_code == 401
    exposed = [e for e in env.recorder.events if isinstance(e, KeyExposed)]
    assert [(e.key_id, e.ip) for e in exposed] == [(issued.key.id, "203.0.113.9")]
    secure = client.get("/me", headers=auth_headers(issued.plaintext), base_url="https://localhost")
    assert secure.status_code == 200
    loopback = _client(env, peer="127.0.0.1", APIKEYS_REQUIRE_HTTPS=True)
    assert loopback.get("/me", headers=auth_headers(issued.plaintext)).status_code == 200
