"""Issue 15 on Django (items 3, 7 and 9): header leniency, client addresses taken
only from IP addresses, and ``APIKEYS["REQUIRE_HTTPS"]``, through the decorator
and DRF alike (one request layer under both)."""

from __future__ import annotations

import pytest
from dj_support import Env, bearer, configured, problem
from django.test import Client

from apikeys.events import KeyExposed


@pytest.mark.parametrize("path", ["/orders/", "/drf/orders/"])
@pytest.mark.parametrize("value", [",{raw}", "{raw},", "\xa0{raw}", "{raw}\x85"])
def test_empty_elements_and_unicode_whitespace_are_malformed(
    apikeys_env: Env, client: Client, path: str, value: str
) -> None:
    raw = apikeys_env.issue("orders:read")
    refused = client.get(path, headers={"X-API-Key": value.format(raw=raw)})
    assert problem(refused, 401)["code"] == "invalid_token"
    assert client.get(path, headers={"X-API-Key": f"\t{raw} "}).status_code == 200


def test_a_non_ip_forwarded_hop_is_never_the_client(apikeys_env: Env, client: Client) -> None:
    raw = apikeys_env.issue("orders:read", allowed_ips=["198.51.100.0/24"])
    hop = "198.51.100.7"
    with configured(apikeys_env, TRUSTED_PROXIES=["10.0.0.0/8"]):
        ok = client.get(
            "/orders/", headers={**bearer(raw), "X-Forwarded-For": hop}, REMOTE_ADDR="10.0.0.2"
        )
        assert ok.status_code == 200
        planted = "<b>evil</b>"
        refused = client.get(
            "/orders/",
            headers={**bearer(raw), "X-Forwarded-For": f"{hop}, {planted}"},
            REMOTE_ADDR="10.0.0.2",
        )
    assert problem(refused, 403)["code"] == "ip_not_allowed"
    assert planted.encode() not in refused.content


def test_require_https_refuses_a_proven_key_over_http_and_reports_it(
    apikeys_env: Env, client: Client
) -> None:
    with configured(apikeys_env, REQUIRE_HTTPS=True):
        issued = apikeys_env.manager.create(owner="team-42", scopes=["orders:read"])
        for path in ("/orders/", "/drf/orders/"):
            refused = client.get(path, headers=bearer(issued.plaintext), REMOTE_ADDR="192.0.2.1")
            assert problem(refused, 403)["code"] == "insecure_transport"
        secure = client.get(
            "/orders/", headers=bearer(issued.plaintext), REMOTE_ADDR="192.0.2.1", secure=True
        )
        assert secure.status_code == 200
        loopback = client.get("/orders/", headers=bearer(issued.plaintext), REMOTE_ADDR="127.0.0.1")
        assert loopback.status_code == 200
    exposed = [e for e in apikeys_env.sink.events if isinstance(e, KeyExposed)]
    assert [(e.key_id, e.ip) for e in exposed] == [(issued.key.id, "192.0.2.1")] * 2
