"""The pure decisions: expiry, client addresses, rotation and update planning."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest

from apikeys import (
    APIKey,
    AuthenticationError,
    InvalidArgument,
    InvalidKeyState,
    IPNotAllowed,
    KeyState,
)
from apikeys import _policy as policy
from apikeys._policy import UNSET

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
US = timedelta(microseconds=1)


def make(**fields: Any) -> APIKey:
    values: dict[str, Any] = {
        "key_id": "A" * 16,
        "prefix": "acme",
        "owner": "team-42",
        "now": NOW,
    }
    values.update(fields)
    return policy.new_key(**values)


# --- the record model ---------------------------------------------------------------


def test_apikey_is_frozen_utc_and_strict() -> None:
    key = make(expires_at=datetime(2026, 1, 2, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert key.expires_at == datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)
    assert key.expires_at is not None
    assert key.expires_at.utcoffset() == timedelta(0)
    with pytest.raises(pydantic.ValidationError):
        key.owner = "someone-else"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        APIKey(id="x", prefix="acme", owner="o", created_at=datetime(2026, 1, 1))
    with pytest.raises(pydantic.ValidationError):
        APIKey(id="x", prefix="acme", owner="o", created_at=NOW, secret_hash="h")  # type: ignore[call-arg]
    assert "secret" not in APIKey.model_fields
    assert "secret_hash" not in APIKey.model_fields


def test_new_key_defaults_and_normalisation() -> None:
    key = make(
        scopes=["b:x", "a:y", "b:x"],
        allowed_ips=["10.1.2.3/8", "10.0.0.0/8", "2001:DB8::1", " 192.168.1.7 "],
        metadata={"plan": "pro", "n": [1, 2]},
        rate_limits=["100/minute", "5000 per day"],
        quota=1000,
        name="CI",
    )
    assert key.id == "A" * 16
    assert key.prefix == "acme"
    assert key.owner == "team-42"
    assert key.created_at == NOW
    assert key.version == 1
    assert key.scopes == ("a:y", "b:x")
    assert key.allowed_ips == ("10.0.0.0/8", "2001:db8::1/128", "192.168.1.7/32")
    assert key.metadata == {"plan": "pro", "n": [1, 2]}
    assert key.rate_limits == ("100/minute", "5000 per day")
    assert key.quota == "1000"
    assert (key.expires_at, key.revoked_at, key.disabled_at, key.last_used_at) == (None,) * 4
    assert (key.replaced_by, key.replaces) == (None, None)
    assert key.state(NOW) is KeyState.ACTIVE


@pytest.mark.parametrize(
    "fields",
    [
        {"owner": ""},
        {"owner": "   "},
        {"owner": "o" * 201},
        {"owner": None},
        {"name": "n" * 201},
        {"name": 5},
        {"metadata": {"when": datetime(2026, 1, 1)}},
        {"metadata": ["not", "a", "mapping"]},
        {"metadata": {"blob": "x" * 20_000}},
        {"scopes": ["orders"]},
        {"scopes": "orders:read"},
        {"allowed_ips": ["10.0.0.300"]},
        {"allowed_ips": ["not-an-ip"]},
        {"allowed_ips": "10.0.0.0/8"},
        {"allowed_ips": None},
        {"rate_limits": ["100"]},
        {"rate_limits": ["0/minute"]},
        {"rate_limits": ["100/fortnight"]},
        {"rate_limits": "100/minute"},
        {"quota": 0},
        {"quota": "-5"},
        {"quota": True},
        {"quota": "1000/fortnight"},
    ],
)
def test_new_key_rejects_invalid_values(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        make(**fields)


def test_metadata_is_copied_as_json() -> None:
    given = {"plan": "pro", "tags": ("a", "b")}
    key = make(metadata=given)
    given["plan"] = "free"
    assert key.metadata == {"plan": "pro", "tags": ["a", "b"]}


# --- expiry --------------------------------------------------------------------------


def test_resolve_expiry() -> None:
    assert policy.resolve_expiry(NOW, None, None) is None
    assert policy.resolve_expiry(NOW, HOUR, None) == NOW + HOUR
    assert policy.resolve_expiry(NOW, None, NOW + US) == NOW + US


@pytest.mark.parametrize(
    ("expires_in", "expires_at"),
    [
        (HOUR, NOW + HOUR),  # both
        (timedelta(0), None),
        (-HOUR, None),
        (None, NOW),  # not in the future
        (None, NOW - US),
        (None, datetime(2030, 1, 1)),  # naive
        (3600, None),
        (None, "2030-01-01T00:00:00Z"),
    ],
)
def test_resolve_expiry_rejects(expires_in: Any, expires_at: Any) -> None:
    with pytest.raises(InvalidArgument):
        policy.resolve_expiry(NOW, expires_in, expires_at)


def test_expiry_boundary_is_exclusive() -> None:
    key = make(expires_at=NOW + HOUR)
    end = NOW + HOUR
    policy.check_usable(key, end - US)
    assert key.state(end - US) is KeyState.ACTIVE
    for moment in (end, end + US, end + HOUR):
        with pytest.raises(AuthenticationError) as info:
            policy.check_usable(key, moment)
        assert info.value.code == "expired"
        assert info.value.key_id == key.id
        assert key.state(moment) is KeyState.EXPIRED


def test_usable_precedence_revoked_then_disabled_then_expired() -> None:
    key = make(expires_at=NOW + HOUR)
    later = NOW + 2 * HOUR
    suspended = policy.plan_suspend(key, NOW, "audit")
    assert suspended is not None
    revoked = policy.plan_revoke(suspended, NOW, "leaked")
    assert revoked is not None
    for record, code, state in [
        (revoked, "revoked", KeyState.REVOKED),
        (suspended, "disabled", KeyState.DISABLED),
        (key, "expired", KeyState.EXPIRED),
    ]:
        with pytest.raises(AuthenticationError) as info:
            policy.check_usable(record, later)
        assert info.value.code == code
        assert record.state(later) is state
    policy.check_usable(key, NOW)


# --- client addresses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "ip", "ok"),
    [
        ((), None, True),  # no allowlist: anywhere, even without an address
        ((), "203.0.113.9", True),
        (("10.0.0.0/8",), "10.1.2.3", True),
        (("10.0.0.0/8",), " 10.1.2.3 ", True),
        (("10.0.0.0/8",), "10.255.255.255", True),
        (("10.0.0.0/8",), "11.0.0.0", False),
        (("10.0.0.0/8",), "9.255.255.255", False),
        (("10.1.2.3",), "10.1.2.3", True),
        (("10.1.2.3",), "10.1.2.4", False),
        (("2001:db8::/32",), "2001:db8:1::7", True),
        (("2001:db8::/32",), "2001:db9::1", False),
        (("2001:db8::1",), "2001:0db8:0000::0001", True),
        # An IPv4 client seen through a dual-stack socket.
        (("10.0.0.0/8",), "::ffff:10.1.2.3", True),
        (("10.0.0.0/8",), "::ffff:11.1.2.3", False),
        # Allowlists written in the mapped form mean the IPv4 network.
        (("::ffff:10.0.0.0/104",), "10.1.2.3", True),
        (("::ffff:10.1.2.3",), "::ffff:10.1.2.3", True),
        (("::ffff:10.1.2.3",), "10.1.2.4", False),
        # Families never match each other by accident.
        (("10.0.0.0/8",), "::a01:203", False),
        (("::/0",), "10.1.2.3", False),
        (("0.0.0.0/0",), "2001:db8::1", False),
        (("0.0.0.0/0", "::/0"), "2001:db8::1", True),
        # Fail closed: no address or an unusable one.
        (("10.0.0.0/8",), None, False),
        (("10.0.0.0/8",), "", False),
        (("10.0.0.0/8",), "not-an-ip", False),
        (("10.0.0.0/8",), "10.1.2.300", False),
        (("10.0.0.0/8",), "10.1.2.3/32", False),
        (("10.0.0.0/8",), "10.1.2.3:443", False),
    ],
)
def test_check_ip(allowed: tuple[str, ...], ip: str | None, ok: bool) -> None:
    key = make(allowed_ips=allowed)
    if ok:
        policy.check_ip(key, ip)
    else:
        with pytest.raises(IPNotAllowed) as info:
            policy.check_ip(key, ip)
        assert info.value.status == 403
        assert info.value.code == "ip_not_allowed"
        assert info.value.ip == ip


def test_missing_address_message_says_so() -> None:
    with pytest.raises(IPNotAllowed) as info:
        policy.check_ip(make(allowed_ips=["10.0.0.0/8"]), None)
    assert "no client address" in str(info.value)


@pytest.mark.parametrize("ip", [b"10.1.2.3", 167838211, ["10.1.2.3"]])
def test_non_string_addresses_fail_closed(ip: object) -> None:
    with pytest.raises(IPNotAllowed):
        policy.check_ip(make(allowed_ips=["10.0.0.0/8"]), ip)  # type: ignore[arg-type]


def test_validate_networks_normalises_and_deduplicates() -> None:
    assert policy.validate_networks(
        ["10.0.0.0/8", "10.9.9.9/8", "::ffff:10.0.0.0/104", "2001:DB8::/32", "192.0.2.1"]
    ) == ("10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32")
    assert policy.validate_networks([]) == ()


# --- revoke, suspend, enable ----------------------------------------------------------


def test_plan_revoke_is_final_and_keeps_the_first_reason() -> None:
    key = make()
    revoked = policy.plan_revoke(key, NOW + HOUR, "leaked")
    assert revoked is not None
    assert (revoked.revoked_at, revoked.revoke_reason, revoked.version) == (
        NOW + HOUR,
        "leaked",
        2,
    )
    assert policy.plan_revoke(revoked, NOW + 2 * HOUR, "again") is None
    assert key.revoked_at is None  # the input is never changed


def test_plan_suspend_and_enable() -> None:
    key = make()
    suspended = policy.plan_suspend(key, NOW, "billing")
    assert suspended is not None
    assert (suspended.disabled_at, suspended.disabled_reason, suspended.version) == (
        NOW,
        "billing",
        2,
    )
    assert policy.plan_suspend(suspended, NOW, "again") is None
    enabled = policy.plan_enable(suspended)
    assert enabled is not None
    assert (enabled.disabled_at, enabled.disabled_reason, enabled.version) == (None, None, 3)
    assert policy.plan_enable(enabled) is None
    revoked = policy.plan_revoke(key, NOW, None)
    assert revoked is not None
    with pytest.raises(InvalidKeyState):
        policy.plan_suspend(revoked, NOW, None)
    with pytest.raises(InvalidKeyState):
        policy.plan_enable(revoked)


# --- rotation ------------------------------------------------------------------------


SUCCESSOR = "B" * 16


def test_rotation_with_grace_inherits_settings() -> None:
    old = make(
        scopes=["orders:read", "orders:*"],
        name="CI",
        expires_at=NOW + 90 * 24 * HOUR,
        allowed_ips=["10.0.0.0/8"],
        metadata={"plan": "pro"},
        rate_limits=["100/minute"],
        quota="1000/month",
    )
    now = NOW + 24 * HOUR
    ended, successor = policy.plan_rotation(old, successor_id=SUCCESSOR, now=now, grace=HOUR)
    assert ended.id == old.id
    assert ended.expires_at == now + HOUR
    assert ended.replaced_by == SUCCESSOR
    assert ended.version == old.version + 1
    assert ended.state(now + HOUR - US) is KeyState.ACTIVE
    assert ended.state(now + HOUR) is KeyState.EXPIRED
    assert successor.id == SUCCESSOR
    assert successor.replaces == old.id
    assert successor.created_at == now
    assert successor.version == 1
    for field in (
        "prefix",
        "owner",
        "scopes",
        "name",
        "allowed_ips",
        "metadata",
        "rate_limits",
        "quota",
    ):
        assert getattr(successor, field) == getattr(old, field), field
    # Same lifetime as the old key, counted from the rotation.
    assert successor.expires_at == now + 90 * 24 * HOUR
    assert successor.replaced_by is None
    assert successor.revoked_at is None


def test_rotation_ends_at_the_earlier_of_old_expiry_and_grace() -> None:
    old = make(expires_at=NOW + HOUR)
    ended, _ = policy.plan_rotation(old, successor_id=SUCCESSOR, now=NOW, grace=2 * HOUR)
    assert ended.expires_at == NOW + HOUR
    ended, _ = policy.plan_rotation(old, successor_id=SUCCESSOR, now=NOW, grace=HOUR)
    assert ended.expires_at == NOW + HOUR
    ended, _ = policy.plan_rotation(old, successor_id=SUCCESSOR, now=NOW, grace=HOUR / 2)
    assert ended.expires_at == NOW + HOUR / 2
    never = make()
    ended, successor = policy.plan_rotation(never, successor_id=SUCCESSOR, now=NOW, grace=HOUR)
    assert ended.expires_at == NOW + HOUR
    assert successor.expires_at is None


def test_rotation_with_zero_grace_ends_at_once() -> None:
    ended, successor = policy.plan_rotation(
        make(), successor_id=SUCCESSOR, now=NOW, grace=timedelta(0)
    )
    assert ended.expires_at == NOW
    assert ended.state(NOW) is KeyState.EXPIRED
    assert successor.state(NOW) is KeyState.ACTIVE


def test_rotation_with_explicit_lifetime() -> None:
    _, successor = policy.plan_rotation(
        make(expires_at=NOW + HOUR),
        successor_id=SUCCESSOR,
        now=NOW,
        grace=HOUR,
        expires_in=48 * HOUR,
    )
    assert successor.expires_at == NOW + 48 * HOUR


def test_rotation_refuses_keys_that_are_not_active() -> None:
    key = make(expires_at=NOW + HOUR)
    revoked = policy.plan_revoke(key, NOW, None)
    suspended = policy.plan_suspend(key, NOW, None)
    rotated, _ = policy.plan_rotation(key, successor_id=SUCCESSOR, now=NOW, grace=HOUR / 2)
    cases = [
        (revoked, NOW),
        (suspended, NOW),
        (key, NOW + HOUR),  # expired, exactly at the boundary
        (rotated, NOW),  # already rotated, still in its grace period
    ]
    for old, now in cases:
        assert old is not None
        with pytest.raises(InvalidKeyState):
            policy.plan_rotation(old, successor_id=SUCCESSOR, now=now, grace=HOUR)
    with pytest.raises(InvalidArgument):
        policy.plan_rotation(key, successor_id=SUCCESSOR, now=NOW, grace=-US)
    with pytest.raises(InvalidArgument):
        policy.plan_rotation(key, successor_id=SUCCESSOR, now=NOW, grace=60)  # type: ignore[arg-type]


# --- update ----------------------------------------------------------------------------


FIELDS = ("scopes", "name", "metadata", "allowed_ips", "expires_at", "rate_limits", "quota")


def changes(**given: Any) -> dict[str, Any]:
    return {name: given.get(name, UNSET) for name in FIELDS}


def full_key() -> APIKey:
    return make(
        scopes=["a:b"],
        name="CI",
        metadata={"k": 1},
        allowed_ips=["10.0.0.0/8"],
        expires_at=NOW + HOUR,
        rate_limits=["10/second"],
        quota="5",
    )


def test_update_with_nothing_given_changes_nothing() -> None:
    assert policy.plan_update(full_key(), NOW, changes()) is None


def test_update_with_equal_values_changes_nothing() -> None:
    key = full_key()
    same = changes(
        scopes=["a:b", "a:b"],
        name="CI",
        metadata={"k": 1},
        allowed_ips=["10.1.1.1/8"],
        expires_at=NOW + HOUR,
        rate_limits=["10/second"],
        quota=5,
    )
    assert policy.plan_update(key, NOW, same) is None


def test_update_sets_only_given_fields_and_bumps_version_once() -> None:
    key = full_key()
    updated = policy.plan_update(key, NOW, changes(scopes=["x:y", "a:*"], name="Deploy"))
    assert updated is not None
    assert updated.scopes == ("a:*", "x:y")
    assert updated.name == "Deploy"
    assert updated.version == key.version + 1
    for field in (
        "metadata",
        "allowed_ips",
        "expires_at",
        "rate_limits",
        "quota",
        "owner",
        "created_at",
        "id",
    ):
        assert getattr(updated, field) == getattr(key, field), field


def test_update_none_clears_optional_fields() -> None:
    key = full_key()
    updated = policy.plan_update(
        key, NOW, changes(name=None, expires_at=None, metadata=None, quota=None)
    )
    assert updated is not None
    assert (updated.name, updated.expires_at, updated.metadata, updated.quota) == (
        None,
        None,
        {},
        None,
    )
    assert updated.scopes == key.scopes
    assert updated.allowed_ips == key.allowed_ips


def test_update_empty_lists_clear_collections() -> None:
    updated = policy.plan_update(
        full_key(), NOW, changes(scopes=[], allowed_ips=[], rate_limits=[])
    )
    assert updated is not None
    assert (updated.scopes, updated.allowed_ips, updated.rate_limits) == ((), (), ())


@pytest.mark.parametrize("field", ["scopes", "allowed_ips", "rate_limits"])
def test_update_none_is_not_a_list(field: str) -> None:
    # None for a collection is refused rather than read as "clear": clearing an
    # allowlist by accident would open the key to every address.
    with pytest.raises(InvalidArgument):
        policy.plan_update(full_key(), NOW, changes(**{field: None}))


@pytest.mark.parametrize(
    "given",
    [
        {"scopes": ["bad"]},
        {"allowed_ips": ["nope"]},
        {"expires_at": NOW},  # not in the future
        {"expires_at": datetime(2030, 1, 1)},  # naive
        {"metadata": {"x": object()}},
        {"rate_limits": ["often"]},
        {"quota": "lots"},
        {"name": "n" * 500},
    ],
)
def test_update_validates(given: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        policy.plan_update(full_key(), NOW, changes(**given))


def test_update_refuses_unknown_fields_and_revoked_keys() -> None:
    with pytest.raises(InvalidArgument):
        policy.plan_update(full_key(), NOW, {"owner": "someone"})
    revoked = policy.plan_revoke(full_key(), NOW, None)
    assert revoked is not None
    with pytest.raises(InvalidKeyState):
        policy.plan_update(revoked, NOW, changes(name="x"))


def test_update_can_extend_an_expired_key() -> None:
    key = full_key()
    later = NOW + 2 * HOUR
    assert key.state(later) is KeyState.EXPIRED
    updated = policy.plan_update(key, later, changes(expires_at=later + HOUR))
    assert updated is not None
    assert updated.state(later) is KeyState.ACTIVE


def test_unset_is_a_distinct_marker() -> None:
    assert repr(UNSET) == "UNSET"
    assert UNSET is not None
    assert UNSET != None  # noqa: E711  (the marker must not compare equal to None)
