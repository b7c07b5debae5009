"""AsyncSQLAlchemyStore specifics: cancellation never leaves half a write, and
AsyncKeyManager runs on every async store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from conformance import NOW, bumped, record

from apikeys import AsyncKeyManager, AuthenticationError, KeyRecord
from apikeys.storage import AsyncSQLAlchemyStore, SQLAlchemyStore
from apikeys.testing import ManualClock, test_hasher

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def async_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    if request.param == "postgres":
        return str(request.getfixturevalue("pg"))
    url = str(request.getfixturevalue("mariadb"))
    return url.replace("mysql+pymysql://", "mysql+aiomysql://")


@pytest.fixture
async def store(async_url: str) -> AsyncIterator[AsyncSQLAlchemyStore]:
    store = AsyncSQLAlchemyStore(async_url)
    yield store
    await store.aclose()


def committed(url: str, key_id: str) -> KeyRecord | None:
    """What another process would read: a fresh synchronous engine."""
    sync_url = url.replace("+aiosqlite", "+pysqlite").replace("+aiomysql", "+pymysql")
    other = SQLAlchemyStore(sync_url, auto_create=False)
    try:
        return other.get(key_id)
    finally:
        other.close()


async def test_a_cancelled_write_lands_whole_or_not_at_all(
    store: AsyncSQLAlchemyStore, async_url: str
) -> None:
    landed = cancelled = 0
    for steps in range(0, 400, 3):
        old = record()
        await store.awrite(insert=[old])
        successor = record(replaces=old.id)
        ended = bumped(old, replaced_by=successor.id, expires_at=NOW)
        task = asyncio.create_task(store.awrite(insert=[successor], update=[ended]))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            cancelled += 1
        got_old, got_new = await store.aget(old.id), await store.aget(successor.id)
        if got_new is None:
            assert got_old == old
        else:
            assert (got_old, got_new) == (ended, successor)
            landed += 1
        # Another connection sees the same committed state.
        assert committed(async_url, successor.id) == got_new
        assert committed(async_url, old.id) == got_old
        if landed >= 3 and cancelled >= 3:
            break
    assert cancelled >= 1
    assert landed >= 1
    # The pool was left clean: the store keeps working normally.
    rec = record()
    await store.awrite(insert=[rec])
    assert await store.aget(rec.id) == rec


async def test_a_cancelled_rotation_leaves_no_half_state(
    store: AsyncSQLAlchemyStore, async_url: str
) -> None:
    keys = AsyncKeyManager(store, prefix="acme", hasher=test_hasher(), clock=ManualClock(NOW))
    outcomes = set()
    for steps in range(0, 600, 5):
        issued = await keys.create(owner="o")
        task = asyncio.create_task(keys.rotate(issued.key.id, grace=timedelta(0)))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        try:
            successor = await task
        except asyncio.CancelledError:
            successor = None
        old = await keys.get(issued.key.id)
        successors = [k for k in await keys.list(owner="o") if k.replaces == issued.key.id]
        if old.replaced_by is None:
            assert successors == []
            assert (await keys.verify(issued.plaintext)).id == issued.key.id
            outcomes.add("nothing")
        else:
            assert [k.id for k in successors] == [old.replaced_by]
            with pytest.raises(AuthenticationError):
                await keys.verify(issued.plaintext)
            outcomes.add("rotated")
            if successor is not None:
                assert (await keys.verify(successor.plaintext)).id == old.replaced_by
        if outcomes == {"nothing", "rotated"}:
            break
    assert outcomes == {"nothing", "rotated"}


async def test_create_schema_and_lifecycle(store: AsyncSQLAlchemyStore) -> None:
    await store.acreate_schema()
    keys = AsyncKeyManager(store, prefix="acme", hasher=test_hasher(), clock=ManualClock(NOW))
    issued = await keys.create(owner="o", scopes=["a:b"])
    assert (await keys.verify(issued.plaintext, scopes=["a:b"])).id == issued.key.id
    await keys.revoke(issued.key.id)
    with pytest.raises(AuthenticationError):
        await keys.verify(issued.plaintext)
    assert "AsyncSQLAlchemyStore(" in repr(store)


async def test_an_existing_async_engine_is_left_open(tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    async with AsyncSQLAlchemyStore(engine) as store:
        await store.awrite(insert=[record()])
    assert store.engine is engine
    async with AsyncSQLAlchemyStore(engine) as again:
        assert len(await again.alist(now=NOW)) == 1
    await engine.dispose()
