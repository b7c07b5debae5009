"""What every SQL store shares without importing a driver: table names, the
schema version, datetime encoding and the state filter.

SQLiteStore and SQLAlchemyStore write the same tables in the same shape, so a
SQLite file made by one opens with the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from apikeys._models import KeyRecord, KeyState
from apikeys.errors import ConfigurationError, ConflictError

KEYS_TABLE = "apikeys_keys"
"""The table of key records (one row per key, primary key ``id``)."""
SCHEMA_TABLE = "apikeys_schema"
"""A one-row table recording the schema version of the key table."""
OWNER_INDEX = "ix_apikeys_keys_owner"
SCHEMA_VERSION = 1
"""The schema version this release writes. Raised by any change to the tables."""

DATETIME_COLUMNS = ("created_at", "expires_at", "revoked_at", "disabled_at", "last_used_at")

# SQLAlchemy's own storage format for DateTime on SQLite: the stdlib store uses it
# too, so both read each other's files; fixed width keeps text order = time order.
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def to_naive_utc(value: datetime) -> datetime:
    """An aware datetime as naive UTC (for columns without a zone).

    Raises:
        ValueError: ``value`` is naive (the stores never guess a zone on write).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def to_sqlite_text(value: datetime | None) -> str | None:
    """Encode a datetime the way SQLite columns hold it (naive UTC text)."""
    return None if value is None else to_naive_utc(value).strftime(_SQLITE_FORMAT)


def check_write(insert: Sequence[KeyRecord], update: Sequence[KeyRecord]) -> None:
    """Refuse one write naming an id twice (every store answers the same way).

    Raises:
        ConflictError: a duplicate id.
    """
    ids = [r.id for r in insert] + [r.id for r in update]
    if len(set(ids)) != len(ids):
        raise ConflictError("one write names a key id twice")


def state_condition(state: KeyState) -> tuple[str, bool]:
    """A SQL condition selecting rows in ``state`` at a moment bound as ``:now``.

    Mirrors :meth:`apikeys.APIKey.state`: revoked beats disabled beats expired.

    Returns:
        The condition text (named parameter ``:now``) and whether it uses ``:now``.
    """
    live = "revoked_at IS NULL AND disabled_at IS NULL"
    if state is KeyState.REVOKED:
        return "revoked_at IS NOT NULL", False
    if state is KeyState.DISABLED:
        return "revoked_at IS NULL AND disabled_at IS NOT NULL", False
    if state is KeyState.EXPIRED:
        return f"{live} AND expires_at IS NOT NULL AND expires_at <= :now", True
    return f"{live} AND (expires_at IS NULL OR expires_at > :now)", True


UPGRADES: dict[int, tuple[str, ...]] = {}
"""Portable DDL taking the tables from version N to N + 1, keyed by N. Applied by
the stores that own their schema (``SQLiteStore``, ``auto_create``) on first use."""


def upgrade_steps(found: int) -> list[str]:
    """The statements taking tables at version ``found`` to :data:`SCHEMA_VERSION`.

    Raises:
        ConfigurationError: a step is missing (a release bug, caught by its tests).
    """
    steps: list[str] = []
    for version in range(found, SCHEMA_VERSION):
        if version not in UPGRADES:
            raise ConfigurationError(f"no upgrade from apikeys schema version {version}")
        steps.extend(UPGRADES[version])
    return steps


def current_version() -> int:
    """The schema version this release writes (read at call time)."""
    return SCHEMA_VERSION


def check_schema_version(found: int | None, where: str) -> None:
    """Refuse a database whose key table is newer than this release understands.

    Raises:
        ConfigurationError: ``found`` is above :data:`SCHEMA_VERSION`.
    """
    if found is not None and found > SCHEMA_VERSION:
        raise ConfigurationError(
            f"the apikeys tables in {where} have schema version {found}, newer than "
            f"this apikeys release understands ({SCHEMA_VERSION}); upgrade apikeys"
        )


def duplicate_message(exc: BaseException, backend: str) -> str:
    """The ConflictError message for an insert whose id exists."""
    return "a key id written as new already exists: " + driver_message(exc, backend)


def driver_message(exc: BaseException, backend: str) -> str:
    """A StorageError message naming the backend and the driver error's class and
    first line. Never a statement's parameters, which would include hashes."""
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    detail = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return f"{backend} store failed ({detail})"


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and reprs."""
    scheme, sep, rest = url.partition("://")
    authority = rest.split("/", 1)[0]
    if not sep or "@" not in authority:
        return url
    credentials, host = rest.split("@", 1)
    if ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
