"""The suite leaves no key in the shared Redis: a representative run of the
Redis-backed tests (rate-limit counters, usage counters, detector windows), in a
namespace root of its own, leaves nothing under that root (issue 18)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from redis_support import forget_redis_namespace

TESTS = Path(__file__).resolve().parent
SELECTION = [
    str(TESTS / "ratelimit" / "test_ratelimit_limiter.py"),
    str(TESTS / "monitoring" / "test_monitoring_usage.py"),
    str(TESTS / "monitoring" / "test_monitoring_detectors.py"),
    "-k",
    "redis or shared",
]


def _run_selection(root: str, *, keep: bool) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TEST_REDIS_NAMESPACE_ROOT=root)
    if keep:
        env["TEST_REDIS_KEEP_KEYS"] = "1"
    else:
        env.pop("TEST_REDIS_KEEP_KEYS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SELECTION],
        cwd=TESTS.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _names(redis_url: str, root: str) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.scan_iter(match=root + "*", count=500))
    finally:
        client.close()


@pytest.mark.redis
def test_a_representative_run_leaves_no_key_behind(redis_url: str) -> None:
    # Without the cleanup the same run leaves keys: the check can fail.
    kept = f"apikeys-hygiene:{secrets.token_hex(4)}:"
    try:
        done = _run_selection(kept, keep=True)
        assert done.returncode == 0, done.stdout[-2000:]
        assert _names(redis_url, kept), "the selection wrote no Redis key at all"
    finally:
        forget_redis_namespace(redis_url, kept)

    clean = f"apikeys-hygiene:{secrets.token_hex(4)}:"
    try:
        done = _run_selection(clean, keep=False)
        assert done.returncode == 0, done.stdout[-2000:]
        assert " passed" in done.stdout
        assert _names(redis_url, clean) == []
    finally:
        forget_redis_namespace(redis_url, clean)
