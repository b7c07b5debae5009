"""A failing store fails closed: StorageError (503), never "invalid key", and never
a half-written rotation."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy
from conformance import NOW

from apikeys import (
    AsyncKeyManager,
    AuthenticationError,
    IssuedKey,
    KeyManager,
    KeyRecord,
    StorageError,
)
from apikeys.storage import (
    AsyncSQLAlchemyStore,
    KeyStore,
    MemoryStore,
    SQLAlchemyStore,
    SQLiteStore,
    store_from_url,
)
from apikeys.testing import ManualClock, test_hasher


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def foreign_key() -> IssuedKey:
    """A well-formed key, issued elsewhere: only a working store could judge it."""
    return KeyManager(MemoryStore(), prefix="acme", hasher=test_hasher()).create(owner="o")


def manager(store: KeyStore) -> KeyManager:
    return KeyManager(store, prefix="acme", hasher=test_hasher(), clock=ManualClock(NOW))


def assert_fails_closed(store: KeyStore, issued: IssuedKey) -> None:
    keys = manager(store)
    for call in (
        lambda: keys.verify(issued.plaintext),
        lambda: keys.create(owner="o"),
        lambda: keys.get(issued.key.id),
        lambda: keys.list(),
        lambda: keys.revoke(issued.key.id),
        lambda: keys.rotate(issued.key.id),
        lambda: keys.purge(issued.key.id),
    ):
        with pytest.raises(StorageError) as info:
            call()
        assert not isinstance(info.value, AuthenticationError)
        assert info.value.status == 503
        assert info.value.__cause__ is not None
        assert issued.plaintext not in str(info.value)
    store.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres:hunter2@127.0.0.1:{port}/test",
        "mysql+pymysql://root:hunter2@127.0.0.1:{port}/test",
        "mariadb+pymysql://root:hunter2@127.0.0.1:{port}/test",
    ],
)
def test_unreachable_database_is_a_storage_error(
    url: str, closed_port: int, foreign_key: IssuedKey
) -> None:
    store = store_from_url(url.format(port=closed_port))
    with pytest.raises(StorageError) as info:
        store.get(foreign_key.key.id)
    assert "hunter2" not in str(info.value)
    assert_fails_closed(store, foreign_key)


@pytest.mark.parametrize("where", ["missing-dir/keys.db", "."])
def test_unopenable_sqlite_file_is_a_storage_error(
    where: str, tmp_path: Path, foreign_key: IssuedKey
) -> None:
    assert_fails_closed(SQLiteStore(tmp_path / where), foreign_key)


def test_unopenable_sqlalchemy_sqlite_file_is_a_storage_error(
    tmp_path: Path, foreign_key: IssuedKey
) -> None:
    store = SQLAlchemyStore(f"sqlite+pysqlite:///{tmp_path}/missing-dir/keys.db")
    assert_fails_closed(store, foreign_key)


def test_corrupt_sqlite_file_is_a_storage_error(tmp_path: Path, foreign_key: IssuedKey) -> None:
    path = tmp_path / "keys.db"
    path.write_bytes(b"this is not a database " * 100)
    assert_fails_closed(SQLiteStore(path), foreign_key)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:{port}/test",
        "mysql+aiomysql://root@127.0.0.1:{port}/test",
    ],
)
@pytest.mark.anyio
async def test_unreachable_database_is_a_storage_error_async(
    url: str, closed_port: int, foreign_key: IssuedKey
) -> None:
    store = AsyncSQLAlchemyStore(url.format(port=closed_port))
    keys = AsyncKeyManager(store, prefix="acme", hasher=test_hasher())
    try:
        with pytest.raises(StorageError) as info:
            await keys.verify(foreign_key.plaintext)
        assert not isinstance(info.value, AuthenticationError)
        with pytest.raises(StorageError):
            await keys.create(owner="o")
    finally:
        await keys.aclose()


@pytest.mark.postgres
def test_connections_killed_mid_run_fail_closed_then_recover(pg: str) -> None:
    store = SQLAlchemyStore(
        pg, engine_options={"connect_args": {"application_name": "apikeys_victim"}}
    )
    keys = manager(store)
    issued = keys.create(owner="o")
    assert keys.verify(issued.plaintext).id == issued.key.id
    admin = sqlalchemy.create_engine(pg)
    with admin.connect() as conn:
        killed = conn.execute(
            sqlalchemy.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'apikeys_victim'"
            )
        ).scalar()
    admin.dispose()
    assert killed is not None
    assert killed >= 1
    with pytest.raises(StorageError) as info:
        keys.verify(issued.plaintext)
    assert not isinstance(info.value, AuthenticationError)
    assert keys.verify(issued.plaintext).id == issued.key.id
    keys.close()


# --- fault injection during rotate ------------------------------------------------------


class FailingWrites:
    """A store that passes everything through, except that writes matching
    ``when`` raise StorageError (as a driver failure would) before landing."""

    def __init__(
        self, inner: KeyStore, when: Callable[[Sequence[KeyRecord], Sequence[KeyRecord]], bool]
    ):
        self.inner = inner
        self.when = when
        self.get = inner.get
        self.list = inner.list
        self.purge = inner.purge
        self.close = inner.close

    def write(self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()) -> None:
        if self.when(insert, update):
            raise StorageError("injected failure")
        self.inner.write(insert=insert, update=update)


def assert_rotation_left_no_trace(keys: KeyManager, issued: IssuedKey, store: KeyStore) -> None:
    assert keys.verify(issued.plaintext).id == issued.key.id
    record = store.get(issued.key.id)
    assert record is not None
    assert record.key.replaced_by is None
    assert record.key.expires_at is None
    assert record.version == issued.key.version
    assert [r.id for r in store.list(now=NOW)] == [issued.key.id]


def test_a_store_raising_during_rotate_leaves_the_old_key_working() -> None:
    inner = MemoryStore()
    store = FailingWrites(inner, lambda insert, update: bool(insert and update))
    keys = manager(store)  # type: ignore[arg-type]
    issued = keys.create(owner="o")
    with pytest.raises(StorageError):
        keys.rotate(issued.key.id, grace=timedelta(hours=1))
    assert_rotation_left_no_trace(keys, issued, inner)
    assert len(inner) == 1


def _sqlite_trigger(conn: sqlalchemy.Connection) -> None:
    conn.execute(
        sqlalchemy.text(
            "CREATE TRIGGER fail_updates BEFORE UPDATE ON apikeys_keys "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
    )


def _pg_trigger(conn: sqlalchemy.Connection) -> None:
    conn.execute(
        sqlalchemy.text(
            "CREATE OR REPLACE FUNCTION apikeys_test_fail() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql"
        )
    )
    conn.execute(
        sqlalchemy.text(
            "CREATE TRIGGER fail_updates BEFORE UPDATE ON apikeys_keys "
            "FOR EACH ROW EXECUTE FUNCTION apikeys_test_fail()"
        )
    )


def _mariadb_trigger(conn: sqlalchemy.Connection) -> None:
    conn.execute(
        sqlalchemy.text(
            "CREATE TRIGGER fail_updates BEFORE UPDATE ON apikeys_keys FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'"
        )
    )


@pytest.fixture
def db_with_failing_updates(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Callable[[], KeyStore], Callable[[], None]]]:
    """A store whose database fails every UPDATE (a real trigger), once armed.

    The successor's INSERT runs first and succeeds, so only a real transaction
    rollback keeps it out of the table.
    """
    kind = request.param
    if kind in ("sqlite", "sqlalchemy-sqlite"):
        path = tmp_path / "keys.db"
        url = f"sqlite+pysqlite:///{path}"
        arm = _sqlite_trigger
        make: Callable[[], KeyStore] = (
            (lambda: SQLiteStore(path)) if kind == "sqlite" else (lambda: SQLAlchemyStore(url))
        )
    elif kind == "postgres":
        url = request.getfixturevalue("pg")
        arm = _pg_trigger
        make = lambda: SQLAlchemyStore(url)  # noqa: E731
    else:
        url = request.getfixturevalue("mariadb")
        arm = _mariadb_trigger
        make = lambda: SQLAlchemyStore(url)  # noqa: E731
    engine = sqlalchemy.create_engine(url)

    def armed() -> None:
        with engine.begin() as conn:
            arm(conn)

    try:
        yield make, armed
    finally:
        with engine.begin() as conn:
            conn.execute(
                sqlalchemy.text(
                    "DROP TRIGGER IF EXISTS fail_updates"
                    + (" ON apikeys_keys" if kind == "postgres" else "")
                )
            )
        engine.dispose()


@pytest.mark.parametrize(
    "db_with_failing_updates",
    [
        "sqlite",
        "sqlalchemy-sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
    indirect=True,
)
def test_database_failing_mid_rotate_leaves_no_orphaned_successor(
    db_with_failing_updates: tuple[Callable[[], KeyStore], Callable[[], None]],
) -> None:
    make, arm = db_with_failing_updates
    store = make()
    keys = manager(store)
    issued = keys.create(owner="o", scopes=["a:b"])
    arm()
    with pytest.raises(StorageError) as info:
        keys.rotate(issued.key.id, grace=timedelta(0))
    assert "injected failure" in str(info.value.__cause__)
    assert_rotation_left_no_trace(keys, issued, store)
    store.close()
