"""Redis clients from URLs: the one place where the rate-limit counters, the usage
store and the shared detector state turn a URL into a ``redis-py`` client.

URL forms (``[…]`` is optional):

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS),
  ``unix:///path/to/redis.sock[?db=N]``: one server (or any Redis-protocol server:
  Valkey, KeyDB, Dragonfly), exactly as ``redis.Redis.from_url`` reads them.
- ``redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db]``
  (``rediss+sentinel://`` for TLS): ask the Sentinels at ``host:port…`` which
  server is the master of ``service`` and talk to it; after a failover the next
  command goes to the new master. The user and password are the master's;
  ``?sentinel_password=…`` (and ``sentinel_username``) authenticate to the
  Sentinels when they need it.
- ``redis+cluster://[[user]:password@]host:port[,host:port…]``
  (``rediss+cluster://`` for TLS): a Redis Cluster, discovered from any of the
  listed nodes. A cluster has no databases, so no ``/db``.

Query options on every form: ``?timeout=SECONDS`` overrides the connect and socket
timeout given by the caller.

Every async client is bound to the event loop it was made on; :class:`LoopClients`
keeps one per loop, so one store serves any number of loops (threads running
``asyncio.run``, test frameworks making a loop per test).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode

from apikeys.errors import ConfigurationError, StorageError

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "REDIS_SCHEMES",
    "LoopClients",
    "RedisTarget",
    "aclose_client",
    "async_client",
    "close_client",
    "hash_tag",
    "is_redis_url",
    "parse_redis_url",
    "redis_module",
    "sync_client",
    "translating",
]

_PLAIN = ("redis", "rediss", "unix")
_SENTINEL = ("redis+sentinel", "rediss+sentinel")
_CLUSTER = ("redis+cluster", "rediss+cluster")
REDIS_SCHEMES: tuple[str, ...] = _PLAIN + _SENTINEL + _CLUSTER
"""Every URL scheme that names Redis (``scheme://…``)."""

# A cluster client retries MOVED/ASK and lost nodes this often: enough to follow
# a failover, few enough that a request fails closed within seconds, not minutes.
_CLUSTER_ATTEMPTS = 3
_CONNECTION_RETRIES = 1


def redis_module() -> Any:
    """The ``redis`` package, or :class:`ConfigurationError` naming the extra."""
    try:
        import redis
        import redis.asyncio
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "Redis support needs the redis package: pip install 'apikeys[redis]'"
        ) from exc
    return redis


def is_redis_url(url: str) -> bool:
    """Whether ``url``'s scheme is one of :data:`REDIS_SCHEMES`."""
    return url.partition("://")[0].lower() in REDIS_SCHEMES


@dataclass(frozen=True)
class RedisTarget:
    """What a Redis URL names (credentials are kept out of the repr).

    Attributes:
        kind: ``"server"``, ``"sentinel"`` or ``"cluster"``.
        url: The URL itself (for ``"server"``, handed to ``from_url``).
        nodes: ``(host, port)`` of the Sentinels or of the cluster's seed nodes.
        service: The Sentinel service name (master group).
        db: The database number (Sentinel).
        username: The user for the data servers.
        password: The password for the data servers.
        tls: Whether to use TLS.
        options: Other query options (``sentinel_password``...).
        timeout: ``?timeout=`` when given.
    """

    kind: Literal["server", "sentinel", "cluster"]
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    options: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None

    def __repr__(self) -> str:
        where = ",".join(f"{h}:{p}" for h, p in self.nodes) or "…"
        return f"RedisTarget(kind={self.kind!r}, nodes={where!r}, service={self.service!r})"


def _nodes(netloc: str, url_kind: str) -> tuple[tuple[str, int], ...]:
    hosts = netloc.rpartition("@")[2]
    nodes = []
    for part in hosts.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(f"a {url_kind} URL lists host:port[,host:port…]")
        nodes.append((host.strip("[]"), int(port)))
    return tuple(nodes)


def _credentials(netloc: str) -> tuple[str | None, str | None]:
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return None, None
    user, colon, password = userinfo.partition(":")
    if not colon:
        return None, unquote(user) or None
    return unquote(user) or None, unquote(password) or None


def parse_redis_url(url: str) -> RedisTarget:
    """Read a Redis URL (see the module docs for the forms).

    Raises:
        ConfigurationError: not a Redis URL, or a malformed one (the message never
            repeats the URL, which may hold a password).
    """
    if not isinstance(url, str) or not is_redis_url(url):
        raise ConfigurationError(
            "a Redis URL starts with redis://, rediss://, unix://, redis+sentinel:// "
            "or redis+cluster://"
        )
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    netloc, _, query = rest.partition("?")
    netloc, _, path = netloc.partition("/")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    timeout = None
    if "timeout" in options:
        try:
            timeout = float(options.pop("timeout"))
        except ValueError:
            raise ConfigurationError("?timeout= must be a number of seconds") from None
    if scheme in _PLAIN:
        if timeout is not None:  # ours, not redis-py's: keep it out of from_url
            rest_query = urlencode([(k, v) for k, v in parse_qsl(query) if k != "timeout"])
            url = url.partition("?")[0] + ("?" + rest_query if rest_query else "")
        return RedisTarget("server", url, timeout=timeout)
    username, password = _credentials(netloc)
    tls = scheme.startswith("rediss")
    extra = tuple(sorted(options.items()))
    if scheme in _CLUSTER:
        if path.strip("/"):
            raise ConfigurationError("a redis+cluster:// URL has no /db (a cluster has one)")
        nodes = _nodes(netloc, "redis+cluster://")
        return RedisTarget(
            "cluster", url, nodes, username=username, password=password, tls=tls,
            options=extra, timeout=timeout,
        )  # fmt: skip
    service, _, db = path.strip("/").partition("/")
    if not service or (db and not db.isdigit()):
        raise ConfigurationError("a redis+sentinel:// URL ends with /service_name[/db]")
    return RedisTarget(
        "sentinel", url, _nodes(netloc, "redis+sentinel://"), unquote(service),
        int(db or 0), username, password, tls, extra, timeout,
    )  # fmt: skip


def _backoff() -> Any:
    import redis.backoff

    return redis.backoff.ExponentialBackoff(cap=0.5, base=0.05)


def _retry(asynchronous: bool, attempts: int) -> Any:
    # redis-py's default backs off for seconds; a request fails closed sooner.
    redis = redis_module()
    if asynchronous:
        return redis.asyncio.retry.Retry(_backoff(), attempts)
    import redis.retry

    return redis.retry.Retry(_backoff(), attempts)


def _connection(target: RedisTarget, timeout: float, asynchronous: bool) -> dict[str, Any]:
    """Timeouts and one quick reconnection (a pooled connection may be stale)."""
    seconds = target.timeout if target.timeout is not None else timeout
    return {
        "socket_timeout": seconds,
        "socket_connect_timeout": seconds,
        "retry": _retry(asynchronous, _CONNECTION_RETRIES),
    }


def _sentinel_kwargs(target: RedisTarget, timeout: float, asynchronous: bool) -> dict[str, Any]:
    options = dict(target.options)
    kwargs = _connection(target, timeout, asynchronous)
    if "sentinel_password" in options:
        kwargs["password"] = options["sentinel_password"]
    if "sentinel_username" in options:
        kwargs["username"] = options["sentinel_username"]
    if target.tls:
        kwargs["ssl"] = True
    return kwargs


def _data_kwargs(target: RedisTarget, timeout: float, asynchronous: bool) -> dict[str, Any]:
    kwargs = _connection(target, timeout, asynchronous)
    kwargs.update(username=target.username, password=target.password)
    if target.tls:
        kwargs["ssl"] = True
    return kwargs


def _cluster_kwargs(target: RedisTarget, timeout: float, asynchronous: bool) -> dict[str, Any]:
    kwargs = _data_kwargs(target, timeout, asynchronous)
    kwargs["retry"] = _retry(asynchronous, _CLUSTER_ATTEMPTS)
    return kwargs


def sync_client(url: str, *, timeout: float) -> Any:
    """A blocking client (``redis.Redis`` or ``redis.cluster.RedisCluster``) for ``url``.

    Args:
        url: A Redis URL (see the module docs).
        timeout: Connect and socket timeout in seconds (``?timeout=`` wins).

    Raises:
        ConfigurationError: a malformed URL or a missing ``redis`` package.
    """
    redis = redis_module()
    target = parse_redis_url(url)
    if target.kind == "server":
        return redis.Redis.from_url(target.url, **_connection(target, timeout, False))
    if target.kind == "cluster":
        return redis.cluster.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in target.nodes],
            **_cluster_kwargs(target, timeout, False),
        )
    sentinel = redis.sentinel.Sentinel(
        list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target, timeout, False),
        **_data_kwargs(target, timeout, False),
    )  # fmt: skip
    client = sentinel.master_for(target.service, db=target.db)
    client._apikeys_sentinels = sentinel.sentinels
    return client


def async_client(url: str, *, timeout: float) -> Any:
    """The asyncio twin of :func:`sync_client`: bound to the running event loop.

    Raises:
        ConfigurationError: a malformed URL or a missing ``redis`` package.
    """
    redis = redis_module()
    target = parse_redis_url(url)
    if target.kind == "server":
        return redis.asyncio.Redis.from_url(target.url, **_connection(target, timeout, True))
    if target.kind == "cluster":
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.nodes],
            **_cluster_kwargs(target, timeout, True),
        )
    sentinel = redis.asyncio.sentinel.Sentinel(
        list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target, timeout, True),
        **_data_kwargs(target, timeout, True),
    )  # fmt: skip
    client = sentinel.master_for(target.service, db=target.db)
    client._apikeys_sentinels = sentinel.sentinels
    return client


def close_client(client: Any) -> None:
    """Close a client from :func:`sync_client` (and its Sentinel connections)."""
    client.close()
    for sentinel in getattr(client, "_apikeys_sentinels", ()):
        sentinel.close()


async def aclose_client(client: Any) -> None:
    """Close a client from :func:`async_client` (and its Sentinel connections)."""
    await client.aclose()
    for sentinel in getattr(client, "_apikeys_sentinels", ()):
        await sentinel.aclose()


def hash_tag(text: str) -> str:
    """``{text}``: a Redis Cluster hash tag naming one slot for everything about ``text``.

    Text that is empty or holds ``{``, ``}`` or ``~`` (which could cut the tag
    short and scatter one script's keys over several slots) is hex-encoded behind
    a ``~``: ``{~6f7b}``. Distinct texts always give distinct tags.
    """
    if text and not ("{" in text or "}" in text or "~" in text):
        return "{" + text + "}"
    return "{~" + text.encode().hex() + "}"


@contextmanager
def translating(what: str) -> Iterator[None]:
    """The one seam where ``redis-py`` errors become :class:`StorageError`.

    Args:
        what: What is unavailable, for the message (``"rate-limit counters"``).
    """
    redis = redis_module()
    try:
        yield
    except (redis.RedisError, redis.exceptions.RedisClusterException, OSError) as exc:
        raise StorageError(f"{what} unavailable ({type(exc).__name__})") from exc


T = TypeVar("T")


class LoopClients(Generic[T]):
    """One lazily made value per event loop (an async client and what hangs on it).

    Entries are weakly keyed by the loop. Each value is released on its own loop
    when that loop shuts down (``asyncio.run`` and ``asyncio.Runner`` finalize
    async generators before closing the loop; a guard generator per value closes
    it then), or by :meth:`aclose`.

    Args:
        make: Builds the value on the running loop.
        close: Releases a value, awaited on its own loop.
    """

    def __init__(self, make: Callable[[], T], close: Callable[[T], Awaitable[None]]) -> None:
        self._make = make
        self._close = close
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[T, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    async def _guard(self, value: T) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await self._close(value)

    async def get(self) -> T:
        """The running loop's value, made on first use.

        Raises:
            RuntimeError: no event loop is running.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(loop)
        if entry is None:
            value = self._make()
            guard = self._guard(value)
            await guard.__anext__()  # the loop now tracks it, to finalize at shutdown
            entry = self._by_loop[loop] = (value, guard)
        return entry[0]

    async def aclose(self) -> None:
        """Release the running loop's value now (those of other loops are released
        when their loops shut down)."""
        import asyncio

        entry = self._by_loop.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()
