"""Scope grammar and matching: resource:action grants, wildcards, deny by default."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apikeys import APIKey, InsufficientScope, InvalidArgument
from apikeys._policy import check_scopes, required_scopes
from apikeys._scopes import (
    MAX_SCOPE_LENGTH,
    grants_cover,
    missing_scopes,
    validate_grants,
    validate_required,
)

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
segment = st.from_regex(r"\A[a-z0-9][a-z0-9_.\-]{0,8}\Z")
concrete = st.builds(lambda r, a: f"{r}:{a}", segment, segment)


def key_with(*scopes: str) -> APIKey:
    return APIKey(id="A" * 16, prefix="acme", owner="o", created_at=NOW, scopes=scopes)


@pytest.mark.parametrize(
    "scope",
    [
        "orders:read",
        "orders:*",
        "*",
        "orders:items:read",
        "orders:items:*",
        "a-b.c_d:x-1",
        "0:0",
        "a:" + "b" * (MAX_SCOPE_LENGTH - 2),
    ],
)
def test_valid_grants(scope: str) -> None:
    assert validate_grants([scope]) == (scope,)


@pytest.mark.parametrize(
    "scope",
    [
        "",
        "orders",
        "Orders:read",
        "orders:Read",
        "orders:",
        ":read",
        "orders::read",
        "*:read",
        "orders:*:read",
        "orders:re ad",
        " orders:read",
        "orders:read\n",
        "orders:réad",
        "**",
        "orders:**",
        "-orders:read",
        "a:" + "b" * (MAX_SCOPE_LENGTH - 1),
        None,
        3,
        b"orders:read",
    ],
)
def test_invalid_grants_are_refused(scope: object) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_grants([scope])  # type: ignore[list-item]
    assert info.value.status == 400


def test_grants_are_deduplicated_and_sorted() -> None:
    assert validate_grants(["b:x", "a:y", "b:x", "*"]) == ("*", "a:y", "b:x")
    assert validate_grants([]) == ()
    assert validate_grants(iter(["a:b"])) == ("a:b",)


@pytest.mark.parametrize("value", ["orders:read", None, 5])
def test_grants_must_be_a_list(value: object) -> None:
    with pytest.raises(InvalidArgument):
        validate_grants(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("scope", ["orders:*", "*", "orders", "", "Orders:read", "a:b:*"])
def test_required_scopes_are_concrete(scope: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_required((scope,))
    with pytest.raises(InvalidArgument):
        required_scopes([scope])


def test_required_scopes_accept_one_string_or_many() -> None:
    assert required_scopes("orders:read") == ("orders:read",)
    assert required_scopes(["a:b", "c:d:e"]) == ("a:b", "c:d:e")
    assert required_scopes(()) == ()


@pytest.mark.parametrize(
    ("grants", "required", "covered"),
    [
        (("orders:read",), "orders:read", True),
        (("orders:read",), "orders:write", False),
        (("orders:*",), "orders:write", True),
        (("orders:*",), "invoices:read", False),
        (("*",), "anything:at_all", True),
        (("*",), "a:b:c", True),
        ((), "orders:read", False),  # deny by default
        (("orders:read",), "orders:read:all", False),
        (("orders:items:*",), "orders:items:read", True),
        # A wildcard covers the actions of its own resource only, not nested ones.
        (("orders:*",), "orders:items:read", False),
        (("order:*",), "orders:read", False),
        (("orders:rea",), "orders:read", False),
    ],
)
def test_grants_cover(grants: tuple[str, ...], required: str, covered: bool) -> None:
    assert grants_cover(grants, required) is covered
    assert key_with(*grants).has_scope(required) is covered


def test_missing_scopes_and_check() -> None:
    grants = ("orders:*", "users:read")
    assert missing_scopes(grants, ["orders:write", "users:read"]) == []
    assert missing_scopes(grants, ["users:write", "orders:x", "a:b"]) == ["users:write", "a:b"]
    key = key_with(*grants)
    check_scopes(key, ())
    check_scopes(key, ("orders:write", "users:read"))
    with pytest.raises(InsufficientScope) as info:
        check_scopes(key, ("users:write", "users:read", "billing:read", "users:write"))
    assert info.value.missing == ("billing:read", "users:write")
    assert info.value.code == "insufficient_scope"
    assert info.value.status == 403
    assert "billing:read" in str(info.value)


@given(required=st.lists(concrete, min_size=1, max_size=5))
def test_every_required_scope_must_be_granted(required: list[str]) -> None:
    validate_required(tuple(required))
    assert missing_scopes(tuple(required), required) == []
    assert missing_scopes(("*",), required) == []
    assert missing_scopes((), required) == required
    # Granting all but one always leaves that one missing.
    dropped = required[0]
    rest = tuple(s for s in required if s != dropped)
    assert dropped in missing_scopes(rest, required)
