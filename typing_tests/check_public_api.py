"""Type-checked by ``nox -s typing`` (mypy --strict), never run.

Exercises the public API as users write it, so a change in a signature or return
type shows up as a typing failure here.
"""

from __future__ import annotations

from datetime import timedelta

from typing_extensions import assert_type

from apikeys import (
    APIKey,
    APIKeyError,
    AsyncKeyManager,
    IssuedKey,
    KeyManager,
    KeyState,
    Verification,
)
from apikeys.hashing import Argon2Hasher, Hasher, HmacHasher
from apikeys.storage import AsyncKeyStore, KeyStore, MemoryStore
from apikeys.testing import ManualClock


def sync_usage() -> None:
    store: KeyStore = MemoryStore()
    hasher: Hasher = Argon2Hasher.for_tests()
    keys = KeyManager(store, prefix=["acme_live", "acme"], hasher=hasher, clock=ManualClock())
    issued = keys.create(owner="o", scopes=["orders:read"], expires_in=timedelta(days=1))
    assert_type(issued, IssuedKey)
    assert_type(issued.plaintext, str)
    key = keys.verify(issued.plaintext, scopes=["orders:read"], ip="10.0.0.1")
    assert_type(key, APIKey)
    assert_type(keys.authenticate(issued.plaintext), Verification)
    keys.authorize(key, "orders:read")
    assert_type(keys.rotate(key.id, grace=timedelta(hours=1)), IssuedKey)
    assert_type(keys.revoke(key.id, reason="leaked"), APIKey)
    assert_type(keys.list(owner="o", state=KeyState.ACTIVE), list[APIKey])
    assert_type(keys.update(key.id, scopes=["*"], expires_at=None), APIKey)
    assert_type(keys.purge(key.id), bool)
    assert_type(key.state(keys.now()), KeyState)
    try:
        keys.verify("junk")
    except APIKeyError as exc:
        assert_type(exc.status, int)
        assert_type(exc.code, str)


async def async_usage() -> None:
    store: AsyncKeyStore = MemoryStore()
    keys = AsyncKeyManager(store, prefix="acme", hasher=HmacHasher([b"p" * 32]))
    issued = await keys.create(owner="o", scopes=["orders:read"])
    assert_type(issued, IssuedKey)
    key = await keys.verify(issued.plaintext, scopes=["orders:read"])
    assert_type(key, APIKey)
    assert_type(await keys.authenticate(issued.plaintext), Verification)
    keys.authorize(key, "orders:read")
    assert_type(await keys.rotate(key.id), IssuedKey)
    assert_type(await keys.list(), list[APIKey])
    await keys.aclose()


def records_and_recovery() -> None:
    from apikeys import IssuancePolicy, StorageError
    from apikeys._hooks import Verification as OldPathVerification

    keys = KeyManager(
        MemoryStore(), prefix="acme", issuance=IssuancePolicy(max_lifetime=timedelta(days=90))
    )
    assert_type(keys.authenticate("junk"), OldPathVerification)
    try:
        keys.create(owner="o")
    except StorageError as exc:
        pending = exc.issued
        assert_type(pending, IssuedKey | None)
        if pending is not None:
            assert_type(keys.get(pending.key.id), APIKey)
