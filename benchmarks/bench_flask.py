"""Flask: a protected route vs the same route unprotected, same run.

In process, no network: each request goes through Flask's test client (what a
WSGI server would add is the same for both routes) and, for a tighter view of
the adapter's own cost, as one direct WSGI call of the app. Cases are measured
interleaved, round by round, so machine noise hits them alike. The protected
cases are warm (the key's secret was verified once, so each request is a store
read plus a keyed-digest compare, not an Argon2 hash).

Run: ``python benchmarks/bench_flask.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Result, interleaved, table
from flask import Flask
from werkzeug.test import EnvironBuilder

from apikeys import KeyManager
from apikeys.flask import APIKeys, current_key, require_key
from apikeys.storage import MemoryStore

Call = Callable[[], int]


def build(manager: KeyManager) -> Flask:
    app = Flask("bench")
    APIKeys(app, manager)

    @app.get("/open/<int:order_id>")
    def open_order(order_id: int) -> dict[str, Any]:
        return {"order": order_id, "owner": "team-1"}

    @app.get("/orders/<int:order_id>")
    @require_key("orders:read")
    def order(order_id: int) -> dict[str, Any]:
        return {"order": order_id, "owner": current_key.owner}

    @app.get("/async/open/<int:order_id>")
    async def async_open_order(order_id: int) -> dict[str, Any]:
        return {"order": order_id, "owner": "team-1"}

    @app.get("/async/orders/<int:order_id>")
    @require_key("orders:read")
    async def async_order(order_id: int) -> dict[str, Any]:
        return {"order": order_id, "owner": current_key.owner}

    return app


def client_caller(app: Flask, path: str, headers: dict[str, str]) -> Call:
    client = app.test_client()

    def call() -> int:
        return client.get(path, headers=headers).status_code

    return call


def wsgi_caller(app: Flask, path: str, headers: dict[str, str]) -> Call:
    """One request as a direct WSGI call (a fresh copy of a prepared environ)."""
    environ = EnvironBuilder(path=path, headers=headers).get_environ()
    status = ""

    def start_response(value: str, headers: Any, exc_info: Any = None) -> None:
        nonlocal status
        status = value

    def call() -> int:
        body = app(dict(environ), start_response)
        for _ in body:
            pass
        getattr(body, "close", lambda: None)()
        return int(status[:3])

    return call


def ratios(results: list[Result]) -> str:
    """Each protected/refused case against the unprotected case of its kind (sync or
    async view)."""
    bases = {r.name: r for r in results if r.name.startswith("unprotected")}
    lines = [
        "| case | compared with | overhead (median) | requests/s ratio |",
        "|---|---|---:|---:|",
    ]
    for r in results:
        if r.name in bases:
            continue
        base = bases["unprotected, async view" if "async" in r.name else "unprotected"]
        lines.append(
            f"| {r.name} | {base.name} | {r.median_ns / base.median_ns:.2f}x | "
            f"{r.per_second / base.per_second:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(quick: bool) -> None:
    rounds, per_round, warmup = (5, 50, 50) if quick else (40, 100, 300)
    manager = KeyManager(MemoryStore(), prefix="acme")  # the default (production) hasher
    raw = manager.create(owner="team-1", scopes=["orders:read"]).plaintext
    headers = {"Authorization": f"Bearer {raw}"}
    app = build(manager)
    command = "python benchmarks/bench_flask.py" + (" --quick" if quick else "")

    via_client = interleaved(
        {
            "unprotected": client_caller(app, "/open/7", {}),
            "protected (warm key)": client_caller(app, "/orders/7", headers),
            "unprotected, async view": client_caller(app, "/async/open/7", {}),
            "protected, async view": client_caller(app, "/async/orders/7", headers),
            "refused, no key (401)": client_caller(app, "/orders/7", {}),
        },
        rounds=rounds,
        per_round=per_round,
        warmup=warmup,
    )
    via_wsgi = interleaved(
        {
            "unprotected": wsgi_caller(app, "/open/7", {}),
            "protected (warm key)": wsgi_caller(app, "/orders/7", headers),
            "refused, no key (401)": wsgi_caller(app, "/orders/7", {}),
        },
        rounds=rounds,
        per_round=per_round,
        warmup=warmup,
    )
    print("## Flask adapter\n")
    print(table("Through Flask's test client", via_client, command=command))
    print(ratios(via_client))
    print(table("Direct WSGI calls (one request = one call of the app)", via_wsgi, command=command))
    print(ratios(via_wsgi))


if __name__ == "__main__":
    main("--quick" in sys.argv)
