"""Hashing a key's secret for storage: the :class:`Hasher` protocol and two hashers.

- :class:`Argon2Hasher` (default): Argon2id through argon2-cffi, PHC strings
  (``$argon2id$v=19$m=12288,t=1,p=1$…``). Parameters live in the hash, so they can
  change later; an old hash is re-hashed after its next successful verification.
- :class:`HmacHasher`: HMAC-SHA256 with a server-side pepper, for deployments
  that want no slow hash at all. Peppers are a list, oldest first: the newest
  signs, all verify, so a pepper can be rotated.

Which fits: a key's secret is 190 random bits, not a password, so even a fast
hash cannot be brute-forced from a leaked database. Argon2id protects also against
a leaked database *and* a weak random source, at ~5 ms per cold verification (the
warm path skips it). HMAC costs ~1 µs and is safe as long as the pepper stays out
of the database; if the pepper leaks together with the table, nothing is lost
either, because the secrets are still random. See ``docs/security.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Sequence
from typing import Final, NamedTuple, Protocol, runtime_checkable

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from apikeys.errors import ConfigurationError

__all__ = ["Argon2Hasher", "Hasher", "HmacHasher"]

logger = logging.getLogger("apikeys")

ALLOW_TEST_HASHER_ENV: Final = "APIKEYS_ALLOW_TEST_HASHER"
"""Set to ``1`` to allow :meth:`Argon2Hasher.for_tests` outside pytest."""

_DECIMAL = r"(0|[1-9][0-9]{0,9})"
_B64 = r"([A-Za-z0-9+/]+)"
# The one form argon2-cffi writes for Argon2id, and all we accept: no optional
# fields, no leading zeros, no padding, nothing after the tag (a NUL, a newline).
_ARGON2ID_PHC = re.compile(
    rf"\$argon2id\$v={_DECIMAL}\$m={_DECIMAL},t={_DECIMAL},p={_DECIMAL}\${_B64}\${_B64}"
)


class _Argon2Params(NamedTuple):
    version: int
    memory_cost: int
    time_cost: int
    parallelism: int
    salt_len: int
    hash_len: int


def _b64_length(text: str) -> int | None:
    """Bytes encoded by unpadded base64 ``text``, if it is canonical, else ``None``."""
    if len(text) % 4 == 1:
        return None
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii").rstrip("=") != text:
        return None  # non-zero padding bits: another spelling of the same bytes
    return len(raw)


def _parse_argon2id(stored_hash: str) -> _Argon2Params | None:
    """The parameters of an exact Argon2id PHC string, else ``None``. Never hashes."""
    match = _ARGON2ID_PHC.fullmatch(stored_hash) if isinstance(stored_hash, str) else None
    if match is None:
        return None
    version, memory, time, lanes = (int(match.group(i)) for i in range(1, 5))
    salt_len = _b64_length(match.group(5))
    hash_len = _b64_length(match.group(6))
    if salt_len is None or hash_len is None:
        return None
    return _Argon2Params(version, memory, time, lanes, salt_len, hash_len)


def _test_hasher_allowed() -> bool:
    """pytest (8.2 and later) exports ``PYTEST_VERSION`` for its whole run, to the
    subprocesses a test starts too; anything else must opt in explicitly."""
    return "PYTEST_VERSION" in os.environ or os.environ.get(ALLOW_TEST_HASHER_ENV) == "1"


@runtime_checkable
class Hasher(Protocol):
    """How a store-ready hash is made from a secret and checked against one.

    ``verify`` must compare in constant time. ``supports`` is called *before*
    ``verify`` and must not hash: it rejects hashes of another scheme or with
    parameters outside the accepted range, so a planted hash cannot make
    verification slow or weak.
    """

    def hash(self, secret: str) -> str:
        """Hash ``secret`` for storage (a self-describing string)."""
        ...

    def verify(self, stored_hash: str, secret: str) -> bool:
        """Whether ``secret`` matches ``stored_hash``. Never raises for a mismatch."""
        ...

    def supports(self, stored_hash: str) -> bool:
        """Whether ``stored_hash`` is of this hasher's scheme and parameter range."""
        ...

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether a supported hash was made with other parameters than today's."""
        ...


class Argon2Hasher:
    """Argon2id hasher (the default).

    The default profile (``memory_cost=12288`` KiB, ``time_cost=1``,
    ``parallelism=1``) costs about 5 ms per hash on a 2-core machine: Argon2's
    memory hardness at a cost fit for a per-request check of a *random* secret
    (password profiles at 50-500 ms suit low-entropy human secrets, not keys).
    Use :meth:`for_tests` in unit tests.

    A stored hash is parsed exactly (the Argon2id PHC string argon2-cffi writes,
    version 19, nothing before or after it) and its parameters must lie between a
    floor and a ceiling, or it is refused before any hashing (:meth:`supports` is
    ``False``, :meth:`verify` is ``False``): a hash planted with a cheap profile (the
    test profile's 8 KiB), a short tag or salt, or a ruinous cost never runs.

    Args:
        time_cost: Argon2 iterations.
        memory_cost: Memory in KiB.
        parallelism: Lanes.
        hash_len: Tag length in bytes.
        salt_len: Salt length in bytes.
        max_factor: Stored hashes whose time or memory cost exceed this many times
            today's (or whose parallelism exceeds today's times this) are refused
            before hashing, so a planted hash cannot cost 4 GiB of memory.
        min_memory_cost: The cheapest stored memory cost still accepted, in KiB
            (default: the production profile's 12288, or ``memory_cost`` if lower).
            Lower it only while moving keys off a cheaper profile you used before:
            their hashes are re-hashed on their next verification. Stored hashes
            are also refused below 1 pass, and with a salt or tag shorter than the
            production profile's 16 and 32 bytes (or this hasher's, if shorter).

    Raises:
        ConfigurationError: Parameters Argon2 cannot use, ``max_factor`` < 1, or a
            ``min_memory_cost`` outside ``8 * parallelism``..``memory_cost``.
    """

    PRODUCTION: Final = argon2.Parameters(
        type=argon2.Type.ID,
        version=19,
        salt_len=16,
        hash_len=32,
        time_cost=1,
        memory_cost=12288,
        parallelism=1,
    )
    """The default profile: the floor of every stored hash a hasher accepts, unless
    it was itself configured cheaper (or given ``min_memory_cost``)."""

    SCHEME: Final = "$argon2id$"

    def __init__(
        self,
        *,
        time_cost: int = 1,
        memory_cost: int = 12288,
        parallelism: int = 1,
        hash_len: int = 32,
        salt_len: int = 16,
        max_factor: int = 4,
        min_memory_cost: int | None = None,
    ) -> None:
        # argon2-cffi accepts these at construction and fails only on the first hash
        # (with its own HashingError); refuse them here, where the mistake is made.
        if (
            time_cost < 1
            or parallelism < 1
            or memory_cost < 8 * parallelism
            or hash_len < 4
            or salt_len < 8
        ):
            raise ConfigurationError(
                "invalid Argon2 parameters: need time_cost >= 1, parallelism >= 1, "
                "memory_cost >= 8 * parallelism (KiB), hash_len >= 4, salt_len >= 8"
            )
        try:
            self._hasher = argon2.PasswordHasher(
                time_cost=time_cost,
                memory_cost=memory_cost,
                parallelism=parallelism,
                hash_len=hash_len,
                salt_len=salt_len,
                type=argon2.Type.ID,
            )
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"invalid Argon2 parameters: {exc}") from exc
        if max_factor < 1:
            raise ConfigurationError("max_factor must be at least 1")
        floor = self.PRODUCTION
        min_memory = (
            min(memory_cost, floor.memory_cost) if min_memory_cost is None else min_memory_cost
        )
        if not 8 * parallelism <= min_memory <= memory_cost:
            raise ConfigurationError(
                "min_memory_cost must lie between 8 * parallelism and memory_cost (KiB)"
            )
        self.parameters = self._hasher._parameters
        self._low = _Argon2Params(
            argon2.low_level.ARGON2_VERSION,
            min_memory,
            min(time_cost, floor.time_cost),
            1,
            min(salt_len, floor.salt_len),
            min(hash_len, floor.hash_len),
        )
        self._high = _Argon2Params(
            argon2.low_level.ARGON2_VERSION,
            memory_cost * max_factor,
            time_cost * max_factor,
            parallelism * max_factor,
            max(salt_len, 64),
            max(hash_len, 64),
        )
        self._current = _Argon2Params(
            argon2.low_level.ARGON2_VERSION,
            memory_cost,
            time_cost,
            parallelism,
            salt_len,
            hash_len,
        )

    @classmethod
    def for_tests(cls) -> Argon2Hasher:
        """A deliberately cheap profile (8 KiB, 1 pass) for unit tests only.

        Refused outside tests, so it cannot reach production unnoticed: it works
        while pytest runs (pytest 8.2+ sets ``PYTEST_VERSION``, inherited by the
        subprocesses a test starts), or where ``APIKEYS_ALLOW_TEST_HASHER=1`` is set
        (another test runner, a benchmark), then with a warning logged each time.

        Raises:
            ConfigurationError: Neither pytest nor the explicit opt-in.
        """
        if not _test_hasher_allowed():
            raise ConfigurationError(
                "Argon2Hasher.for_tests() is a deliberately cheap profile for tests only; "
                f"outside pytest set {ALLOW_TEST_HASHER_ENV}=1 to use it anyway"
            )
        if "PYTEST_VERSION" not in os.environ:
            logger.warning(
                "apikeys: using the cheap test Argon2 profile (%s=1): never for real keys",
                ALLOW_TEST_HASHER_ENV,
            )
        return cls(time_cost=1, memory_cost=8, parallelism=1, max_factor=2048)

    def __repr__(self) -> str:
        p = self.parameters
        return (
            f"Argon2Hasher(time_cost={p.time_cost}, memory_cost={p.memory_cost}, "
            f"parallelism={p.parallelism})"
        )

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def _accepted(self, stored_hash: str) -> _Argon2Params | None:
        params = _parse_argon2id(stored_hash)
        if params is None or params.memory_cost < 8 * params.parallelism:
            return None
        low, high = self._low, self._high
        if all(lo <= value <= hi for lo, value, hi in zip(low, params, high, strict=True)):
            return params
        return None

    def supports(self, stored_hash: str) -> bool:
        return self._accepted(stored_hash) is not None

    def verify(self, stored_hash: str, secret: str) -> bool:
        if self._accepted(stored_hash) is None:
            logger.warning(
                "apikeys: a stored hash is not an Argon2id hash this hasher accepts; "
                "refused without hashing"
            )
            return False
        try:
            return self._hasher.verify(stored_hash, secret)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            logger.warning("apikeys: a stored Argon2 hash could not be checked")
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return _parse_argon2id(stored_hash) != self._current


def _fingerprint(pepper: bytes) -> str:
    return hashlib.sha256(b"apikeys-pepper-id" + pepper).hexdigest()[:8]


class HmacHasher:
    """Keyed HMAC-SHA256 hasher with rotating peppers.

    Hashes look like ``$apikeys-hmac-sha256$p=<pepper id>$<base64 digest>``; the
    pepper id is a fingerprint, never the pepper.

    Args:
        peppers: Server-side secrets of at least 32 bytes, oldest first. The last
            one signs new hashes; every one verifies; hashes made with an older one
            are re-hashed after their next successful verification.

    Warning:
        Keep peppers out of the database that holds the hashes (environment or a
        secret manager). Removing a pepper invalidates every key still hashed with it.
    """

    SCHEME: Final = "$apikeys-hmac-sha256$"

    def __init__(self, peppers: Sequence[bytes | str]) -> None:
        if isinstance(peppers, bytes | str):
            raise ConfigurationError("peppers must be a list, oldest first")
        encoded = [p.encode() if isinstance(p, str) else bytes(p) for p in peppers]
        if not encoded:
            raise ConfigurationError("HmacHasher needs at least one pepper")
        if any(len(p) < 32 for p in encoded):
            raise ConfigurationError("each pepper must be at least 32 bytes")
        self._peppers = {_fingerprint(p): p for p in encoded}
        if len(self._peppers) != len(encoded):
            raise ConfigurationError("peppers must be distinct")
        self._current_id = _fingerprint(encoded[-1])
        self._current = encoded[-1]

    def __repr__(self) -> str:
        return f"HmacHasher(peppers=<{len(self._peppers)} hidden>)"

    def _digest(self, pepper: bytes, secret: str) -> str:
        mac = hmac.new(pepper, secret.encode(), hashlib.sha256).digest()
        return base64.b64encode(mac).decode("ascii").rstrip("=")

    def hash(self, secret: str) -> str:
        return f"{self.SCHEME}p={self._current_id}${self._digest(self._current, secret)}"

    def _split(self, stored_hash: str) -> tuple[str, str] | None:
        if not stored_hash.startswith(self.SCHEME):
            return None
        params, _, digest = stored_hash[len(self.SCHEME) :].partition("$")
        if not params.startswith("p=") or params[2:] not in self._peppers or len(digest) != 43:
            return None
        return params[2:], digest

    def supports(self, stored_hash: str) -> bool:
        return self._split(stored_hash) is not None

    def verify(self, stored_hash: str, secret: str) -> bool:
        parts = self._split(stored_hash)
        if parts is None:
            return False
        pepper_id, digest = parts
        expected = self._digest(self._peppers[pepper_id], secret)
        return hmac.compare_digest(expected.encode(), digest.encode())

    def needs_rehash(self, stored_hash: str) -> bool:
        parts = self._split(stored_hash)
        return parts is not None and parts[0] != self._current_id
