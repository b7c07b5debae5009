"""A small FastAPI shop API protected by apikeys, with its keys in a SQLite file.

Routes: ``GET /health`` is public; ``GET /orders`` and ``GET /orders/{order_id}``
need ``orders:read``; ``POST /orders`` needs ``orders:write``; ``GET /me`` needs any
valid key. Errors are ``application/problem+json``.

Run (the database is ``apikeys.db`` in the working directory, or ``$APIKEYS_DB``)::

    python examples/fastapi_app.py issue --scope orders:read --scope orders:write
    python examples/fastapi_app.py serve            # or: uvicorn examples.fastapi_app:app
    curl -H "Authorization: Bearer <key>" http://127.0.0.1:8000/orders

The key dashboard is at http://127.0.0.1:8000/apikeys/ (from this machine only).

Open http://127.0.0.1:8000/docs, press "Authorize" and paste the key into *one*
of the two schemes (a request carrying two credentials is refused).
"""

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Security
from pydantic import BaseModel, Field

from apikeys import APIKey, KeyManager
from apikeys.dashboard import asgi_app, local_only
from apikeys.fastapi import PROBLEM_RESPONSES, APIKeyAuth, RequiredKey

PREFIX = "shop"


class NewOrder(BaseModel):
    item: str = Field(min_length=1, max_length=100)
    quantity: int = Field(gt=0, le=1000)


class Order(NewOrder):
    id: int
    owner: str


def database_path() -> str:
    return os.environ.get("APIKEYS_DB", "apikeys.db")


def database_url(database: str | Path | None = None) -> str:
    return f"sqlite:///{database or database_path()}"


def create_app(database: str | Path | None = None) -> FastAPI:
    """The shop app, its keys in the SQLite file ``database``."""
    # The store, plus usage counts and the audit trail in the same file (see them with
    # `apikeys usage KEY_ID` / `apikeys audit`), plus per-key rate limits.
    keys = KeyManager.from_url(database_url(database), prefix=PREFIX)
    # A KeyManager (blocking) runs in the thread pool; an AsyncKeyManager is awaited.
    auth = APIKeyAuth(keys)
    orders: dict[int, Order] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        keys.close()  # flushes the usage counts and audit entries it owns

    app = FastAPI(title="Shop", lifespan=lifespan, responses=PROBLEM_RESPONSES)
    auth.install(app)
    app.state.keys = keys
    # The key dashboard; local_only lets in this machine's browsers: use your login.
    app.mount("/apikeys", asgi_app(keys.monitor, authorize=local_only))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/orders")
    async def list_orders(
        key: Annotated[APIKey, Security(auth, scopes=["orders:read"])],
    ) -> list[Order]:
        return [order for order in orders.values() if order.owner == key.owner]

    @app.get("/orders/{order_id}")
    async def get_order(
        order_id: int, key: Annotated[APIKey, Security(auth, scopes=["orders:read"])]
    ) -> Order:
        order = orders.get(order_id)
        if order is None or order.owner != key.owner:
            raise HTTPException(status_code=404, detail="No such order.")
        return order

    @app.post("/orders", status_code=201)
    async def create_order(
        new: NewOrder, key: Annotated[APIKey, Security(auth, scopes=["orders:write"])]
    ) -> Order:
        order = Order(id=len(orders) + 1, owner=key.owner, **new.model_dump())
        orders[order.id] = order
        return order

    @app.get("/me")
    async def me(key: RequiredKey) -> dict[str, object]:
        return {"owner": key.owner, "key_id": key.id, "scopes": list(key.scopes)}

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="serve the app with uvicorn (the default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    issue = commands.add_parser("issue", help="issue a key and print it (shown once)")
    issue.add_argument("--owner", default="demo")
    issue.add_argument("--scope", action="append", default=[], dest="scopes")
    args = parser.parse_args(argv)

    if args.command == "issue":
        with KeyManager.from_url(database_url(), prefix=PREFIX) as keys:
            print(keys.create(owner=args.owner, scopes=args.scopes, name="example").plaintext)
        return

    import uvicorn

    # apikeys decides which X-Forwarded-For to believe (APIKeyAuth(trusted_proxies=...)),
    # so uvicorn's own rewriting of the client address is turned off.
    uvicorn.run(
        app,
        host=getattr(args, "host", "127.0.0.1"),
        port=getattr(args, "port", 8000),
        proxy_headers=False,
    )


app = create_app()

if __name__ == "__main__":
    main()
