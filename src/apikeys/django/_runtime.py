"""The process-wide managers, built lazily from ``settings.APIKEYS``.

Both use the same database and settings (each its own stateless
:class:`~apikeys.django.store.DjangoStore`); they are rebuilt when ``APIKEYS``
changes (``override_settings`` in tests).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from apikeys._async import AsyncKeyManager
from apikeys._manager import KeyManager
from apikeys.django.conf import APIKeysSettings, load_settings
from apikeys.errors import ConfigurationError

_lock = threading.Lock()
_settings: APIKeysSettings | None = None
_manager: KeyManager | None = None
_async_manager: AsyncKeyManager | None = None


def get_settings() -> APIKeysSettings:
    """The validated ``APIKEYS`` setting (read once, until it changes).

    Raises:
        ConfigurationError: the setting is missing or invalid.
    """
    global _settings
    current = _settings
    if current is None:
        with _lock:
            if _settings is None:
                _settings = load_settings()
            current = _settings
    return current


def _options(conf: APIKeysSettings, limiter: Any) -> dict[str, Any]:
    options: dict[str, Any] = dict(conf.manager_options)
    if conf.hasher is not None:
        options["hasher"] = conf.hasher
    if conf.events:
        options["events"] = list(conf.events)
    if limiter is not None:
        options["rate_limiter"] = limiter
    if not conf.database_url_set:
        from apikeys.django.store import DjangoStore

        options["store"] = DjangoStore(conf.database)
        options["monitoring_database"] = database_url(conf.database)
    return options


def database_url(alias: str) -> str:
    """A URL of the Django database ``alias`` for the monitoring stores: its SQLite
    file, PostgreSQL or MySQL database; ``memory://`` for an in-memory SQLite
    database or another engine (usage and audit then stay in the process)."""
    from django.db import connections

    conf = connections[alias].settings_dict
    engine = str(conf.get("ENGINE", ""))
    name = str(conf.get("NAME") or "")
    if engine.endswith("sqlite3"):
        in_memory = not name or name == ":memory:" or "mode=memory" in name
        return "memory://" if in_memory else f"sqlite:///{name}"
    dialect = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}.get(
        engine.rsplit(".", 1)[-1]
    )
    if dialect is None:
        return "memory://"
    from urllib.parse import quote

    user = quote(str(conf.get("USER") or ""), safe="")
    password = quote(str(conf.get("PASSWORD") or ""), safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    port = f":{conf['PORT']}" if conf.get("PORT") else ""
    return f"{dialect}://{auth}{conf.get('HOST') or 'localhost'}{port}/{name}"


@contextmanager
def _options_checked() -> Iterator[None]:
    try:
        yield
    except TypeError as exc:  # an unknown MANAGER_OPTIONS keyword
        raise ConfigurationError(f"APIKEYS['MANAGER_OPTIONS']: {exc}") from exc
    except ConfigurationError as exc:
        if "invalid manager option" in exc.message:
            raise ConfigurationError(f"APIKEYS['MANAGER_OPTIONS']: {exc.message}") from None
        raise


def get_manager() -> KeyManager:
    """The process-wide :class:`~apikeys.KeyManager`, built on first use from
    ``settings.APIKEYS`` with :meth:`~apikeys.KeyManager.from_settings`: on the
    Django database (or ``DATABASE_URL``), with a monitor and a rate limiter.

    Returns:
        The manager (the same object until ``APIKEYS`` changes).

    Raises:
        ConfigurationError: ``APIKEYS`` is missing or invalid.
    """
    global _manager
    manager = _manager
    if manager is None:
        conf = get_settings()
        with _lock:
            if _manager is None:
                with _options_checked():
                    _manager = KeyManager.from_settings(
                        conf.settings, **_options(conf, conf.rate_limiter)
                    )
            manager = _manager
    return manager


def get_async_manager() -> AsyncKeyManager:
    """The process-wide :class:`~apikeys.AsyncKeyManager` (for async views) on the
    same store and settings as :func:`get_manager`.

    Returns:
        The manager (the same object until ``APIKEYS`` changes).

    Raises:
        ConfigurationError: ``APIKEYS`` is missing or invalid.
    """
    global _async_manager
    manager = _async_manager
    if manager is None:
        conf = get_settings()
        with _lock:
            if _async_manager is None:
                with _options_checked():
                    _async_manager = AsyncKeyManager.from_settings(
                        conf.settings, **_options(conf, conf.async_rate_limiter)
                    )
            manager = _async_manager
    return manager


def reset() -> None:
    """Forget the settings and managers (their monitors flushed and closed); the
    next call rebuilds them."""
    global _settings, _manager, _async_manager
    with _lock:
        manager, _settings, _manager, _async_manager = _manager, None, None, None
    if manager is not None:
        manager._close_owned()


def on_setting_changed(*, setting: str, **_: Any) -> None:
    """``setting_changed`` receiver: rebuild after ``APIKEYS``/``DATABASES`` change."""
    if setting in {"APIKEYS", "DATABASES", "USE_TZ"}:
        reset()
