"""Usage counters in Redis, shared by every worker and host. Needs
``pip install 'apikeys[redis]'``.

Layout (``ns`` is the namespace):

- ``{ns}c:{key_id}:{width}:{bucket}``: a hash, field ``[method, route, status]``
  (JSON) → requests; ``HINCRBY`` adds, so concurrent writers never lose a count.
- ``{ns}a:{key_id}:{day}:n``: a hash, address → requests that day;
  ``…:f`` / ``…:l``: sorted sets, address → first / last time seen (epoch µs),
  kept with ``ZADD LT`` / ``ZADD GT`` (Redis ≥ 6.2).

Every key expires after its width's retention, so Redis needs no pruning.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from apikeys.errors import ConfigurationError, InvalidArgument, StorageError
from apikeys.monitoring._usage import (
    GRANULARITIES,
    MAX_BUCKETS,
    AddressRow,
    CounterRow,
    check_retention,
)

_DAY = 86_400


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "Redis usage counters need the redis package: pip install 'apikeys[redis]'"
        ) from exc
    return redis


class RedisUsageStore:
    """Usage counters in Redis (see the module docs for the key layout).

    A flush is one ``MULTI``/``EXEC`` transaction: it lands whole or not at all.

    Args:
        url: ``redis://host:port/db``, ``rediss://…`` or ``unix://…``; a client is
            made on first use.
        client: A ``redis.Redis`` to use instead (not closed by :meth:`close`).
        namespace: Prefix of every Redis key written.
        retention: How long each width is kept (see ``DEFAULT_RETENTION``).
        timeout: Connect and socket timeout, in seconds, of a client made from ``url``.

    Raises:
        ConfigurationError: neither a URL nor a client, or the ``redis`` package is
            missing.
        InvalidArgument: an invalid retention.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        namespace: str = "apikeys:usage:",
        retention: Mapping[str, timedelta] | None = None,
        timeout: float = 2.0,
    ) -> None:
        if url is None and client is None:
            raise ConfigurationError("RedisUsageStore needs a url or a client")
        self._redis = _redis()
        self._url = url
        self._client = client
        self._owns_client = client is None
        self._timeout = timeout
        self.namespace = namespace
        self.retention = check_retention(retention)
        self._ttl = {
            GRANULARITIES[name]: int(period.total_seconds()) + GRANULARITIES[name]
            for name, period in self.retention.items()
        }

    def __repr__(self) -> str:
        return f"RedisUsageStore(namespace={self.namespace!r})"

    def _sync(self) -> Any:
        if self._client is None:
            self._client = self._redis.Redis.from_url(
                self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout
            )
        return self._client

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """The one seam where driver errors become :class:`StorageError`."""
        try:
            yield
        except (self._redis.RedisError, OSError) as exc:
            raise StorageError(f"Redis usage counters unavailable ({type(exc).__name__})") from exc

    def _counter_key(self, key_id: str, width: int, bucket: int) -> str:
        return f"{self.namespace}c:{key_id}:{width}:{bucket}"

    def _address_key(self, key_id: str, day: int) -> str:
        return f"{self.namespace}a:{key_id}:{day}"

    def add(self, counts: Sequence[CounterRow], addresses: Sequence[AddressRow]) -> None:
        """Add rows in one transaction (see ``UsageStore``).

        Raises:
            StorageError: Redis failed or is unreachable; nothing was added.
        """
        if not counts and not addresses:
            return
        expiring: dict[str, int] = {}
        with self._translate():
            pipe = self._sync().pipeline(transaction=True)
            for r in counts:
                name = self._counter_key(r.key_id, r.granularity, r.bucket)
                pipe.hincrby(name, json.dumps([r.method, r.route, r.status]), r.count)
                expiring[name] = self._ttl[r.granularity]
            for a in addresses:
                base = self._address_key(a.key_id, a.day)
                pipe.hincrby(base + ":n", a.ip, a.count)
                pipe.zadd(base + ":f", {a.ip: a.first_us}, lt=True)
                pipe.zadd(base + ":l", {a.ip: a.last_us}, gt=True)
                for suffix in (":n", ":f", ":l"):
                    expiring[base + suffix] = self._ttl[_DAY]
            for name, ttl in expiring.items():
                pipe.expire(name, ttl)
            pipe.execute()

    def counts(self, key_id: str, *, granularity: int, since: int, until: int) -> list[CounterRow]:
        """Rows of one key and width in ``[since, until)`` (one pipelined read).

        Raises:
            InvalidArgument: more than 10000 buckets (Redis reads each one).
            StorageError: Redis failed or is unreachable.
        """
        start = since - since % granularity
        if (until - start) // granularity > MAX_BUCKETS:
            raise InvalidArgument(f"at most {MAX_BUCKETS} buckets per Redis read")
        buckets = [b for b in range(start, until, granularity) if b >= since]
        if not buckets:
            return []
        with self._translate():
            pipe = self._sync().pipeline(transaction=False)
            for bucket in buckets:
                pipe.hgetall(self._counter_key(key_id, granularity, bucket))
            replies = pipe.execute()
        rows = []
        for bucket, fields in zip(buckets, replies, strict=True):
            for field, value in fields.items():
                method, route, status = json.loads(field)
                rows.append(
                    CounterRow(key_id, granularity, bucket, method, route, int(status), int(value))
                )
        return rows

    def addresses(self, key_id: str, *, since: int, until: int) -> list[AddressRow]:
        """Address rows of one key with a day in ``[since, until)``.

        Raises:
            InvalidArgument: more than 10000 days.
            StorageError: Redis failed or is unreachable.
        """
        start = since - since % _DAY
        if (until - start) // _DAY > MAX_BUCKETS:
            raise InvalidArgument(f"at most {MAX_BUCKETS} days per Redis read")
        days = [d for d in range(start, until, _DAY) if d >= since]
        if not days:
            return []
        with self._translate():
            pipe = self._sync().pipeline(transaction=False)
            for day in days:
                base = self._address_key(key_id, day)
                pipe.hgetall(base + ":n")
                pipe.zrange(base + ":f", 0, -1, withscores=True)
                pipe.zrange(base + ":l", 0, -1, withscores=True)
            replies = pipe.execute()
        rows = []
        for i, day in enumerate(days):
            counts, firsts, lasts = replies[3 * i : 3 * i + 3]
            first = {ip: int(score) for ip, score in firsts}
            last = {ip: int(score) for ip, score in lasts}
            for ip, value in counts.items():
                if ip in first and ip in last:
                    name = ip.decode() if isinstance(ip, bytes) else str(ip)
                    rows.append(AddressRow(key_id, day, name, int(value), first[ip], last[ip]))
        return rows

    def prune(self, now: datetime) -> int:
        """Nothing to do: Redis expires counters by itself. Returns 0."""
        return 0

    def close(self) -> None:
        """Close the client, if this store made it."""
        client = self._client
        if client is not None and self._owns_client:
            self._client = None
            client.close()
