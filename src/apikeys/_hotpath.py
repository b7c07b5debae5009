"""Per-process state that keeps verification cheap and its cost bounded.

- :class:`VerifiedCache`: after a secret is proven against a stored hash, remember
  a keyed BLAKE2b digest of the secret (under a random per-process key) beside that hash. The
  next verification of the same key compares digests in constant time instead of
  running Argon2. The store is still read on every verification: the cache only
  answers "does this secret match this stored hash?", never "is the key valid?".
- :class:`FailureThrottle`: failed secrets per key id, in a sliding window.
- :class:`HashSlots`: a cap on concurrent slow-hash computations.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

Match = Literal["match", "mismatch", "unknown"]


class VerifiedCache:
    """Bounded map ``key id → (stored hash, keyed digest of the verified secret)``."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self._maxsize = maxsize
        self._entries: dict[str, tuple[str, bytes]] = {}
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)

    def digest(self, secret: str) -> bytes:
        return hashlib.blake2b(secret.encode(), key=self._key, digest_size=32).digest()

    def check(self, key_id: str, stored_hash: str, digest: bytes) -> Match:
        """``match``/``mismatch`` when an entry for this very stored hash exists,
        else ``unknown`` (the slow hash must decide)."""
        entry = self._entries.get(key_id)
        if entry is None or not hmac.compare_digest(entry[0], stored_hash):
            return "unknown"
        return "match" if hmac.compare_digest(entry[1], digest) else "mismatch"

    def remember(self, key_id: str, stored_hash: str, digest: bytes) -> None:
        if self._maxsize <= 0:
            return
        with self._lock:
            self._entries.pop(key_id, None)
            while len(self._entries) >= self._maxsize:
                del self._entries[next(iter(self._entries))]
            self._entries[key_id] = (stored_hash, digest)

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._entries.pop(key_id, None)

    def __len__(self) -> int:
        return len(self._entries)


class FailureThrottle:
    """Counts failed secrets per key id over a sliding ``window`` (seconds).

    After ``limit`` failures inside the window, further checks for that id that do
    not prove the secret (a cold check, a cached mismatch, an id no store holds) are
    refused until the oldest failure leaves the window; a holder whose secret this
    process already verified still gets through on the cached digest. Unknown ids are
    counted exactly like known ones, so the sequence of answers never tells whether
    an id exists.

    Memory is bounded by ``max_tracked`` ids of at most ``limit`` timestamps each:
    tracking one more forgets the id that failed least recently, so a flood of random
    ids costs a fixed amount of memory (and can only lift the throttle of ids that
    stopped failing, never lock one out).

    Args:
        limit: Failures per window before refusing (``0``: never refuse).
        window: The window in seconds.
        max_tracked: The most ids remembered at once.
        clock: Seconds on any monotonic-enough scale; the managers pass their own
            injected clock, so a test clock also moves the throttle.
    """

    def __init__(
        self,
        limit: int = 10,
        window: float = 60.0,
        max_tracked: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._max_tracked = max(1, max_tracked)
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key_id: str, now: float | None = None) -> float:
        """Seconds until a cold check of ``key_id`` is allowed again (0 if now)."""
        if self.limit <= 0:
            return 0.0
        failures = self._failures.get(key_id)
        if failures is None or len(failures) < self.limit:
            return 0.0
        now = self._clock() if now is None else now
        with self._lock:
            # A clock set back (the managers pass a wall clock) must not prolong a
            # pause: failures "in the future" go with those past the window.
            recent = [t for t in failures if now - self.window < t <= now]
            if len(recent) < len(failures):
                failures.clear()
                failures.extend(recent)
            if len(failures) < self.limit:
                return 0.0
            return failures[0] + self.window - now

    def record_failure(self, key_id: str, now: float | None = None) -> None:
        if self.limit <= 0:
            return
        now = self._clock() if now is None else now
        with self._lock:
            failures = self._failures.pop(key_id, None)
            if failures is None:
                failures = deque(maxlen=self.limit)
                while len(self._failures) >= self._max_tracked:
                    del self._failures[next(iter(self._failures))]
            failures.append(now)
            self._failures[key_id] = failures

    def clear(self, key_id: str) -> None:
        with self._lock:
            self._failures.pop(key_id, None)

    def __len__(self) -> int:
        """How many ids are tracked now (at most ``max_tracked``)."""
        return len(self._failures)


class HashSlots:
    """At most ``capacity`` slow hashes at once; a caller waits at most ``timeout``."""

    def __init__(self, capacity: int, timeout: float) -> None:
        self.capacity = capacity
        self.timeout = timeout
        self._semaphore = threading.BoundedSemaphore(capacity)

    def try_acquire(self, *, block: bool = True) -> bool:
        if block and self.timeout > 0:
            return self._semaphore.acquire(timeout=self.timeout)
        return self._semaphore.acquire(blocking=False)

    def release(self) -> None:
        self._semaphore.release()
