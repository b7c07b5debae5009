"""The issue-14 targets: each verify path beside its floor, in one interleaved run.

- SQLiteStore warm verify vs a bare ``sqlite3`` primary-key SELECT of the same row
  (target ≤ 3x).
- PostgreSQL warm verify (SQLAlchemyStore, no cache) vs a bare psycopg prepared
  SELECT of the same row (≤ 1.5x).
- PostgreSQL warm verify through CachedStore vs a MemoryStore verify (≤ 2x).
- AsyncKeyManager on AsyncSQLAlchemyStore vs the sync verify (≤ 1.5x), and
  beside the bare psycopg async prepared SELECT (the asyncio floor).
- MemoryStore warm verify vs the stdlib floor: dict lookup + HMAC-SHA256 +
  ``compare_digest`` (≤ 2.5x).

Every verify uses the HMAC hasher and a warm key (its secret verified once). The
cases run round by round, interleaved, so the machine's other load falls on all
alike; async cases run their ``per_round`` awaits inside one coroutine per round.
PostgreSQL runs in a fresh database, dropped at the end.

Run: ``nox -s bench -- targets`` or ``python benchmarks/bench_targets.py`` (``--quick``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Result, ratio_table, summarize, table
from bench_storage import pg_database

from apikeys import AsyncKeyManager, KeyManager
from apikeys.hashing import HmacHasher
from apikeys.storage import (
    AsyncSQLAlchemyStore,
    CachedStore,
    MemoryStore,
    SQLAlchemyStore,
    SQLiteStore,
)

PEPPER = secrets.token_bytes(32)
COMMAND = "python benchmarks/bench_targets.py"


def manager(store: object) -> KeyManager:
    return KeyManager(store, prefix="acme", hasher=HmacHasher([PEPPER]), touch_interval=None)  # type: ignore[arg-type]


def warm(keys: KeyManager) -> tuple[str, str]:
    issued = keys.create(owner="team-1", scopes=["orders:read"])
    keys.verify(issued.plaintext)
    return issued.plaintext, issued.key.id


def stdlib_floor() -> Callable[[], object]:
    """The least a warm verify can do: find the record, MAC the secret, compare."""
    secret = secrets.token_urlsafe(32).encode()
    key_id = secrets.token_hex(8)
    stored = {key_id: hmac.new(PEPPER, secret, hashlib.sha256).digest()}

    def call() -> bool:
        expected = stored[key_id]
        return hmac.compare_digest(hmac.new(PEPPER, secret, hashlib.sha256).digest(), expected)

    return call


def run(quick: bool) -> None:
    rounds, per_round, warmup = (5, 100, 100) if quick else (40, 250, 500)
    tmp = Path(tempfile.mkdtemp(prefix="apikeys-bench-targets-"))
    with pg_database() as pg_url:
        sqlite_keys = manager(SQLiteStore(tmp / "keys.db"))
        sqlite_raw, sqlite_id = warm(sqlite_keys)
        bare_sqlite = sqlite3.connect(tmp / "keys.db", isolation_level=None)
        pk_select = "SELECT * FROM apikeys_keys WHERE id = ?"

        pg_keys = manager(SQLAlchemyStore(pg_url))
        pg_raw, pg_id = warm(pg_keys)
        import psycopg

        bare_pg = psycopg.connect(
            pg_url.replace("postgresql+psycopg", "postgresql"), autocommit=True
        )
        cursor = bare_pg.cursor()
        pg_select = "SELECT * FROM apikeys_keys WHERE id = %s"

        cached = CachedStore(
            SQLAlchemyStore(pg_url), invalidation=pg_url.replace("postgresql+psycopg", "postgresql")
        )
        deadline = time.monotonic() + 10
        while not cached.live and time.monotonic() < deadline:
            time.sleep(0.01)
        cached_keys = manager(cached)
        cached_raw = pg_raw

        memory_keys = manager(MemoryStore())
        memory_raw, _ = warm(memory_keys)

        def sqlite_bare() -> object:
            return bare_sqlite.execute(pk_select, (sqlite_id,)).fetchone()

        def pg_bare() -> object:
            cursor.execute(pg_select, (pg_id,), prepare=True)
            return cursor.fetchone()

        cases: dict[str, Callable[[], object]] = {
            "SQLiteStore warm verify": lambda: sqlite_keys.verify(sqlite_raw),
            "bare sqlite3 PK SELECT": sqlite_bare,
            "PostgreSQL warm verify (no cache)": lambda: pg_keys.verify(pg_raw),
            "bare psycopg prepared SELECT": pg_bare,
            "PostgreSQL warm verify, CachedStore": lambda: cached_keys.verify(cached_raw),
            "MemoryStore warm verify": lambda: memory_keys.verify(memory_raw),
            "stdlib floor (dict + HMAC-SHA256 + compare_digest)": stdlib_floor(),
        }
        async_store = AsyncSQLAlchemyStore(pg_url)
        async_keys = AsyncKeyManager(
            async_store, prefix="acme", hasher=HmacHasher([PEPPER]), touch_interval=None
        )
        loop = asyncio.new_event_loop()
        loop.run_until_complete(async_keys.verify(pg_raw))

        abare = loop.run_until_complete(
            psycopg.AsyncConnection.connect(
                pg_url.replace("postgresql+psycopg", "postgresql"), autocommit=True
            )
        )
        acursor = abare.cursor()

        async def async_verify() -> object:
            return await async_keys.verify(pg_raw)

        async def async_bare() -> object:
            await acursor.execute(pg_select, (pg_id,), prepare=True)
            return await acursor.fetchone()

        async_cases = {
            "async PostgreSQL warm verify (no cache)": async_verify,
            "bare psycopg async prepared SELECT": async_bare,
        }

        async def async_round(call: Callable[[], Any], n: int) -> list[int]:
            clock = time.perf_counter_ns
            out = []
            for _ in range(n):
                start = clock()
                await call()
                out.append(clock() - start)
            return out

        for call in cases.values():
            for _ in range(warmup):
                call()
        for acall in async_cases.values():
            loop.run_until_complete(async_round(acall, warmup))
        samples: dict[str, list[int]] = {name: [] for name in (*cases, *async_cases)}
        clock = time.perf_counter_ns
        for _ in range(rounds):
            for name, call in cases.items():
                bucket = samples[name]
                for _ in range(per_round):
                    start = clock()
                    call()
                    bucket.append(clock() - start)
            for name, acall in async_cases.items():
                samples[name] += loop.run_until_complete(async_round(acall, per_round))
        results: list[Result] = [summarize(name, values) for name, values in samples.items()]
        print(
            table(
                "Issue 14 targets: each path beside its floor (interleaved)",
                results,
                command=COMMAND,
            )
        )
        print(
            ratio_table(
                results,
                [
                    ("SQLiteStore warm verify", "bare sqlite3 PK SELECT", 3),
                    ("PostgreSQL warm verify (no cache)", "bare psycopg prepared SELECT", 1.5),
                    ("PostgreSQL warm verify, CachedStore", "MemoryStore warm verify", 2),
                    (
                        "async PostgreSQL warm verify (no cache)",
                        "PostgreSQL warm verify (no cache)",
                        1.5,
                    ),
                    (
                        "async PostgreSQL warm verify (no cache)",
                        "bare psycopg async prepared SELECT",
                        1.5,
                    ),
                    (
                        "MemoryStore warm verify",
                        "stdlib floor (dict + HMAC-SHA256 + compare_digest)",
                        2.5,
                    ),
                ],
            )
        )
        loop.run_until_complete(async_keys.aclose())
        loop.run_until_complete(abare.close())
        loop.close()
        cached.close()
        pg_keys.close()
        sqlite_keys.close()
        bare_pg.close()
        bare_sqlite.close()
    for leftover in tmp.iterdir():
        leftover.unlink()
    os.rmdir(tmp)


if __name__ == "__main__":
    run("--quick" in sys.argv)
