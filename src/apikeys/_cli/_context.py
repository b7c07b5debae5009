"""Settings of one invocation (options over environment over defaults) and the
key manager built from them, opened on first use and closed at the end."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from apikeys._cli._errors import CommandError, Exit, UsageError
from apikeys._cli._values import parse_prefixes
from apikeys._cli.output import Output
from apikeys._manager import KeyManager
from apikeys.errors import ConfigurationError
from apikeys.hashing import Argon2Hasher, Hasher, HmacHasher

DEFAULT_DATABASE_FILE: Final = "apikeys.db"
DEFAULT_DATABASE_URL: Final = f"sqlite:///{DEFAULT_DATABASE_FILE}"
"""A SQLite file named ``apikeys.db`` in the working directory."""

ENV_DATABASE_URL: Final = "APIKEYS_DATABASE_URL"
ENV_PREFIX: Final = "APIKEYS_PREFIX"
ENV_HASHER: Final = "APIKEYS_HASHER"
ENV_HMAC_PEPPERS: Final = "APIKEYS_HMAC_PEPPERS"

# Commands that never issue or parse a key (list, show, revoke by id...) still
# build a KeyManager, which insists on a prefix; this one is never used by them.
_UNUSED_PREFIX: Final = "apikeys"


def _sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (``None`` for other URLs and ``:memory:``)."""
    for scheme in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(scheme):
            path = url[len(scheme) :].split("?", 1)[0]
            return None if path in ("", ":memory:") else Path(path)
    return None


def make_hasher(env: Mapping[str, str]) -> Hasher:
    """The hasher named by ``APIKEYS_HASHER``.

    ``argon2`` (default) is :class:`~apikeys.hashing.Argon2Hasher` with its default
    profile; ``hmac`` is :class:`~apikeys.hashing.HmacHasher` with the peppers in
    ``APIKEYS_HMAC_PEPPERS`` (comma-separated, oldest first), for deployments whose
    application uses it; ``argon2-test`` is the deliberately cheap test profile and
    must never be used for real keys.

    Raises:
        UsageError: an unknown hasher name or bad peppers.
    """
    name = env.get(ENV_HASHER, "argon2").strip().lower() or "argon2"
    if name == "argon2":
        return Argon2Hasher()
    if name == "argon2-test":
        return Argon2Hasher.for_tests()
    if name == "hmac":
        peppers = [p for p in env.get(ENV_HMAC_PEPPERS, "").split(",") if p]
        try:
            return HmacHasher(peppers)
        except ConfigurationError as exc:
            raise UsageError(f"{ENV_HMAC_PEPPERS}: {exc}") from None
    raise UsageError(f"{ENV_HASHER} must be argon2, hmac or argon2-test, not {name!r}")


class Context:
    """Everything a command handler needs: settings, output and the manager.

    Args:
        args: The parsed command line.
        out: Where to write.
        env: The environment (``os.environ`` by default).
    """

    def __init__(
        self, args: argparse.Namespace, out: Output, env: Mapping[str, str] | None = None
    ) -> None:
        self.args = args
        self.out = out
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.database_url: str = (
            getattr(args, "database_url", None)
            or self.env.get(ENV_DATABASE_URL, "").strip()
            or DEFAULT_DATABASE_URL
        )
        prefix_text = getattr(args, "prefix", None) or self.env.get(ENV_PREFIX, "")
        self.prefixes: tuple[str, ...] = parse_prefixes(prefix_text)
        self._manager: KeyManager | None = None

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

    def manager(self, *, create_database: bool = False) -> KeyManager:
        """The key manager on the configured store, opened once.

        Args:
            create_database: Whether a missing SQLite file may be created (only
                commands that write new keys do; the others refuse a missing file,
                so a mistyped path is reported rather than silently made empty).

        Raises:
            CommandError: the SQLite file does not exist (exit status 3).
            UsageError: the URL or the hasher is not usable.
        """
        if self._manager is None:
            path = _sqlite_file(self.database_url)
            if path is not None and not create_database and not path.exists():
                raise CommandError(
                    f"no key database at {path} (set --database-url or {ENV_DATABASE_URL}, "
                    "or create a key first)",
                    Exit.STORE_UNAVAILABLE,
                )
            hasher = make_hasher(self.env)
            from apikeys.storage import store_from_url

            store = store_from_url(self.database_url)
            try:
                self._manager = KeyManager(
                    store,
                    prefix=self.prefixes or _UNUSED_PREFIX,
                    hasher=hasher,
                    cache_size=0,
                    touch_interval=None,
                )
            except BaseException:
                store.close()
                raise
        return self._manager

    def close(self) -> None:
        """Close the store, if one was opened."""
        if self._manager is not None:
            manager, self._manager = self._manager, None
            manager.close()
