"""Hashers: the default Argon2id profile, the refusal of foreign or planted hashes
before any hashing, re-hashing after a good verification, HMAC pepper rotation."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import argon2
import argon2._password_hasher
import argon2.low_level
import pytest

from apikeys import AsyncKeyManager, AuthenticationError, ConfigurationError, KeyManager
from apikeys._keyformat import format_key
from apikeys._models import KeyRecord
from apikeys._policy import new_key
from apikeys.errors import StorageError
from apikeys.hashing import Argon2Hasher, Hasher, HmacHasher
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock, make_manager, test_hasher
from core_support import CountingHasher, ListSink, RecordingStore, split, unknown_key

SALT = base64.b64encode(b"0123456789abcdef").decode().rstrip("=")
DIGEST = base64.b64encode(b"x" * 32).decode().rstrip("=")
PEPPER_1 = "pepper-one-" + "a" * 30
PEPPER_2 = b"pepper-two-" + b"b" * 30
PEPPER_3 = "pepper-three-" + "c" * 30


def phc(variant: str = "argon2id", *, v: int | None = 19, m: int, t: int, p: int) -> str:
    """A hash string written by hand (never computed: some would need gigabytes)."""
    version = f"v={v}$" if v is not None else ""
    return f"${variant}${version}m={m},t={t},p={p}${SALT}${DIGEST}"


def real_hash(secret: str, type_: argon2.Type, version: int = 19) -> str:
    return argon2.low_level.hash_secret(
        secret.encode(), os.urandom(16), 1, 8, 1, 32, type_, version=version
    ).decode()


def forbid_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every Argon2 computation fail the test if it is ever started."""

    def forbidden(*args: object, **kwargs: object) -> object:
        raise AssertionError("Argon2 was asked to hash or verify")

    for owner in (argon2.low_level, argon2._password_hasher):
        monkeypatch.setattr(owner, "verify_secret", forbidden)
        monkeypatch.setattr(owner, "hash_secret", forbidden)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", forbidden)
    monkeypatch.setattr(argon2.PasswordHasher, "hash", forbidden)


@pytest.fixture
def no_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_argon2(monkeypatch)


# --- Argon2id -------------------------------------------------------------------------


def test_default_profile() -> None:
    hasher = Argon2Hasher()
    params = hasher.parameters
    assert params.type is argon2.Type.ID
    assert params.version == 19
    assert (params.time_cost, params.memory_cost, params.parallelism) == (1, 12288, 1)
    assert (params.hash_len, params.salt_len) == (32, 16)
    stored = hasher.hash("s3cret")
    assert stored.startswith("$argon2id$v=19$m=12288,t=1,p=1$")
    assert argon2.extract_parameters(stored) == params
    assert hasher.verify(stored, "s3cret") is True
    assert hasher.verify(stored, "s3cret!") is False
    assert hasher.hash("s3cret") != stored  # salted
    assert hasher.supports(stored)
    assert not hasher.needs_rehash(stored)
    assert repr(hasher) == "Argon2Hasher(time_cost=1, memory_cost=12288, parallelism=1)"


def test_managers_default_to_the_argon2id_profile() -> None:
    for manager in (
        KeyManager(MemoryStore(), prefix="acme"),
        AsyncKeyManager(MemoryStore(), prefix="acme"),
    ):
        assert isinstance(manager.hasher, Argon2Hasher)
        assert manager.hasher.parameters == Argon2Hasher().parameters


def test_test_profile_is_cheap_and_separate() -> None:
    hasher = Argon2Hasher.for_tests()
    assert (hasher.parameters.memory_cost, hasher.parameters.time_cost) == (8, 1)
    assert test_hasher().parameters == hasher.parameters
    stored = hasher.hash("x")
    assert hasher.verify(stored, "x")
    assert not hasher.verify(stored, "y")
    # The production profile does not take the test profile's hashes for current.
    assert Argon2Hasher().needs_rehash(stored)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"memory_cost": 1},
        {"time_cost": 0},
        {"parallelism": 0},
        {"memory_cost": 16, "parallelism": 4},
        {"hash_len": 2},
        {"salt_len": 4},
        {"max_factor": 0},
    ],
)
def test_invalid_argon2_parameters_fail_at_construction(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigurationError):
        Argon2Hasher(**kwargs)


def test_hashers_implement_the_protocol() -> None:
    for hasher in (Argon2Hasher.for_tests(), HmacHasher([PEPPER_1]), CountingHasher()):
        assert isinstance(hasher, Hasher)
    with pytest.raises(ConfigurationError):
        KeyManager(MemoryStore(), prefix="acme", hasher=object())  # type: ignore[arg-type]


@pytest.mark.usefixtures("no_argon2")
@pytest.mark.parametrize(
    "hasher", [Argon2Hasher(), Argon2Hasher.for_tests()], ids=["default", "tests"]
)
@pytest.mark.parametrize(
    "stored",
    [
        phc(m=4 * 1024 * 1024, t=1, p=1),  # a planted 4 GiB hash
        phc(m=8, t=1_000_000, p=1),  # a million passes
        phc(m=8 * 4096, t=1, p=4096),  # lanes beyond the range
        phc("argon2i", m=8, t=1, p=1),
        phc("argon2d", m=8, t=1, p=1),
        phc(v=16, m=8, t=1, p=1),
        phc(v=None, m=8, t=1, p=1),  # version 1.0 (no v=)
        phc(m=4, t=1, p=1),  # below Argon2's minimum
        phc(m=8, t=0, p=1),
        "$2b$12$" + "a" * 53,  # bcrypt
        "$apikeys-hmac-sha256$p=00000000$" + "A" * 43,
        "",
        "argon2id",
        "$argon2id$",
        "$argon2id$v=19$m=8,t=1,p=1",
        "$argon2id$v=19$m=x,t=1,p=1$" + SALT + "$" + DIGEST,
        # Exact parsing: one spelling, nothing before or after it.
        phc(m=8, t=1, p=1) + "\x00",
        phc(m=8, t=1, p=1) + "\n",
        " " + phc(m=8, t=1, p=1),
        phc(m=8, t=1, p=1).upper(),
        "$argon2id$v=19$m=08,t=1,p=1$" + SALT + "$" + DIGEST,  # leading zero
        "$argon2id$v=19$m=\uff18,t=1,p=1$" + SALT + "$" + DIGEST,  # a non-ASCII digit
        "$argon2id$v=19$t=1,m=8,p=1$" + SALT + "$" + DIGEST,  # fields out of order
        "$argon2id$v=19$m=8,t=1,p=1,keyid=AAAA$" + SALT + "$" + DIGEST,
        "$argon2id$v=19$m=8,t=1,p=1$" + SALT + "==$" + DIGEST,  # padding
        "$argon2id$v=19$m=8,t=1,p=1$" + SALT + "$" + DIGEST + "$",
        "$argon2id$v=19$m=8,t=1,p=1$" + SALT + "$" + DIGEST[:-1] + "h",  # "g" with padding bits set
        "$argon2id$v=19$m=8,t=1,p=1$" + SALT + "$" + DIGEST[:-2],  # not base64
        "$argon2id$v=19$m=8,t=1,p=1$" + SALT + "$" + "AAAAAA",  # a 4-byte tag
        "$argon2id$v=19$m=8,t=1,p=1$" + SALT[:11] + "$" + DIGEST,  # an 8-byte salt
        "$argon2id$v=19$m=8,t=1,p=1$" + SALT + "$" + "A" * 1000,  # a 750-byte tag
        "$argon2id$v=19$m=4294967296,t=1,p=1$" + SALT + "$" + DIGEST,
    ],
)
def test_supports_refuses_without_hashing(hasher: Argon2Hasher, stored: str) -> None:
    assert hasher.supports(stored) is False


def test_other_variants_and_versions_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = Argon2Hasher.for_tests()
    argon2i = real_hash("k", argon2.Type.I)
    argon2d = real_hash("k", argon2.Type.D)
    old_version = real_hash("k", argon2.Type.ID, version=16)
    current = real_hash("k", argon2.Type.ID)
    assert argon2i.startswith("$argon2i$")
    assert argon2d.startswith("$argon2d$")
    assert "$v=16$" in old_version
    assert hasher.supports(current)
    assert hasher.verify(current, "k")
    forbid_argon2(monkeypatch)
    for stored in (argon2i, argon2d, old_version):
        assert hasher.supports(stored) is False, stored
    assert hasher.supports(current)


def test_accepted_parameter_range_is_bounded_by_max_factor() -> None:
    hasher = Argon2Hasher(time_cost=2, memory_cost=1024, parallelism=1, max_factor=4)
    assert hasher.supports(phc(m=4096, t=8, p=4))
    assert hasher.supports(phc(m=1024, t=1, p=1))  # one pass is the production floor
    assert not hasher.supports(phc(m=1023, t=1, p=1))  # below this (cheap) profile
    assert not hasher.supports(phc(m=8, t=1, p=1))
    assert not hasher.supports(phc(m=4097, t=1, p=1))
    assert not hasher.supports(phc(m=1024, t=9, p=1))
    assert not hasher.supports(phc(m=1024, t=1, p=5))


def test_the_production_profile_refuses_cheaper_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    production = Argon2Hasher()
    planted = Argon2Hasher.for_tests().hash("known")  # what a test run left behind
    weak_salt = argon2.PasswordHasher(memory_cost=12288, salt_len=8).hash("known")
    short_tag = argon2.PasswordHasher(memory_cost=12288, hash_len=8).hash("known")
    good = production.hash("known")
    forbid_argon2(monkeypatch)
    for stored in (planted, weak_salt, short_tag, good + "\x00", good + "\n"):
        assert production.supports(stored) is False, stored
        assert production.verify(stored, "known") is False, stored
        assert production.needs_rehash(stored)
    assert production.supports(good)
    assert production.supports(phc(m=12288, t=1, p=1))
    assert not production.supports(phc(m=12287, t=1, p=1))
    assert production.supports(phc(m=49152, t=4, p=4))  # up to max_factor above
    assert not production.supports(phc(m=49153, t=1, p=1))


def test_min_memory_cost_admits_an_older_cheaper_profile() -> None:
    old = argon2.PasswordHasher(memory_cost=4096, time_cost=3).hash("k")
    assert not Argon2Hasher().supports(old)
    moving = Argon2Hasher(min_memory_cost=4096)
    assert moving.supports(old)
    assert moving.verify(old, "k")
    assert moving.needs_rehash(old)
    assert not moving.supports(phc(m=4095, t=1, p=1))
    for bad in (4, 12289):
        with pytest.raises(ConfigurationError):
            Argon2Hasher(min_memory_cost=bad)


def test_the_test_profile_is_refused_outside_tests(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert os.environ.get("PYTEST_VERSION")  # what lets the suite use it
    monkeypatch.delenv("PYTEST_VERSION")
    monkeypatch.delenv("APIKEYS_ALLOW_TEST_HASHER", raising=False)
    for make in (Argon2Hasher.for_tests, test_hasher, make_manager):
        with pytest.raises(ConfigurationError, match="APIKEYS_ALLOW_TEST_HASHER=1"):
            make()
    monkeypatch.setenv("APIKEYS_ALLOW_TEST_HASHER", "yes")  # only "1" opts in
    with pytest.raises(ConfigurationError):
        Argon2Hasher.for_tests()
    monkeypatch.setenv("APIKEYS_ALLOW_TEST_HASHER", "1")
    with caplog.at_level(logging.WARNING, logger="apikeys"):
        assert Argon2Hasher.for_tests().parameters.memory_cost == 8
        make_manager()
    warnings = [r for r in caplog.records if "cheap test Argon2 profile" in r.getMessage()]
    assert len(warnings) == 2  # at every start, not once per process


@pytest.mark.parametrize("allow", [False, True])
def test_the_cli_refuses_the_test_hasher_outside_tests(tmp_path: Path, allow: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIKEYS_", "PYTEST_"))}
    env |= {"APIKEYS_HASHER": "argon2-test", "APIKEYS_PREFIX": "acme"}
    if allow:
        env["APIKEYS_ALLOW_TEST_HASHER"] = "1"
    db = f"sqlite:///{tmp_path / 'keys.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "apikeys", "--database-url", db, "create", "--owner", "o"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if allow:
        assert done.returncode == 0, done.stderr
        assert "cheap test Argon2 profile" in done.stderr
    else:
        assert done.returncode != 0
        assert "for tests only" in done.stderr
        assert "acme_" not in done.stdout  # no key was issued


def test_a_corrupt_hash_is_a_mismatch_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    hasher = Argon2Hasher.for_tests()
    stored = hasher.hash("k")
    corrupt = stored[:-6]
    assert not hasher.supports(corrupt)  # a truncated tag does not parse...
    with caplog.at_level(logging.WARNING, logger="apikeys"):
        assert hasher.verify(corrupt, "k") is False  # ...and verify never raises
    assert "refused without hashing" in caplog.text


def test_needs_rehash() -> None:
    old = Argon2Hasher(memory_cost=8, time_cost=1)
    new = Argon2Hasher(memory_cost=16, time_cost=2, min_memory_cost=8)
    stored = old.hash("k")
    assert new.supports(stored)
    assert new.needs_rehash(stored)
    assert not old.needs_rehash(stored)
    assert not new.needs_rehash(new.hash("k"))


def _planted_store(stored_hash: str) -> tuple[MemoryStore, str]:
    """A store holding a record whose hash an attacker wrote; the key naming it."""
    store = MemoryStore()
    key = unknown_key()
    _, key_id, _ = split(key)
    record = new_key(key_id=key_id, prefix="acme", owner="victim", now=ManualClock().now)
    store.write(insert=[KeyRecord(record, stored_hash)])
    return store, key


@pytest.mark.parametrize(
    "stored",
    [
        phc(m=4 * 1024 * 1024, t=1, p=1),
        phc("argon2i", m=8, t=1, p=1),
        "$2b$12$" + "a" * 53,
        phc(m=8, t=1, p=1),
        phc(m=12288, t=1, p=1) + "\x00",
    ],
    ids=["4GiB", "argon2i", "bcrypt", "test-profile", "trailing-NUL"],
)
def test_manager_refuses_a_planted_hash_before_hashing(
    stored: str, no_argon2: None, caplog: pytest.LogCaptureFixture
) -> None:
    store, key = _planted_store(stored)
    sink = ListSink()
    keys = KeyManager(store, prefix="acme", hasher=Argon2Hasher(), events=sink)
    with (
        caplog.at_level(logging.WARNING, logger="apikeys"),
        pytest.raises(AuthenticationError) as info,
    ):
        keys.verify(key)
    assert info.value.code == "invalid_secret"
    assert str(info.value) == "Invalid API key."
    _, key_id, _ = split(key)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings
    assert key_id in warnings[0].getMessage()
    assert "unsupported" in warnings[0].getMessage()
    assert sink.types == ["key.verification_failed"]
    assert sink.events[0].owner is None  # nothing about the key before its secret is proven


# --- transparent re-hash --------------------------------------------------------------


def _rehash_setup() -> tuple[RecordingStore, str, str, Argon2Hasher]:
    store = RecordingStore()
    old = KeyManager(store, prefix="acme", hasher=Argon2Hasher(memory_cost=8, time_cost=1))
    issued = old.create(owner="o", scopes=["a:b"], metadata={"k": 1})
    # min_memory_cost=8: this deployment moves its keys off an 8 KiB profile.
    new = Argon2Hasher(memory_cost=16, time_cost=2, min_memory_cost=8)
    return store, issued.plaintext, issued.key.id, new


def _assert_rehashed(store: RecordingStore, key_id: str, writes_before: int) -> None:
    record = store.inner.get(key_id)
    assert record is not None
    params = argon2.extract_parameters(record.secret_hash)
    assert (params.memory_cost, params.time_cost) == (16, 2)
    assert record.version == 2
    assert store.calls["write"] == writes_before + 1


def test_sync_manager_rehashes_after_a_good_verify() -> None:
    store, plaintext, key_id, new_hasher = _rehash_setup()
    counting = CountingHasher(new_hasher)
    keys = KeyManager(store, prefix="acme", hasher=counting, touch_interval=None)
    writes = store.calls["write"]
    with pytest.raises(AuthenticationError):
        keys.verify(format_key("acme", key_id, "x" * 32))
    assert store.calls["write"] == writes  # a wrong secret re-hashes nothing
    key = keys.verify(plaintext, scopes=["a:b"])
    assert key.metadata == {"k": 1}
    assert key.version == 2
    _assert_rehashed(store, key_id, writes)
    assert counting.calls["hash"] == 1
    # The fresh hash verifies, is current, and is not re-hashed again.
    keys.verify(plaintext)
    keys.verify(plaintext)
    assert counting.calls["hash"] == 1
    assert store.calls["write"] == writes + 1


@pytest.mark.anyio
async def test_async_manager_rehashes_after_a_good_verify() -> None:
    store, plaintext, key_id, new_hasher = _rehash_setup()
    keys = AsyncKeyManager(store, prefix="acme", hasher=new_hasher, touch_interval=None)
    writes = store.calls["write"]
    key = await keys.verify(plaintext, scopes=["a:b"])
    assert key.version == 2
    _assert_rehashed(store, key_id, writes)
    await keys.verify(plaintext)
    assert store.calls["write"] == writes + 1


def test_a_failed_rehash_write_does_not_fail_the_verify(caplog: pytest.LogCaptureFixture) -> None:
    store, plaintext, key_id, new_hasher = _rehash_setup()
    keys = KeyManager(store, prefix="acme", hasher=new_hasher, touch_interval=None)

    def store_down() -> None:
        raise StorageError("store down")

    store.before_write.append(store_down)
    with caplog.at_level(logging.WARNING, logger="apikeys"):
        assert keys.verify(plaintext).id == key_id
    assert "could not save the re-hash" in caplog.text
    record = store.inner.get(key_id)
    assert record is not None
    assert record.version == 1
    assert argon2.extract_parameters(record.secret_hash).memory_cost == 8


# --- HMAC -------------------------------------------------------------------------------


def test_hmac_hash_format_and_verify() -> None:
    hasher = HmacHasher([PEPPER_1])
    stored = hasher.hash("secret")
    scheme, _, rest = stored.partition("$p=")
    assert scheme + "$" == HmacHasher.SCHEME
    pepper_id, _, digest = rest.partition("$")
    assert len(pepper_id) == 8
    assert len(digest) == 43
    assert hasher.hash("secret") == stored  # keyed, unsalted: deterministic
    assert hasher.verify(stored, "secret")
    assert not hasher.verify(stored, "secreT")
    assert hasher.supports(stored)
    assert not hasher.needs_rehash(stored)
    tampered = stored[:-1] + ("A" if stored[-1] != "A" else "B")
    assert not hasher.verify(tampered, "secret")
    for foreign in [Argon2Hasher.for_tests().hash("secret"), "", stored[:-1], stored + "A"]:
        assert not hasher.supports(foreign)
        assert not hasher.verify(foreign, "secret")
    # A str pepper and its bytes are the same pepper.
    assert HmacHasher([PEPPER_1.encode()]).hash("secret") == stored


def test_hmac_pepper_rotation() -> None:
    first = HmacHasher([PEPPER_1])
    both = HmacHasher([PEPPER_1, PEPPER_2])
    second = HmacHasher([PEPPER_2])
    old = first.hash("k")
    new = both.hash("k")
    assert new == second.hash("k")
    assert new != old
    assert both.verify(old, "k")
    assert both.verify(new, "k")
    assert both.needs_rehash(old)
    assert not both.needs_rehash(new)
    assert not second.supports(old)
    assert not second.verify(old, "k")
    assert not first.supports(new)


def test_hmac_rotation_through_the_manager(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    issued = KeyManager(store, prefix="acme", hasher=HmacHasher([PEPPER_1])).create(owner="o")
    with (
        caplog.at_level(logging.WARNING, logger="apikeys"),
        pytest.raises(AuthenticationError) as info,
    ):
        KeyManager(store, prefix="acme", hasher=HmacHasher([PEPPER_2])).verify(issued.plaintext)
    assert info.value.code == "invalid_secret"
    assert "unsupported" in caplog.text
    rotating = KeyManager(store, prefix="acme", hasher=HmacHasher([PEPPER_1, PEPPER_2]))
    assert rotating.verify(issued.plaintext).version == 2
    record = store.get(issued.key.id)
    assert record is not None
    assert record.secret_hash == HmacHasher([PEPPER_2]).hash(split(issued.plaintext)[2])
    # The old pepper can now be retired.
    assert (
        KeyManager(store, prefix="acme", hasher=HmacHasher([PEPPER_2, PEPPER_3]))
        .verify(issued.plaintext)
        .id
        == issued.key.id
    )


@pytest.mark.parametrize(
    "peppers",
    [[], PEPPER_1, PEPPER_2, ["short"], [b"x" * 31], [PEPPER_1, PEPPER_1.encode()]],
    ids=["none", "a-str", "a-bytes", "short", "31-bytes", "duplicate"],
)
def test_hmac_configuration_errors(peppers: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        HmacHasher(peppers)  # type: ignore[arg-type]
    message = str(info.value)
    assert PEPPER_1 not in message
    assert "short" not in message


def test_hmac_repr_and_hashes_hide_peppers() -> None:
    hasher = HmacHasher([PEPPER_1, PEPPER_2])
    forms = [PEPPER_1, PEPPER_2.decode(), PEPPER_2.hex(), PEPPER_1.encode().hex()]
    forms += [base64.b64encode(p).decode() for p in (PEPPER_1.encode(), PEPPER_2)]
    shown = repr(hasher) + str(hasher) + hasher.hash("k") + hasher.hash("other")
    for form in forms:
        assert form not in shown
        assert form[:16] not in shown
    assert repr(hasher) == "HmacHasher(peppers=<2 hidden>)"


def test_hmac_makes_the_fast_path_cheap_end_to_end() -> None:
    keys = KeyManager(
        MemoryStore(), prefix="acme", hasher=HmacHasher([PEPPER_1]), clock=ManualClock()
    )
    issued = keys.create(owner="o", expires_in=timedelta(days=1))
    assert keys.verify(issued.plaintext).id == issued.key.id
    with pytest.raises(AuthenticationError):
        keys.verify(format_key("acme", issued.key.id, "y" * 32))
