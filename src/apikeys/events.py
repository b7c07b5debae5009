"""Typed, immutable events for every lifecycle and verification outcome.

A manager built with ``events=`` hands each event to every sink's ``emit``. A sink
is any object with ``emit(event) -> None`` (:class:`EventSink`). ``emit`` runs on
the request path: a sink must return quickly (buffer and deliver elsewhere). An
exception raised by a sink is logged and swallowed, never turned into a failed
request.

Events never carry a secret or a hash; ``key_id`` is public (it is part of the key).
"""

from __future__ import annotations

import dataclasses
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
    "KeyExposed",
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
class KeyExposed(Event):
    """A proven key was seen where it must not be: ``reason`` says how
    (``plaintext_transport``: sent over plain HTTP). Emitted only after the key's
    secret was verified, so nobody can get another's key reported; a detector
    (:class:`~apikeys.monitoring.PlaintextTransport`) may suspend it."""

    type: ClassVar[str] = "key.exposed"
    reason: str
    ip: str | None = None


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
    """Anything with a quick, non-blocking ``emit``.

    A sink may also have an ``event_types`` attribute: the event types it wants
    (``frozenset({"key.revoked", "key.anomaly"})``), or ``None`` for all. The
    managers read it when the sink is added and build no event that no sink
    wants, so a sink that ignores ``key.verified`` costs the hot path nothing.
    """

    def emit(self, event: Event) -> None: ...


def _fast_init(cls: type[Event]) -> None:
    """Give a frozen, slotted event class an ``__init__`` that stores through the slot
    descriptors: the generated frozen ``__init__`` goes through ``object.__setattr__``
    per field, about 2.5 times slower, and events are built on the request path.
    Same signature; instances stay frozen."""
    spec = dataclasses.fields(cls)
    namespace: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    params, body = [], []
    for f in spec:
        descriptor = next(k.__dict__[f.name] for k in cls.__mro__ if f.name in k.__dict__)
        namespace[f"_set_{f.name}"] = descriptor.__set__
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            body.append(f"if {f.name} is _MISSING: {f.name} = _factory_{f.name}()")
        else:
            params.append(f.name)
        body.append(f"_set_{f.name}(self, {f.name})")
    source = f"def __init__(self, *, {', '.join(params)}) -> None:\n    " + "\n    ".join(body)
    exec(source, namespace)  # noqa: S102 (fixed code built from the class's own field names)
    init = namespace["__init__"]
    init.__annotations__ = dict(cls.__init__.__annotations__)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]


# By name: __subclasses__() would also list the pre-slots twins dataclass discarded.
_EVENT_CLASSES: tuple[type[Event], ...] = tuple(
    value
    for name, value in list(globals().items())
    if name in __all__ and isinstance(value, type) and issubclass(value, Event)
)
for _cls in _EVENT_CLASSES:
    _fast_init(_cls)
