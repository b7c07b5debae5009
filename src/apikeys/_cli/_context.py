"""Settings of one invocation (options over environment over defaults) and the
key manager built from them, opened on first use and closed at the end."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from apikeys._cli._errors import CommandError, Exit, UsageError
from apikeys._cli.output import Output
from apikeys._manager import KeyManager
from apikeys._settings import DEFAULT_DATABASE_URL as DEFAULT_DATABASE_URL
from apikeys._settings import Settings, env_name
from apikeys.storage import MemoryStore

if TYPE_CHECKING:
    from apikeys.monitoring import Monitor

DEFAULT_DATABASE_FILE: Final = "apikeys.db"

ENV_DATABASE_URL: Final = env_name("database_url")
ENV_PREFIX: Final = env_name("prefix")
ENV_HASHER: Final = env_name("hasher")
ENV_HMAC_PEPPERS: Final = env_name("hmac_peppers")
ENV_USAGE_URL: Final = "APIKEYS_USAGE_URL"
ENV_AUDIT_URL: Final = "APIKEYS_AUDIT_URL"

# Commands that never issue or parse a key (list, show, revoke by id...) still
# build a KeyManager, which insists on a prefix; this one is never used by them.
_UNUSED_PREFIX: Final = "apikeys"
_VANISH = (
    "keys in memory:// vanish when the command ends: point {what} at a database "
    "(e.g. sqlite:///apikeys.db)"
)


def _sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (``None`` for other URLs and ``:memory:``)."""
    for scheme in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(scheme):
            path = url[len(scheme) :].split("?", 1)[0]
            return None if path in ("", ":memory:") else Path(path)
    return None


class Context:
    """Everything a command handler needs: settings, output, the manager and its monitor.

    The ``apikeys`` command builds the manager from :class:`~apikeys.Settings`
    (environment, then ``--database-url``/``--prefix``) with
    :meth:`~apikeys.KeyManager.from_settings`, so every lifecycle command lands in
    the audit trail; ``flask apikeys`` and ``manage.py apikeys`` pass their app's
    settings and manager instead.

    Args:
        args: The parsed command line.
        out: Where to write.
        env: The environment (``os.environ`` by default).
        settings: The settings (default: read from ``env`` and the flags).
        manager: A manager supplied by a framework (not closed here; its monitor
            is flushed at the end).

    Raises:
        ConfigurationError: an invalid setting (exit status 2).
    """

    def __init__(
        self,
        args: argparse.Namespace,
        out: Output,
        env: Mapping[str, str] | None = None,
        *,
        settings: Settings | None = None,
        manager: KeyManager | None = None,
    ) -> None:
        self.args = args
        self.out = out
        self.env: Mapping[str, str] = os.environ if env is None else env
        if settings is None:
            settings = Settings.from_env(
                self.env,
                database_url=getattr(args, "database_url", None),
                prefix=getattr(args, "prefix", None),
            )
        self.settings = settings
        self.database_url: str = settings.database_url
        self.prefixes: tuple[str, ...] = settings.prefix
        if manager is not None:  # its prefixes, whatever the settings say
            others = sorted(manager.prefixes - {manager.prefix})
            self.prefixes = (manager.prefix, *others)
        self._supplied = manager
        self._manager: KeyManager | None = manager
        self._monitor: Monitor | None = None

    @property
    def default_expiry(self) -> timedelta | None:
        """Lifetime of keys created without ``--expires-in`` (``default_expiry``)."""
        return self.settings.default_expiry

    def require_prefixes(self) -> tuple[str, ...]:
        """The configured prefixes; the first one issues new keys.

        Raises:
            UsageError: none configured.
        """
        if not self.prefixes:
            raise UsageError(
                f"no key prefix configured: pass --prefix (e.g. --prefix acme) or set {ENV_PREFIX}"
            )
        return self.prefixes

    def _monitoring_urls(self) -> tuple[str | None, str | None]:
        """``--audit-url``/``--usage-url`` (or their variables), when set."""
        audit = getattr(self.args, "audit_url", None) or self.env.get(ENV_AUDIT_URL) or None
        usage = getattr(self.args, "usage_url", None) or self.env.get(ENV_USAGE_URL) or None
        return audit, usage

    def manager(self, *, create_database: bool = False, issuing: bool = False) -> KeyManager:
        """The key manager, opened once.

        Args:
            create_database: Whether a missing SQLite file may be created (only
                commands that write new keys do; the others refuse a missing file,
                so a mistyped path is reported rather than silently made empty).
            issuing: The command issues keys (create, rotate): a framework's
                manager on a :class:`~apikeys.storage.MemoryStore` is refused.

        Raises:
            CommandError: the SQLite file does not exist (exit status 3).
            UsageError: ``memory://`` (the keys would vanish with the process).
            ConfigurationError: the URL or the hasher is not usable.
        """
        if self._manager is not None:
            if issuing and isinstance(self._manager.store, MemoryStore):
                raise UsageError(_VANISH.format(what="the app's key store"))
            return self._manager
        url = self.database_url
        if url.partition("://")[0].lower() == "memory":
            raise UsageError(_VANISH.format(what=f"--database-url or {ENV_DATABASE_URL}"))
        path = _sqlite_file(url)
        if path is not None and not create_database and not path.exists():
            raise CommandError(
                f"no key database at {path} (set --database-url or {ENV_DATABASE_URL}, "
                "or create a key first)",
                Exit.STORE_UNAVAILABLE,
            )
        audit_url, usage_url = self._monitoring_urls()
        custom = audit_url is not None or usage_url is not None
        settings = self.settings.model_copy(
            update={
                "prefix": self.prefixes or (_UNUSED_PREFIX,),
                "monitoring": self.settings.monitoring and not custom,
            }
        )
        manager = KeyManager.from_settings(settings, cache_size=0, touch_interval=None)
        self._manager = manager
        if custom and self.settings.monitoring:
            self._monitor = self._make_monitor(manager, attach=True)
        return manager

    def _make_monitor(self, manager: KeyManager, *, attach: bool) -> Monitor:
        from apikeys._wiring import monitoring_url
        from apikeys.monitoring import Monitor, audit_store_from_url, usage_store_from_url

        audit_url, usage_url = self._monitoring_urls()
        audit = audit_store_from_url(audit_url or monitoring_url(self.database_url))
        try:
            usage = usage_store_from_url(usage_url or monitoring_url(self.database_url))
        except BaseException:
            audit.close()
            raise
        return Monitor(manager, audit_store=audit, usage_store=usage, attach=attach)

    def monitor(self) -> Monitor:
        """The monitor holding usage and the audit trail of the configured database
        (or ``--usage-url``/``--audit-url``): the manager's own when it has one."""
        manager = self.manager()
        if self._monitor is None:
            monitor: Monitor | None = manager.monitor
            if monitor is None:
                monitor = self._make_monitor(manager, attach=False)
                self._monitor = monitor
            return monitor
        return self._monitor

    def close(self) -> None:
        """Deliver what the monitor holds (the audit trail of this command), then
        close what this context opened."""
        monitor, self._monitor = self._monitor, None
        manager, self._manager = self._manager, None
        if monitor is not None:
            monitor.close()
        if manager is None:
            return
        if manager is self._supplied:
            if manager.monitor is not None:
                manager.monitor.flush()
        else:
            manager.close()
