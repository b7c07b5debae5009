"""Stores from URLs: an explicit registry of schemes, open to third parties."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apikeys.errors import ConfigurationError
from apikeys.storage._memory import MemoryStore
from apikeys.storage._protocol import AsyncKeyStore, KeyStore
from apikeys.storage._schema import redact_url

StoreFactory = Callable[..., KeyStore]
"""Builds a store from a URL and keyword options: ``factory(url, **options)``."""
AsyncStoreFactory = Callable[..., AsyncKeyStore]
"""Builds an async store from a URL and keyword options."""

# Dialects SQLAlchemy knows, with the extra that brings their drivers.
_SQLALCHEMY_EXTRAS = {
    "sqlite": "sqlalchemy",
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
}
# Bare dialect names default, in SQLAlchemy, to drivers apikeys does not ship
# (psycopg2, mysqlclient); they are pointed at the ones its extras install.
_SYNC_DEFAULT_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_ASYNC_DEFAULT_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
    "mysql": "mysql+aiomysql",
    "mariadb": "mariadb+aiomysql",
}
_ASYNC_DRIVERS = frozenset({"aiosqlite", "psycopg_async", "asyncpg", "aiomysql", "asyncmy"})


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise ConfigurationError(f"not a store URL (no scheme://): {redact_url(url)!r}")
    return scheme.lower()


def _with_scheme(url: str, scheme: str) -> str:
    return scheme + "://" + url.partition("://")[2]


def _memory(url: str, **options: Any) -> MemoryStore:
    if url.partition("://")[2].strip("/") or options:
        raise ConfigurationError("memory:// takes no path or options")
    return MemoryStore()


def _sqlite(url: str, **options: Any) -> KeyStore:
    from apikeys.storage._sqlite import SQLiteStore

    rest = url.partition("://")[2]
    if rest.startswith("/"):
        rest = rest[1:]
    path, _, query = rest.partition("?")
    if query:
        raise ConfigurationError("sqlite:/// URLs take no query options; pass keyword options")
    return SQLiteStore(path or ":memory:", **options)


def _sqlalchemy(url: str, **options: Any) -> KeyStore:
    base = _scheme(url).split("+", 1)[0]
    url = _with_scheme(url, _SYNC_DEFAULT_DRIVERS.get(_scheme(url), _scheme(url)))
    extra = _SQLALCHEMY_EXTRAS.get(base, "sqlalchemy")
    try:
        from apikeys.storage._sqlalchemy import SQLAlchemyStore
    except ImportError as exc:
        raise ConfigurationError(
            f"store URL {redact_url(url)!r} needs SQLAlchemy: pip install 'apikeys[{extra}]'"
        ) from exc
    return SQLAlchemyStore(url, **options)


def _async_sqlalchemy(url: str, **options: Any) -> AsyncKeyStore:
    scheme = _scheme(url)
    url = _with_scheme(url, _ASYNC_DEFAULT_DRIVERS.get(scheme, scheme))
    try:
        from apikeys.storage._sqlalchemy_async import AsyncSQLAlchemyStore
    except ImportError as exc:
        raise ConfigurationError(
            f"store URL {redact_url(url)!r} needs SQLAlchemy's asyncio support: "
            "pip install 'apikeys[asyncio]'"
        ) from exc
    return AsyncSQLAlchemyStore(url, **options)


def _memory_async(url: str, **options: Any) -> AsyncKeyStore:
    return _memory(url, **options)


_STORES: dict[str, StoreFactory] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "sqlite+pysqlite": _sqlalchemy,
    "postgres": _sqlalchemy,
    "postgresql": _sqlalchemy,
    "postgresql+psycopg": _sqlalchemy,
    "mysql": _sqlalchemy,
    "mysql+pymysql": _sqlalchemy,
    "mariadb": _sqlalchemy,
    "mariadb+pymysql": _sqlalchemy,
}
_ASYNC_STORES: dict[str, AsyncStoreFactory] = {
    "memory": _memory_async,
    "sqlite": _async_sqlalchemy,
    "sqlite+aiosqlite": _async_sqlalchemy,
    "postgres": _async_sqlalchemy,
    "postgresql": _async_sqlalchemy,
    "postgresql+psycopg": _async_sqlalchemy,
    "postgresql+psycopg_async": _async_sqlalchemy,
    "postgresql+asyncpg": _async_sqlalchemy,
    "mysql": _async_sqlalchemy,
    "mysql+aiomysql": _async_sqlalchemy,
    "mysql+asyncmy": _async_sqlalchemy,
    "mariadb": _async_sqlalchemy,
    "mariadb+aiomysql": _async_sqlalchemy,
    "mariadb+asyncmy": _async_sqlalchemy,
}


def register_store(
    scheme: str,
    factory: StoreFactory | AsyncStoreFactory,
    *,
    asynchronous: bool = False,
) -> None:
    """Make :func:`store_from_url` (or, with ``asynchronous=True``,
    :func:`async_store_from_url`) build stores for URLs starting ``scheme://``.

    A later registration of the same scheme replaces the earlier one, so an
    application can also swap a built-in scheme for its own store.

    Args:
        scheme: The URL scheme, e.g. ``"dynamodb"`` or ``"postgresql+mydriver"``.
        factory: Called as ``factory(url, **options)``; returns the store.
        asynchronous: Whether ``factory`` builds an
            :class:`~apikeys.storage.AsyncKeyStore`.

    Raises:
        ConfigurationError: an empty scheme, one containing ``://``, or a
            factory that is not callable.

    Example::

        register_store("redis", lambda url, **options: MyRedisStore(url, **options))
        store = store_from_url("redis://127.0.0.1:6379/0")
    """
    if not isinstance(scheme, str) or not scheme or ":" in scheme or "/" in scheme:
        raise ConfigurationError(f"invalid store URL scheme {scheme!r}")
    if not callable(factory):
        raise ConfigurationError(f"the factory for {scheme!r} is not callable")
    registry: dict[str, Any] = _ASYNC_STORES if asynchronous else _STORES
    registry[scheme.lower()] = factory


def _unknown(scheme: str, url: str, asynchronous: bool) -> ConfigurationError:
    known = ", ".join(s + "://" for s in sorted(_ASYNC_STORES if asynchronous else _STORES))
    return ConfigurationError(
        f"no store registered for {scheme}:// ({redact_url(url)!r}); known: {known}. "
        "SQL databases need an extra: pip install 'apikeys[postgres]' (or [mysql], "
        "[sqlalchemy], [asyncio]); other stores plug in with register_store()"
    )


def _fallback(scheme: str, asynchronous: bool) -> Any:
    """Any other ``dialect+driver`` SQLAlchemy knows (``postgresql+psycopg2``...)
    goes to the SQLAlchemy stores, which name the extra if the driver is missing."""
    base, _, driver = scheme.partition("+")
    if base not in _SQLALCHEMY_EXTRAS:
        return None
    if not asynchronous and driver in _ASYNC_DRIVERS:
        raise ConfigurationError(
            f"{scheme}:// is an asyncio driver: use async_store_from_url() with "
            "AsyncKeyManager, or a synchronous driver such as postgresql+psycopg://"
        )
    return _async_sqlalchemy if asynchronous else _sqlalchemy


def store_from_url(url: str, **options: Any) -> KeyStore:
    """Build a synchronous store from a URL.

    Built-in schemes:

    - ``memory://`` → :class:`~apikeys.storage.MemoryStore`
    - ``sqlite:///path/to/file.db`` (relative), ``sqlite:////abs/path.db``,
      ``sqlite://`` (in memory) → :class:`~apikeys.storage.SQLiteStore`
    - ``sqlite+pysqlite:///…``, ``postgresql+psycopg://user@host/db``
      (``postgresql://`` means psycopg 3 too), ``mysql+pymysql://…`` or
      ``mariadb+pymysql://…`` (``mysql://`` means PyMySQL) →
      :class:`~apikeys.storage.SQLAlchemyStore`

    Args:
        url: The store URL.
        **options: Passed to the store's factory (e.g. ``timeout=`` for SQLite,
            ``engine_options=`` for SQLAlchemy).

    Returns:
        The store (close it with ``close()``).

    Raises:
        ConfigurationError: an unknown scheme, an async-only URL, or a missing
            driver; the message names the extra to install.
    """
    scheme = _scheme(url)
    factory = _STORES.get(scheme) or _fallback(scheme, asynchronous=False)
    if factory is None:
        raise _unknown(scheme, url, asynchronous=False)
    return factory(url, **options)


def async_store_from_url(url: str, **options: Any) -> AsyncKeyStore:
    """Build an asyncio store (for :class:`~apikeys.AsyncKeyManager`) from a URL.

    Built-in schemes:

    - ``memory://`` → :class:`~apikeys.storage.MemoryStore`
    - ``sqlite+aiosqlite:///path.db`` (``sqlite:///`` means aiosqlite),
      ``postgresql+psycopg://…`` (psycopg 3 in async mode; also
      ``postgresql+psycopg_async://`` and ``postgresql://``),
      ``postgresql+asyncpg://…`` (if asyncpg is installed), ``mysql+aiomysql://…``
      (``mysql://`` means aiomysql), ``mariadb+aiomysql://…`` →
      :class:`~apikeys.storage.AsyncSQLAlchemyStore`

    Args:
        url: The store URL.
        **options: Passed to the store's factory.

    Returns:
        The store (close it with ``await store.aclose()``).

    Raises:
        ConfigurationError: an unknown scheme or a missing driver; the message
            names the extra to install.
    """
    scheme = _scheme(url)
    factory = _ASYNC_STORES.get(scheme) or _fallback(scheme, asynchronous=True)
    if factory is None:
        raise _unknown(scheme, url, asynchronous=True)
    return factory(url, **options)
