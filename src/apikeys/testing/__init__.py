"""Helpers for testing an application that uses apikeys, and for testing a store.

This module imports neither pytest nor a web framework:

- :func:`make_manager`: a :class:`~apikeys.KeyManager` on a fresh
  :class:`~apikeys.storage.MemoryStore` with the cheap :func:`test_hasher`.
- :class:`ManualClock`: a clock that moves only when told (expiry without sleeping).
- :func:`auth_headers`: ``{"Authorization": "Bearer <key>"}`` for a test client.
- :class:`StoreConformance` (needs pytest): the suite every key store passes;
  subclass it with a ``store`` fixture. :func:`blocking_store` runs it over an
  :class:`~apikeys.storage.AsyncKeyStore`.

The pytest plugin :mod:`apikeys.testing.plugin` is registered when apikeys is
installed: the fixtures ``apikeys_prefix``, ``key_manager``, ``key_manager_clock``
and ``issue_key`` need no import (see ``docs/testing.md``).

Never use :func:`test_hasher` in production: its Argon2 profile is deliberately
cheap, so it (and everything built on it) raises
:class:`~apikeys.ConfigurationError` outside a pytest run unless
``APIKEYS_ALLOW_TEST_HASHER=1`` is set (another test runner), and then logs a warning.
"""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from apikeys._manager import KeyManager
from apikeys.hashing import Argon2Hasher
from apikeys.storage import MemoryStore

if TYPE_CHECKING:
    from apikeys.testing._conformance import BlockingStore, StoreConformance, blocking_store
    from apikeys.testing.plugin import (
        apikeys_prefix,
        issue_key,
        key_manager,
        key_manager_clock,
    )

__all__ = [
    "BlockingStore",
    "ManualClock",
    "StoreConformance",
    "apikeys_prefix",
    "auth_headers",
    "blocking_store",
    "issue_key",
    "key_manager",
    "key_manager_clock",
    "make_manager",
    "test_hasher",
]

DEFAULT_PREFIX = "test"
"""The prefix of :func:`make_manager` and of the ``key_manager`` fixture by default."""

# Loaded on first use: these need pytest, the rest of this module must not.
_LAZY = {
    "BlockingStore": "apikeys.testing._conformance",
    "StoreConformance": "apikeys.testing._conformance",
    "blocking_store": "apikeys.testing._conformance",
    "apikeys_prefix": "apikeys.testing.plugin",
    "issue_key": "apikeys.testing.plugin",
    "key_manager": "apikeys.testing.plugin",
    "key_manager_clock": "apikeys.testing.plugin",
}


def __getattr__(name: str) -> Any:
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module 'apikeys.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class ManualClock:
    """A clock that starts at a fixed instant and moves only when told to.

    Pass it as ``KeyManager(..., clock=ManualClock())``; call :meth:`advance` to
    move time forward (expiry, grace periods) without sleeping.

    Args:
        start: The first instant (timezone-aware); default 2026-01-01 12:00 UTC.

    Raises:
        ValueError: ``start`` is naive.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
        if self.now.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by ``delta``."""
        self.now += delta

    def __repr__(self) -> str:
        return f"ManualClock({self.now.isoformat()})"


def test_hasher() -> Argon2Hasher:
    """A cheap Argon2id profile for tests (about 50 µs a hash). Not for production.

    Raises:
        ConfigurationError: Outside pytest without ``APIKEYS_ALLOW_TEST_HASHER=1``
            (see :meth:`Argon2Hasher.for_tests <apikeys.hashing.Argon2Hasher.for_tests>`).
    """
    return Argon2Hasher.for_tests()


test_hasher.__test__ = False  # type: ignore[attr-defined]  # not a test for pytest


def make_manager(prefix: str = DEFAULT_PREFIX, **kwargs: Any) -> KeyManager:
    """A KeyManager on a fresh MemoryStore with the cheap test hasher.

    Args:
        prefix: The prefix of the keys it issues (and accepts).
        **kwargs: Other arguments of :class:`~apikeys.KeyManager` (``store``,
            ``hasher`` and ``clock`` included).

    Raises:
        ConfigurationError: outside a pytest run without ``APIKEYS_ALLOW_TEST_HASHER=1``
            and no ``hasher`` given (see :func:`test_hasher`).
    """
    kwargs.setdefault("hasher", test_hasher())
    store = kwargs.pop("store", None) or MemoryStore()
    return KeyManager(store, prefix=prefix, **kwargs)


def auth_headers(plaintext: str, scheme: str = "Bearer") -> dict[str, str]:
    """``{"Authorization": "Bearer <key>"}`` for a test client.

    Args:
        plaintext: The key.
        scheme: The authorization scheme.
    """
    return {"Authorization": f"{scheme} {plaintext}"}
