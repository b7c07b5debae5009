"""Storage benchmarks (issue 3 and the async part of issue 4).

1. Warm verify through ``KeyManager.verify`` on SQLiteStore and on SQLAlchemyStore
   (PostgreSQL) holding 1 000, 100 000 and 1 000 000 keys: one indexed read per
   request, so the cost must stay flat (within 20 % between 1k and 1M). The three
   sizes live in three databases side by side and are measured in interleaved
   rounds, so machine noise hits them alike.
2. Bulk issue rate (keys/s) per store: records written straight through
   ``store.write`` in batches (how the big stores are filled), and one
   ``KeyManager.create`` per key with the HMAC hasher (a transaction per key;
   Argon2 would measure the hash, not the store).
3. Async warm verify through ``AsyncKeyManager`` on MemoryStore and on
   AsyncSQLAlchemyStore (PostgreSQL, psycopg async).

Filler keys share one precomputed hash, so setting up a million keys is fast.
PostgreSQL and MariaDB runs each use a fresh database, dropped at the end.

Run: ``nox -s bench -- storage`` or ``python benchmarks/bench_storage.py``
(``--quick``: 1k/10k/100k keys and fewer samples, for a smoke run).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# The cheap test profile hashes the filler keys: a benchmark opts in explicitly.
os.environ.setdefault("APIKEYS_ALLOW_TEST_HASHER", "1")

from _harness import Result, fmt_ns, machine, table

from apikeys import APIKey, AsyncKeyManager, KeyManager, KeyRecord
from apikeys._keyformat import new_key_id
from apikeys.hashing import Argon2Hasher, HmacHasher
from apikeys.storage import (
    AsyncSQLAlchemyStore,
    KeyStore,
    MemoryStore,
    SQLAlchemyStore,
    SQLiteStore,
)

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/{name}"
BATCH = 5_000
SAMPLE_KEYS = 200
COMMAND = "python benchmarks/bench_storage.py"


@contextmanager
def pg_database() -> Iterator[str]:
    import psycopg

    name = f"apikeys_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.format(name=name)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def mariadb_database() -> Iterator[str]:
    import pymysql

    name = f"apikeys_bench_{os.getpid()}_{secrets.token_hex(3)}"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield MARIADB_URL.format(name=name)
    finally:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def fill(store: KeyStore, count: int, secret_hash: str) -> float:
    """Insert ``count`` filler keys in batches; return keys per second."""
    created = datetime.now(timezone.utc)
    start = time.perf_counter()
    done = 0
    while done < count:
        size = min(BATCH, count - done)
        batch = [
            KeyRecord(
                APIKey(
                    id=new_key_id(),
                    prefix="acme",
                    owner=f"owner-{(done + i) % 5000}",
                    created_at=created,
                    scopes=("orders:read",),
                ),
                secret_hash,
            )
            for i in range(size)
        ]
        store.write(insert=batch)
        done += size
    return count / (time.perf_counter() - start)


def warm_manager(store: KeyStore) -> tuple[KeyManager, list[str]]:
    """A manager with SAMPLE_KEYS issued keys, each verified once (warm)."""
    keys = KeyManager(
        store,
        prefix="acme",
        hasher=Argon2Hasher.for_tests(),
        touch_interval=None,
        failure_limit=0,
    )
    raws = [
        keys.create(owner="bench", scopes=["orders:read"]).plaintext for _ in range(SAMPLE_KEYS)
    ]
    for raw in raws:
        keys.verify(raw, scopes=["orders:read"])
    return keys, raws


def interleaved(
    cases: dict[str, Callable[[], object]], *, rounds: int, per_round: int, warmup: int
) -> list[Result]:
    """Time every case in alternating rounds; one sample per call."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, fn in cases.items():
            bucket = samples[name]
            for _ in range(per_round):
                start = clock()
                fn()
                bucket.append(clock() - start)
    results = []
    for name, values in samples.items():
        values.sort()
        p50 = values[len(values) // 2]
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        results.append(Result(name, len(values), p50, p99))
    return results


def verify_case(keys: KeyManager, raws: list[str], seed: int) -> Callable[[], object]:
    rng = random.Random(seed)

    def call() -> object:
        return keys.verify(rng.choice(raws), scopes=["orders:read"])

    return call


def flatness(results: list[Result], sizes: list[int], label: str) -> str:
    """One line comparing the largest store with the smallest."""
    small, large = results[0], results[-1]
    p50 = large.median_ns / small.median_ns - 1
    p99 = large.p99_ns / small.p99_ns - 1
    verdict = "flat (within 20 %)" if abs(p50) <= 0.20 else "NOT flat (more than 20 %)"
    return (
        f"{label}, {sizes[-1]:,} vs {sizes[0]:,} keys: median {p50:+.1%}, "
        f"p99 {p99:+.1%} — {verdict}"
    )


def bench_verify(
    sizes: list[int], rounds: int, per_round: int, workdir: Path
) -> tuple[str, list[Result]]:
    """Warm verify per store at each size; also returns the bulk fill rates."""
    secret_hash = Argon2Hasher.for_tests().hash(secrets.token_urlsafe(32))
    sections = []
    fill_rates: list[Result] = []
    for label in ("SQLiteStore", "SQLAlchemyStore (PostgreSQL)"):
        with ExitStack() as stack:
            stores: list[KeyStore] = []
            for size in sizes:
                if label == "SQLiteStore":
                    store: KeyStore = SQLiteStore(workdir / f"bench-{size}.db")
                else:
                    store = SQLAlchemyStore(stack.enter_context(pg_database()))
                stack.callback(store.close)
                stores.append(store)
                rate = fill(store, size - SAMPLE_KEYS, secret_hash)
                if size == max(sizes):
                    name = f"{label}: store.write, batches of {BATCH:,}"
                    fill_rates.append(Result(name, size, 1e9 / rate, 1e9 / rate))
                print(f"  filled {label}: {size:,} keys ({rate:,.0f} keys/s)", file=sys.stderr)
            cases = {}
            for n, (size, store) in enumerate(zip(sizes, stores, strict=True)):
                keys, raws = warm_manager(store)
                cases[f"{label}, {size:,} keys"] = verify_case(keys, raws, n)
            results = interleaved(cases, rounds=rounds, per_round=per_round, warmup=300)
            title = f"Warm verify through KeyManager — {label}"
            sections.append(
                table(title, results, command=COMMAND)
                + "\n"
                + flatness(results, sizes, label)
                + "\n"
            )
    return "\n".join(sections), fill_rates


def bench_issue(count: int, workdir: Path) -> list[Result]:
    """One KeyManager.create per key (HMAC hasher): the per-key write path."""
    results = []
    hasher = HmacHasher([secrets.token_bytes(32)])

    def run(label: str, store: KeyStore) -> None:
        keys = KeyManager(store, prefix="acme", hasher=hasher)
        for _ in range(20):
            keys.create(owner="warmup")
        start = time.perf_counter_ns()
        for n in range(count):
            keys.create(owner=f"owner-{n % 50}", scopes=["orders:read"])
        per_key = (time.perf_counter_ns() - start) / count
        results.append(Result(f"{label}: KeyManager.create, one by one", count, per_key, per_key))
        store.close()

    run("MemoryStore", MemoryStore())
    run("SQLiteStore", SQLiteStore(workdir / "issue.db"))
    run(
        "SQLAlchemyStore (SQLite)", SQLAlchemyStore(f"sqlite+pysqlite:///{workdir / 'issue-sa.db'}")
    )
    with pg_database() as url:
        run("SQLAlchemyStore (PostgreSQL)", SQLAlchemyStore(url))
    with mariadb_database() as url:
        run("SQLAlchemyStore (MariaDB)", SQLAlchemyStore(url))
    return results


async def bench_async(samples: int) -> list[Result]:
    results = []

    async def run(label: str, keys: AsyncKeyManager) -> None:
        raws = [
            (await keys.create(owner="bench", scopes=["orders:read"])).plaintext
            for _ in range(SAMPLE_KEYS)
        ]
        for raw in raws:
            await keys.verify(raw, scopes=["orders:read"])
        rng = random.Random(7)
        for _ in range(300):
            await keys.verify(rng.choice(raws), scopes=["orders:read"])
        values = []
        clock = time.perf_counter_ns
        for _ in range(samples):
            raw = rng.choice(raws)
            start = clock()
            await keys.verify(raw, scopes=["orders:read"])
            values.append(clock() - start)
        values.sort()
        results.append(
            Result(
                label,
                samples,
                values[len(values) // 2],
                values[min(len(values) - 1, int(len(values) * 0.99))],
            )
        )
        await keys.aclose()

    settings = {"hasher": Argon2Hasher.for_tests(), "touch_interval": None, "failure_limit": 0}
    await run(
        "AsyncKeyManager, MemoryStore", AsyncKeyManager(MemoryStore(), prefix="acme", **settings)
    )  # type: ignore[arg-type]
    with pg_database() as url:
        await run(
            "AsyncKeyManager, AsyncSQLAlchemyStore (PostgreSQL, psycopg async)",
            AsyncKeyManager(AsyncSQLAlchemyStore(url), prefix="acme", **settings),
        )  # type: ignore[arg-type]
    return results


def rate_table(title: str, results: list[Result]) -> str:
    lines = [
        f"### {title}",
        "",
        f"Machine: {machine()}  ",
        "Command: `python benchmarks/bench_storage.py`",
        "",
        "| store and path | keys | time per key | keys/s |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r.name} | {r.n:,} | {fmt_ns(r.median_ns)} | {r.per_second:,.0f} |")
    return "\n".join(lines) + "\n"


def main(quick: bool) -> None:
    sizes = [1_000, 10_000, 100_000] if quick else [1_000, 100_000, 1_000_000]
    rounds, per_round = (5, 100) if quick else (20, 250)
    with tempfile.TemporaryDirectory(prefix="apikeys-bench-") as tmp:
        workdir = Path(tmp)
        verify, fill_rates = bench_verify(sizes, rounds, per_round, workdir)
        issue = bench_issue(200 if quick else 1_000, workdir)
    async_results = asyncio.run(bench_async(2_000 if quick else 10_000))
    print("## Storage\n")
    print(verify)
    print(rate_table("Bulk issue rate", fill_rates + issue))
    print(table("Async warm verify", async_results, command=COMMAND))


if __name__ == "__main__":
    main("--quick" in sys.argv)
