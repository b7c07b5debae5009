"""FastAPI: requests/s of a protected route vs the same route unprotected, same run.

In process, no network: each request is one call of the ASGI app (the server's
share of the work; what uvicorn would pay on top is the same for both routes) and,
for context, one request through ``httpx.AsyncClient`` on ``httpx.ASGITransport``.
Cases are measured interleaved, round by round, so machine noise hits them alike.
The protected cases are warm (the key's secret was verified once, so each request
is a store read plus a keyed-digest compare, not an Argon2 hash).

Run: ``python benchmarks/bench_fastapi.py`` (``--quick`` for a smoke run).
(No ``from __future__ import annotations``: the routes annotate with local names.)
"""

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _harness import Result, summarize, table
from fastapi import FastAPI, Security

from apikeys import APIKey, AsyncKeyManager, KeyManager
from apikeys.fastapi import APIKeyAuth
from apikeys.storage import MemoryStore

Call = Callable[[], Awaitable[int]]


def build(manager: KeyManager | AsyncKeyManager) -> FastAPI:
    auth = APIKeyAuth(manager)
    app = FastAPI()
    auth.install(app)

    @app.get("/open/{order_id}")
    async def open_order(order_id: int) -> dict[str, Any]:
        return {"order": order_id, "owner": "team-1"}

    @app.get("/orders/{order_id}")
    async def order(
        order_id: int, key: Annotated[APIKey, Security(auth, scopes=["orders:read"])]
    ) -> dict[str, Any]:
        return {"order": order_id, "owner": key.owner}

    return app


def asgi_caller(app: FastAPI, path: str, headers: dict[str, str]) -> Call:
    """One request as a direct ASGI call; returns the status."""
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"host", b"bench"))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def call() -> int:
        status = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": raw_headers,
            "client": ("203.0.113.9", 40000),
            "server": ("bench", 80),
        }
        await app(scope, receive, send)  # type: ignore[arg-type]
        return status

    return call


def httpx_caller(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Call:
    async def call() -> int:
        return (await client.get(path, headers=headers)).status_code

    return call


async def interleaved(
    cases: dict[str, Call], *, rounds: int, per_round: int, warmup: int
) -> list[Result]:
    for name, call in cases.items():
        for _ in range(warmup):
            status = await call()
        expected = 401 if "refused" in name else 200
        if status != expected:
            raise SystemExit(f"{name}: status {status}, expected {expected}")
    samples: dict[str, list[int]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, call in cases.items():
            bucket = samples[name]
            for _ in range(per_round):
                start = clock()
                await call()
                bucket.append(clock() - start)
    return [summarize(name, values) for name, values in samples.items()]


async def main(quick: bool) -> None:
    rounds, per_round, warmup = (5, 50, 50) if quick else (40, 100, 300)
    store = MemoryStore()
    async_keys = AsyncKeyManager(store, prefix="acme")
    sync_keys = KeyManager(store, prefix="acme")
    raw = sync_keys.create(owner="team-1", scopes=["orders:read"]).plaintext
    headers = {"Authorization": f"Bearer {raw}"}
    async_app, sync_app = build(async_keys), build(sync_keys)

    asgi_cases: dict[str, Call] = {
        "unprotected": asgi_caller(async_app, "/open/7", {}),
        "protected, AsyncKeyManager": asgi_caller(async_app, "/orders/7", headers),
        "protected, KeyManager (thread pool)": asgi_caller(sync_app, "/orders/7", headers),
        "refused, no key (401)": asgi_caller(async_app, "/orders/7", {}),
    }
    asgi = await interleaved(asgi_cases, rounds=rounds, per_round=per_round, warmup=warmup)

    transport = httpx.ASGITransport(app=async_app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        httpx_cases: dict[str, Call] = {
            "unprotected": httpx_caller(client, "/open/7", {}),
            "protected, AsyncKeyManager": httpx_caller(client, "/orders/7", headers),
        }
        via_httpx = await interleaved(
            httpx_cases, rounds=rounds, per_round=per_round, warmup=warmup
        )

    command = "python benchmarks/bench_fastapi.py" + (" --quick" if quick else "")
    print("## FastAPI adapter\n")
    print(table("Direct ASGI calls (one request = one call of the app)", asgi, command=command))
    print(ratios(asgi))
    print(table("Through httpx.AsyncClient + ASGITransport", via_httpx, command=command))
    print(ratios(via_httpx))


def ratios(results: list[Result]) -> str:
    base = results[0]
    lines = ["| case | overhead vs unprotected (median) | requests/s ratio |", "|---|---:|---:|"]
    for r in results[1:]:
        lines.append(
            f"| {r.name} | {r.median_ns / base.median_ns:.2f}x | "
            f"{r.per_second / base.per_second:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    asyncio.run(main("--quick" in sys.argv))
