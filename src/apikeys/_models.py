"""The records: :class:`APIKey` (what callers see), :class:`IssuedKey` (with the
plaintext, shown once), :class:`KeyRecord` (what a store keeps: key + hash), and
what a successful verification returns (:class:`Verification`, with its
:class:`RateLimitStatus`)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NoReturn

from pydantic import BaseModel, ConfigDict, Field, field_validator


class KeyState(str, enum.Enum):
    """Where a key is in its life, at a given moment.

    A rotated-out key is ``active`` until its grace period ends, then ``expired``.
    ``DISABLED`` is a suspended key (``suspend``/``enable``): its value stays
    ``"disabled"`` for stored filters and clients; the tools print "suspended".
    """

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    DISABLED = "disabled"


class FrozenDict(dict[str, Any]):
    """A dict that refuses changes, so a record's metadata cannot be edited in place.

    It is still a ``dict`` (JSON, pydantic and ORMs take it as one), and nested
    dicts and lists are frozen too. Copy it (``dict(d)``) to change it.
    """

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("APIKey.metadata is read-only; pass new metadata to update()")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


class FrozenList(list[Any]):
    """A list that refuses changes (the lists inside frozen metadata)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("APIKey.metadata is read-only; pass new metadata to update()")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = remove = pop = clear = sort = reverse = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))


def freeze(value: Any) -> Any:
    """``value`` with every dict and list (or tuple) frozen, recursively."""
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return FrozenList(freeze(v) for v in value)
    return value


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(timezone.utc)


class APIKey(BaseModel):
    """An API key's record, as handed to route handlers and management code.

    Immutable. It holds no secret and no hash: the plaintext exists only in the
    :class:`IssuedKey` returned once by ``create``/``rotate``.

    Attributes:
        id: The public key id (16 base62 characters), also part of the key itself.
        prefix: The prefix the key was issued with (``acme``, ``acme_live``...).
        owner: Who the key belongs to (a user, team or client id of the app's).
        name: A human label (``"CI"``), optional.
        scopes: Granted scopes (``orders:read``, ``orders:*``, ``*``), sorted.
        created_at: When the key was issued (UTC).
        expires_at: When it stops working, or ``None`` for never.
        revoked_at: When it was revoked, or ``None``.
        revoke_reason: Why it was revoked (``"leaked"``), or ``None``.
        disabled_at: When it was suspended (a reversible state), or ``None``.
        disabled_reason: Why it was suspended, or ``None``.
        last_used_at: The last successful verification, recorded at most once per
            the manager's ``touch_interval``; ``None`` if never used.
        last_used_ip: The client address of that verification, when known.
        allowed_ips: Addresses and CIDR networks the key may be used from; empty
            means anywhere.
        metadata: Free-form JSON-serialisable data of the application's (read-only).
        replaced_by: Id of the successor after a rotation.
        replaces: Id of the predecessor, for a key issued by a rotation.
        rate_limits: Per-key rate limits (``"100/minute"``), empty for the default.
        quota: A quota of uses (``"1000"`` or ``"1000/month"``), or ``None``.
        version: Incremented by every write; stores use it to refuse stale writes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    prefix: str
    owner: str
    name: str | None = None
    scopes: tuple[str, ...] = ()
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    last_used_at: datetime | None = None
    last_used_ip: str | None = None
    allowed_ips: tuple[str, ...] = ()
    metadata: dict[str, Any] = Field(default_factory=dict)
    replaced_by: str | None = None
    replaces: str | None = None
    rate_limits: tuple[str, ...] = ()
    quota: str | None = None
    version: int = 1

    @field_validator("metadata", mode="after")
    @classmethod
    def _frozen_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return value if isinstance(value, FrozenDict) else freeze(value)

    @field_validator(
        "created_at", "expires_at", "revoked_at", "disabled_at", "last_used_at", mode="after"
    )
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    def state(self, now: datetime) -> KeyState:
        """The key's state at ``now`` (revoked beats disabled beats expired)."""
        if self.revoked_at is not None:
            return KeyState.REVOKED
        if self.disabled_at is not None:
            return KeyState.DISABLED
        if self.expires_at is not None and now >= self.expires_at:
            return KeyState.EXPIRED
        return KeyState.ACTIVE

    def has_scope(self, scope: str) -> bool:
        """Whether this key's grants cover ``scope`` (wildcards included)."""
        from apikeys._scopes import grants_cover

        return grants_cover(self.scopes, scope)


class IssuedKey:
    """A newly issued key: the record plus the plaintext, which is shown only here.

    ``repr``/``str`` never show the plaintext. Hand :attr:`plaintext` to the client
    once; apikeys keeps only a hash of its secret.
    """

    __slots__ = ("_plaintext", "key")

    def __init__(self, key: APIKey, plaintext: str) -> None:
        self.key = key
        """The stored record."""
        self._plaintext = plaintext

    @property
    def plaintext(self) -> str:
        """The full key (``acme_…``). Shown once: it cannot be recovered later."""
        return self._plaintext

    def __repr__(self) -> str:
        return f"IssuedKey(key_id={self.key.id!r}, owner={self.key.owner!r}, plaintext=<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What a store keeps for one key: the record and the hash of its secret."""

    key: APIKey
    secret_hash: str = field(repr=False)

    @property
    def id(self) -> str:
        return self.key.id

    @property
    def version(self) -> int:
        return self.key.version


# Column-oriented form shared by every SQL store, so they all agree on the schema.
_JSON_FIELDS = ("scopes", "allowed_ips", "metadata", "rate_limits")
COLUMNS: tuple[str, ...] = (
    "id",
    "prefix",
    "owner",
    "name",
    "scopes",
    "secret_hash",
    "created_at",
    "expires_at",
    "revoked_at",
    "revoke_reason",
    "disabled_at",
    "disabled_reason",
    "last_used_at",
    "last_used_ip",
    "allowed_ips",
    "metadata",
    "replaced_by",
    "replaces",
    "rate_limits",
    "quota",
    "version",
)


def record_to_row(record: KeyRecord) -> dict[str, Any]:
    """Flatten a record into one row: JSON text for lists and metadata, aware
    UTC datetimes left as they are (each store converts them for its database)."""
    key = record.key
    row: dict[str, Any] = {name: getattr(key, name) for name in COLUMNS if name != "secret_hash"}
    for name in _JSON_FIELDS:
        value = row[name]
        row[name] = json.dumps(list(value) if isinstance(value, tuple) else value, sort_keys=True)
    row["secret_hash"] = record.secret_hash
    return row


def row_to_record(row: Any) -> KeyRecord:
    """Rebuild a record from a row mapping produced by :func:`record_to_row`.

    Naive datetimes (databases that drop the zone) are taken as UTC.
    """
    data = {name: row[name] for name in COLUMNS}
    for name in _JSON_FIELDS:
        value = data[name]
        data[name] = json.loads(value) if isinstance(value, str | bytes) else value
    for name in ("created_at", "expires_at", "revoked_at", "disabled_at", "last_used_at"):
        value = data[name]
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        data[name] = value
    secret_hash = data.pop("secret_hash")
    return KeyRecord(APIKey.model_validate(data), secret_hash)


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """Where a key stands against its tightest limit, after a request was charged.

    Adapters turn it into the IETF ``RateLimit``/``RateLimit-Policy`` headers.

    Attributes:
        limit: Requests allowed per window.
        remaining: Requests left in the current window.
        reset_after: Seconds until the window resets.
        policy: The limit as written (``"100/minute"``).
        window: The window length in seconds.
    """

    limit: int
    remaining: int
    reset_after: float
    policy: str
    window: float


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of a successful ``authenticate``: the key and its rate-limit status."""

    key: APIKey
    rate_limit: RateLimitStatus | None = None
