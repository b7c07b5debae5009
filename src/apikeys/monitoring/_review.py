"""Reports for people: the hygiene review of live keys, a key's recent activity,
and the outcome of a compromise response. Pure: the monitors gather the data."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apikeys._models import APIKey, IssuedKey, KeyState
from apikeys.errors import InvalidArgument
from apikeys.monitoring._audit import AuditEntry
from apikeys.monitoring._usage import AddressActivity, UsageReport

ISSUES = ("unused", "no_expiry", "too_old", "broad_scope")
"""The findings of :func:`review_key`, in the order they are listed."""


@dataclass(frozen=True, slots=True)
class ReviewFinding:
    """A live key that needs a look, and why.

    Attributes:
        key: The key's record.
        issues: Codes among ``unused`` (not used for the review's ``unused_for``,
            or never used and older than that), ``no_expiry``, ``too_old`` (older
            than ``max_age``) and ``broad_scope`` (holds a broad scope such as ``*``).
        notes: A short human-readable explanation per issue.
    """

    key: APIKey
    issues: tuple[str, ...]
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (no secret: the record holds none)."""
        return {
            "key_id": self.key.id,
            "owner": self.key.owner,
            "name": self.key.name,
            "issues": list(self.issues),
            "notes": dict(self.notes),
        }


def check_window(value: timedelta | None, name: str) -> timedelta | None:
    """Raise unless ``value`` is ``None`` or a positive timedelta.

    Raises:
        InvalidArgument: anything else.
    """
    if value is not None and (not isinstance(value, timedelta) or value <= timedelta(0)):
        raise InvalidArgument(f"{name} must be a positive timedelta or None")
    return value


def review_key(
    key: APIKey,
    now: datetime,
    *,
    unused_for: timedelta | None,
    max_age: timedelta | None,
    broad_scopes: Collection[str],
    flag_no_expiry: bool = True,
) -> ReviewFinding | None:
    """What is wrong with one key at ``now``; ``None`` if nothing (or it is not live).

    ``unused`` relies on ``last_used_at``, which the managers write at most once
    per ``touch_interval`` (and only on a store with ``touch``).
    """
    if key.state(now) not in (KeyState.ACTIVE, KeyState.DISABLED):
        return None
    notes: dict[str, str] = {}
    if unused_for is not None:
        if key.last_used_at is None:
            if now - key.created_at >= unused_for:
                notes["unused"] = f"never used since it was created {_ago(now, key.created_at)}"
        elif now - key.last_used_at >= unused_for:
            notes["unused"] = f"last used {_ago(now, key.last_used_at)}"
    if flag_no_expiry and key.expires_at is None:
        notes["no_expiry"] = "never expires"
    if max_age is not None and now - key.created_at > max_age:
        notes["too_old"] = f"created {_ago(now, key.created_at)} (limit {max_age.days} days)"
    broad = sorted(set(key.scopes) & set(broad_scopes))
    if broad:
        notes["broad_scope"] = "holds " + ", ".join(broad)
    if not notes:
        return None
    issues = tuple(issue for issue in ISSUES if issue in notes)
    return ReviewFinding(key=key, issues=issues, notes={i: notes[i] for i in issues})


def _ago(now: datetime, then: datetime) -> str:
    days = (now - then).days
    return f"{days} days ago" if days != 1 else "1 day ago"


@dataclass(frozen=True, slots=True)
class ActivityReport:
    """What one key did over ``[since, until)``: for a compromise review.

    Attributes:
        key_id: The key.
        since: Start of the period.
        until: End of the period.
        requests: Requests reported by the adapters.
        first_seen: The first request from a known address in the period.
        last_seen: The last one.
        addresses: Per client address: requests, first and last seen; busiest first.
        routes: Requests per ``(method, route, status)``; busiest first.
        events: The key's audit trail over the period (failures, lifecycle,
            anomalies), oldest first.
        last_used_at: The key's ``last_used_at`` (the managers' touch).
        last_used_ip: The key's ``last_used_ip``.
    """

    key_id: str
    since: datetime
    until: datetime
    requests: int
    first_seen: datetime | None
    last_seen: datetime | None
    addresses: tuple[AddressActivity, ...]
    routes: dict[tuple[str | int, ...], int]
    events: tuple[AuditEntry, ...]
    last_used_at: datetime | None = None
    last_used_ip: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "key_id": self.key_id,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "requests": self.requests,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "addresses": [
                {
                    "ip": a.ip,
                    "count": a.count,
                    "first_seen": a.first_seen.isoformat(),
                    "last_seen": a.last_seen.isoformat(),
                }
                for a in self.addresses
            ],
            "routes": [
                {"method": values[0], "route": values[1], "status": values[2], "count": n}
                for values, n in self.routes.items()
            ],
            "events": [entry.to_dict() for entry in self.events],
            "last_used_at": _iso(self.last_used_at),
            "last_used_ip": self.last_used_ip,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def build_activity(
    key: APIKey | None,
    key_id: str,
    usage: UsageReport,
    addresses: Iterable[AddressActivity],
    events: Iterable[AuditEntry],
    *,
    since: datetime,
    until: datetime,
) -> ActivityReport:
    """Assemble an :class:`ActivityReport` (``usage`` grouped by method, route, status)."""
    listed = tuple(addresses)
    first = min((a.first_seen for a in listed), default=None)
    last = max((a.last_seen for a in listed), default=None)
    if first is None:
        busy = [at for at, n in usage.series if n]
        first = busy[0] if busy else None
        last = busy[-1] if busy else None
    return ActivityReport(
        key_id=key_id,
        since=since,
        until=until,
        requests=usage.total,
        first_seen=first,
        last_seen=last,
        addresses=listed,
        routes=dict(usage.counts),
        events=tuple(events),
        last_used_at=None if key is None else key.last_used_at,
        last_used_ip=None if key is None else key.last_used_ip,
    )


@dataclass(frozen=True, slots=True)
class CompromiseReport:
    """The outcome of ``respond_to_compromise``.

    Attributes:
        key: The compromised key's record afterwards.
        revoked: Whether the key is now revoked. Even when ``False`` (the revoke
            write failed after a rotation), a replaced key has already stopped
            working: the rotation ended it in the same write that created the
            successor. See ``errors``.
        successor: The replacement and its plaintext (shown once), or ``None``.
        method: How the successor was made: ``"rotate"`` (atomic with ending the
            old key; ``successor.key.replaces`` links them), ``"create"`` (the old
            key was not active: revoked first, then a new key with the same
            settings), or ``None``.
        activity: The key's recent activity, or ``None`` if it could not be read.
        errors: What went wrong after the key was dealt with.
    """

    key: APIKey
    revoked: bool
    successor: IssuedKey | None
    method: str | None
    activity: ActivityReport | None
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; the successor appears by id only (never its plaintext)."""
        return {
            "key_id": self.key.id,
            "state": "revoked" if self.revoked else "not revoked",
            "successor_id": None if self.successor is None else self.successor.key.id,
            "method": self.method,
            "activity": None if self.activity is None else self.activity.to_dict(),
            "errors": list(self.errors),
        }


def successor_settings(old: APIKey, expires_in: timedelta | None) -> dict[str, Any]:
    """``create`` arguments giving a new key the settings of ``old`` (its lifetime too,
    unless ``expires_in``)."""
    if expires_in is None and old.expires_at is not None:
        expires_in = old.expires_at - old.created_at
    return {
        "owner": old.owner,
        "scopes": old.scopes,
        "name": old.name,
        "expires_in": expires_in,
        "allowed_ips": old.allowed_ips,
        "metadata": old.metadata,
        "rate_limits": old.rate_limits,
        "quota": old.quota,
        "prefix": old.prefix,
    }


def rotatable(key: APIKey, now: datetime) -> bool:
    """Whether ``rotate`` applies: active and not rotated already."""
    return key.state(now) is KeyState.ACTIVE and key.replaced_by is None
