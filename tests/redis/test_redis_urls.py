"""Redis URLs: every form parses to what it names, bad ones give ConfigurationError
without repeating the password, and every Redis consumer accepts every form."""

from __future__ import annotations

import pytest

from apikeys._redis import hash_tag, is_redis_url, parse_redis_url
from apikeys.errors import ConfigurationError
from apikeys.monitoring import RedisUsageStore, usage_store_from_url
from apikeys.ratelimit import KeyRateLimiter, RedisCounters


def test_plain_urls_go_to_redis_py_unchanged() -> None:
    for url in ("redis://localhost:6379/2", "rediss://u:p@h:6380/0", "unix:///tmp/r.sock?db=1"):
        target = parse_redis_url(url)
        assert (target.kind, target.url) == ("server", url)


def test_sentinel_url() -> None:
    target = parse_redis_url(
        "redis+sentinel://app:s%40cret@10.0.0.1:26379,[::1]:26380/my-master/3"
        "?sentinel_password=x&timeout=0.5"
    )
    assert target.kind == "sentinel"
    assert target.nodes == (("10.0.0.1", 26379), ("::1", 26380))
    assert (target.service, target.db) == ("my-master", 3)
    assert (target.username, target.password) == ("app", "s@cret")
    assert dict(target.options) == {"sentinel_password": "x"}
    assert target.timeout == 0.5
    assert not target.tls
    assert "s@cret" not in repr(target)
    assert parse_redis_url("rediss+sentinel://h:1/m").tls
    assert parse_redis_url("redis+sentinel://:pw@h:1/m").password == "pw"


def test_cluster_url() -> None:
    target = parse_redis_url("rediss+cluster://:pw@a:7000,b:7001")
    assert (target.kind, target.tls, target.password) == ("cluster", True, "pw")
    assert target.nodes == (("a", 7000), ("b", 7001))


@pytest.mark.parametrize(
    "url",
    [
        "http://h:1",
        "redis+sentinel://h:1",  # no service
        "redis+sentinel://h:1/m/x",  # db not a number
        "redis+sentinel://h/m",  # no port
        "redis+cluster://h:1/0",  # a cluster has no db
        "redis+cluster://h:99999",
        "redis+cluster://:hunter2@h:1?timeout=soon",
    ],
)
def test_malformed_urls(url: str) -> None:
    with pytest.raises(ConfigurationError) as failed:
        parse_redis_url(url)
    assert "hunter2" not in str(failed.value)


def test_every_consumer_accepts_every_form() -> None:
    assert is_redis_url("REDIS+CLUSTER://h:1")
    assert not is_redis_url("memory://")
    for url in ("redis+sentinel://h:1/m", "redis+cluster://h:1", "rediss://h:1/0"):
        limiter = KeyRateLimiter(url)
        assert isinstance(limiter.storage, RedisCounters)
        assert isinstance(usage_store_from_url(url), RedisUsageStore)
    with pytest.raises(ConfigurationError):
        KeyRateLimiter("redis+cluster://nowhere")
    with pytest.raises(ConfigurationError):
        RedisCounters("redis://h:1/0", namespace="{x}")


def test_hash_tags_are_distinct_and_never_cut_short() -> None:
    texts = ["team-42", "", "~", "{", "}", "a}b", "61", "~61", "é"]
    tags = [hash_tag(t) for t in texts]
    assert len(set(tags)) == len(texts)
    for tag in tags:
        # The slot is hashed from what lies between the first "{" and the next "}".
        inner = tag[1 : tag.index("}")]
        assert tag == "{" + inner + "}"
        assert inner
    assert hash_tag("team-42") == "{team-42}"


def test_timeout_option_is_ours_and_other_options_reach_redis_py() -> None:
    from apikeys._redis import close_client, sync_client

    target = parse_redis_url("redis://h:1/0?timeout=0.25&health_check_interval=5")
    assert target.timeout == 0.25
    assert target.url == "redis://h:1/0?health_check_interval=5"
    client = sync_client("redis://h:1/0?timeout=0.25&health_check_interval=5", timeout=3.0)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.25
    assert kwargs["health_check_interval"] == 5
    close_client(client)


@pytest.mark.parametrize(
    "form", ["redis+cluster://127.0.0.1:{port}", "redis+sentinel://127.0.0.1:{port}/m"]
)
def test_unreachable_cluster_or_sentinel_fails_closed(form: str) -> None:
    """No node answers: a typed StorageError (503), never a driver error."""
    import socket
    from datetime import datetime, timezone

    from apikeys import StorageError
    from apikeys.testing import make_manager

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    limiter = KeyRateLimiter(
        RedisCounters(form.format(port=port), timeout=0.2), default=["5/minute"]
    )
    key = make_manager("acme").create(owner="o").key
    try:
        with pytest.raises(StorageError) as failed:
            limiter.hit(key, now=datetime.now(timezone.utc))
        assert failed.value.status == 503
        assert failed.value.__cause__ is not None
    finally:
        limiter.close()
