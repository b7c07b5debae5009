"""The ``APIKEYS_*`` keys of a Flask app's config, read through :class:`~apikeys.Settings`
once per app, and the wired manager built from them when the extension was given none.

The names are the environment variables' (``APIKEYS_DATABASE_URL``, ``APIKEYS_PREFIX``,
...; see ``docs/configuration.md``), plus one Flask-only key,
``APIKEYS_MANAGER_OPTIONS``: other :class:`~apikeys.KeyManager` arguments (``clock``,
``cache_size``, a ``hasher`` instance...) for the manager built from config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from apikeys._http import HTTPSettings
from apikeys._manager import KeyManager
from apikeys._settings import ENV_PREFIX, Settings
from apikeys.errors import ConfigurationError

PREFIX: Final = ENV_PREFIX
MANAGER_OPTIONS: Final = "APIKEYS_MANAGER_OPTIONS"


@dataclass(frozen=True)
class FlaskSettings:
    """The validated ``APIKEYS_*`` config of one app.

    Attributes:
        settings: Every option (the shared :class:`~apikeys.Settings`).
        configured: The ``APIKEYS_*`` keys the config set (``None`` values aside).
        manager_options: ``APIKEYS_MANAGER_OPTIONS``.
    """

    settings: Settings
    configured: frozenset[str] = frozenset()
    manager_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def http(self) -> HTTPSettings:
        """Where requests carry the key and how the client address is found."""
        return self.settings.http

    @property
    def default_expiry(self) -> timedelta | None:
        """Lifetime of keys issued by ``flask apikeys create``."""
        return self.settings.default_expiry


def load_settings(config: Mapping[str, Any]) -> FlaskSettings:
    """Read the ``APIKEYS_*`` keys of a Flask config.

    Args:
        config: ``app.config``.

    Returns:
        The validated settings.

    Raises:
        ConfigurationError: an unknown ``APIKEYS_*`` key (a typo would otherwise
            be ignored silently) or an invalid value, naming the key.
    """
    options = config.get(MANAGER_OPTIONS, {})
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"{MANAGER_OPTIONS} must be a dict of KeyManager arguments")
    values = {k: v for k, v in config.items() if k.startswith(PREFIX) and k != MANAGER_OPTIONS}
    settings = Settings.from_mapping(values, key_prefix=PREFIX)
    configured = frozenset(k[len(PREFIX) :].lower() for k, v in values.items() if v is not None)
    return FlaskSettings(settings=settings, configured=configured, manager_options=dict(options))


def build_manager(settings: FlaskSettings) -> KeyManager:
    """The wired manager of a config-only set-up (``APIKEYS_DATABASE_URL`` +
    ``APIKEYS_PREFIX``), built with :meth:`~apikeys.KeyManager.from_settings`.

    Raises:
        ConfigurationError: either is missing, the URL names no known store, or a
            manager option is invalid.
    """
    if "database_url" not in settings.configured or not settings.settings.prefix:
        raise ConfigurationError(
            "apikeys.flask needs a manager: pass one (APIKeys(app, manager)) or set "
            "APIKEYS_DATABASE_URL and APIKEYS_PREFIX in app.config"
        )
    clashing = sorted(set(settings.manager_options) & {"store", "prefix"})
    if clashing:
        raise ConfigurationError(
            f"{MANAGER_OPTIONS} must not set store or prefix: use "
            "APIKEYS_DATABASE_URL and APIKEYS_PREFIX"
        )
    try:
        return KeyManager.from_settings(settings.settings, **settings.manager_options)
    except ConfigurationError as exc:
        if "invalid manager option" in exc.message:
            raise ConfigurationError(f"{MANAGER_OPTIONS}: {exc.message}") from None
        raise
