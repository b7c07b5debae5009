"""DjangoStore: the shared conformance suite, sync and async, on SQLite and
PostgreSQL (real databases), plus what is particular to the ORM: the error seam, a
naive-datetime database (``USE_TZ = False``), byte-wise ids on PostgreSQL, a revoke
racing a rotation, and the async twins directly."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone

import pytest
from django.db import Error as DjangoDatabaseError
from django.db import connections
from django.test import override_settings

from apikeys import KeyManager
from apikeys._models import KeyRecord, KeyState
from apikeys.django.models import APIKeyRecord
from apikeys.django.store import DjangoStore
from apikeys.errors import ConfigurationError, StorageError
from apikeys.hashing import Argon2Hasher
from apikeys.storage import AsyncKeyStore, AsyncSupportsTouch, KeyStore, SupportsTouch
from apikeys.testing import ManualClock, StoreConformance, blocking_store
from storage.conformance import NOW, record


class ThreadTidyStore(DjangoStore):
    """A DjangoStore whose writes from worker threads close that thread's connection
    after them, as Django does at the end of a request. The suite races writers in
    threads that end without closing theirs; psycopg warns about connections left
    open (``ResourceWarning``), which this suite treats as an error."""

    def write(self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()) -> None:
        try:
            super().write(insert=insert, update=update)
        finally:
            if threading.current_thread() is not threading.main_thread():
                self.close()


class TestDjangoStoreConformance(StoreConformance):
    @pytest.fixture
    def store(self, db_alias: str) -> Iterator[DjangoStore]:
        store = ThreadTidyStore(db_alias)
        yield store
        store.close()


class TestAsyncDjangoStoreConformance(StoreConformance):
    """The awaitable methods, driven on an event loop in a worker thread."""

    @pytest.fixture
    def store(self, db_alias: str) -> Iterator[KeyStore]:
        with blocking_store(lambda: DjangoStore(db_alias)) as store:
            yield store


@pytest.fixture
def store(db_alias: str) -> Iterator[DjangoStore]:
    """A fresh, empty store (the ``db_alias`` fixture empties the table)."""
    store = DjangoStore(db_alias)
    yield store
    store.close()


# --- the contract -----------------------------------------------------------------------


def test_it_implements_every_store_protocol(store: DjangoStore) -> None:
    for protocol in (KeyStore, SupportsTouch, AsyncKeyStore, AsyncSupportsTouch):
        assert isinstance(store, protocol)


# --- the ORM's particulars -------------------------------------------------------------


def test_database_errors_become_storage_errors_at_one_seam() -> None:
    down = DjangoStore("down")
    calls = [
        lambda: down.get("aaaaaaaaaaaaaaaa"),
        lambda: down.write(insert=[record("aaaaaaaaaaaaaaaa")]),
        lambda: down.list(now=NOW),
        lambda: down.purge("aaaaaaaaaaaaaaaa"),
        lambda: down.touch("aaaaaaaaaaaaaaaa", at=NOW, ip=None),
    ]
    for call in calls:
        with pytest.raises(StorageError) as caught:
            call()
        assert type(caught.value) is StorageError
        assert isinstance(caught.value.__cause__, DjangoDatabaseError)


def test_an_unknown_alias_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        DjangoStore("nowhere")


def test_a_database_without_time_zones_keeps_utc() -> None:
    APIKeyRecord.objects.using("default").all().delete()
    store = DjangoStore("default")  # SQLite stores what it is given: naive values here
    paris = timezone(timedelta(hours=1))
    aware = record("aaaaaaaaaaaaaaaa", expires_at=datetime(2026, 6, 1, 9, 0, tzinfo=paris))
    with override_settings(USE_TZ=False):
        store.write(insert=[aware])
        back = store.get(aware.id)
        assert [r.id for r in store.list(now=NOW, state=KeyState.ACTIVE)] == [aware.id]
        assert store.list(
            now=datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc), state=KeyState.EXPIRED
        )
    assert back == aware
    assert back is not None
    assert back.key.expires_at == datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)


@pytest.mark.postgres
def test_postgres_compares_key_ids_byte_wise(postgres_alias: str) -> None:
    # Whatever the server's default collation (SQLite compares bytes already).
    with connections[postgres_alias].cursor() as cursor:
        cursor.execute(
            "SELECT collation_name FROM information_schema.columns "
            "WHERE table_name = 'apikeys_apikeyrecord' AND column_name = 'id'"
        )
        assert cursor.fetchone() == ("C",)


def test_racing_revoke_and_rotate_never_lose_a_write(store: DjangoStore) -> None:
    manager = KeyManager(store, prefix="test", hasher=Argon2Hasher.for_tests(), clock=ManualClock())
    key = manager.create(owner="team-42").key
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(action: str) -> None:
        try:
            barrier.wait(5)
            if action == "revoke":
                manager.revoke(key.id, reason="leaked")
            else:
                manager.rotate(key.id, grace=timedelta(hours=1))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(a,)) for a in ("revoke", "rotate")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    final = manager.get(key.id)
    assert final.revoked_at is not None  # the revoke always lands
    # Either the rotation landed first (and the revoke applied on top), or it
    # found the key revoked and refused: never a silently lost write.
    assert all(type(e).__name__ == "InvalidKeyState" for e in errors), errors
    if not errors:
        assert final.replaced_by is not None
        assert final.version == key.version + 2
