"""Counters in Redis for :class:`~apikeys.ratelimit.KeyRateLimiter`, shared by every
worker and host. One Lua script reads and charges a whole plan in one round trip,
atomically: Redis runs scripts one at a time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from apikeys._redis import (
    LoopClients,
    aclose_client,
    async_client,
    close_client,
    parse_redis_url,
    redis_module,
    sync_client,
    translating,
)
from apikeys.errors import ConfigurationError
from apikeys.ratelimit._rules import Counts, Plan

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


class RedisCounters:
    """Counters in Redis, so all workers and hosts share one count.

    Give a URL (clients are made on first use: a blocking one for ``hit`` and, per
    event loop, an asyncio one for ``ahit``), or your own clients.

    Works on one server, behind Sentinel and on Redis Cluster: every counter of a
    request carries its key's owner as hash tag (``{…}``), so the key's limits, its
    owner's limits and its quota sit in one slot and one script charges them all or
    none. Any Redis-protocol server that runs Lua scripts (Valkey, KeyDB) works.

    Args:
        url: A Redis URL: ``redis://host:port/db``, ``rediss://…``, ``unix://…``,
            ``redis+sentinel://host:port[,host:port]/service[/db]`` or
            ``redis+cluster://host:port[,host:port]`` (the forms are in docs/ratelimits.md).
        client: A blocking client (``redis.Redis``, ``RedisCluster``) to use
            instead of one made from ``url``.
        async_client: An asyncio client to use instead of those made from ``url``
            (then only from the loop it belongs to).
        namespace: Prefix of every Redis key written (no ``{`` or ``}``: the hash
            tag comes after it).
        timeout: Connect and socket timeout, in seconds, of clients made from
            ``url``: how long a request may wait on an unreachable Redis.

    Raises:
        ConfigurationError: neither a URL nor a client, a malformed URL, a
            namespace with braces, or the ``redis`` package is missing
            (``pip install 'apikeys[redis]'``).
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
        if "{" in namespace or "}" in namespace:
            raise ConfigurationError("a Redis namespace must not contain '{' or '}'")
        redis_module()
        if url is not None:
            parse_redis_url(url)
        self._url = url
        self._timeout = timeout
        self.namespace = namespace
        self._client = client
        self._owns_client = client is None
        self._async_client = async_client
        self._apply: Any = None
        self._give_back: Any = None
        self._loops: LoopClients[tuple[Any, Any, Any]] = LoopClients(
            self._make_async, self._close_async
        )

    def __repr__(self) -> str:
        return f"RedisCounters(namespace={self.namespace!r})"

    # --- clients ------------------------------------------------------------------------

    def _need_url(self) -> str:
        if self._url is None:
            raise ConfigurationError("RedisCounters has no url to make this kind of client from")
        return self._url

    def _sync(self) -> tuple[Any, Any, Any]:
        if self._apply is None:
            if self._client is None:
                self._client = sync_client(self._need_url(), timeout=self._timeout)
            self._give_back = self._client.register_script(_GIVE_BACK)
            self._apply = self._client.register_script(_APPLY)
        return self._client, self._apply, self._give_back

    def _make_async(self) -> tuple[Any, Any, Any]:
        client = self._async_client
        if client is None:
            client = async_client(self._need_url(), timeout=self._timeout)
        return client, client.register_script(_APPLY), client.register_script(_GIVE_BACK)

    async def _close_async(self, bundle: tuple[Any, Any, Any]) -> None:
        if bundle[0] is not self._async_client:
            await aclose_client(bundle[0])

    async def _async(self) -> tuple[Any, Any, Any]:
        return await self._loops.get()

    @staticmethod
    def _translate() -> AbstractContextManager[None]:
        return translating("rate-limit counters")

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
            _, script, _ = await self._async()
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
                client, _, _ = await self._async()
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
            _, _, script = await self._async()
            await script(keys=[self.namespace + name], args=[str(uses)])

    def close(self) -> None:
        """Close the blocking client, if this object made it."""
        client, self._apply = self._client, None
        if client is not None and self._owns_client:
            self._client = None
            close_client(client)

    async def aclose(self) -> None:
        """Close the blocking client and the running loop's asyncio client, if this
        object made them (those of other loops close with their loops)."""
        self.close()
        await self._loops.aclose()
