"""The pytest plugin of apikeys (entry point ``pytest11``: registered when apikeys
is installed): fixtures for testing an app, framework-free.

- ``apikeys_prefix``: the prefix of ``key_manager``'s keys, from the ini option
  ``apikeys_prefix`` (default ``test``); override the fixture in a
  ``conftest.py`` (or set the ini option) when your app accepts another prefix.
- ``key_manager_clock``: the :class:`~apikeys.testing.ManualClock` of ``key_manager``.
- ``key_manager``: a :class:`~apikeys.KeyManager` on a fresh
  :class:`~apikeys.storage.MemoryStore`, cheap hasher, that clock.
- ``issue_key``: issue a key on ``key_manager`` in one line, get its plaintext.

Connecting ``key_manager`` to your app is one small fixture per framework
(``docs/testing.md`` has the recipes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from apikeys._manager import KeyManager
from apikeys.testing import DEFAULT_PREFIX, ManualClock, make_manager

__all__ = ["apikeys_prefix", "issue_key", "key_manager", "key_manager_clock"]

PREFIX_OPTION = "apikeys_prefix"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the ``apikeys_prefix`` ini option."""
    parser.addini(
        PREFIX_OPTION,
        "prefix of the keys the apikeys key_manager fixture issues",
        default=DEFAULT_PREFIX,
    )


@pytest.fixture
def apikeys_prefix(pytestconfig: pytest.Config) -> str:
    """The prefix of ``key_manager``'s keys: the ``apikeys_prefix`` ini option
    (``test`` unless set). Override this fixture for a prefix per folder or test."""
    return str(pytestconfig.getini(PREFIX_OPTION))


@pytest.fixture
def key_manager_clock() -> ManualClock:
    """The manual clock of the ``key_manager`` fixture."""
    return ManualClock()


@pytest.fixture
def key_manager(apikeys_prefix: str, key_manager_clock: ManualClock) -> KeyManager:
    """A KeyManager (prefix ``apikeys_prefix``) on a fresh MemoryStore, cheap hasher,
    manual clock."""
    return make_manager(apikeys_prefix, clock=key_manager_clock)


@pytest.fixture
def issue_key(key_manager: KeyManager) -> Callable[..., str]:
    """A function issuing a key on ``key_manager`` and returning its plaintext.

    Its arguments are those of :meth:`KeyManager.create`; ``owner`` defaults to
    ``"test-owner"``.
    """

    def issue(*, owner: str = "test-owner", scopes: Iterable[str] = (), **kwargs: Any) -> str:
        return key_manager.create(owner=owner, scopes=scopes, **kwargs).plaintext

    return issue
