"""store_from_url / async_store_from_url and register_store."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apikeys.errors import ConfigurationError
from apikeys.storage import (
    AsyncSQLAlchemyStore,
    MemoryStore,
    SQLAlchemyStore,
    SQLiteStore,
    _registry,
    async_store_from_url,
    register_store,
    store_from_url,
)


@pytest.fixture
def restore_registry() -> Iterator[None]:
    sync, asynchronous = dict(_registry._STORES), dict(_registry._ASYNC_STORES)
    yield
    _registry._STORES.clear()
    _registry._STORES.update(sync)
    _registry._ASYNC_STORES.clear()
    _registry._ASYNC_STORES.update(asynchronous)


def test_memory() -> None:
    assert isinstance(store_from_url("memory://"), MemoryStore)
    with pytest.raises(ConfigurationError):
        store_from_url("memory:///some/path")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///keys.db", "keys.db"),
        ("sqlite:///sub/keys.db", "sub/keys.db"),
        ("sqlite:////abs/keys.db", "/abs/keys.db"),
        ("sqlite://", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_urls_open_a_sqlite_store(url: str, expected: str) -> None:
    store = store_from_url(url)
    assert isinstance(store, SQLiteStore)
    assert store.path == expected
    store.close()


def test_sqlite_url_creates_its_file_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = store_from_url("sqlite:///apikeys.db", timeout=1.0)
    assert not (tmp_path / "apikeys.db").exists()
    assert store.get("0000000000000000") is None
    store.close()
    assert (tmp_path / "apikeys.db").exists()


def test_sqlite_url_query_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="keyword options"):
        store_from_url("sqlite:///keys.db?timeout=3")


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite+pysqlite:///{tmp}/k.db", "pysqlite"),
        ("postgresql+psycopg://u@127.0.0.1/db", "psycopg"),
        ("postgresql://u@127.0.0.1/db", "psycopg"),
        ("postgres://u@127.0.0.1/db", "psycopg"),
        ("mysql+pymysql://u@127.0.0.1/db", "pymysql"),
        ("mysql://u@127.0.0.1/db", "pymysql"),
        ("mariadb://u@127.0.0.1/db", "pymysql"),
    ],
)
def test_sql_urls_open_a_sqlalchemy_store(url: str, driver: str, tmp_path: Path) -> None:
    store = store_from_url(url.format(tmp=tmp_path))
    assert isinstance(store, SQLAlchemyStore)
    assert store.engine.dialect.driver == driver
    store.close()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite+aiosqlite:///{tmp}/k.db", "aiosqlite"),
        ("sqlite:///{tmp}/k.db", "aiosqlite"),
        ("postgresql+psycopg://u@127.0.0.1/db", "psycopg"),
        ("postgresql+psycopg_async://u@127.0.0.1/db", "psycopg"),
        ("postgresql://u@127.0.0.1/db", "psycopg"),
        ("mysql+aiomysql://u@127.0.0.1/db", "aiomysql"),
        ("mysql://u@127.0.0.1/db", "aiomysql"),
        ("mariadb+aiomysql://u@127.0.0.1/db", "aiomysql"),
    ],
)
@pytest.mark.anyio
async def test_async_urls_open_an_async_store(url: str, driver: str, tmp_path: Path) -> None:
    store = async_store_from_url(url.format(tmp=tmp_path))
    assert isinstance(store, AsyncSQLAlchemyStore)
    assert store.engine.dialect.driver == driver
    assert store.engine.dialect.is_async
    await store.aclose()


def test_async_memory_url() -> None:
    assert isinstance(async_store_from_url("memory://"), MemoryStore)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "dynamodb://table", "ftp://x"])
def test_unknown_scheme_names_the_extras(url: str) -> None:
    for build in (store_from_url, async_store_from_url):
        with pytest.raises(ConfigurationError) as info:
            build(url)
        assert "pip install 'apikeys[postgres]'" in info.value.message
        assert "register_store" in info.value.message


@pytest.mark.parametrize("url", ["", "keys.db", "/var/keys.db", "memory"])
def test_not_a_url(url: str) -> None:
    with pytest.raises(ConfigurationError, match="scheme"):
        store_from_url(url)


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///k.db", "mysql+aiomysql://u@h/d", "postgresql+asyncpg://u@h/d"]
)
def test_async_url_for_a_sync_store_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="async_store_from_url"):
        store_from_url(url)


def test_sync_driver_for_an_async_store_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not an asyncio driver"):
        async_store_from_url("mysql+pymysql://u@127.0.0.1/db")


def test_missing_driver_names_the_extra() -> None:
    # psycopg2 and asyncpg are not installed: the SQLAlchemy URLs parse, the driver won't load.
    with pytest.raises(ConfigurationError) as info:
        store_from_url("postgresql+psycopg2://app:hunter2@127.0.0.1/db")
    assert "pip install 'apikeys[postgres]'" in info.value.message
    assert "hunter2" not in info.value.message
    with pytest.raises(ConfigurationError) as info:
        async_store_from_url("postgresql+asyncpg://app:hunter2@127.0.0.1/db")
    assert "pip install 'apikeys[postgres,asyncio]'" in info.value.message
    assert "hunter2" not in info.value.message


def test_missing_sqlalchemy_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "sqlalchemy" or m.startswith("sqlalchemy.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("apikeys.storage._sqlalchemy", "apikeys.storage._sqlalchemy_async"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # makes `import sqlalchemy` fail
    with pytest.raises(ConfigurationError, match=r"apikeys\[postgres\]"):
        store_from_url("postgresql+psycopg://u@127.0.0.1/db")
    with pytest.raises(ConfigurationError, match=r"apikeys\[mysql\]"):
        store_from_url("mysql+pymysql://u@127.0.0.1/db")
    with pytest.raises(ConfigurationError, match=r"apikeys\[asyncio\]"):
        async_store_from_url("sqlite+aiosqlite:///k.db")
    assert isinstance(store_from_url("sqlite:///:memory:"), SQLiteStore)


def test_malformed_sql_url_hides_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        store_from_url("postgresql+psycopg://app:hunter2@127.0.0.1:notaport/db")
    assert "hunter2" not in info.value.message


def test_repr_hides_the_password() -> None:
    store = store_from_url("postgresql+psycopg://app:hunter2@127.0.0.1/db")
    assert "hunter2" not in repr(store)
    store.close()


class _ThirdPartyStore(MemoryStore):
    def __init__(self, url: str, **options: Any) -> None:
        super().__init__()
        self.url, self.options = url, options


def test_register_store(restore_registry: None) -> None:
    register_store("thirdparty", _ThirdPartyStore)
    store = store_from_url("thirdparty://somewhere/db", region="eu")
    assert isinstance(store, _ThirdPartyStore)
    assert (store.url, store.options) == ("thirdparty://somewhere/db", {"region": "eu"})
    with pytest.raises(ConfigurationError):
        async_store_from_url("thirdparty://somewhere/db")
    register_store("ThirdParty", _ThirdPartyStore, asynchronous=True)
    assert isinstance(async_store_from_url("THIRDPARTY://x"), _ThirdPartyStore)


def test_register_store_can_replace_a_builtin_scheme(restore_registry: None) -> None:
    register_store("sqlite", _ThirdPartyStore)
    assert isinstance(store_from_url("sqlite:///k.db"), _ThirdPartyStore)


@pytest.mark.parametrize("scheme", ["", "a://", "a:b", "a/b"])
def test_register_store_refuses_bad_schemes(scheme: str) -> None:
    with pytest.raises(ConfigurationError):
        register_store(scheme, _ThirdPartyStore)


def test_register_store_refuses_a_non_callable() -> None:
    with pytest.raises(ConfigurationError):
        register_store("x", "not callable")  # type: ignore[arg-type]
