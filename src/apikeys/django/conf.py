"""The ``APIKEYS`` setting: one dict in ``settings.py`` configures the Django app.

::

    APIKEYS = {
        "PREFIX": "acme",                       # or ["acme_live", "acme"]: first issues
        "DEFAULT_EXPIRY": timedelta(days=90),   # admin and createapikey; None: never
        "TRUSTED_PROXIES": ["10.0.0.0/8"],      # believe X-Forwarded-For from these
    }

Every key (all optional except ``PREFIX``):

- ``PREFIX``: the prefix of new keys, or a list of accepted prefixes (the first issues).
- ``AUTHORIZATION_HEADER`` (``"Authorization"``), ``API_KEY_HEADER`` (``"X-API-Key"``),
  ``QUERY_PARAM`` (``None``, and best left so): where requests carry the key;
  ``None`` disables one.
- ``TRUSTED_PROXIES``: addresses/networks of reverse proxies whose
  ``X-Forwarded-For`` is believed. Empty (default): ``REMOTE_ADDR`` is the client.
- ``REALM``: the ``realm`` of ``WWW-Authenticate`` challenges (``"api"``).
- ``HASHER``: a :class:`~apikeys.hashing.Hasher` instance, or the dotted path of a
  class or factory called without arguments. Default: ``Argon2Hasher()``.
- ``DEFAULT_EXPIRY``: lifetime of keys issued from the admin and ``createapikey``
  (a ``timedelta``, seconds, or a duration such as ``"90d"``); ``None``: no expiry.
- ``ROTATION_GRACE``: how long a key rotated from the admin keeps working
  (default one day; ``rotateapikey --grace`` overrides it on the command line).
- ``DATABASE``: the database alias holding the keys (``"default"``).
- ``EVENTS``: event sinks (instances or dotted paths), see :mod:`apikeys.events`.
- ``RATE_LIMITER`` / ``ASYNC_RATE_LIMITER``: limiters for the sync and async
  managers (instances or dotted paths), see :mod:`apikeys.ratelimit`.
- ``MANAGER_OPTIONS``: other keyword arguments of :class:`~apikeys.KeyManager`
  (``cache_size``, ``touch_interval``, ``failure_limit``, ``clock``...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.utils.dateparse import parse_duration as parse_iso_duration
from django.utils.module_loading import import_string

from apikeys._http import HTTPSettings
from apikeys.errors import ConfigurationError
from apikeys.hashing import Hasher

__all__ = ["APIKeysSettings", "load_settings", "parse_duration"]

_KEYS = frozenset(
    {
        "PREFIX",
        "AUTHORIZATION_HEADER",
        "API_KEY_HEADER",
        "QUERY_PARAM",
        "TRUSTED_PROXIES",
        "REALM",
        "REQUIRE_HTTPS",
        "HTTPS_EXEMPT_LOOPBACK",
        "HASHER",
        "DEFAULT_EXPIRY",
        "ROTATION_GRACE",
        "DATABASE",
        "EVENTS",
        "RATE_LIMITER",
        "ASYNC_RATE_LIMITER",
        "MANAGER_OPTIONS",
    }
)
_COMPACT = re.compile(r"(?:\d+[wdhms])+")


@dataclass(frozen=True)
class APIKeysSettings:
    """The validated ``APIKEYS`` setting.

    Attributes:
        prefixes: Accepted prefixes; the first is the one new keys get.
        http: Where requests carry the key and how the client address is found.
        hasher: The hasher, or ``None`` for the manager's default.
        default_expiry: Lifetime of keys issued from the admin and commands.
        rotation_grace: Grace period of a rotation from the admin.
        database: The database alias of the key table.
        events: Event sinks handed to both managers.
        rate_limiter: The sync manager's limiter.
        async_rate_limiter: The async manager's limiter.
        manager_options: Other keyword arguments of the managers.
    """

    prefixes: tuple[str, ...]
    http: HTTPSettings
    hasher: Hasher | None = None
    default_expiry: timedelta | None = None
    rotation_grace: timedelta = timedelta(days=1)
    database: str = "default"
    events: tuple[Any, ...] = ()
    rate_limiter: Any = None
    async_rate_limiter: Any = None
    manager_options: Mapping[str, Any] = field(default_factory=dict)


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
        if _COMPACT.fullmatch(text.lower()):
            from apikeys._cli._values import parse_duration as parse_compact

            result = parse_compact(text, allow_zero=True)
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


def _optional_str(raw: Mapping[str, Any], name: str, default: str | None) -> str | None:
    value = raw.get(name, default)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigurationError(f"APIKEYS[{name!r}] must be a non-empty string or None")
    return value


def load_settings() -> APIKeysSettings:
    """Read and validate ``settings.APIKEYS``.

    Returns:
        The validated settings.

    Raises:
        ConfigurationError: the setting is missing, has an unknown key, or an
            invalid value.
    """
    raw = getattr(django_settings, "APIKEYS", None)
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            "apikeys.django needs settings.APIKEYS = {'PREFIX': 'yourapp', ...}"
        )
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigurationError(
            f"unknown APIKEYS setting(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
        )
    prefix = raw.get("PREFIX")
    if isinstance(prefix, str):
        prefixes: tuple[str, ...] = (prefix,)
    elif isinstance(prefix, Sequence) and prefix and all(isinstance(p, str) for p in prefix):
        prefixes = tuple(prefix)
    else:
        raise ConfigurationError("APIKEYS['PREFIX'] must be a prefix or a list of prefixes")
    proxies = raw.get("TRUSTED_PROXIES", ())
    if isinstance(proxies, str) or not isinstance(proxies, Sequence):
        raise ConfigurationError("APIKEYS['TRUSTED_PROXIES'] must be a list of networks")
    http = HTTPSettings(
        authorization_header=_optional_str(raw, "AUTHORIZATION_HEADER", "Authorization"),
        api_key_header=_optional_str(raw, "API_KEY_HEADER", "X-API-Key"),
        query_param=_optional_str(raw, "QUERY_PARAM", None),
        trusted_proxies=tuple(proxies),
        realm=_optional_str(raw, "REALM", "api") or "api",
        require_https=raw.get("REQUIRE_HTTPS", False),
        https_exempt_loopback=raw.get("HTTPS_EXEMPT_LOOPBACK", True),
    )
    hasher = raw.get("HASHER")
    if hasher is not None:
        hasher = _instance(hasher, "HASHER")
        if not isinstance(hasher, Hasher):
            raise ConfigurationError("APIKEYS['HASHER'] must be an apikeys.hashing.Hasher")
    expiry = raw.get("DEFAULT_EXPIRY")
    default_expiry = None
    if expiry is not None:
        default_expiry = parse_duration(expiry, name="APIKEYS['DEFAULT_EXPIRY']")
        if default_expiry == timedelta(0):
            raise ConfigurationError("APIKEYS['DEFAULT_EXPIRY'] must be positive (or None)")
    grace = parse_duration(raw.get("ROTATION_GRACE", timedelta(days=1)), name="ROTATION_GRACE")
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
        prefixes=prefixes,
        http=http,
        hasher=hasher,
        default_expiry=default_expiry,
        rotation_grace=grace,
        database=database,
        events=tuple(_instance(sink, "EVENTS") for sink in events),
        rate_limiter=_instance(raw.get("RATE_LIMITER"), "RATE_LIMITER"),
        async_rate_limiter=_instance(raw.get("ASYNC_RATE_LIMITER"), "ASYNC_RATE_LIMITER"),
        manager_options=dict(options),
    )
