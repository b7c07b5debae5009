"""The listening side of :class:`~apikeys.storage.CachedStore`: one thread per
cache that subscribes to the change channel and to a private heartbeat channel,
sends itself a heartbeat every ``interval`` and reports to the cache.

Both servers deliver one subscriber's messages in the order they were sent
(PostgreSQL: in commit order; Redis: in the order PUBLISH ran), so a heartbeat
coming back proves every change announced before it was sent has arrived.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any, Protocol

from apikeys.errors import ConfigurationError
from apikeys.storage._changes import changed_ids

logger = logging.getLogger("apikeys.storage")


class CacheSink(Protocol):
    """What a listener reports to (the cache)."""

    name: str
    channel: str

    def resynchronised(self) -> None: ...

    def lost(self) -> None: ...

    def proven(self, sent_at: float) -> None: ...

    def forget(self, key_ids: Any) -> None: ...


class Listener:
    """The thread and the reconnect loop; subclasses speak to one server.

    Args:
        url: The server URL.
        sink: The cache to report to.
        interval: Seconds between heartbeats.
    """

    def __init__(self, url: str, sink: CacheSink, *, interval: float) -> None:
        self.url = url
        self.sink = sink
        self.interval = interval
        self.heartbeat_channel = f"apikeys_hb_{secrets.token_hex(8)}"
        self._stop = threading.Event()
        self._sent: dict[str, float] = {}
        self._seq = 0
        self._thread = threading.Thread(
            target=self._run, name=f"apikeys-cache-listener-{sink.name}", daemon=True
        )
        self.reconnects = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=max(2.0, self.interval * 4))
        self.close_publisher()

    def _run(self) -> None:
        backoff = min(self.interval, 0.05)
        while not self._stop.is_set():
            try:
                self.listen()
                backoff = min(self.interval, 0.05)
            except Exception as exc:  # any failure: the channel is down, reconnect
                logger.debug("apikeys cache channel lost (%s)", type(exc).__name__)
            self.sink.lost()
            self._sent.clear()
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, 1.0)
            self.reconnects += 1

    def next_heartbeat(self) -> tuple[str, float]:
        """A fresh heartbeat payload and the time it is sent at."""
        self._seq += 1
        payload = str(self._seq)
        sent_at = time.monotonic()
        self._sent[payload] = sent_at
        return payload, sent_at

    def received(self, channel: str, payload: str) -> None:
        """Handle one message, in arrival order."""
        if channel == self.heartbeat_channel:
            sent_at = self._sent.pop(payload, None)
            if sent_at is not None:
                # Older heartbeats still in flight are overtaken by this one.
                for older in [p for p, t in self._sent.items() if t < sent_at]:
                    del self._sent[older]
                self.sink.proven(sent_at)
        else:
            self.sink.forget(changed_ids(payload))

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def listen(self) -> None:
        """Connect, subscribe, resynchronise, then loop until failure or stop."""
        raise NotImplementedError

    def publish(self, channel: str, payload: str) -> None:
        """Announce ``payload`` on ``channel`` (after a commit)."""
        raise NotImplementedError

    def close_publisher(self) -> None:
        """Close the connection ``publish`` uses, if any."""


class PostgresListener(Listener):
    """LISTEN/NOTIFY on a dedicated psycopg connection (autocommit)."""

    def __init__(self, url: str, sink: CacheSink, *, interval: float) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigurationError(
                "PostgreSQL cache invalidation needs psycopg: pip install 'apikeys[postgres]'"
            ) from exc
        self._psycopg = psycopg
        _, _, rest = url.partition("://")
        super().__init__(f"postgresql://{rest}", sink, interval=interval)
        self._publisher: Any = None
        self._publish_lock = threading.Lock()

    def _connect(self) -> Any:
        # TCP keepalives: a silently dead peer (no RST) is noticed in ~10 s and
        # the listener reconnects; freshness lapses long before, within max_staleness.
        return self._psycopg.connect(
            self.url,
            autocommit=True,
            application_name=self.sink.name,
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
        )

    def listen(self) -> None:
        from psycopg import sql

        with self._connect() as conn:
            for channel in (self.sink.channel, self.heartbeat_channel):
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self.sink.resynchronised()
            while not self.stopping:
                payload, sent_at = self.next_heartbeat()
                conn.execute("SELECT pg_notify(%s, %s)", (self.heartbeat_channel, payload))
                due = sent_at + self.interval
                while not self.stopping:
                    remaining = due - time.monotonic()
                    if remaining <= 0:
                        break
                    # Never break out of this generator: the rest of a batch
                    # received together would be lost. It ends at the deadline.
                    for notify in conn.notifies(timeout=remaining):
                        self.received(notify.channel, notify.payload)
                if conn.broken or conn.closed:
                    raise ConnectionError("listener connection lost")

    def publish(self, channel: str, payload: str) -> None:
        with self._publish_lock:
            if self._publisher is None or self._publisher.closed:
                self._publisher = self._connect()
            try:
                self._publisher.execute("SELECT pg_notify(%s, %s)", (channel, payload))
            except self._psycopg.Error:
                self._publisher.close()
                self._publisher = None
                raise

    def close_publisher(self) -> None:
        with self._publish_lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None


class RedisListener(Listener):
    """SUBSCRIBE on a raw redis-py connection (no silent reconnect: a lost
    connection always goes through :meth:`Listener._run`, which empties the cache)."""

    def __init__(self, url: str, sink: CacheSink, *, interval: float) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigurationError(
                "Redis cache invalidation needs redis-py: pip install 'apikeys[redis]'"
            ) from exc
        super().__init__(url, sink, interval=interval)
        self._redis = redis
        self._pool = redis.ConnectionPool.from_url(
            url, socket_connect_timeout=2, socket_timeout=2, decode_responses=True, protocol=2
        )
        self._client = redis.Redis(connection_pool=self._pool)

    def listen(self) -> None:
        conn: Any = self._pool.make_connection()
        try:
            conn.connect()
            conn.send_command("SUBSCRIBE", self.sink.channel, self.heartbeat_channel)
            confirmed = 0
            while confirmed < 2:
                reply = conn.read_response()
                if isinstance(reply, list) and reply and reply[0] == "subscribe":
                    confirmed += 1
            self.sink.resynchronised()
            while not self.stopping:
                payload, sent_at = self.next_heartbeat()
                self._client.publish(self.heartbeat_channel, payload)
                due = sent_at + self.interval
                while not self.stopping:
                    remaining = due - time.monotonic()
                    if remaining <= 0 or not conn.can_read(timeout=remaining):
                        break
                    reply = conn.read_response()
                    if isinstance(reply, list) and len(reply) == 3 and reply[0] == "message":
                        self.received(str(reply[1]), str(reply[2]))
        finally:
            conn.disconnect()

    def publish(self, channel: str, payload: str) -> None:
        self._client.publish(channel, payload)

    def close_publisher(self) -> None:
        self._client.close()
        self._pool.disconnect()
