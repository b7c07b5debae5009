"""Counters in Redis for :class:`~apikeys.ratelimit.KeyRateLimiter`, shared by every
worker and host. One Lua script reads and charges a whole plan in one round trip,
atomically: Redis runs scripts one at a time."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from apikeys.ratelimit._rules import Counts, Plan
from apikeys.errors import ConfigurationError, StorageError

# KEYS: current and previous counter of each check, in pairs.
# ARGV: charge ("1"/"0"), then per check: limit, weight of the previous window,
# time to live in ms of a new current counter (0: none).
# Replies: allowed (1/0), then every counter's value before charging.
_APPLY = """
local values = redis.call('MGET', unpack(KEYS))
local checks = #KEYS / 2
local allowed = 1
for i = 1, checks do
  local current = tonumber(values[2 * i - 1]) or 0
  local previous = tonumber(values[2 * i]) or 0
  if math.floor(previous * tonumber(ARGV[3 * i])) + current >= tonumber(ARGV[3 * i - 1]) then
    allowed = 0
    break
  end
end
if allowed == 1 and ARGV[1] == '1' then
  for i = 1, checks do
    local ttl = tonumber(ARGV[3 * i + 1])
    if redis.call('INCR', KEYS[2 * i - 1]) == 1 and ttl > 0 then
      redis.call('PEXPIRE', KEYS[2 * i - 1], ttl)
    end
  end
end
local reply = {allowed}
for i = 1, #values do
  reply[i + 1] = tonumber(values[i]) or 0
end
return reply
"""

_GIVE_BACK = """
local left = redis.call('DECRBY', KEYS[1], ARGV[1])
if left <= 0 then
  redis.call('DEL', KEYS[1])
end
return left
"""

# Hosts' clocks may disagree a little: keep counters a second past their window.
_TTL_SLACK_MS = 1000


def _redis() -> Any:
    try:
        import redis
        import redis.asyncio
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "Redis rate-limit counters need the redis package: pip install 'apikeys[redis]'"
        ) from exc
    return redis


class RedisCounters:
    """Counters in Redis, so all workers and hosts share one count.

    Give a URL (clients are made on first use: a blocking ``redis.Redis`` for
    ``hit`` and a ``redis.asyncio.Redis`` for ``ahit``), or your own clients.
    Redis Cluster is not supported: one request's counters span several keys.

    Args:
        url: ``redis://host:port/db``, ``rediss://…`` or ``unix://…``.
        client: A ``redis.Redis`` to use instead of one made from ``url``.
        async_client: A ``redis.asyncio.Redis`` to use instead of one made from
            ``url``.
        namespace: Prefix of every Redis key written.
        timeout: Connect and socket timeout, in seconds, of clients made from
            ``url``: how long a request may wait on an unreachable Redis.

    Raises:
        ConfigurationError: neither a URL nor a client, or the ``redis`` package
            is missing (``pip install 'apikeys[redis]'``).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        async_client: Any = None,
        namespace: str = "apikeys:rl:",
        timeout: float = 1.0,
    ) -> None:
        if url is None and client is None and async_client is None:
            raise ConfigurationError("RedisCounters needs a url or a client")
        self._redis = _redis()
        self._url = url
        self._timeout = timeout
        self.namespace = namespace
        self._client = client
        self._async_client = async_client
        self._owns_client = client is None
        self._owns_async_client = async_client is None
        self._apply: Any = None
        self._give_back: Any = None
        self._aapply: Any = None
        self._agive_back: Any = None

    def __repr__(self) -> str:
        return f"RedisCounters(namespace={self.namespace!r})"

    # --- clients ------------------------------------------------------------------------

    def _connect(self, factory: Any) -> Any:
        if self._url is None:
            raise ConfigurationError("RedisCounters has no url to make this kind of client from")
        return factory.from_url(
            self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout
        )

    def _sync(self) -> tuple[Any, Any, Any]:
        if self._apply is None:
            if self._client is None:
                self._client = self._connect(self._redis.Redis)
            self._give_back = self._client.register_script(_GIVE_BACK)
            self._apply = self._client.register_script(_APPLY)
        return self._client, self._apply, self._give_back

    def _async(self) -> tuple[Any, Any, Any]:
        if self._aapply is None:
            if self._async_client is None:
                self._async_client = self._connect(self._redis.asyncio.Redis)
            self._agive_back = self._async_client.register_script(_GIVE_BACK)
            self._aapply = self._async_client.register_script(_APPLY)
        return self._async_client, self._aapply, self._agive_back

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """The one seam where driver errors become :class:`StorageError`."""
        try:
            yield
        except (self._redis.RedisError, OSError) as exc:
            raise StorageError(f"rate-limit counters unavailable ({type(exc).__name__})") from exc

    # --- operations ---------------------------------------------------------------------

    def _arguments(self, plan: Plan, charge: bool) -> tuple[list[str], list[str]]:
        ns = self.namespace
        keys: list[str] = []
        args = ["1" if charge else "0"]
        for counter in plan:
            keys.append(ns + counter.current)
            keys.append(ns + (counter.previous or counter.current))
            ttl = math.ceil(counter.ttl * 1000) + _TTL_SLACK_MS if counter.ttl > 0 else 0
            args += [str(counter.limit), repr(counter.weight), str(ttl)]
        return keys, args

    @staticmethod
    def _reply(plan: Plan, reply: Sequence[Any]) -> tuple[bool, Counts]:
        counts = [
            (int(reply[2 * i + 1]), int(reply[2 * i + 2]) if counter.previous else 0)
            for i, counter in enumerate(plan)
        ]
        return int(reply[0]) == 1, counts

    def apply(self, plan: Plan, at: float, charge: bool) -> tuple[bool, Counts]:
        """Read every counter of ``plan``; if all allow and ``charge``, add one to each.

        Returns:
            Whether the request is allowed, and the counts before charging.

        Raises:
            StorageError: Redis failed or is unreachable.
        """
        keys, args = self._arguments(plan, charge)
        with self._translate():
            _, script, _ = self._sync()
            reply = script(keys=keys, args=args)
        return self._reply(plan, reply)

    async def aapply(self, plan: Plan, at: float, charge: bool) -> tuple[bool, Counts]:
        """:meth:`apply` on the asyncio client."""
        keys, args = self._arguments(plan, charge)
        with self._translate():
            _, script, _ = self._async()
            reply = await script(keys=keys, args=args)
        return self._reply(plan, reply)

    def clear(self, names: Sequence[str], at: float) -> None:
        """Delete the named counters.

        Raises:
            StorageError: Redis failed or is unreachable.
        """
        if names:
            with self._translate():
                client, _, _ = self._sync()
                client.delete(*(self.namespace + name for name in names))

    async def aclear(self, names: Sequence[str], at: float) -> None:
        """:meth:`clear` on the asyncio client."""
        if names:
            with self._translate():
                client, _, _ = self._async()
                await client.delete(*(self.namespace + name for name in names))

    def give_back(self, name: str, uses: int, at: float) -> None:
        """Take ``uses`` off the named counter (deleting it at zero).

        Raises:
            StorageError: Redis failed or is unreachable.
        """
        with self._translate():
            _, _, script = self._sync()
            script(keys=[self.namespace + name], args=[str(uses)])

    async def agive_back(self, name: str, uses: int, at: float) -> None:
        """:meth:`give_back` on the asyncio client."""
        with self._translate():
            _, _, script = self._async()
            await script(keys=[self.namespace + name], args=[str(uses)])

    def close(self) -> None:
        """Close the blocking client, if this object made it."""
        client, self._apply = self._client, None
        if client is not None and self._owns_client:
            self._client = None
            client.close()

    async def aclose(self) -> None:
        """Close both clients this object made."""
        self.close()
        client, self._aapply = self._async_client, None
        if client is not None and self._owns_async_client:
            self._async_client = None
            await client.aclose()
