"""DjangoStore under CachedStore on PostgreSQL: the change announcement rides in
the write's own transaction, and a second cache sees a revocation."""

from __future__ import annotations

import secrets
import time

import psycopg
import pytest
from django.db import connections

from apikeys import AuthenticationError, KeyManager
from apikeys.django.store import DjangoStore
from apikeys.errors import ConfigurationError, ConflictError
from apikeys.hashing import HmacHasher
from apikeys.storage import CachedStore

pytestmark = pytest.mark.postgres


def _conninfo(alias: str) -> str:
    params = connections[alias].settings_dict
    return f"postgresql://{params['USER']}@{params['HOST']}:{params['PORT']}/{params['NAME']}"


def test_notify_is_sent_only_when_the_write_commits(postgres_alias: str) -> None:
    store = DjangoStore(postgres_alias)
    assert store.supports_notify()
    keys = KeyManager(store, prefix="acme", hasher=HmacHasher([b"p" * 32]), touch_interval=None)
    issued = keys.create(owner="o")
    channel = f"apikeys_t_{secrets.token_hex(4)}"
    record = store.get(issued.key.id)
    assert record is not None
    bumped = type(record)(record.key.model_copy(update={"version": 2}), record.secret_hash)
    with psycopg.connect(_conninfo(postgres_alias), autocommit=True) as listener:
        listener.execute(f"LISTEN {channel}")
        store.write(update=[bumped], notify=channel)
        with pytest.raises(ConflictError):
            store.write(update=[bumped], notify=channel)  # refused: rolled back, silent
        assert store.purge(issued.key.id, notify=channel)
        got = [n.payload for n in listener.notifies(timeout=0.5)]
    assert got == [issued.key.id, issued.key.id]


def test_notify_needs_postgresql() -> None:
    store = DjangoStore("default")
    assert not store.supports_notify()
    with pytest.raises(ConfigurationError):
        store.purge("nope", notify="apikeys_changes")


def test_a_second_cache_sees_the_revocation(postgres_alias: str) -> None:
    channel = f"apikeys_t_{secrets.token_hex(4)}"
    url = _conninfo(postgres_alias)
    hasher = HmacHasher([b"p" * 32])
    writer = CachedStore(DjangoStore(postgres_alias), invalidation=url, channel=channel)
    reader = CachedStore(DjangoStore(postgres_alias), invalidation=url, channel=channel)
    try:
        deadline = time.monotonic() + 10
        while not (writer.live and reader.live):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        issued = KeyManager(writer, prefix="acme", hasher=hasher).create(owner="o")
        readers = KeyManager(reader, prefix="acme", hasher=hasher, touch_interval=None)
        readers.verify(issued.plaintext)
        KeyManager(writer, prefix="acme", hasher=hasher).revoke(issued.key.id)
        revoked = time.monotonic()
        while True:
            try:
                readers.verify(issued.plaintext)
            except AuthenticationError:
                break
            assert time.monotonic() < revoked + 0.1, "accepted after max_staleness"
    finally:
        writer.close()
        reader.close()
