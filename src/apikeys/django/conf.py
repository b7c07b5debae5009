"""The ``APIKEYS`` setting: one dict in ``settings.py`` configures the Django app.

::

    APIKEYS = {
        "PREFIX": "acme",                       # or ["acme_live", "acme"]: first issues
        "DEFAULT_EXPIRY": timedelta(days=90),   # admin and createapikey; None: never
        "TRUSTED_PROXIES": ["10.0.0.0/8"],      # believe X-Forwarded-For from these
    }

The keys are the options of :class:`apikeys.Settings`, upper-cased (the
environment variables without ``APIKEYS_``), read and validated by it: the same
names, values and error messages as Flask's config and the ``apikeys`` command
(see ``docs/configuration.md``). ``PREFIX`` is required. Without
``DATABASE_URL`` the keys live in the Django database (:class:`DjangoStore`) and,
with ``MONITORING`` (default on), usage and the audit trail too when it is a
SQLite file, PostgreSQL or MySQL database.

Django-only keys:

- ``DATABASE``: the database alias holding the keys (``"default"``).
- ``HASHER``: besides the shared names (``argon2``, ``hmac``, ``argon2-test``), a
  :class:`~apikeys.hashing.Hasher` instance or the dotted path of a class or
  factory called without arguments.
- ``EVENTS``: event sinks (instances or dotted paths), see :mod:`apikeys.events`.
- ``RATE_LIMITER`` / ``ASYNC_RATE_LIMITER``: limiters for the sync and async
  managers (instances or dotted paths) instead of the one built from
  ``RATE_LIMITS``/``REDIS_URL``, see :mod:`apikeys.ratelimit`.
- ``MANAGER_OPTIONS``: other keyword arguments of :class:`~apikeys.KeyManager`
  (``cache_size``, ``touch_interval``, ``failure_limit``, ``clock``...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.utils.dateparse import parse_duration as parse_iso_duration
from django.utils.module_loading import import_string

from apikeys._http import HTTPSettings
from apikeys._settings import Settings
from apikeys._values import is_compact_duration
from apikeys._values import parse_duration as parse_compact
from apikeys.errors import ConfigurationError, InvalidArgument
from apikeys.hashing import Hasher

__all__ = ["APIKeysSettings", "load_settings", "parse_duration"]

_DJANGO_KEYS = frozenset(
    {"DATABASE", "EVENTS", "RATE_LIMITER", "ASYNC_RATE_LIMITER", "MANAGER_OPTIONS"}
)
_HASHER_NAMES = frozenset({"argon2", "argon2-test", "hmac"})


@dataclass(frozen=True)
class APIKeysSettings:
    """The validated ``APIKEYS`` setting.

    Attributes:
        settings: The shared options (:class:`apikeys.Settings`).
        hasher: A hasher instance given as ``HASHER`` (else ``None``: the named one).
        database: The database alias of the key table.
        events: Event sinks handed to both managers.
        rate_limiter: The sync manager's limiter (``None``: built from the settings).
        async_rate_limiter: The async manager's limiter.
        manager_options: Other keyword arguments of the managers.
        database_url_set: Whether ``DATABASE_URL`` was given (keys outside Django).
    """

    settings: Settings
    hasher: Hasher | None = None
    database: str = "default"
    events: tuple[Any, ...] = ()
    rate_limiter: Any = None
    async_rate_limiter: Any = None
    manager_options: Mapping[str, Any] = field(default_factory=dict)
    database_url_set: bool = False

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Accepted prefixes; the first is the one new keys get."""
        return self.settings.prefix

    @property
    def http(self) -> HTTPSettings:
        """Where requests carry the key and how the client address is found."""
        return self.settings.http

    @property
    def default_expiry(self) -> timedelta | None:
        """Lifetime of keys issued from the admin and commands."""
        return self.settings.default_expiry

    @property
    def rotation_grace(self) -> timedelta:
        """Grace period of a rotation from the admin and commands."""
        return self.settings.rotation_grace


def parse_duration(value: object, *, name: str = "duration") -> timedelta:
    """A duration from a ``timedelta``, a number of seconds, a compact string
    (``"90d"``, ``"12h"``, ``"1d12h"``, ``"2w"``, ``"30m"``, ``"45s"``) or an
    ISO 8601 / Django duration (``"P90D"``, ``"1 12:00:00"``).

    Args:
        value: What to read.
        name: What the value is, for the error message.

    Returns:
        The duration (zero or more).

    Raises:
        ConfigurationError: not a duration, or a negative one.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if is_compact_duration(text):
            try:
                result = parse_compact(text, allow_zero=True)
            except InvalidArgument as exc:
                raise ConfigurationError(f"{name}: {exc.message}") from None
        else:
            parsed = parse_iso_duration(text)
            if parsed is None:
                raise ConfigurationError(
                    f"{name}: {value!r} is not a duration (use e.g. '90d', '12h', 'P90D')"
                )
            result = parsed
    else:
        raise ConfigurationError(f"{name}: {value!r} is not a duration")
    if result < timedelta(0):
        raise ConfigurationError(f"{name} must not be negative")
    return result


def _instance(value: Any, name: str) -> Any:
    """An object given as itself, or as the dotted path of a class/factory to call."""
    if isinstance(value, str):
        try:
            factory = import_string(value)
        except ImportError as exc:
            raise ConfigurationError(f"APIKEYS[{name!r}]: cannot import {value!r}") from exc
        return factory()
    return value


def load_settings() -> APIKeysSettings:
    """Read and validate ``settings.APIKEYS``.

    Returns:
        The validated settings.

    Raises:
        ConfigurationError: the setting is missing, has an unknown key, or an
            invalid value (naming the option as every front end does).
    """
    raw = getattr(django_settings, "APIKEYS", None)
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            "apikeys.django needs settings.APIKEYS = {'PREFIX': 'yourapp', ...}"
        )
    shared = {k: v for k, v in raw.items() if k not in _DJANGO_KEYS}
    hasher = shared.get("HASHER")
    if hasher is not None and not (isinstance(hasher, str) and hasher.lower() in _HASHER_NAMES):
        del shared["HASHER"]
        hasher = _instance(hasher, "HASHER")
        if not isinstance(hasher, Hasher):
            raise ConfigurationError("APIKEYS['HASHER'] must be an apikeys.hashing.Hasher")
    else:
        hasher = None
    settings = Settings.from_mapping(shared)
    if not settings.prefix:
        raise ConfigurationError("APIKEYS['PREFIX'] must be a prefix or a list of prefixes")
    database = raw.get("DATABASE", "default")
    if not isinstance(database, str) or database not in django_settings.DATABASES:
        raise ConfigurationError(f"APIKEYS['DATABASE']: {database!r} is not in DATABASES")
    events = raw.get("EVENTS", ())
    if not isinstance(events, Sequence) or isinstance(events, str):
        events = (events,)
    options = raw.get("MANAGER_OPTIONS", {})
    if not isinstance(options, Mapping):
        raise ConfigurationError("APIKEYS['MANAGER_OPTIONS'] must be a dict")
    clashing = sorted(set(options) & {"store", "prefix", "hasher", "events", "rate_limiter"})
    if clashing:
        raise ConfigurationError(
            f"set {', '.join(clashing)} with their own APIKEYS keys, not MANAGER_OPTIONS"
        )
    return APIKeysSettings(
        settings=settings,
        hasher=hasher,
        database=database,
        events=tuple(_instance(sink, "EVENTS") for sink in events),
        rate_limiter=_instance(raw.get("RATE_LIMITER"), "RATE_LIMITER"),
        async_rate_limiter=_instance(raw.get("ASYNC_RATE_LIMITER"), "ASYNC_RATE_LIMITER"),
        manager_options=dict(options),
        database_url_set=raw.get("DATABASE_URL") is not None,
    )
