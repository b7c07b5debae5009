"""Wired managers: a store, a monitor whose usage counts and audit trail live in the
same database, and a rate limiter, from one URL or one :class:`~apikeys.Settings`.

``KeyManager.from_url`` / ``from_settings`` (and the async twins) call
:func:`build`; the bare constructors stay unwired. What is built here is owned
by the manager and closed with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from apikeys._settings import Settings
from apikeys.errors import ConfigurationError

if TYPE_CHECKING:
    from apikeys.monitoring._audit import AuditStore
    from apikeys.monitoring._usage import UsageStore
    from apikeys.ratelimit import KeyRateLimiter

# Async and bare dialects mapped to the blocking drivers apikeys' extras install:
# the monitoring stores are blocking (they write from the monitor's thread).
_MONITORING_DRIVERS = {
    "sqlite+aiosqlite": "sqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
    "postgresql+asyncpg": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mysql+aiomysql": "mysql+pymysql",
    "mysql+asyncmy": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "mariadb+aiomysql": "mariadb+pymysql",
    "mariadb+asyncmy": "mariadb+pymysql",
}
_SQL_DIALECTS = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")


def settings_and_options(
    url: str | None, prefix: Any, options: Mapping[str, Any]
) -> tuple[Settings, dict[str, Any]]:
    """Split ``from_url`` keywords into :class:`Settings` options and manager arguments.

    A ``hasher`` given as an instance (not a name) is a manager argument.

    Raises:
        ConfigurationError: an invalid option.
    """
    fields: dict[str, Any] = {}
    manager_options: dict[str, Any] = {}
    if "store" in options:
        raise ConfigurationError("from_url: the URL names the store; pass no store option")
    for name, value in options.items():
        if name in Settings.OPTIONS and not (name == "hasher" and not isinstance(value, str)):
            fields[name] = value
        else:
            manager_options[name] = value
    if url is not None:
        fields["database_url"] = url
    if prefix is not None:
        fields["prefix"] = prefix
    return Settings(**fields), manager_options


def monitoring_url(database_url: str) -> str:
    """The URL of the usage and audit stores that share the key database.

    Raises:
        ConfigurationError: a store URL that names no SQL database (a third-party
            scheme): pass ``monitoring=False`` and build a monitor yourself.
    """
    scheme, sep, rest = database_url.partition("://")
    scheme = scheme.lower()
    if scheme == "memory":
        return "memory://"
    if scheme.split("+", 1)[0] not in _SQL_DIALECTS:
        raise ConfigurationError(
            f"monitoring: cannot keep usage and the audit trail next to a {scheme}:// store; "
            "pass monitoring=False (APIKEYS_MONITORING=false) and attach a "
            "apikeys.monitoring.Monitor with stores of your choice"
        )
    return _MONITORING_DRIVERS.get(scheme, scheme) + sep + rest


def monitoring_stores(database_url: str) -> tuple[AuditStore, UsageStore]:
    """The audit and usage stores in the database of ``database_url``.

    Raises:
        ConfigurationError: see :func:`monitoring_url`, or a missing extra.
        StorageError: the database cannot be opened.
    """
    from apikeys.monitoring import audit_store_from_url, usage_store_from_url

    url = monitoring_url(database_url)
    audit = audit_store_from_url(url)
    try:
        return audit, usage_store_from_url(url)
    except BaseException:
        audit.close()
        raise


def make_limiter(settings: Settings, clock: Any = None) -> KeyRateLimiter:
    """The limiter of ``settings``: default limits, counters in Redis or in process.

    Per-key ``rate_limits`` and ``quota`` are enforced by it even without defaults.
    """
    from apikeys.ratelimit import KeyRateLimiter

    return KeyRateLimiter(
        settings.redis_url or "memory://", default=settings.rate_limits, clock=clock
    )


def _manager_arguments(settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
    if not settings.prefix:
        raise ConfigurationError(
            "a manager needs a key prefix: from_url(url, prefix='acme') or APIKEYS_PREFIX"
        )
    for name in ("store", "prefix"):
        if name in options:
            raise ConfigurationError(f"{name} is given by the URL / settings, not as an option")
    arguments = dict(options)
    arguments["prefix"] = settings.prefix
    arguments.setdefault("hasher", settings.make_hasher())
    return arguments


class _Deferred:
    """A store factory, called once the cheaper checks passed."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory


def _build(
    settings: Settings,
    manager_class: type[Any],
    store: Any,
    monitor_class: type[Any],
    cached_class: type[Any],
    monitoring_database: str | None,
    options: dict[str, Any],
) -> Any:
    """The wiring both managers share: limiter, store (behind a record cache when
    ``cache_invalidation`` is set), manager, monitor; on any failure, what was
    opened is closed again."""
    arguments = _manager_arguments(settings, options)
    owned: list[Any] = []
    try:
        if "rate_limiter" not in arguments:
            arguments["rate_limiter"] = make_limiter(settings, arguments.get("clock"))
            owned.append(arguments["rate_limiter"])
        if isinstance(store, _Deferred):
            store = store.factory(settings.database_url)
        try:
            store = _cached(store, settings, cached_class)
            manager = manager_class(store, **arguments)
            if settings.monitoring:
                audit, usage = monitoring_stores(monitoring_database or settings.database_url)
                manager.monitor = monitor_class(manager, audit_store=audit, usage_store=usage)
        except TypeError as exc:
            _close_quietly(store)
            raise ConfigurationError(f"invalid manager option: {exc}") from None
        except BaseException:
            _close_quietly(store)
            raise
    except BaseException:
        for resource in owned:
            resource.close()
        raise
    if manager.monitor is not None:
        owned.insert(0, manager.monitor)
    manager._owned = tuple(owned)
    return manager


def _cached(store: Any, settings: Settings, cached_class: type[Any]) -> Any:
    """``store`` behind a :class:`~apikeys.storage.CachedStore` (or its async twin)
    listening on ``settings.cache_invalidation``; ``store`` itself without one."""
    if settings.cache_invalidation is None:
        return store
    return cached_class(
        store,
        invalidation=settings.cache_invalidation,
        max_staleness=settings.cache_max_staleness,
    )


def _close_quietly(store: Any) -> None:
    """Close an async store outside an event loop, if it has a blocking ``close``
    (an async SQLAlchemy engine holds no connection before its first use)."""
    close = getattr(store, "close", None)
    if callable(close):
        close()


def build(
    cls: type[Any],
    settings: Settings,
    *,
    store: Any = None,
    monitoring_database: str | None = None,
    **options: Any,
) -> Any:
    """A manager of class ``cls`` (a KeyManager or AsyncKeyManager subclass) wired as
    ``settings`` say: the store, a rate limiter and, unless ``monitoring`` is off, a
    monitor keeping usage and audit in the same database.

    Args:
        cls: The manager class.
        settings: The options.
        store: A store to use instead of ``settings.database_url``'s (closed with
            the manager, as any store).
        monitoring_database: Where usage and audit go when ``store`` is given
            (default: ``settings.database_url``).
        **options: Other constructor arguments (``clock``, ``events``,
            ``cache_size``, a ``hasher`` or ``rate_limiter`` instance...).

    Raises:
        ConfigurationError: no prefix, an invalid option, or a URL naming no store.
        StorageError: the store cannot be opened.
    """
    from apikeys import monitoring, storage
    from apikeys._async import AsyncKeyManager

    asynchronous = issubclass(cls, AsyncKeyManager)
    factory: Any = storage.async_store_from_url if asynchronous else storage.store_from_url
    monitor_class: Any = monitoring.AsyncMonitor if asynchronous else monitoring.Monitor
    cached_class: Any = storage.AsyncCachedStore if asynchronous else storage.CachedStore
    return _build(
        settings,
        cls,
        store if store is not None else _Deferred(factory),
        monitor_class,
        cached_class,
        monitoring_database,
        options,
    )
