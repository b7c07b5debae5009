"""The decisions, pure (no I/O): building records, whether a key is usable now,
from this address, for these scopes, and what revoke/rotate/update change."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from apikeys._display import state_label
from apikeys._models import APIKey, FrozenDict, KeyState, freeze
from apikeys._scopes import missing_scopes, validate_grants, validate_required
from apikeys.errors import (
    AuthenticationError,
    InsufficientScope,
    InvalidArgument,
    InvalidKeyState,
    IPNotAllowed,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_NAME_LENGTH = 200
MAX_OWNER_LENGTH = 200
MAX_METADATA_BYTES = 16 * 1024


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Marks an ``update`` argument that was not given (``None`` means "clear")."""


# --- validation of what callers give -------------------------------------------------


def validate_networks(allowed_ips: Iterable[str]) -> tuple[str, ...]:
    """Normalise addresses and CIDR networks (``10.0.0.0/8``, ``2001:db8::/32``).

    Raises:
        InvalidArgument: an entry is not an IPv4/IPv6 address or network.
    """
    if isinstance(allowed_ips, str):
        raise InvalidArgument("allowed_ips must be a list of strings, not one string")
    if not isinstance(allowed_ips, Iterable):
        raise InvalidArgument("allowed_ips must be a list of strings (use [] for anywhere)")
    result = []
    for entry in allowed_ips:
        try:
            network = _unmapped(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError as exc:
            raise InvalidArgument(f"invalid IP address or network {entry!r}") from exc
        result.append(str(network))
    return tuple(dict.fromkeys(result))


_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _unmapped(network: IPNetwork) -> IPNetwork:
    """An IPv4-mapped IPv6 network (``::ffff:10.0.0.0/104``) as the IPv4 network it
    names: presented addresses are unmapped before matching, so it must be too."""
    if (
        isinstance(network, ipaddress.IPv6Network)
        and network.prefixlen >= 96
        and network.subnet_of(_IPV4_MAPPED)
    ):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


_RATE_RE = re.compile(
    r"\s*[1-9][0-9]{0,11}\s*(?:/|per)\s*(?:[1-9][0-9]{0,5}\s*)?"
    r"(?:second|minute|hour|day|week|month|year)s?\s*",
    re.IGNORECASE,
)
_QUOTA_RE = re.compile(
    r"\s*[1-9][0-9]{0,11}\s*(?:(?:/|per)\s*(?:second|minute|hour|day|week|month|year)s?)?\s*",
    re.IGNORECASE,
)


def validate_rate_limits(rate_limits: Iterable[str]) -> tuple[str, ...]:
    """Check rate limits as written (``"100/minute"``, ``"5000 per day"``, ``"10/5 seconds"``).

    Raises:
        InvalidArgument: a limit is not ``<count>/<window>``.
    """
    if isinstance(rate_limits, str):
        raise InvalidArgument("rate_limits must be a list of strings, not one string")
    if not isinstance(rate_limits, Iterable):
        raise InvalidArgument("rate_limits must be a list of strings (use [] for none)")
    result = tuple(str(limit).strip() for limit in rate_limits)
    for limit in result:
        if not _RATE_RE.fullmatch(limit):
            raise InvalidArgument(f"invalid rate limit {limit!r}: use e.g. '100/minute'")
    return result


def validate_quota(quota: str | int | None) -> str | None:
    """Check a quota: a number of uses (``"1000"``), optionally refilled (``"1000/month"``).

    Raises:
        InvalidArgument: not a positive count with an optional period.
    """
    if quota is None:
        return None
    text = str(quota).strip()
    if isinstance(quota, bool) or not _QUOTA_RE.fullmatch(text):
        raise InvalidArgument(f"invalid quota {quota!r}: use e.g. '1000' or '1000/month'")
    return text


def validate_text(value: object, what: str, max_length: int) -> str:
    """Check a string argument that reaches a store (an owner, a name, a reason, a
    cursor); return it unchanged.

    Raises:
        InvalidArgument: not a string, longer than ``max_length``, or holding a
            character that is not printable (NUL, control characters, line breaks,
            lone surrogates): such text breaks drivers and forges log lines.
    """
    if not isinstance(value, str) or len(value) > max_length or not value.isprintable():
        raise InvalidArgument(f"{what} must be printable text of at most {max_length} characters")
    return value


def validate_owner(owner: str) -> str:
    """Check an owner: non-blank printable text of at most 200 characters.

    Raises:
        InvalidArgument: otherwise.
    """
    if not validate_text(owner, "owner", MAX_OWNER_LENGTH).strip():
        raise InvalidArgument("owner must not be blank")
    return owner


def validate_name(name: str | None, what: str = "name") -> str | None:
    """Check an optional label (a name or a reason): printable, at most 200 characters.

    Raises:
        InvalidArgument: otherwise.
    """
    return None if name is None else validate_text(name, what, MAX_NAME_LENGTH)


def validate_cursor(after: str | None) -> str | None:
    """Check a ``list(after=...)`` cursor (a key id, or any printable text).

    Raises:
        InvalidArgument: not printable text of at most 256 characters.
    """
    return None if after is None else validate_text(after, "after", 256)


def validate_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check metadata is JSON-serialisable and small; return a frozen copy.

    Raises:
        InvalidArgument: not a mapping, not JSON-serialisable, or over 16 KiB as JSON.
    """
    if metadata is None:
        return FrozenDict()
    if not isinstance(metadata, Mapping):
        raise InvalidArgument("metadata must be a mapping")
    try:
        text = json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False)
        size = len(text.encode())
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError: a lone surrogate
        raise InvalidArgument(f"metadata must be JSON-serialisable: {exc}") from exc
    if "\\u0000" in text:  # PostgreSQL's JSON types refuse NUL
        raise InvalidArgument("metadata must not contain NUL characters")
    if size > MAX_METADATA_BYTES:
        raise InvalidArgument(f"metadata is larger than {MAX_METADATA_BYTES} bytes as JSON")
    frozen: dict[str, Any] = freeze(json.loads(text))
    return frozen


def resolve_expiry(
    now: datetime, expires_in: timedelta | None, expires_at: datetime | None
) -> datetime | None:
    """The absolute expiry from either ``expires_in`` or ``expires_at`` (not both).

    Raises:
        InvalidArgument: both given, a naive datetime, or an expiry not in the future.
    """
    if expires_in is not None and expires_at is not None:
        raise InvalidArgument("give expires_in or expires_at, not both")
    if expires_in is not None:
        if not isinstance(expires_in, timedelta) or expires_in <= timedelta(0):
            raise InvalidArgument("expires_in must be a positive timedelta")
        return now + expires_in
    if expires_at is not None:
        if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
            raise InvalidArgument("expires_at must be a timezone-aware datetime")
        if expires_at <= now:
            raise InvalidArgument("expires_at must be in the future")
        return expires_at
    return None


def new_key(
    *,
    key_id: str,
    prefix: str,
    owner: str,
    now: datetime,
    scopes: Iterable[str] = (),
    name: str | None = None,
    expires_at: datetime | None = None,
    allowed_ips: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
    rate_limits: Iterable[str] = (),
    quota: str | int | None = None,
    replaces: str | None = None,
) -> APIKey:
    """Build and validate a new record."""
    return APIKey(
        id=key_id,
        prefix=prefix,
        owner=validate_owner(owner),
        name=validate_name(name),
        scopes=validate_grants(scopes),
        created_at=now,
        expires_at=expires_at,
        allowed_ips=validate_networks(allowed_ips),
        metadata=validate_metadata(metadata),
        rate_limits=validate_rate_limits(rate_limits),
        quota=validate_quota(quota),
        replaces=replaces,
    )


# --- the checks on the verify path --------------------------------------------------


def check_usable(key: APIKey, now: datetime) -> None:
    """Raise unless ``key`` is active at ``now``. Call only once the secret is proven.

    Raises:
        AuthenticationError: ``revoked``, ``disabled`` or ``expired``.
    """
    if key.revoked_at is not None:
        raise AuthenticationError("revoked", key_id=key.id)
    if key.disabled_at is not None:
        raise AuthenticationError("disabled", key_id=key.id)
    if key.expires_at is not None and now >= key.expires_at:
        raise AuthenticationError("expired", key_id=key.id)


@lru_cache(maxsize=4096)
def _networks(allowed_ips: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(_unmapped(ipaddress.ip_network(entry, strict=False)) for entry in allowed_ips)


@lru_cache(maxsize=4096)
def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_ip(key: APIKey, ip: str | None) -> None:
    """Raise unless ``ip`` is inside the key's allowlist (an empty list allows all).

    A key with an allowlist is refused when no address, or an unparsable one, is
    given: fail closed.

    Raises:
        IPNotAllowed: outside the allowlist, or no usable address.
    """
    if not key.allowed_ips:
        return
    address = _address(ip) if isinstance(ip, str) else None
    if address is None or not any(
        address.version == net.version and address in net for net in _networks(key.allowed_ips)
    ):
        raise IPNotAllowed(ip)


def required_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Validate the scopes a caller requires (cached for the common repeated tuples)."""
    if isinstance(scopes, str):
        scopes = (scopes,)
    return validate_required(tuple(scopes))


def check_scopes(key: APIKey, required: tuple[str, ...]) -> None:
    """Raise unless ``key`` is granted every scope in ``required`` (already validated).

    Raises:
        InsufficientScope: naming the scopes that are missing.
    """
    if required:
        missing = missing_scopes(key.scopes, required)
        if missing:
            raise InsufficientScope(missing)


# --- what lifecycle operations change ------------------------------------------------


def bump(key: APIKey, **changes: Any) -> APIKey:
    """A copy of ``key`` with ``changes`` and the next version (values already valid)."""
    return key.model_copy(update={**changes, "version": key.version + 1})


def plan_revoke(key: APIKey, now: datetime, reason: str | None) -> APIKey | None:
    """The revoked record, or ``None`` if ``key`` is revoked already (revocation is final;
    the first reason is kept)."""
    if key.revoked_at is not None:
        return None
    return bump(key, revoked_at=now, revoke_reason=validate_name(reason, "reason"))


def plan_suspend(key: APIKey, now: datetime, reason: str | None) -> APIKey | None:
    """The suspended record, or ``None`` if already suspended.

    Raises:
        InvalidKeyState: the key is revoked.
    """
    if key.revoked_at is not None:
        raise InvalidKeyState(f"key {key.id!r} is revoked; it cannot be suspended")
    if key.disabled_at is not None:
        return None
    return bump(key, disabled_at=now, disabled_reason=validate_name(reason, "reason"))


def plan_enable(key: APIKey) -> APIKey | None:
    """The re-enabled record, or ``None`` if not suspended.

    Raises:
        InvalidKeyState: the key is revoked.
    """
    if key.revoked_at is not None:
        raise InvalidKeyState(f"key {key.id!r} is revoked; it cannot be enabled")
    if key.disabled_at is None:
        return None
    return bump(key, disabled_at=None, disabled_reason=None)


def plan_rotation(
    old: APIKey,
    *,
    successor_id: str,
    now: datetime,
    grace: timedelta,
    expires_in: timedelta | None = None,
) -> tuple[APIKey, APIKey]:
    """What a rotation writes: the predecessor (ending at ``min(expiry, now + grace)``,
    pointing at its successor) and the successor (same owner, scopes, addresses,
    metadata, limits; same lifetime as the predecessor unless ``expires_in``).

    Raises:
        InvalidArgument: a negative grace.
        InvalidKeyState: the key is revoked, suspended, expired or already rotated.
    """
    if not isinstance(grace, timedelta) or grace < timedelta(0):
        raise InvalidArgument("grace must be a timedelta of zero or more")
    state = old.state(now)
    if state is not KeyState.ACTIVE:
        raise InvalidKeyState(f"key {old.id!r} is {state_label(state)}; only active keys rotate")
    if old.replaced_by is not None:
        raise InvalidKeyState(f"key {old.id!r} was already rotated to {old.replaced_by!r}")
    if expires_in is None and old.expires_at is not None:
        expires_in = old.expires_at - old.created_at
    successor = new_key(
        key_id=successor_id,
        prefix=old.prefix,
        owner=old.owner,
        now=now,
        scopes=old.scopes,
        name=old.name,
        expires_at=resolve_expiry(now, expires_in, None),
        allowed_ips=old.allowed_ips,
        metadata=old.metadata,
        rate_limits=old.rate_limits,
        quota=old.quota,
        replaces=old.id,
    )
    ends_at = now + grace
    if old.expires_at is not None and old.expires_at < ends_at:
        ends_at = old.expires_at
    return bump(old, expires_at=ends_at, replaced_by=successor_id), successor


def plan_update(key: APIKey, now: datetime, changes: Mapping[str, Any]) -> APIKey | None:
    """The updated record for the given (set) fields, or ``None`` if nothing changes.

    ``changes`` holds raw caller values for ``scopes``, ``name``, ``metadata``,
    ``allowed_ips``, ``expires_at``, ``rate_limits``, ``quota``; ``UNSET`` values
    are ignored. ``expires_at=None`` removes the expiry.

    Raises:
        InvalidArgument: a value is invalid.
        InvalidKeyState: the key is revoked, or it was rotated out and the change
            would remove or push back its expiry (a retired key's end only comes
            closer).
    """
    if key.revoked_at is not None:
        raise InvalidKeyState(f"key {key.id!r} is revoked; it cannot be updated")
    validators: dict[str, Any] = {
        "scopes": validate_grants,
        "name": validate_name,
        "metadata": validate_metadata,
        "allowed_ips": validate_networks,
        "expires_at": lambda value: value if value is None else resolve_expiry(now, None, value),
        "rate_limits": validate_rate_limits,
        "quota": validate_quota,
    }
    unknown = set(changes) - set(validators)
    if unknown:
        raise InvalidArgument(f"cannot update {', '.join(sorted(unknown))}")
    updated = {
        name: validators[name](value) for name, value in changes.items() if value is not UNSET
    }
    updated = {name: value for name, value in updated.items() if getattr(key, name) != value}
    if not updated:
        return None
    if key.replaced_by is not None and "expires_at" in updated:
        new_end = updated["expires_at"]
        if new_end is None or key.expires_at is None or new_end > key.expires_at:
            raise InvalidKeyState(
                f"key {key.id!r} was rotated out; its expiry can only be brought forward"
            )
    return bump(key, **updated)


MAX_LINEAGE = 100
"""How many predecessors a revocation walks back through to end their grace."""


def plan_end_grace(predecessor: APIKey, successor_id: str, now: datetime) -> APIKey | None:
    """What revoking ``successor_id`` does to a key it replaced: a predecessor still
    in its grace period stops now (its expiry is brought forward to ``now``).

    Returns:
        The ended record, or ``None`` when ``predecessor`` is not in its grace period
        any more (expired, revoked, or not replaced by ``successor_id``).
    """
    if (
        predecessor.replaced_by != successor_id
        or predecessor.revoked_at is not None
        or predecessor.expires_at is None  # never: a rotation always sets the end
        or predecessor.expires_at <= now
    ):
        return None
    return bump(predecessor, expires_at=now)
