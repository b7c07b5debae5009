"""The framework-free HTTP semantics every adapter shares (``apikeys.http``):
credential extraction, client addresses, the transport rule, problem bodies."""

from __future__ import annotations

import ipaddress
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apikeys.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidArgument,
    IPNotAllowed,
    KeyNotFound,
    StorageError,
)
from apikeys.http import HTTPSettings, problem, refusal

SETTINGS = HTTPSettings()
PROXIED = HTTPSettings(trusted_proxies=["10.0.0.0/8"])


def code_of(authorization: list[str], api_key: list[str]) -> str:
    with pytest.raises(AuthenticationError) as refused:
        SETTINGS.extract_key(authorization, api_key)
    return refused.value.code


@pytest.mark.parametrize("value", [",K", "K,", "K, ", " ,K", ",", "K,,K", "", " \t "])
def test_an_empty_list_element_is_a_second_credential(value: str) -> None:
    assert code_of([], [value]) == "malformed"


@pytest.mark.parametrize("space", ["\xa0", "\x85", "\u2028", "\u3000", "\x0b", "\x0c", "\r", "\n"])
def test_only_sp_and_htab_are_trimmed(space: str) -> None:
    assert SETTINGS.extract_key([], [" \tK\t "]) == "K"
    assert SETTINGS.extract_key(["Bearer  K\t"], []) == "K"
    assert SETTINGS.extract_key([], [f"{space}K"]) == f"{space}K"  # the parser refuses it
    assert SETTINGS.extract_key([], [f"K{space}"]) == f"K{space}"


def test_missing_and_several_credentials() -> None:
    assert code_of([], []) == "missing"
    assert code_of(["Bearer K"], ["K"]) == "malformed"
    assert code_of(["Basic K"], []) == "malformed"
    assert code_of(["Bearer "], []) == "malformed"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        (["198.51.100.7"], "198.51.100.7"),
        (["198.51.100.7, 10.0.0.3"], "198.51.100.7"),  # past a trusted hop
        (["2001:DB8::1"], "2001:DB8::1"),
        (["::ffff:198.51.100.7"], "::ffff:198.51.100.7"),
        (["fe80::1%eth0"], None),  # a zone is free text
        (["fe80::1%\r\nforged"], None),
        (["198.51.100.7, evil"], None),
        (["unknown"], None),
        (["198.51.100.7\r\nX-Injected: 1"], None),
        (["[::1]:80"], None),
        ([], "10.0.0.2"),
    ],
)
def test_only_ip_addresses_are_client_addresses(forwarded: list[str], client: str | None) -> None:
    assert PROXIED.client_ip("10.0.0.2", forwarded) == client
    assert SETTINGS.client_ip("10.0.0.2", forwarded) == "10.0.0.2"  # no trusted proxy


@given(st.text(max_size=60))
def test_forwarded_text_is_an_address_or_nothing(text: str) -> None:
    client = PROXIED.client_ip("10.0.0.2", [text])
    if client is not None:
        ipaddress.ip_address(client)
        assert set(client) <= set("0123456789abcdefABCDEF:.")


@pytest.mark.parametrize(
    ("settings", "scheme", "peer", "client", "proto", "plaintext"),
    [
        (HTTPSettings(), "http", "192.0.2.1", "192.0.2.1", [], False),
        (HTTPSettings(require_https=True), "http", "192.0.2.1", "192.0.2.1", [], True),
        (HTTPSettings(require_https=True), "https", "192.0.2.1", "192.0.2.1", [], False),
        (HTTPSettings(require_https=True), "http", "127.0.0.1", "127.0.0.1", [], False),
        (HTTPSettings(require_https=True), "http", "::1", "::1", [], False),
        (
            HTTPSettings(require_https=True, https_exempt_loopback=False),
            "http",
            "127.0.0.1",
            "127.0.0.1",
            [],
            True,
        ),
        (HTTPSettings(require_https=True), "http", "192.0.2.1", None, [], True),
        (HTTPSettings(require_https=True), "http", "192.0.2.1", "192.0.2.1", ["https"], True),
        (
            HTTPSettings(require_https=True, trusted_proxies=["10.0.0.0/8"]),
            "http",
            "10.0.0.2",
            "192.0.2.1",
            ["https"],
            False,
        ),
        (
            HTTPSettings(require_https=True, trusted_proxies=["10.0.0.0/8"]),
            "http",
            "10.0.0.2",
            "192.0.2.1",
            ["https,http"],
            True,
        ),
        (
            HTTPSettings(require_https=True, trusted_proxies=["10.0.0.0/8"]),
            "https",
            "10.0.0.2",
            "192.0.2.1",
            ["http"],
            True,
        ),
    ],
)
def test_the_transport_rule(
    settings: HTTPSettings,
    scheme: str,
    peer: str,
    client: str | None,
    proto: list[str],
    plaintext: bool,
) -> None:
    assert settings.plaintext(scheme, peer, client, proto) is plaintext


def test_the_transport_options_are_booleans() -> None:
    with pytest.raises(ConfigurationError):
        HTTPSettings(require_https="yes")  # type: ignore[arg-type]


def test_offers_key_leaves_other_schemes_to_other_authenticators() -> None:
    assert SETTINGS.offers_key(["Bearer K"], [])
    assert SETTINGS.offers_key([], ["K"])
    assert SETTINGS.offers_key([""], [])
    assert not SETTINGS.offers_key(["Basic dTpw"], [])
    assert not SETTINGS.offers_key([], [])


@given(st.text(max_size=40))
def test_problem_bodies_never_echo_request_text(text: str) -> None:
    # A body built from request text (an address, an id, an argument) is the same
    # body as one built from any other text: nothing of the request is in it.
    for make in (IPNotAllowed, InvalidArgument, KeyNotFound):
        assert problem(make(text), SETTINGS) == problem(make("0000000000000000"), SETTINGS)


def test_the_5xx_log_line_escapes_request_text(caplog: pytest.LogCaptureFixture) -> None:
    class View:
        method, path, scheme, peer = "GET", "/a\nINFO forged\u2028line", "http", None

        def header(self, name: str) -> list[str]:
            return []

        def query(self, name: str) -> list[str]:
            return []

    with caplog.at_level(logging.WARNING, logger="apikeys"):
        refusal(StorageError("down"), SETTINGS, View())
    [record] = caplog.records
    assert "\n" not in record.getMessage()
    assert "\u2028" not in record.getMessage()
    assert "GET /a\\x0aINFO forged\\u2028line answered 503" in record.getMessage()
