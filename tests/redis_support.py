"""Deleting a test's Redis keys, shared by the fixtures of every Redis test."""

from __future__ import annotations

import re


def forget_redis_namespace(url: str, namespace: str) -> int:
    """Delete every key under ``namespace`` (SCAN + DEL, on every master of a
    cluster URL); returns how many were deleted."""
    from apikeys._redis import close_client, sync_client

    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", namespace) + "*"
    client = sync_client(url, timeout=2.0)
    deleted = 0
    try:
        for name in list(client.scan_iter(match=pattern, count=500)):
            deleted += int(client.delete(name))
    finally:
        close_client(client)
    return deleted
