"""Usage counters in Redis, shared by every worker and host. Needs
``pip install 'apikeys[redis]'``.

Layout (``ns`` is the namespace, ``{kid}`` the key id as a Redis Cluster hash tag,
so everything about one key lives in one slot):

- ``{ns}{kid}c:{width}:{bucket}``: a hash, field ``[method, route, status]``
  (JSON) → requests; ``HINCRBY`` adds, so concurrent writers never lose a count.
- ``{ns}{kid}a:{day}:n``: a hash, address → requests that day;
  ``…:f`` / ``…:l``: sorted sets, address → first / last time seen (epoch µs),
  kept with ``ZADD LT`` / ``ZADD GT`` (Redis ≥ 6.2).
- ``{ns}{kid}f:{writer}``: the sequence number of the last flush a writer (one
  store object) applied to this key: a flush retried after a lost reply is
  recognised and applied once.

Every key expires (counters after their width's retention), so Redis needs no
pruning.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from apikeys._redis import (
    close_client,
    hash_tag,
    parse_redis_url,
    redis_module,
    sync_client,
    translating,
)
from apikeys.errors import ConfigurationError, InvalidArgument
from apikeys.monitoring._usage import (
    GRANULARITIES,
    MAX_BUCKETS,
    AddressRow,
    CounterRow,
    check_retention,
)

_DAY = 86_400
# How long a writer's last flush number is remembered: a retry later than this
# could count twice (a flush is retried on the next flush, normally 0.25 s later).
_SEQ_TTL = 7 * _DAY

# KEYS[1]: the writer's flush number for this key id; then the hashes and sets.
# ARGV: flush number, its ttl, number of counter rows, then per row: index in KEYS,
# field, count, ttl; number of address rows, then per row: index of ``:n`` in KEYS
# (``:f`` and ``:l`` follow), address, count, first µs, last µs, ttl.
# Returns 1 when applied, 0 when this flush (or a later one) was applied before.
_ADD = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= last then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local a = 4
for _ = 1, tonumber(ARGV[3]) do
  local k = KEYS[tonumber(ARGV[a])]
  redis.call('HINCRBY', k, ARGV[a + 1], ARGV[a + 2])
  redis.call('EXPIRE', k, ARGV[a + 3])
  a = a + 4
end
local rows = tonumber(ARGV[a])
a = a + 1
for _ = 1, rows do
  local n = tonumber(ARGV[a])
  local ip = ARGV[a + 1]
  redis.call('HINCRBY', KEYS[n], ip, ARGV[a + 2])
  redis.call('ZADD', KEYS[n + 1], 'LT', ARGV[a + 3], ip)
  redis.call('ZADD', KEYS[n + 2], 'GT', ARGV[a + 4], ip)
  for j = 0, 2 do
    redis.call('EXPIRE', KEYS[n + j], ARGV[a + 5])
  end
  a = a + 6
end
return 1
"""

Batch = tuple[list[CounterRow], list[AddressRow]]


def _counter_id(r: CounterRow) -> tuple[str, int, int, str, str, int]:
    return (r.key_id, r.granularity, r.bucket, r.method, r.route, r.status)


def _minus(batch: Batch, sent: Batch) -> Batch:
    """``batch`` without what ``sent`` already added (never below zero)."""
    done = {_counter_id(r): r.count for r in sent[0]}
    counts = [
        replace(r, count=r.count - done.get(_counter_id(r), 0))
        for r in batch[0]
        if r.count > done.get(_counter_id(r), 0)
    ]
    seen = {(a.key_id, a.day, a.ip): a.count for a in sent[1]}
    addresses = [
        replace(a, count=a.count - seen.get((a.key_id, a.day, a.ip), 0))
        for a in batch[1]
        if a.count > seen.get((a.key_id, a.day, a.ip), 0)
    ]
    return counts, addresses


class RedisUsageStore:
    """Usage counters in Redis (see the module docs for the key layout).

    Works on one server, behind Sentinel and on Redis Cluster. A flush is one
    script per key id (one slot): each key's rows land whole or not at all, and
    exactly once: every flush carries this writer's next sequence number, which
    the script records, so a flush whose reply was lost and that is sent again is
    not counted twice.

    When :meth:`add` raises :class:`~apikeys.errors.StorageError`, the store keeps
    the failed batch and applies it (once) before the next one; it expects the
    caller to send those rows again with its next batch, merged in, as
    :class:`~apikeys.monitoring.UsageRecorder` does, and takes them out of it.

    Args:
        url: A Redis URL (``redis://``, ``rediss://``, ``unix://``,
            ``redis+sentinel://…``, ``redis+cluster://…``); a client is made on
            first use.
        client: A ``redis.Redis`` or ``RedisCluster`` to use instead (not closed by
            :meth:`close`).
        namespace: Prefix of every Redis key written (no ``{`` or ``}``).
        retention: How long each width is kept (see ``DEFAULT_RETENTION``).
        timeout: Connect and socket timeout, in seconds, of a client made from ``url``.

    Raises:
        ConfigurationError: neither a URL nor a client, a malformed URL, a namespace
            with braces, or the ``redis`` package is missing.
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
        if "{" in namespace or "}" in namespace:
            raise ConfigurationError("a Redis namespace must not contain '{' or '}'")
        self._redis = redis_module()
        if url is not None:
            parse_redis_url(url)
        self._url = url
        self._client = client
        self._owns_client = client is None
        self._script: Any = None
        self._timeout = timeout
        self.namespace = namespace
        self.retention = check_retention(retention)
        self._ttl = {
            GRANULARITIES[name]: int(period.total_seconds()) + GRANULARITIES[name]
            for name, period in self.retention.items()
        }
        self._writer = secrets.token_hex(8)
        self._seq = 0
        self._unresolved: list[tuple[int, Batch]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisUsageStore(namespace={self.namespace!r})"

    def _sync(self) -> Any:
        if self._client is None:
            self._client = sync_client(str(self._url), timeout=self._timeout)
        if self._script is None:
            self._script = self._client.register_script(_ADD)
        return self._client

    @staticmethod
    def _translate() -> Any:
        return translating("Redis usage counters")

    def _key(self, key_id: str) -> str:
        return self.namespace + hash_tag(key_id)

    def _counter_key(self, key_id: str, width: int, bucket: int) -> str:
        return f"{self._key(key_id)}c:{width}:{bucket}"

    def _address_key(self, key_id: str, day: int) -> str:
        return f"{self._key(key_id)}a:{day}"

    def _calls(self, seq: int, batch: Batch) -> list[tuple[list[str], list[Any]]]:
        """One script call (keys, args) per key id of ``batch``."""
        by_key: dict[str, tuple[list[CounterRow], list[AddressRow]]] = {}
        for r in batch[0]:
            by_key.setdefault(r.key_id, ([], []))[0].append(r)
        for a in batch[1]:
            by_key.setdefault(a.key_id, ([], []))[1].append(a)
        calls = []
        for key_id, (counts, addresses) in by_key.items():
            keys = [f"{self._key(key_id)}f:{self._writer}"]
            args: list[Any] = [seq, _SEQ_TTL, len(counts)]
            for r in counts:
                keys.append(self._counter_key(key_id, r.granularity, r.bucket))
                field = json.dumps([r.method, r.route, r.status])
                args += [len(keys), field, r.count, self._ttl[r.granularity]]
            args.append(len(addresses))
            for a in addresses:
                base = self._address_key(key_id, a.day)
                keys += [base + ":n", base + ":f", base + ":l"]
                args += [len(keys) - 2, a.ip, a.count, a.first_us, a.last_us, self._ttl[_DAY]]
            calls.append((keys, args))
        return calls

    def _run(self, calls: list[tuple[list[str], list[Any]]]) -> None:
        """Send the script calls (one round trip per key id on a cluster)."""
        client = self._sync()
        if isinstance(client, self._redis.cluster.RedisCluster):
            for keys, args in calls:
                self._script(keys=keys, args=args, client=client)
            return
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            self._script(keys=keys, args=args, client=pipe)
        pipe.execute()

    def _send(self, seq: int, batch: Batch) -> None:
        with self._translate():
            self._run(self._calls(seq, batch))

    def add(self, counts: Sequence[CounterRow], addresses: Sequence[AddressRow]) -> None:
        """Add rows, once each (see the class docs and ``UsageStore``).

        Raises:
            StorageError: Redis failed or is unreachable; the rows are kept and
                applied before the next batch (send them again with it).
        """
        batch: Batch = (list(counts), list(addresses))
        with self._lock:
            # Batches that failed may have landed; re-sent with their own numbers
            # they land exactly once, and the caller's copy of them is dropped.
            for seq, sent in self._unresolved:
                self._send(seq, sent)
            for _, sent in self._unresolved:
                batch = _minus(batch, sent)
            if batch[0] or batch[1]:
                self._seq += 1
                try:
                    self._send(self._seq, batch)
                except BaseException:
                    self._unresolved.append((self._seq, batch))
                    raise
            self._unresolved = []

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
        client, self._script = self._client, None
        if client is not None and self._owns_client:
            self._client = None
            close_client(client)
