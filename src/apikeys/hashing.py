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
import hashlib
import hmac
import logging
from collections.abc import Sequence
from typing import Final, Protocol, runtime_checkable

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from apikeys.errors import ConfigurationError

__all__ = ["Argon2Hasher", "Hasher", "HmacHasher"]

logger = logging.getLogger("apikeys")


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

    Args:
        time_cost: Argon2 iterations.
        memory_cost: Memory in KiB.
        parallelism: Lanes.
        max_factor: Stored hashes whose time or memory cost exceed this many times
            today's (or whose parallelism exceeds today's times this) are refused
            before hashing, so a planted hash cannot cost 4 GiB of memory.
    """

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
        self.parameters = self._hasher._parameters
        self._max_time = time_cost * max_factor
        self._max_memory = memory_cost * max_factor
        self._max_parallelism = parallelism * max_factor

    @classmethod
    def for_tests(cls) -> Argon2Hasher:
        """A deliberately cheap profile (8 KiB, 1 pass) for unit tests only."""
        return cls(time_cost=1, memory_cost=8, parallelism=1, max_factor=2048)

    def __repr__(self) -> str:
        p = self.parameters
        return (
            f"Argon2Hasher(time_cost={p.time_cost}, memory_cost={p.memory_cost}, "
            f"parallelism={p.parallelism})"
        )

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def supports(self, stored_hash: str) -> bool:
        if not stored_hash.startswith(self.SCHEME):
            return False
        try:
            params = argon2.extract_parameters(stored_hash)
        except (InvalidHashError, ValueError):
            return False
        return (
            params.type is argon2.Type.ID
            and params.version == argon2.low_level.ARGON2_VERSION
            and 1 <= params.time_cost <= self._max_time
            and 8 <= params.memory_cost <= self._max_memory
            and 1 <= params.parallelism <= self._max_parallelism
        )

    def verify(self, stored_hash: str, secret: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, secret)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            logger.warning("apikeys: a stored Argon2 hash could not be checked")
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)


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
