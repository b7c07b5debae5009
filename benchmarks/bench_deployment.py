"""A deployment you can run on one machine: several uvicorn worker processes
serving a FastAPI app whose keys live in PostgreSQL and whose rate limits, quotas
and usage counters live in Redis, driven by a bounded load generator on 127.0.0.1.

Prints the throughput (with median and p99 latency), the exactness of a quota
and of the usage counts across workers, and the revocation delay.

    python benchmarks/bench_deployment.py [--workers 2] [--requests 3000] [--concurrency 8]
        [--seconds 60] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--redis redis://127.0.0.1:6379/0]   # or redis+sentinel://…, redis+cluster://…

It makes a fresh PostgreSQL database (dropped afterwards) and a fresh Redis
namespace (deleted afterwards); it starts and stops its own workers only.
Needs ``apikeys[postgres,redis,fastapi]`` and uvicorn (in the ``test`` extra).
"""

# No "from __future__ import annotations": FastAPI reads the route annotations,
# which name objects imported inside create_app.
import argparse
import http.client
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

PREFIX = "deploy"
QUOTA = 500


# --- the app each worker runs -----------------------------------------------------------


def create_app() -> Any:
    """The app (uvicorn ``--factory``), configured from ``DEPLOY_*`` variables."""
    from fastapi import FastAPI

    from apikeys import KeyManager
    from apikeys.fastapi import APIKeyAuth, RequiredKey
    from apikeys.monitoring import Monitor, RedisUsageStore
    from apikeys.ratelimit import KeyRateLimiter, RedisCounters
    from apikeys.storage import SQLAlchemyStore

    redis_url, namespace = os.environ["DEPLOY_REDIS"], os.environ["DEPLOY_NAMESPACE"]
    # A generous default limit, so every request runs the Redis script.
    limiter = KeyRateLimiter(
        RedisCounters(redis_url, namespace=namespace + "rl:"), default=["1000000/minute"]
    )
    keys = KeyManager(
        SQLAlchemyStore(os.environ["DEPLOY_POSTGRES"], auto_create=False),
        prefix=PREFIX,
        rate_limiter=limiter,
    )
    monitor = Monitor(keys, usage_store=RedisUsageStore(redis_url, namespace=namespace + "u:"))
    auth = APIKeyAuth(keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        monitor.close()  # flushes the last usage counts
        keys.close()
        await limiter.aclose()

    app = FastAPI(lifespan=lifespan)
    auth.install(app)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/orders")
    async def orders(key: RequiredKey) -> dict[str, str]:
        return {"owner": key.owner}

    return app


# --- the driver -------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection to the app."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def get(self, path: str, key: str | None = None) -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            self.conn.request("GET", path, headers=headers)
            response = self.conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            return 0

    def close(self) -> None:
        self.conn.close()


def drive(
    port: int, plan: list[str], concurrency: int, seconds: float
) -> tuple[list[tuple[str, int]], list[float], float]:
    """Send ``plan`` (one key per request) from ``concurrency`` threads, stopping
    after ``seconds``; returns (key, status) per request, latencies and wall time."""
    results: list[tuple[str, int]] = []
    latencies: list[float] = []
    lock = threading.Lock()
    position = iter(range(len(plan)))
    deadline = time.monotonic() + seconds

    def work() -> None:
        client = Client(port)
        mine: list[tuple[str, int]] = []
        times: list[float] = []
        try:
            for i in position:  # the shared iterator hands each request out once
                if time.monotonic() > deadline:
                    break
                started = time.perf_counter()
                mine.append((plan[i], client.get("/orders", plan[i])))
                times.append(time.perf_counter() - started)
        finally:
            client.close()
            with lock:
                results.extend(mine)
                latencies.extend(times)

    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, latencies, time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client = Client(port)
        try:
            if client.get("/health") == 200:
                return
        finally:
            client.close()
        time.sleep(0.2)
    raise RuntimeError("the workers did not come up")


def revocation_delays(port: int, keys: Any, issued: list[Any]) -> tuple[list[float], int]:
    """Revoke each key (in this process, through PostgreSQL) while a worker serves
    it; returns the time from ``revoke()`` returning to the first refusal, per key,
    and how many requests were still allowed after ``revoke()`` returned."""
    delays, late = [], 0
    for one in issued:
        client = Client(port)
        status = client.get("/orders", one.plaintext)
        if status != 200:
            raise RuntimeError(f"a fresh key was refused ({status})")
        keys.revoke(one.key.id, reason="deployment check")
        revoked_at = time.perf_counter()
        while client.get("/orders", one.plaintext) == 200:
            late += 1
            if time.perf_counter() - revoked_at > 10:
                raise RuntimeError("a revoked key kept working for 10 s")
        delays.append(time.perf_counter() - revoked_at)
        client.close()
    return delays, late


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--start",
        choices=["cluster", "sentinel"],
        help="start a throwaway Redis Cluster (ports 7100-7105) or Sentinel set-up "
        "(6400-6402, 26400-26402) from redis-server and use it instead of --redis",
    )
    args = parser.parse_args(argv)
    if args.start is None:
        return run(args, argv)
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "redis"))
    import _redis_servers as servers

    with tempfile.TemporaryDirectory() as root:
        if args.start == "cluster":
            deployment, args.redis = servers.start_cluster(Path(root)), servers.cluster_url()
        else:
            deployment, args.redis = servers.start_sentinel(Path(root)), servers.sentinel_url()
        try:
            return run(args, argv)
        finally:
            deployment.stop()


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Set up, drive, measure, clean up; print the report."""

    import psycopg

    from apikeys import KeyManager
    from apikeys._redis import close_client, sync_client
    from apikeys.monitoring import Monitor, RedisUsageStore
    from apikeys.storage import SQLAlchemyStore

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _harness import machine

    base, _, admin_db = args.postgres.rpartition("/")
    database = f"apikeys_deploy_{secrets.token_hex(4)}"
    admin = base.replace("postgresql+psycopg://", "postgresql://") + "/" + admin_db
    namespace = f"apikeys-deploy:{secrets.token_hex(4)}:"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = f"{base}/{database}"
    workers: subprocess.Popen[bytes] | None = None
    keys = KeyManager(SQLAlchemyStore(url), prefix=PREFIX)
    try:
        issued = [keys.create(owner=f"load-{n}") for n in range(4)]
        busy = [one.plaintext for one in issued]
        quota = keys.create(owner="quota", quota=str(QUOTA)).plaintext
        revoke = [keys.create(owner="revoke") for _ in range(5)]

        port = free_port()
        env = dict(
            os.environ,
            DEPLOY_POSTGRES=url,
            DEPLOY_REDIS=args.redis,
            DEPLOY_NAMESPACE=namespace,
        )
        command = [
            sys.executable, "-m", "uvicorn", "bench_deployment:create_app", "--factory",
            "--app-dir", os.path.dirname(os.path.abspath(__file__)), "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(args.workers), "--no-access-log",
            "--log-level", "warning",
        ]  # fmt: skip
        workers = subprocess.Popen(command, env=env)  # noqa: S603 - our interpreter and args
        wait_healthy(port)
        # Warm every worker's verification cache (one Argon2 hash per key and process).
        # The quota key too: it then has QUOTA minus what the warm-up used.
        warm = [*busy, quota, *(one.plaintext for one in revoke)]
        warmed: list[tuple[str, int]] = []
        for _ in range(6):  # fresh connections each round, spread over the workers
            warmed += drive(port, [k for k in warm for _ in range(8)], 8, 30)[0]

        quota_share = QUOTA + QUOTA // 2
        plan = [busy[i % len(busy)] for i in range(args.requests)]
        step = max(1, len(plan) // quota_share)
        for n in range(quota_share):  # spread the quota key through the run
            plan.insert(min(len(plan), n * (step + 1)), quota)
        results, latencies, wall = drive(port, plan, args.concurrency, args.seconds)
        left = QUOTA - sum(1 for k, s in warmed if k == quota and s == 200)
        statuses: dict[int, int] = {}
        for _, status in results:
            statuses[status] = statuses.get(status, 0) + 1
        quota_ok = sum(1 for k, s in results if k == quota and s == 200)
        quota_refused = sum(1 for k, s in results if k == quota and s == 429)
        sent_busy = {
            k: sum(1 for key, s in results + warmed if key == k and s == 200) for k in busy
        }
        delays, late = revocation_delays(port, keys, revoke)
    finally:
        if workers is not None:
            workers.send_signal(signal.SIGINT)  # graceful: workers flush their usage
            try:
                workers.wait(30)
            except subprocess.TimeoutExpired:
                workers.kill()
                workers.wait(10)

    try:
        reader = Monitor(keys, usage_store=RedisUsageStore(args.redis, namespace=namespace + "u:"))
        since = datetime.now(timezone.utc) - timedelta(hours=1)
        counted = {one.plaintext: reader.usage(one.key.id, since=since).total for one in issued}
        reader.close()
    finally:
        keys.close()
        client = sync_client(args.redis, timeout=2.0)
        for name in list(client.scan_iter(match=namespace + "*")):
            client.delete(name)
        close_client(client)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    done = len(results)
    print(f"machine: {machine()}")
    print(
        f"command: python benchmarks/bench_deployment.py {' '.join(argv or sys.argv[1:])}".rstrip()
    )
    print(f"workers: {args.workers} uvicorn processes; PostgreSQL keys; Redis at {args.redis}")
    print(f"requests: {done} in {wall:.2f} s from {args.concurrency} connections")
    print(f"throughput: {done / wall:.0f} requests/s")
    print(
        f"latency: median {statistics.median(latencies) * 1000:.2f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.2f} ms"
    )
    print(f"statuses: {dict(sorted(statuses.items()))}")
    print(
        f"quota: {left} uses left after the warm-up, {quota_ok} allowed, {quota_refused} "
        f"refused ({'exact' if quota_ok == left else 'NOT EXACT'})"
    )
    exact = all(counted[k] == sent_busy[k] for k in busy)
    print(
        f"usage counts: {sum(counted.values())} counted for {sum(sent_busy.values())} "
        f"successful requests ({'exact' if exact else 'NOT EXACT'})"
    )
    print(
        f"revocation delay: median {statistics.median(delays) * 1000:.2f} ms, "
        f"max {max(delays) * 1000:.2f} ms over {len(delays)} keys, "
        f"{late} requests allowed after revoke() returned"
    )
    return 0 if quota_ok == left and exact and late == 0 and 0 not in statuses else 1


if __name__ == "__main__":
    sys.exit(main())
