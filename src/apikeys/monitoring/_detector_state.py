"""Detector windows kept in Redis, so every process and host feeds one window per
key and a burst spread over workers is seen. Needs ``pip install 'apikeys[redis]'``.

Layout (``ns`` the namespace, ``{kid}`` the key id as hash tag: one slot per key):

- ``{ns}{kid}{detector}:w``: a sorted set, member → time seen (epoch µs); members
  older than the window are trimmed on every write, the set expires with it.
- ``{ns}{kid}{detector}:fired``: set (``NX``) for the cooldown when the detector
  fires, so one process fires and the others stay quiet.
"""

from __future__ import annotations

from typing import Any

from apikeys._redis import close_client, hash_tag, parse_redis_url, redis_module, sync_client
from apikeys._redis import translating as _translating
from apikeys.errors import ConfigurationError

# KEYS: the window, the cooldown flag. ARGV: now (µs), window (µs), member,
# threshold, cooldown (ms), most members kept, members listed in the reply.
# Returns {count} below the threshold or in cooldown, else {count, members...}.
_WINDOW = """
local now = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))
local n = redis.call('ZCARD', KEYS[1])
local most = tonumber(ARGV[6])
if n > most then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - most - 1)
  n = most
end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000) + 1000)
if n < tonumber(ARGV[4]) then
  return {n}
end
local cooldown = tonumber(ARGV[5])
if cooldown > 0 and not redis.call('SET', KEYS[2], '1', 'NX', 'PX', cooldown) then
  return {n}
end
local reply = redis.call('ZRANGE', KEYS[1], -tonumber(ARGV[7]), -1)
table.insert(reply, 1, n)
return reply
"""


class RedisDetectorState:
    """Where detectors that support it (:class:`FailedSecretBurst`,
    :class:`ManyAddresses`) keep their per-key windows, shared through Redis.

    Pass it as ``shared=`` to those detectors in every process. Calls happen in the
    monitor's background thread, never on the request path. When Redis fails, the
    detector falls back to its in-process window and logs a warning.

    Args:
        url: A Redis URL (``redis://``, ``rediss://``, ``unix://``,
            ``redis+sentinel://…``, ``redis+cluster://…``).
        client: A blocking client to use instead (not closed by :meth:`close`).
        namespace: Prefix of every Redis key written (no ``{`` or ``}``).
        timeout: Connect and socket timeout, in seconds, of a client made from ``url``.

    Raises:
        ConfigurationError: neither a URL nor a client, a malformed URL, a namespace
            with braces, or the ``redis`` package is missing.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        namespace: str = "apikeys:detect:",
        timeout: float = 1.0,
    ) -> None:
        if url is None and client is None:
            raise ConfigurationError("RedisDetectorState needs a url or a client")
        if "{" in namespace or "}" in namespace:
            raise ConfigurationError("a Redis namespace must not contain '{' or '}'")
        redis_module()
        if url is not None:
            parse_redis_url(url)
        self._url = url
        self._client = client
        self._owns_client = client is None
        self._timeout = timeout
        self._script: Any = None
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"RedisDetectorState(namespace={self.namespace!r})"

    def window(
        self,
        detector: str,
        key_id: str,
        *,
        at_us: int,
        window_us: int,
        member: str,
        threshold: int,
        cooldown_ms: int,
        most: int,
        listed: int,
    ) -> tuple[int, list[str]] | None:
        """Add ``member`` (seen at ``at_us``) to the key's window and read it.

        Args:
            detector: The detector's name (one window per detector and key).
            key_id: The key.
            at_us: The event's time, epoch microseconds.
            window_us: The window's length.
            member: What was seen (an address; unique text to count each event).
            threshold: Members in the window that fire.
            cooldown_ms: After firing, no process fires for the key this long.
            most: Members kept at most (the oldest trimmed first).
            listed: Most recent members returned when firing.

        Returns:
            ``(count, most recent members)`` when the detector fires now (this
            process won the cooldown), else ``None``.

        Raises:
            StorageError: Redis failed or is unreachable.
        """
        prefix = f"{self.namespace}{hash_tag(key_id)}{detector}"
        with _translating("shared detector state"):
            if self._script is None:
                if self._client is None:
                    self._client = sync_client(str(self._url), timeout=self._timeout)
                self._script = self._client.register_script(_WINDOW)
            reply = self._script(
                keys=[prefix + ":w", prefix + ":fired"],
                args=[at_us, window_us, member, threshold, cooldown_ms, most, listed],
                client=self._client,
            )
        if len(reply) == 1:
            return None
        return int(reply[0]), [m.decode() if isinstance(m, bytes) else m for m in reply[1:]]

    def close(self) -> None:
        """Close the client, if this object made it."""
        client, self._script = self._client, None
        if client is not None and self._owns_client:
            self._client = None
            close_client(client)
