"""Monitoring stores from URLs, so a deployment (or the CLI) configures them in text."""

from __future__ import annotations

from typing import Any

from apikeys._redis import REDIS_SCHEMES
from apikeys.errors import ConfigurationError
from apikeys.monitoring._audit import AuditStore, MemoryAuditStore
from apikeys.monitoring._usage import MemoryUsageStore, UsageStore

_SQLITE_SCHEMES = ("sqlite:///", "sqlite+pysqlite:///")
_REDIS_SCHEMES = tuple(scheme + "://" for scheme in REDIS_SCHEMES)


def _sqlite_path(url: str) -> str | None:
    for scheme in _SQLITE_SCHEMES:
        if url.startswith(scheme):
            path = url[len(scheme) :].split("?", 1)[0]
            return path or ":memory:"
    return None


def _check(url: object) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError("a monitoring store URL looks like scheme://…")
    return url


def audit_store_from_url(url: str, **options: Any) -> AuditStore:
    """The audit store a URL names.

    - ``memory://``: :class:`~apikeys.monitoring.MemoryAuditStore`
    - ``sqlite:///path/to/file.db``: :class:`~apikeys.monitoring.SQLiteAuditStore`
      (standard library)
    - any other SQLAlchemy URL (``postgresql+psycopg://…``, ``mysql+pymysql://…``):
      :class:`~apikeys.monitoring.SQLAlchemyAuditStore`

    Args:
        url: The URL.
        **options: Passed to the store (``table_prefix``...).

    Raises:
        ConfigurationError: a Redis URL (the audit trail needs a database), or a
            URL whose extra is not installed.
    """
    url = _check(url)
    if url.startswith("memory://"):
        return MemoryAuditStore(**options)
    if url.lower().startswith(_REDIS_SCHEMES):
        raise ConfigurationError("the audit trail needs a SQL database, not Redis")
    path = _sqlite_path(url)
    if path is not None:
        from apikeys.monitoring._sqlite import SQLiteAuditStore

        return SQLiteAuditStore(path, **options)
    from apikeys.monitoring._sqlalchemy import SQLAlchemyAuditStore

    return SQLAlchemyAuditStore(url, **options)


def usage_store_from_url(url: str, **options: Any) -> UsageStore:
    """The usage store a URL names: as :func:`audit_store_from_url`, plus every
    Redis URL (``redis://``, ``rediss://``, ``unix://``,
    ``redis+sentinel://host:port[,host:port]/service[/db]``,
    ``redis+cluster://host:port[,host:port]``) for
    :class:`~apikeys.monitoring.RedisUsageStore`.

    Args:
        url: The URL.
        **options: Passed to the store (``table_prefix``, ``namespace``, ``retention``...).

    Raises:
        ConfigurationError: a URL whose extra is not installed.
    """
    url = _check(url)
    if url.startswith("memory://"):
        return MemoryUsageStore(**options)
    if url.lower().startswith(_REDIS_SCHEMES):
        from apikeys.monitoring._redis import RedisUsageStore

        return RedisUsageStore(url, **options)
    path = _sqlite_path(url)
    if path is not None:
        from apikeys.monitoring._sqlite import SQLiteUsageStore

        return SQLiteUsageStore(path, **options)
    from apikeys.monitoring._sqlalchemy import SQLAlchemyUsageStore

    return SQLAlchemyUsageStore(url, **options)
