"""The ``APIKEYS_*`` keys of a Flask app's config, read and validated once per app,
and the key manager built from them when the extension was given none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from apikeys._http import HTTPSettings
from apikeys._manager import KeyManager
from apikeys.errors import ConfigurationError

PREFIX: Final = "APIKEYS_"

DEFAULTS: Final[Mapping[str, Any]] = {
    "APIKEYS_AUTHORIZATION_HEADER": "Authorization",
    "APIKEYS_API_KEY_HEADER": "X-API-Key",
    "APIKEYS_QUERY_PARAM": None,
    "APIKEYS_TRUSTED_PROXIES": (),
    "APIKEYS_REALM": "api",
    "APIKEYS_REQUIRE_HTTPS": False,
    "APIKEYS_HTTPS_EXEMPT_LOOPBACK": True,
    "APIKEYS_DATABASE_URL": None,
    "APIKEYS_PREFIX": None,
    "APIKEYS_MANAGER_OPTIONS": {},
    "APIKEYS_DEFAULT_EXPIRY": None,
}
"""Every config key the extension reads, with its default."""


@dataclass(frozen=True)
class FlaskSettings:
    """The validated ``APIKEYS_*`` config of one app.

    Attributes:
        http: Where requests carry the key and how the client address is found.
        database_url: The store URL the manager is built on (config-only set-up).
        prefixes: Accepted key prefixes of that manager; the first issues.
        manager_options: Other keyword arguments of that manager.
        default_expiry: Lifetime of keys issued by ``flask apikeys create``.
    """

    http: HTTPSettings
    database_url: str | None = None
    prefixes: tuple[str, ...] = ()
    manager_options: Mapping[str, Any] = field(default_factory=dict)
    default_expiry: timedelta | None = None


def _list(value: Any, name: str) -> tuple[str, ...]:
    """A list given as a list of strings or as one comma-separated string."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ConfigurationError(f"{name} must be a list of strings or a comma-separated string")


def _optional_str(value: Any, name: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigurationError(f"{name} must be a non-empty string or None")
    return value


def _duration(value: Any, name: str) -> timedelta | None:
    """``None``, a ``timedelta``, seconds, or a duration such as ``"90d"`` / ``"1d12h"``."""
    if value is None or isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    elif isinstance(value, str):
        from apikeys._cli._errors import UsageError
        from apikeys._cli._values import parse_duration

        try:
            result = parse_duration(value)
        except UsageError as exc:
            raise ConfigurationError(f"{name}: {exc}") from None
    else:
        raise ConfigurationError(f"{name} must be a timedelta, seconds, or e.g. '90d'")
    if result is not None and result <= timedelta(0):
        raise ConfigurationError(f"{name} must be more than zero")
    return result


def load_settings(config: Mapping[str, Any]) -> FlaskSettings:
    """Read the ``APIKEYS_*`` keys of a Flask config.

    Args:
        config: ``app.config``.

    Returns:
        The validated settings.

    Raises:
        ConfigurationError: an unknown ``APIKEYS_*`` key (a typo would otherwise
            be ignored silently) or an invalid value.
    """
    unknown = sorted(k for k in config if k.startswith(PREFIX) and k not in DEFAULTS)
    if unknown:
        raise ConfigurationError(
            f"unknown config key(s) {', '.join(unknown)}; apikeys reads "
            + ", ".join(sorted(DEFAULTS))
        )
    values = {name: config.get(name, default) for name, default in DEFAULTS.items()}
    http = HTTPSettings(
        authorization_header=_optional_str(
            values["APIKEYS_AUTHORIZATION_HEADER"], "APIKEYS_AUTHORIZATION_HEADER"
        ),
        api_key_header=_optional_str(values["APIKEYS_API_KEY_HEADER"], "APIKEYS_API_KEY_HEADER"),
        query_param=_optional_str(values["APIKEYS_QUERY_PARAM"], "APIKEYS_QUERY_PARAM"),
        trusted_proxies=_list(values["APIKEYS_TRUSTED_PROXIES"], "APIKEYS_TRUSTED_PROXIES"),
        realm=_optional_str(values["APIKEYS_REALM"], "APIKEYS_REALM") or "api",
        require_https=values["APIKEYS_REQUIRE_HTTPS"],
        https_exempt_loopback=values["APIKEYS_HTTPS_EXEMPT_LOOPBACK"],
    )
    options = values["APIKEYS_MANAGER_OPTIONS"]
    if not isinstance(options, Mapping):
        raise ConfigurationError("APIKEYS_MANAGER_OPTIONS must be a dict of KeyManager arguments")
    return FlaskSettings(
        http=http,
        database_url=_optional_str(values["APIKEYS_DATABASE_URL"], "APIKEYS_DATABASE_URL"),
        prefixes=_list(values["APIKEYS_PREFIX"], "APIKEYS_PREFIX"),
        manager_options=dict(options),
        default_expiry=_duration(values["APIKEYS_DEFAULT_EXPIRY"], "APIKEYS_DEFAULT_EXPIRY"),
    )


def build_manager(settings: FlaskSettings) -> KeyManager:
    """The manager of a config-only set-up: ``APIKEYS_DATABASE_URL`` + ``APIKEYS_PREFIX``.

    Raises:
        ConfigurationError: either is missing, the URL names no known store, or a
            manager option is invalid.
    """
    if settings.database_url is None or not settings.prefixes:
        raise ConfigurationError(
            "apikeys.flask needs a manager: pass one (APIKeys(app, manager)) or set "
            "APIKEYS_DATABASE_URL and APIKEYS_PREFIX in app.config"
        )
    if "prefix" in settings.manager_options or "store" in settings.manager_options:
        raise ConfigurationError(
            "APIKEYS_MANAGER_OPTIONS must not set store or prefix: use "
            "APIKEYS_DATABASE_URL and APIKEYS_PREFIX"
        )
    from apikeys.storage import store_from_url

    store = store_from_url(settings.database_url)
    try:
        return KeyManager(store, prefix=settings.prefixes, **settings.manager_options)
    except TypeError as exc:
        store.close()
        raise ConfigurationError(f"APIKEYS_MANAGER_OPTIONS: {exc}") from None
    except BaseException:
        store.close()
        raise
