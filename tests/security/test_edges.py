"""Edges issue 15 found, as properties: any string in, a typed error out, the same on
every store (item 1); the failed-secret throttle is no existence oracle and follows
the manager's clock (item 2); per-key limits are never silently ignored (item 10).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _tier import budget
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from apikeys import KeyManager
from apikeys.errors import (
    APIKeyError,
    AuthenticationError,
    ConfigurationError,
    InvalidArgument,
    RateLimited,
    TooManyFailures,
)
from apikeys.hashing import Argon2Hasher
from apikeys.storage import KeyStore, MemoryStore, SQLiteStore
from apikeys.testing import ManualClock
from core_support import unknown_key, with_wrong_secret

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)

# --- item 1: any string in, a typed error out, the same everywhere ------------------------

CALLS: dict[str, Callable[[KeyManager, str], Any]] = {
    "get": lambda k, s: k.get(s),
    "revoke": lambda k, s: k.revoke(s),
    "rotate": lambda k, s: k.rotate(s),
    "update": lambda k, s: k.update(s, name="n"),
    "suspend": lambda k, s: k.suspend(s),
    "enable": lambda k, s: k.enable(s),
    "purge": lambda k, s: k.purge(s),
    "list(owner)": lambda k, s: k.list(owner=s),
    "list(after)": lambda k, s: k.list(after=s),
    "create(owner)": lambda k, s: k.create(owner=s),
}


def outcomes(keys: KeyManager, text: str) -> dict[str, str]:
    """What each management call does with ``text``: ``ok`` or the error's class.

    Raises:
        AssertionError: a call raised something that is not an apikeys error.
    """
    seen: dict[str, str] = {}
    for name, call in CALLS.items():
        try:
            call(keys, text)
        except APIKeyError as exc:
            seen[name] = type(exc).__name__
        except Exception as exc:
            raise AssertionError(f"{name}({text!r}) raised {type(exc).__name__}") from exc
        else:
            seen[name] = "ok"
    return seen


@pytest.fixture(scope="module")
def reference() -> KeyManager:
    return KeyManager(MemoryStore(), prefix="acme", hasher=Argon2Hasher.for_tests())


@pytest.fixture(scope="module")
def sqlite_store() -> Iterator[KeyStore]:
    root = Path(tempfile.mkdtemp(prefix="apikeys-edges-"))
    store = SQLiteStore(root / "keys.db")
    yield store
    store.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_store(postgres_url: str) -> Iterator[KeyStore]:
    from apikeys.storage import SQLAlchemyStore

    store = SQLAlchemyStore(postgres_url)
    yield store
    store.close()


@pytest.mark.parametrize(
    "store_name",
    [
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
)
def test_any_string_gives_a_typed_error_the_same_on_every_store(
    store_name: str, reference: KeyManager, request: pytest.FixtureRequest
) -> None:
    store: KeyStore = (
        MemoryStore() if store_name == "memory" else request.getfixturevalue(f"{store_name}_store")
    )
    keys = KeyManager(store, prefix="acme", hasher=Argon2Hasher.for_tests())

    @settings(
        max_examples=budget(30, 300, 3000),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ANY_TEXT)
    @example("\ud800")
    @example("a\x00b")
    @example("\x00")
    def check(text: str) -> None:
        assert outcomes(keys, text) == outcomes(reference, text)

    check()


# --- item 2: the failed-secret throttle ---------------------------------------------------


def _throttled(limit: int = 3) -> tuple[KeyManager, ManualClock, str]:
    clock = ManualClock()
    keys = KeyManager(
        MemoryStore(),
        prefix="acme",
        hasher=Argon2Hasher.for_tests(),
        clock=clock,
        failure_limit=limit,
        failure_window=timedelta(minutes=1),
    )
    return keys, clock, keys.create(owner="o").plaintext


def _fail(keys: KeyManager, raw: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(AuthenticationError):
            keys.verify(raw)


def test_failures_on_a_known_id_pause_cold_checks_but_not_warm_holders() -> None:
    keys, _, plaintext = _throttled()
    warm = KeyManager(keys.store, prefix="acme", hasher=keys.hasher, failure_limit=3)
    warm.verify(plaintext)
    _fail(keys, with_wrong_secret(plaintext), 3)
    _fail(warm, with_wrong_secret(plaintext), 3)
    with pytest.raises(TooManyFailures):
        keys.verify(plaintext)
    assert warm.verify(plaintext).id  # proven here before: not locked out


def test_the_throttle_treats_unknown_ids_like_known_ones() -> None:
    """Otherwise 429-after-N tells an attacker which ids exist."""
    keys, _, plaintext = _throttled()
    codes = {}
    for name, raw in (("known", with_wrong_secret(plaintext)), ("unknown", unknown_key())):
        _fail(keys, raw, 3)
        with pytest.raises(APIKeyError) as info:
            keys.verify(raw)
        codes[name] = info.value.code
    assert codes == {"known": "too_many_failures", "unknown": "too_many_failures"}


def test_the_throttle_follows_the_managers_clock() -> None:
    keys, clock, plaintext = _throttled()
    _fail(keys, with_wrong_secret(plaintext), 3)
    with pytest.raises(TooManyFailures):
        keys.verify(plaintext)
    clock.advance(timedelta(minutes=1, seconds=1))
    assert keys.verify(plaintext).id


# --- item 10: limits that nobody enforces -------------------------------------------------


@pytest.mark.parametrize("limits", [{"rate_limits": ["5/hour"]}, {"quota": 5}])
def test_a_per_key_limit_is_enforced_or_refused_at_create(limits: dict[str, Any]) -> None:
    keys = KeyManager(MemoryStore(), prefix="acme", hasher=Argon2Hasher.for_tests())
    try:
        plaintext = keys.create(owner="o", **limits).plaintext
    except (ConfigurationError, InvalidArgument):
        return  # refused at create: fine
    for _ in range(5):
        keys.verify(plaintext)
    with pytest.raises(RateLimited):
        keys.verify(plaintext)
