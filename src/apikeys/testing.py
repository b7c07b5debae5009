"""Helpers and pytest fixtures for testing an application that uses apikeys.

Installed as a pytest plugin, so in a project with apikeys installed these
fixtures are available without any import:

- ``key_manager``: a :class:`~apikeys.KeyManager` on a fresh
  :class:`~apikeys.storage.MemoryStore`, with a cheap hasher and a
  :class:`ManualClock` (``key_manager_clock``).
- ``issue_key``: issue a key in one line and get its plaintext::

      def test_orders(client, issue_key):
          key = issue_key(scopes=["orders:read"])
          assert client.get("/orders", headers=auth_headers(key)).status_code == 200

Use :func:`make_manager` outside pytest fixtures. Never use :func:`test_hasher` in
production: its Argon2 profile is deliberately cheap, so it (and everything built on
it) raises :class:`~apikeys.ConfigurationError` outside a pytest run unless
``APIKEYS_ALLOW_TEST_HASHER=1`` is set (another test runner), and then logs a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from apikeys._manager import KeyManager
from apikeys.hashing import Argon2Hasher
from apikeys.storage import MemoryStore

__all__ = [
    "ManualClock",
    "auth_headers",
    "issue_key",
    "key_manager",
    "key_manager_clock",
    "make_manager",
    "test_hasher",
]


class ManualClock:
    """A clock that starts at a fixed instant and moves only when told to.

    Pass it as ``KeyManager(..., clock=ManualClock())``; call :meth:`advance` to
    move time forward (expiry, grace periods) without sleeping.
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


def make_manager(prefix: str = "test", **kwargs: Any) -> KeyManager:
    """A KeyManager on a fresh MemoryStore with the cheap test hasher.

    Keyword arguments are passed to :class:`~apikeys.KeyManager`.
    """
    kwargs.setdefault("hasher", test_hasher())
    store = kwargs.pop("store", None) or MemoryStore()
    return KeyManager(store, prefix=prefix, **kwargs)


def auth_headers(plaintext: str, scheme: str = "Bearer") -> dict[str, str]:
    """``{"Authorization": "Bearer <key>"}`` for a test client."""
    return {"Authorization": f"{scheme} {plaintext}"}


@pytest.fixture
def key_manager_clock() -> ManualClock:
    """The manual clock of the ``key_manager`` fixture."""
    return ManualClock()


@pytest.fixture
def key_manager(key_manager_clock: ManualClock) -> KeyManager:
    """A KeyManager (prefix ``test``) on a fresh MemoryStore, cheap hasher, manual clock."""
    return make_manager(clock=key_manager_clock)


@pytest.fixture
def issue_key(key_manager: KeyManager) -> Callable[..., str]:
    """A function issuing a key on ``key_manager`` and returning its plaintext.

    Its arguments are those of :meth:`KeyManager.create`; ``owner`` defaults to
    ``"test-owner"``.
    """

    def issue(*, owner: str = "test-owner", scopes: Iterable[str] = (), **kwargs: Any) -> str:
        return key_manager.create(owner=owner, scopes=scopes, **kwargs).plaintext

    return issue
