"""A key's plaintext and its secret part never show: not in a log record, an event,
an exception (message, repr, attributes), the repr/str of any object, nor the store."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from apikeys import (
    APIKeyError,
    AsyncKeyManager,
    KeyManager,
    RateLimited,
    RateLimitStatus,
)
from apikeys._keyformat import format_key, parse
from apikeys._models import APIKey, KeyRecord
from apikeys.errors import StorageError
from apikeys.hashing import Argon2Hasher, HmacHasher
from apikeys.testing import ManualClock
from core_support import (
    AnyManager,
    ListSink,
    RecordingStore,
    SyncFacade,
    split,
    unknown_key,
    with_wrong_secret,
)

PEPPER = "a-pepper-that-is-long-enough-for-hmac-0123456789"


class OneShotLimiter:
    """Allows owner ``limited`` one request per key, then refuses (a rate-limit
    failure to log); everyone else is unlimited."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def hit(self, key: APIKey, *, now: Any) -> RateLimitStatus:
        if key.owner == "limited" and key.id in self.seen:
            raise RateLimited(retry_after=60, limit=1, policy="1/minute")
        self.seen.add(key.id)
        return RateLimitStatus(1, 0, 60.0, "1/minute", 60.0)

    async def ahit(self, key: APIKey, *, now: Any) -> RateLimitStatus:
        return self.hit(key, now=now)


class Shown:
    """Everything that was rendered or recorded during a run."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, *objects: object) -> None:
        for obj in objects:
            self.texts.append((where, repr(obj)))
            self.texts.append((where, str(obj)))

    def add_error(self, where: str, error: BaseException) -> None:
        self.add(where, error, error.args)
        self.add(where, dict(vars(error).items()))
        if error.__cause__ is not None:
            self.add_error(where + " (cause)", error.__cause__)


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal(backend="asyncio") as running:
        yield running


@pytest.fixture(params=["sync-argon2", "async-argon2", "sync-hmac", "async-hmac"])
def setup(request: pytest.FixtureRequest) -> tuple[AnyManager, RecordingStore, ListSink]:
    flavour, scheme = str(request.param).split("-")
    hasher = Argon2Hasher.for_tests() if scheme == "argon2" else HmacHasher([PEPPER])
    store = RecordingStore()
    sink = ListSink()
    kwargs: dict[str, Any] = {
        "prefix": ["acme", "acme_live"],
        "hasher": hasher,
        "clock": ManualClock(),
        "events": sink,
        "rate_limiter": OneShotLimiter(),
        "failure_limit": 3,
        "touch_interval": timedelta(0),
    }
    if flavour == "sync":
        return KeyManager(store, **kwargs), store, sink
    manager = AsyncKeyManager(store, **kwargs)
    return SyncFacade(manager, request.getfixturevalue("portal")), store, sink


def lifecycle(keys: AnyManager, store: RecordingStore, shown: Shown) -> list[str]:
    """Drive every call and every failure once; return every plaintext issued."""

    def attempt(where: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = call(*args, **kwargs)
        except APIKeyError as exc:
            shown.add_error(where, exc)
            return None
        shown.add(where, result)
        return result

    issued = keys.create(
        owner="team-42",
        scopes=["orders:read"],
        name="CI",
        expires_in=timedelta(days=1),
        allowed_ips=["10.0.0.0/8"],
        metadata={"plan": "pro"},
    )
    second = keys.create(owner="limited", prefix="acme_live")
    plaintexts = [issued.plaintext, second.plaintext]
    shown.add("issued", issued, issued.key, second, second.key)
    shown.add("dump", issued.key.model_dump(), issued.key.model_dump_json())
    raw = issued.plaintext
    key_id = issued.key.id

    key = attempt("verify", keys.verify, raw, scopes=["orders:read"], ip="10.1.2.3")
    attempt("authenticate", keys.authenticate, second.plaintext)
    attempt("rate limited", keys.verify, second.plaintext)
    attempt("authorize", keys.authorize, key, "orders:write")
    attempt("scope", keys.verify, raw, scopes=["orders:write"], ip="10.1.2.3")
    attempt("ip", keys.verify, raw, ip="192.0.2.1")
    attempt("no ip", keys.verify, raw)
    for n in range(4):
        attempt(f"wrong secret {n}", keys.verify, with_wrong_secret(raw), ip="10.1.2.3")
    attempt("typo", keys.verify, raw[:-1] + ("A" if raw[-1] != "A" else "B"))
    attempt("glued", keys.verify, raw + raw)
    attempt("spaces", keys.verify, f" {raw} ")
    attempt("unknown", keys.verify, unknown_key())
    attempt("get by key", keys.get, raw)
    attempt("revoke by key", keys.revoke, raw)
    attempt("update", keys.update, key_id, scopes=["orders:read", "orders:write"])
    attempt("suspend", keys.suspend, key_id, reason="audit")
    attempt("disabled", keys.verify, raw, ip="10.1.2.3")
    attempt("enable", keys.enable, key_id)
    store.fail_touch = StorageError("touch failed")
    attempt("touch fails", keys.verify, raw, ip="10.1.2.4")
    store.fail_touch = None
    rotated = keys.rotate(key_id, grace=timedelta(hours=1))
    plaintexts.append(rotated.plaintext)
    shown.add("rotated", rotated, rotated.key)
    attempt("rotate twice", keys.rotate, key_id)
    attempt("old in grace", keys.verify, raw, ip="10.1.2.3")
    attempt("revoke", keys.revoke, rotated.key.id, reason="leaked")
    attempt("revoked", keys.verify, rotated.plaintext, ip="10.1.2.3")
    attempt("list", keys.list, owner="team-42")
    # A planted hash of a foreign scheme is refused with a warning naming the key id.
    planted = store.inner.get(second.key.id)
    assert planted is not None
    store.inner.write(
        update=[
            KeyRecord(
                planted.key.model_copy(update={"version": planted.version + 1}),
                "$2b$12$" + "a" * 53,
            )
        ]
    )
    attempt("planted hash", keys.verify, second.plaintext)
    store.fail_get = StorageError("database is down")
    attempt("store down", keys.verify, raw, ip="10.1.2.3")
    store.fail_get = None
    attempt("purge", keys.purge, key_id)
    attempt("purged", keys.verify, raw, ip="10.1.2.3")
    shown.add("objects", keys, getattr(keys, "manager", keys), keys.hasher, store, store.inner)
    for plaintext in plaintexts:
        shown.add("parsed", parse(plaintext, frozenset({"acme", "acme_live"})))
    for record in store.inner.list(now=keys.now(), limit=100):
        shown.add("store", record, record.key, record.secret_hash)
    return plaintexts


def test_no_secret_shows_anywhere_during_a_full_lifecycle(
    setup: tuple[AnyManager, RecordingStore, ListSink], caplog: pytest.LogCaptureFixture
) -> None:
    keys, store, sink = setup
    shown = Shown()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="apikeys")
    plaintexts = lifecycle(keys, store, shown)

    assert len(sink.events) > 20
    for event in sink.events:
        shown.add("event", event, json.dumps(event.to_dict()))
    apikeys_records = [r for r in caplog.records if r.name.startswith("apikeys")]
    assert apikeys_records, "the lifecycle should have logged failures"
    levels = {r.levelno for r in apikeys_records}
    assert logging.WARNING in levels
    assert logging.INFO in levels
    for record in caplog.records:
        shown.add("log", record.getMessage(), record.args, record.exc_text, record.__dict__)
    shown.texts.append(("log text", caplog.text))

    secrets = set(plaintexts)
    for plaintext in plaintexts:
        _, _, secret = split(plaintext, ("acme", "acme_live"))
        secrets.add(secret)
    for where, text in shown.texts:
        for secret in secrets:
            assert secret not in text, f"a secret shows in {where}: {text[:200]}"


def test_repr_and_str_of_every_object_hide_the_secret() -> None:
    keys = KeyManager(RecordingStore(), prefix="acme", hasher=Argon2Hasher.for_tests())
    issued = keys.create(owner="o")
    _, key_id, secret = split(issued.plaintext)
    record = keys.store.get(key_id)
    assert isinstance(record, KeyRecord)
    objects: list[object] = [
        issued,
        issued.key,
        record,
        parse(issued.plaintext, frozenset({"acme"})),
        keys,
        keys.hasher,
        HmacHasher([PEPPER]),
        keys.store,
        AsyncKeyManager(RecordingStore(), prefix="acme"),
    ]
    for obj in objects:
        for text in (repr(obj), str(obj), f"{obj}", f"{obj!r}"):
            assert issued.plaintext not in text, type(obj)
            assert secret not in text, type(obj)
    assert "hidden" in repr(issued)
    assert "hidden" in repr(objects[3])
    assert record.secret_hash not in repr(record)  # not even the hash
    assert issued.plaintext == format_key("acme", key_id, secret)  # the one place it is


def test_messages_of_every_error_on_the_verify_path_are_fixed_texts() -> None:
    keys = KeyManager(RecordingStore(), prefix="acme", hasher=Argon2Hasher.for_tests())
    issued = keys.create(owner="o")
    _, _, secret = split(issued.plaintext)
    for raw in (
        issued.plaintext + "x",
        issued.plaintext[:-1] + "!",
        with_wrong_secret(issued.plaintext),
        "acme_" + secret,
    ):
        with pytest.raises(APIKeyError) as info:
            keys.verify(raw)
        assert str(info.value) == "Invalid API key."
        assert secret not in repr(info.value)
        assert secret not in repr(vars(info.value))
