"""Typed, immutable events for every lifecycle and verification outcome.

A manager built with ``events=`` hands each event to every sink's ``emit``. A sink
is any object with ``emit(event) -> None`` (:class:`EventSink`). ``emit`` runs on
the request path: a sink must return quickly (buffer and deliver elsewhere). An
exception raised by a sink is logged and swallowed, never turned into a failed
request.

Events never carry a secret or a hash; ``key_id`` is public (it is part of the key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

__all__ = [
    "AnomalyDetected",
    "Event",
    "EventSink",
    "KeyCreated",
    "KeyEnabled",
    "KeyPurged",
    "KeyRevoked",
    "KeyRotated",
    "KeySuspended",
    "KeyUpdated",
    "KeyVerified",
    "RateLimitExceeded",
    "RequestCompleted",
    "VerificationFailed",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event.

    Attributes:
        at: When it happened (the manager's clock, UTC).
        key_id: The key concerned, when known (absent for a malformed key).
        owner: The key's owner, when known. Not set on failures before the
            secret is proven, so events cannot be used to enumerate owners.
    """

    type: ClassVar[str] = "event"

    at: datetime
    key_id: str | None
    owner: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings), with ``type``."""
        data = asdict(self)
        for name, value in data.items():
            if isinstance(value, datetime):
                data[name] = value.isoformat()
            elif isinstance(value, tuple):
                data[name] = list(value)
        return {"type": self.type, **data}


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyCreated(Event):
    """A key was issued (``replaces`` is set when a rotation issued it)."""

    type: ClassVar[str] = "key.created"
    scopes: tuple[str, ...] = ()
    expires_at: datetime | None = None
    replaces: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyVerified(Event):
    """A key passed every check."""

    type: ClassVar[str] = "key.verified"
    ip: str | None = None
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationFailed(Event):
    """A presented key was refused; ``code`` is the error's code."""

    type: ClassVar[str] = "key.verification_failed"
    code: str
    ip: str | None = None
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitExceeded(Event):
    """A verified key was refused by a rate limit or quota."""

    type: ClassVar[str] = "key.rate_limited"
    code: str = "rate_limited"
    policy: str | None = None
    retry_after: float = 0.0
    ip: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRevoked(Event):
    """A key was revoked (final)."""

    type: ClassVar[str] = "key.revoked"
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRotated(Event):
    """A key was replaced by ``successor_id``; it keeps working until ``ends_at``."""

    type: ClassVar[str] = "key.rotated"
    successor_id: str
    ends_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyUpdated(Event):
    """Settings of a key changed; ``fields`` names them."""

    type: ClassVar[str] = "key.updated"
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySuspended(Event):
    """A key was suspended (reversible, see ``KeyManager.enable``)."""

    type: ClassVar[str] = "key.suspended"
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyEnabled(Event):
    """A suspended key was enabled again."""

    type: ClassVar[str] = "key.enabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPurged(Event):
    """A key's record was deleted for good."""

    type: ClassVar[str] = "key.purged"


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestCompleted(Event):
    """An adapter finished a request made with a verified key.

    ``route`` is the route *template* (``/orders/{id}``), not the raw path.
    """

    type: ClassVar[str] = "request.completed"
    method: str
    route: str
    status: int
    ip: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalyDetected(Event):
    """A detector saw a suspicious pattern; ``evidence`` says what."""

    type: ClassVar[str] = "key.anomaly"
    detector: str
    action: str = "record"
    evidence: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class EventSink(Protocol):
    """Anything with a quick, non-blocking ``emit``."""

    def emit(self, event: Event) -> None: ...
