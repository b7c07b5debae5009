"""The sync/async twins cannot drift: same public methods, same parameters (kinds,
defaults, annotations modulo the Async names), awaitable where they do I/O."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest

from apikeys import AsyncKeyManager, AsyncRateLimiter, KeyManager, RateLimiter
from apikeys.hashing import Argon2Hasher
from apikeys.storage import (
    AsyncKeyStore,
    AsyncSupportsTouch,
    KeyStore,
    MemoryStore,
    SupportsTouch,
)

# The only naming differences between the managers.
MANAGER_RENAMES = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
# Documented as plain calls on AsyncKeyManager too: they do no I/O.
NO_IO = {
    "authorize",
    "is_authorized",
    "record_request",
    "report_exposed",
    "now",
    "add_sink",
    "from_url",
    "from_settings",
}
# Annotation spellings that differ between twins, sync -> async.
TYPE_RENAMES = {
    "KeyStore": "AsyncKeyStore",
    "SupportsTouch": "AsyncSupportsTouch",
    "RateLimiter": "AsyncRateLimiter",
    "KeyManager": "AsyncKeyManager",
}
DUNDERS = {"__init__", "__enter__", "__exit__", "__aenter__", "__aexit__"}


def public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: getattr(cls, name)
        for name in dir(cls)
        if (not name.startswith("_") or name in DUNDERS) and callable(getattr(cls, name))
    }


def translate(annotation: object) -> str:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    for sync, async_ in TYPE_RENAMES.items():
        text = _replace_word(text, sync, async_)
    return text


def _replace_word(text: str, old: str, new: str) -> str:
    return re.sub(rf"(?<![A-Za-z_]){re.escape(old)}(?![A-Za-z_])", new, text)


def shape(func: Callable[..., Any], *, rename_types: bool) -> list[tuple[str, Any, Any, str]]:
    signature = inspect.signature(func)
    params = [
        (
            p.name,
            p.kind,
            p.default,
            translate(p.annotation) if rename_types else str(p.annotation),
        )
        for p in signature.parameters.values()
    ]
    returns = signature.return_annotation
    params.append(("return", None, None, translate(returns) if rename_types else str(returns)))
    return params


def test_managers_have_the_same_public_methods() -> None:
    sync = public_methods(KeyManager)
    async_ = public_methods(AsyncKeyManager)
    expected = {MANAGER_RENAMES.get(name, name) for name in sync}
    assert set(async_) == expected
    assert set(sync) >= {
        "verify",
        "authenticate",
        "authorize",
        "is_authorized",
        "create",
        "get",
        "list",
        "update",
        "revoke",
        "suspend",
        "enable",
        "rotate",
        "purge",
        "close",
        "now",
        "add_sink",
        "record_request",
        "report_exposed",
    }


@pytest.mark.parametrize("name", sorted(public_methods(KeyManager)))
def test_manager_twins_have_the_same_signature(name: str) -> None:
    sync = getattr(KeyManager, name)
    async_ = getattr(AsyncKeyManager, MANAGER_RENAMES.get(name, name))
    assert shape(async_, rename_types=True) == shape(sync, rename_types=True)


@pytest.mark.parametrize("name", sorted(public_methods(AsyncKeyManager)))
def test_async_manager_awaits_everything_that_does_io(name: str) -> None:
    method = getattr(AsyncKeyManager, name)
    if name in NO_IO or name == "__init__":
        assert not inspect.iscoroutinefunction(method)
    else:
        assert inspect.iscoroutinefunction(method), f"AsyncKeyManager.{name} must be async"


@pytest.mark.parametrize("name", sorted(public_methods(KeyManager)))
def test_sync_manager_awaits_nothing(name: str) -> None:
    assert not inspect.iscoroutinefunction(getattr(KeyManager, name))


def test_managers_have_the_same_public_attributes() -> None:
    store = MemoryStore()
    hasher = Argon2Hasher.for_tests()
    sync = KeyManager(store, prefix="acme", hasher=hasher)
    async_ = AsyncKeyManager(store, prefix="acme", hasher=hasher)
    public = {n for n in vars(sync) if not n.startswith("_")}
    assert public == {n for n in vars(async_) if not n.startswith("_")}
    assert public >= {"prefix", "prefixes", "hasher", "store", "rate_limiter", "touch_interval"}


def test_public_methods_are_documented() -> None:
    for cls in (KeyManager, AsyncKeyManager):
        for name, method in public_methods(cls).items():
            if name.startswith("_"):
                continue
            assert inspect.getdoc(method), f"{cls.__name__}.{name} has no docstring"


def protocol_methods(proto: type) -> dict[str, Callable[..., Any]]:
    return {
        name: value
        for name, value in vars(proto).items()
        if not name.startswith("_") and callable(value)
    }


PROTOCOL_PAIRS = [
    (KeyStore, AsyncKeyStore),
    (SupportsTouch, AsyncSupportsTouch),
    (RateLimiter, AsyncRateLimiter),
]


@pytest.mark.parametrize(
    ("sync", "async_"), PROTOCOL_PAIRS, ids=[p[0].__name__ for p in PROTOCOL_PAIRS]
)
def test_protocol_twins(sync: type, async_: type) -> None:
    sync_methods = protocol_methods(sync)
    async_methods = protocol_methods(async_)
    assert sync_methods, sync
    assert set(async_methods) == {"a" + name for name in sync_methods}
    for name, method in sync_methods.items():
        twin = async_methods["a" + name]
        assert not inspect.iscoroutinefunction(method)
        assert inspect.iscoroutinefunction(twin), f"{async_.__name__}.a{name} must be async"
        assert shape(twin, rename_types=False) == shape(method, rename_types=False), name


def test_store_protocol_covers_the_documented_operations() -> None:
    assert set(protocol_methods(KeyStore)) == {"get", "write", "list", "purge", "close"}
    assert set(protocol_methods(SupportsTouch)) == {"touch"}


def test_memory_store_implements_both_protocols_with_twin_signatures() -> None:
    store = MemoryStore()
    for proto in (KeyStore, AsyncKeyStore, SupportsTouch, AsyncSupportsTouch):
        assert isinstance(store, proto)
    for sync, _ in PROTOCOL_PAIRS[:2]:
        for name in protocol_methods(sync):
            plain = inspect.signature(getattr(MemoryStore, name))
            awaitable = inspect.signature(getattr(MemoryStore, "a" + name))
            assert [(p.name, p.kind, p.default) for p in plain.parameters.values()] == [
                (p.name, p.kind, p.default) for p in awaitable.parameters.values()
            ], name
            assert inspect.iscoroutinefunction(getattr(MemoryStore, "a" + name))


def test_records_sit_together_and_old_paths_still_import() -> None:
    import apikeys
    import apikeys._hooks
    import apikeys._models
    import apikeys.monitoring

    assert apikeys._hooks.Verification is apikeys._models.Verification is apikeys.Verification
    assert apikeys._hooks.RateLimitStatus is apikeys._models.RateLimitStatus
    assert apikeys.IssuancePolicy is apikeys.monitoring.IssuancePolicy


@pytest.mark.parametrize(
    ("generated", "source"),
    [
        ("apikeys._manager", "src/apikeys/_async.py"),
        ("apikeys.monitoring._monitor", "src/apikeys/monitoring/_async_monitor.py"),
    ],
)
def test_sync_twins_are_generated_not_kept_by_hand(generated: str, source: str) -> None:
    import importlib
    import inspect as inspect_

    text = inspect_.getsource(importlib.import_module(generated))
    assert text.startswith(f"# GENERATED from {source}\n")
    assert "async def" not in text
    assert "await " not in text
    assert "asyncio" not in text
