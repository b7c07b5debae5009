"""DjangoStore against the store contract, on SQLite and PostgreSQL (real databases),
plus what is particular to the ORM: the error seam, a naive-datetime database
(``USE_TZ = False``), byte-order paging, racing writers and the async twins."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone

import pytest
from django.db import Error as DjangoDatabaseError
from django.db import connections
from django.test import override_settings

from apikeys import KeyManager
from apikeys._models import APIKey, KeyRecord, KeyState
from apikeys.django.models import APIKeyRecord
from apikeys.django.store import DjangoStore
from apikeys.errors import ConfigurationError, ConflictError, StorageError
from apikeys.hashing import Argon2Hasher
from apikeys.storage import AsyncKeyStore, AsyncSupportsTouch, KeyStore, SupportsTouch
from apikeys.testing import ManualClock

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
FAKE_HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"


def record(
    key_id: str,
    *,
    owner: str = "team-42",
    version: int = 1,
    secret_hash: str = FAKE_HASH,
    **fields: object,
) -> KeyRecord:
    key = APIKey(
        id=key_id,
        prefix="test",
        owner=owner,
        created_at=fields.pop("created_at", NOW),  # type: ignore[arg-type]
        version=version,
        **fields,  # type: ignore[arg-type]
    )
    return KeyRecord(key, secret_hash)


def bumped(old: KeyRecord, **changes: object) -> KeyRecord:
    key = old.key.model_copy(update={"version": old.version + 1, **changes})
    return KeyRecord(key, old.secret_hash)


@pytest.fixture
def store(db_alias: str) -> Iterator[DjangoStore]:
    """A fresh, empty store (the ``db_alias`` fixture empties the table)."""
    store = DjangoStore(db_alias)
    yield store
    store.close()


@pytest.fixture
async def astore(db_alias: str) -> AsyncIterator[DjangoStore]:
    store = DjangoStore(db_alias)
    yield store
    await store.aclose()


# --- the contract -----------------------------------------------------------------------


def test_it_implements_every_store_protocol(store: DjangoStore) -> None:
    for protocol in (KeyStore, SupportsTouch, AsyncKeyStore, AsyncSupportsTouch):
        assert isinstance(store, protocol)


def test_a_record_round_trips_every_field(store: DjangoStore) -> None:
    full = record(
        "AbCdEfGh12345678",
        name="CI",
        scopes=("orders:read", "orders:write"),
        expires_at=NOW + timedelta(days=90),
        revoked_at=NOW + timedelta(hours=1),
        revoke_reason="leaked",
        disabled_at=NOW + timedelta(minutes=1),
        disabled_reason="audit",
        last_used_at=NOW + timedelta(seconds=1, microseconds=250),
        last_used_ip="2001:db8::1",
        allowed_ips=("10.0.0.0/8",),
        metadata={"team": {"name": "ops", "tags": ["a", "b"]}, "n": 3},
        replaced_by="ZZZZZZZZZZZZZZZZ",
        replaces="0000000000000000",
        rate_limits=("100/minute",),
        quota="1000/month",
        version=7,
    )
    store.write(insert=[full])
    assert store.get(full.id) == full
    assert store.get("nope0000nope0000") is None


def test_an_existing_id_cannot_be_inserted_and_nothing_lands(store: DjangoStore) -> None:
    first = record("aaaaaaaaaaaaaaaa")
    store.write(insert=[first])
    with pytest.raises(ConflictError) as caught:
        store.write(insert=[record("bbbbbbbbbbbbbbbb"), record("aaaaaaaaaaaaaaaa", owner="x")])
    assert isinstance(caught.value.__cause__, DjangoDatabaseError)
    assert store.get("bbbbbbbbbbbbbbbb") is None
    assert store.get("aaaaaaaaaaaaaaaa") == first


def test_updates_are_version_checked(store: DjangoStore) -> None:
    first = record("aaaaaaaaaaaaaaaa")
    store.write(insert=[first])
    second = bumped(first, name="renamed")
    store.write(update=[second])
    assert store.get(first.id) == second
    with pytest.raises(ConflictError):
        store.write(update=[bumped(first, name="stale")])  # version 2 again
    with pytest.raises(ConflictError):
        store.write(update=[bumped(second, version=5)])  # skips versions
    with pytest.raises(ConflictError):
        store.write(update=[bumped(record("cccccccccccccccc"))])  # no such record
    assert store.get(first.id) == second


def test_a_write_is_atomic(store: DjangoStore) -> None:
    old = record("aaaaaaaaaaaaaaaa")
    store.write(insert=[old])
    stale = bumped(bumped(old))
    with pytest.raises(ConflictError):
        store.write(insert=[record("bbbbbbbbbbbbbbbb")], update=[stale])
    assert store.get("bbbbbbbbbbbbbbbb") is None
    with pytest.raises(ConflictError):
        store.write(
            insert=[record("bbbbbbbbbbbbbbbb")], update=[bumped(record("bbbbbbbbbbbbbbbb"))]
        )
    assert store.get("bbbbbbbbbbbbbbbb") is None


def test_list_orders_by_id_byte_wise_and_pages(store: DjangoStore) -> None:
    # Upper case sorts before lower case in byte order (not in most locales).
    ids = [
        "aaaaaaaaaaaaaaaa",
        "Bbbbbbbbbbbbbbbb",
        "cccccccccccccccc",
        "0000000000000000",
        "Zzzz000000000000",
    ]
    store.write(insert=[record(i) for i in ids])
    listed = [r.id for r in store.list(now=NOW)]
    assert listed == sorted(ids)
    page1 = store.list(now=NOW, limit=2)
    page2 = store.list(now=NOW, limit=2, after=page1[-1].id)
    page3 = store.list(now=NOW, limit=2, after=page2[-1].id)
    assert [r.id for r in page1 + page2 + page3] == sorted(ids)


def test_list_filters_by_owner_and_state_at_now(store: DjangoStore) -> None:
    store.write(
        insert=[
            record("a000000000000000"),
            record("b000000000000000", expires_at=NOW + timedelta(hours=1)),
            record("c000000000000000", expires_at=NOW),
            record("d000000000000000", revoked_at=NOW, disabled_at=NOW),
            record("e000000000000000", disabled_at=NOW, expires_at=NOW - timedelta(days=1)),
            record("f000000000000000", owner="Team-42"),
        ]
    )

    def ids(**kwargs: object) -> list[str]:
        return [r.id[0] for r in store.list(now=NOW, **kwargs)]  # type: ignore[arg-type]

    assert ids(state=KeyState.ACTIVE) == ["a", "b", "f"]
    assert ids(state=KeyState.EXPIRED) == ["c"]
    assert ids(state=KeyState.REVOKED) == ["d"]
    assert ids(state=KeyState.DISABLED) == ["e"]
    assert [r.id[0] for r in store.list(now=NOW + timedelta(hours=2), state=KeyState.EXPIRED)] == [
        "b",
        "c",
    ]
    assert ids(owner="team-42", state=KeyState.ACTIVE) == ["a", "b"]
    assert ids(owner="Team-42") == ["f"]
    assert ids(limit=1) == ["a"]


def test_purge_and_touch(store: DjangoStore) -> None:
    first = record("aaaaaaaaaaaaaaaa")
    store.write(insert=[first])
    store.touch(first.id, at=NOW + timedelta(minutes=3), ip="192.0.2.1")
    touched = store.get(first.id)
    assert touched is not None
    assert touched.key.last_used_at == NOW + timedelta(minutes=3)
    assert touched.key.last_used_ip == "192.0.2.1"
    assert touched.version == 1  # a touch never conflicts with a lifecycle write
    store.touch("missing000000000", at=NOW, ip=None)  # ignored
    assert store.purge(first.id) is True
    assert store.purge(first.id) is False
    assert store.get(first.id) is None


# --- the ORM's particulars -------------------------------------------------------------


def test_database_errors_become_storage_errors_at_one_seam(db_alias: str) -> None:
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


@pytest.mark.anyio
async def test_the_async_twins(astore: DjangoStore) -> None:
    first = record("aaaaaaaaaaaaaaaa")
    await astore.awrite(insert=[first])
    assert await astore.aget(first.id) == first
    with pytest.raises(ConflictError):
        await astore.awrite(insert=[first])
    second = bumped(first, name="renamed")
    await astore.awrite(update=[second])
    await astore.atouch(first.id, at=NOW, ip=None)
    assert [r.id for r in await astore.alist(now=NOW)] == [first.id]
    assert await astore.apurge(first.id) is True
    assert await astore.aget(first.id) is None
