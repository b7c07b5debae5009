"""In-process counters for :class:`~apikeys.ratelimit.KeyRateLimiter`: one lock,
so a whole plan is read and charged atomically across threads."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from apikeys.ratelimit._rules import Counts, Plan, allows


class MemoryCounters:
    """Counters in a dict, guarded by one lock (the default storage).

    Counts are per process: with several workers or hosts, each one counts on
    its own; use :class:`~apikeys.ratelimit.RedisCounters` to share them.

    Expiry follows the instants passed in (the manager's clock), not the wall
    clock. Expired counters are dropped lazily and by a sweep every
    ``sweep_every`` charges, so memory stays bounded by the keys in use.

    Args:
        sweep_every: Charges between two sweeps of expired counters.
    """

    def __init__(self, *, sweep_every: int = 10_000) -> None:
        self._lock = threading.Lock()
        # name -> [count, expires at (POSIX seconds; inf: never)]
        self._values: dict[str, list[float]] = {}
        self._sweep_every = max(1, sweep_every)
        self._charges = 0

    def __repr__(self) -> str:
        return f"MemoryCounters(counters={len(self._values)})"

    def _read(self, name: str | None, at: float) -> int:
        if name is None:
            return 0
        entry = self._values.get(name)
        if entry is None:
            return 0
        if entry[1] <= at:
            del self._values[name]
            return 0
        return int(entry[0])

    def apply(self, plan: Plan, at: float, charge: bool) -> tuple[bool, Counts]:
        """Read every counter of ``plan``; if all allow and ``charge``, add one to each.

        Returns:
            Whether the request is allowed, and the counts before charging.
        """
        read = self._read
        with self._lock:
            counts = [(read(c.current, at), read(c.previous, at)) for c in plan]
            allowed = allows(plan, counts)
            if allowed and charge:
                values = self._values
                for counter in plan:
                    entry = values.get(counter.current)
                    if entry is None:
                        expires = at + counter.ttl if counter.ttl > 0 else math.inf
                        values[counter.current] = [1, expires]
                    else:
                        entry[0] += 1
                self._charges += 1
                if self._charges >= self._sweep_every:
                    self._sweep(at)
        return allowed, counts

    async def aapply(self, plan: Plan, at: float, charge: bool) -> tuple[bool, Counts]:
        """:meth:`apply`, awaitable (it never blocks for long: no I/O, one short lock)."""
        return self.apply(plan, at, charge)

    def _sweep(self, at: float) -> None:
        self._charges = 0
        expired = [name for name, (_, expires) in self._values.items() if expires <= at]
        for name in expired:
            del self._values[name]

    def clear(self, names: Sequence[str], at: float) -> None:
        """Forget the named counters."""
        with self._lock:
            for name in names:
                self._values.pop(name, None)

    async def aclear(self, names: Sequence[str], at: float) -> None:
        """:meth:`clear`, awaitable."""
        self.clear(names, at)

    def give_back(self, name: str, uses: int, at: float) -> None:
        """Take ``uses`` off the named counter (not below zero)."""
        with self._lock:
            entry = self._values.get(name)
            if entry is None:
                return
            entry[0] -= uses
            if entry[0] <= 0:
                del self._values[name]

    async def agive_back(self, name: str, uses: int, at: float) -> None:
        """:meth:`give_back`, awaitable."""
        self.give_back(name, uses, at)

    def close(self) -> None:
        """Nothing to release."""

    async def aclose(self) -> None:
        """Nothing to release."""

    def __len__(self) -> int:
        return len(self._values)
