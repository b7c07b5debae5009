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


def _options(conf: APIKeysSettings) -> dict[str, Any]:
    options: dict[str, Any] = dict(conf.manager_options)
    options["prefix"] = list(conf.prefixes)
    if conf.hasher is not None:
        options["hasher"] = conf.hasher
    if conf.events:
        options["events"] = list(conf.events)
    return options


@contextmanager
def _options_checked() -> Iterator[None]:
    try:
        yield
    except TypeError as exc:  # an unknown MANAGER_OPTIONS keyword
        raise ConfigurationError(f"APIKEYS['MANAGER_OPTIONS']: {exc}") from exc


def get_manager() -> KeyManager:
    """The process-wide :class:`~apikeys.KeyManager` on the Django database,
    built on first use from ``settings.APIKEYS``.

    Returns:
        The manager (the same object until ``APIKEYS`` changes).

    Raises:
        ConfigurationError: ``APIKEYS`` is missing or invalid.
    """
    global _manager
    manager = _manager
    if manager is None:
        conf = get_settings()
        from apikeys.django.store import DjangoStore

        with _lock:
            if _manager is None:
                with _options_checked():
                    _manager = KeyManager(
                        DjangoStore(conf.database),
                        rate_limiter=conf.rate_limiter,
                        **_options(conf),
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
        from apikeys.django.store import DjangoStore

        with _lock:
            if _async_manager is None:
                with _options_checked():
                    _async_manager = AsyncKeyManager(
                        DjangoStore(conf.database),
                        rate_limiter=conf.async_rate_limiter,
                        **_options(conf),
                    )
            manager = _async_manager
    return manager


def reset() -> None:
    """Forget the settings and managers; the next call rebuilds them."""
    global _settings, _manager, _async_manager
    with _lock:
        _settings = _manager = _async_manager = None


def on_setting_changed(*, setting: str, **_: Any) -> None:
    """``setting_changed`` receiver: rebuild after ``APIKEYS``/``DATABASES`` change."""
    if setting in {"APIKEYS", "DATABASES", "USE_TZ"}:
        reset()
