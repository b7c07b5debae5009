"""Any string in, typed error out (issue 15.1): every public manager call given
hostile text (lone surrogates, NUL, control characters, line breaks, over-long
values) raises only ``apikeys.errors``, the same error on every store, and asks no
store about text that cannot be an id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apikeys import APIKeyError, InvalidArgument, KeyManager, KeyNotFound
from apikeys.storage import KeyStore, MemoryStore, SQLAlchemyStore, SQLiteStore
from apikeys.testing import ManualClock, test_hasher

HOSTILE = [
    "\ud800",
    "a\udfffb",
    "\x00",
    "abc\x00def",
    "\x1b[31m",
    "line\nbreak",
    "cr\rlf",
    "\u2028",
    "\x7f",
    "x" * 10_000,
    "",
]
# Printable text that is not a key id: no store could hold it.
NOT_AN_ID = ["nope", "acme_" + "A" * 54, "é" * 16, "A" * 15, "A" * 17, "🔑" * 16]


class Spy:
    """Counts store reads, to prove bad arguments are refused before any I/O."""

    def __init__(self, inner: KeyStore) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in {"get", "write", "list", "purge"}:

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls += 1
                return attr(*args, **kwargs)

            return counted
        return attr


def _memory(tmp_path: Path, request: pytest.FixtureRequest) -> KeyStore:
    return MemoryStore()


def _sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> KeyStore:
    return SQLiteStore(tmp_path / "keys.db")


def _sqlalchemy_sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> KeyStore:
    return SQLAlchemyStore(f"sqlite+pysqlite:///{tmp_path / 'sa.db'}")


def _postgres(tmp_path: Path, request: pytest.FixtureRequest) -> KeyStore:
    return SQLAlchemyStore(request.getfixturevalue("pg"))


def _mariadb(tmp_path: Path, request: pytest.FixtureRequest) -> KeyStore:
    return SQLAlchemyStore(request.getfixturevalue("mariadb"))


STORES: dict[str, Callable[[Path, pytest.FixtureRequest], KeyStore]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "sqlalchemy-sqlite": _sqlalchemy_sqlite,
    "postgres": _postgres,
    "mariadb": _mariadb,
}


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        "sqlalchemy-sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def keys(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyManager]:
    store = STORES[request.param](tmp_path, request)
    manager = KeyManager(store, prefix="acme", hasher=test_hasher(), clock=ManualClock())
    yield manager
    manager.close()


def calls_with_id(keys: KeyManager, value: str) -> list[Callable[[], object]]:
    return [
        lambda: keys.get(value),
        lambda: keys.revoke(value),
        lambda: keys.revoke(value, reason="r"),
        lambda: keys.suspend(value),
        lambda: keys.enable(value),
        lambda: keys.rotate(value),
        lambda: keys.update(value, name="n"),
        lambda: keys.purge(value),
    ]


def text_calls(keys: KeyManager, key_id: str, value: str) -> list[Callable[[], object]]:
    """Calls where ``value`` is text that names or labels something: a store sees it."""
    return [
        lambda: keys.create(owner=value),
        lambda: keys.create(owner="team", name=value),
        lambda: keys.create(owner="team", scopes=[value]),
        lambda: keys.create(owner="team", rate_limits=[value]),
        lambda: keys.create(owner="team", quota=value),
        lambda: keys.create(owner="team", allowed_ips=[value]),
        lambda: keys.list(owner=value),
        lambda: keys.list(state=value),
        lambda: keys.list(after=value),
        lambda: keys.update(key_id, name=value),
        lambda: keys.revoke(key_id, reason=value),
        lambda: keys.suspend(key_id, reason=value),
    ]


def data_calls(keys: KeyManager, key_id: str, value: str) -> list[Callable[[], object]]:
    """Calls where ``value`` is application JSON data: escaped control characters
    are valid there, but a lone surrogate or NUL must still be refused up front."""
    return [
        lambda: keys.create(owner="team", metadata={"note": value}),
        lambda: keys.create(owner="team", metadata={value: 1}),
        lambda: keys.update(key_id, metadata={"k": value}),
    ]


def only_typed_errors(call: Callable[[], object]) -> APIKeyError | None:
    try:
        call()
    except APIKeyError as exc:
        return exc
    return None


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_ids_are_invalid_arguments_before_any_io(keys: KeyManager, value: str) -> None:
    spy = Spy(keys.store)
    keys.store = spy  # type: ignore[assignment]  # the spy forwards every call
    for call in calls_with_id(keys, value):
        with pytest.raises(InvalidArgument):
            call()
    assert spy.calls == 0


@pytest.mark.parametrize("value", NOT_AN_ID, ids=repr)
def test_printable_non_ids_name_no_key_on_every_store(keys: KeyManager, value: str) -> None:
    spy = Spy(keys.store)
    keys.store = spy  # type: ignore[assignment]
    for call in calls_with_id(keys, value)[:-1]:
        with pytest.raises(KeyNotFound):
            call()
    assert keys.purge(value) is False
    assert spy.calls == 0


def test_a_well_formed_absent_id_is_key_not_found(keys: KeyManager) -> None:
    absent = "B" * 16
    for call in calls_with_id(keys, absent)[:-1]:
        with pytest.raises(KeyNotFound):
            call()
    assert keys.purge(absent) is False


@pytest.mark.parametrize("value", HOSTILE[:-2], ids=repr)
def test_hostile_text_arguments_raise_typed_errors(keys: KeyManager, value: str) -> None:
    issued = keys.create(owner="team")
    for call in text_calls(keys, issued.key.id, value):
        assert isinstance(only_typed_errors(call), InvalidArgument), call
    # Nothing half-written: the one good key is all the store holds, unchanged.
    assert [k.id for k in keys.list()] == [issued.key.id]
    assert keys.get(issued.key.id) == issued.key


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "\x00", "abc\x00def"], ids=repr)
def test_metadata_refuses_surrogates_and_nul(keys: KeyManager, value: str) -> None:
    issued = keys.create(owner="team")
    for call in data_calls(keys, issued.key.id, value):
        assert isinstance(only_typed_errors(call), InvalidArgument), call
    assert [k.id for k in keys.list()] == [issued.key.id]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=st.text())
def test_any_text_gives_a_typed_error_or_a_result(keys: KeyManager, value: str) -> None:
    issued = keys.create(owner="team", expires_in=timedelta(days=1))
    calls = [
        *calls_with_id(keys, value),
        *text_calls(keys, issued.key.id, value),
        *data_calls(keys, issued.key.id, value),
    ]
    for call in calls:
        only_typed_errors(call)  # anything but an apikeys error propagates and fails
    for key in keys.list(limit=10_000):
        keys.purge(key.id)
