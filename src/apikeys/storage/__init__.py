"""Where keys live: the store protocols and the stores that ship with apikeys.

- :class:`MemoryStore`: in-process, for tests (implements both protocols).
- :class:`SQLiteStore`: a SQLite file through the standard library; the
  embedded default (no extra needed).
- :class:`SQLAlchemyStore`: PostgreSQL (psycopg 3), MariaDB/MySQL (PyMySQL) or
  SQLite through SQLAlchemy 2 Core (``apikeys[postgres]``, ``apikeys[mysql]``,
  ``apikeys[sqlalchemy]``). :data:`metadata` and :data:`keys_table` are its
  tables, for the application's own Alembic migrations.
- :class:`AsyncSQLAlchemyStore`: the same tables for asyncio
  (``apikeys[asyncio]``).
- :class:`CachedStore` / :class:`AsyncCachedStore`: records kept in process
  memory, dropped when any process announces a change (PostgreSQL
  LISTEN/NOTIFY or Redis pub/sub).
- :func:`store_from_url` / :func:`async_store_from_url` build one from a URL;
  :func:`register_store` adds a scheme.

A store is any object with the methods of :class:`KeyStore` (or, for asyncio,
:class:`AsyncKeyStore`); nothing needs to subclass or import apikeys. The SQL
stores import SQLAlchemy and drivers only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apikeys.storage._cached import AsyncCachedStore, CachedStore
from apikeys.storage._memory import MemoryStore
from apikeys.storage._protocol import (
    AsyncKeyStore,
    AsyncSupportsTouch,
    KeyStore,
    SupportsNotify,
    SupportsTouch,
)
from apikeys.storage._registry import async_store_from_url, register_store, store_from_url
from apikeys.storage._sqlite import SQLiteStore

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table

    from apikeys.storage._sqlalchemy import SQLAlchemyStore
    from apikeys.storage._sqlalchemy_async import AsyncSQLAlchemyStore

    metadata: MetaData
    keys_table: Table

__all__ = [
    "AsyncCachedStore",
    "AsyncKeyStore",
    "AsyncSQLAlchemyStore",
    "AsyncSupportsTouch",
    "CachedStore",
    "KeyStore",
    "MemoryStore",
    "SQLAlchemyStore",
    "SQLiteStore",
    "SupportsNotify",
    "SupportsTouch",
    "async_store_from_url",
    "keys_table",
    "metadata",
    "register_store",
    "store_from_url",
]

# Names whose modules import SQLAlchemy: loaded on first access only.
_LAZY = {
    "SQLAlchemyStore": "apikeys.storage._sqlalchemy",
    "metadata": "apikeys.storage._sqlalchemy",
    "keys_table": "apikeys.storage._sqlalchemy",
    "AsyncSQLAlchemyStore": "apikeys.storage._sqlalchemy_async",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'apikeys.storage' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        from apikeys.errors import ConfigurationError

        extra = "asyncio" if name.startswith("Async") else "sqlalchemy"
        raise ConfigurationError(
            f"apikeys.storage.{name} needs SQLAlchemy: pip install 'apikeys[{extra}]'"
        ) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
