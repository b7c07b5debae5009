"""The generic ASGI adapter's demo app (a plain Starlette app), for the battery and
the real-server test: ``uvicorn asgi_demo:app`` serves it on ``APIKEYS_TEST_DB``."""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from apikeys import AsyncKeyManager, KeyManager
from apikeys.asgi import APIKeyMiddleware, authenticate, current_key, require_key
from apikeys.http import HTTPSettings


def build_app(manager: KeyManager | AsyncKeyManager, settings: HTTPSettings) -> Starlette:
    async def public(request: Request) -> JSONResponse:
        return JSONResponse({"hello": "world", "current": current_key(request) is None})

    @require_key("orders:read")
    async def order(request: Request) -> JSONResponse:
        key = current_key(request)
        assert key is not None
        return JSONResponse({"order": request.path_params["order_id"], "owner": key.owner})

    @require_key()
    async def me(request: Request) -> JSONResponse:
        key = current_key(request.scope)
        return JSONResponse({"owner": key.owner if key else None})

    @require_key("orders:read")
    def sync_orders(request: Request) -> JSONResponse:  # a sync endpoint (thread pool)
        key = current_key(request)
        return JSONResponse({"owner": key.owner if key else None})

    @require_key()
    async def boom(request: Request) -> JSONResponse:
        raise RuntimeError("handler bug")

    async def check(request: Request) -> JSONResponse:
        key = await authenticate(request)
        manager.authorize(key, "orders:delete")
        return JSONResponse({"ok": True})

    routes = [
        Route("/public", public),
        Route("/orders/{order_id:int}", order),
        Route("/me", me),
        Route("/sync", sync_orders),
        Route("/boom", boom),
        Route("/check", check),
    ]
    return Starlette(
        routes=routes, middleware=[Middleware(APIKeyMiddleware, manager=manager, settings=settings)]
    )


def _served() -> Any:
    from apikeys.hashing import Argon2Hasher
    from apikeys.monitoring import Monitor, SQLiteAuditStore, SQLiteUsageStore
    from apikeys.storage import SQLiteStore

    database = os.environ.get("APIKEYS_TEST_DB")
    if database is None:
        return None
    manager = KeyManager(SQLiteStore(database), prefix="acme", hasher=Argon2Hasher.for_tests())
    Monitor(
        manager,
        usage_store=SQLiteUsageStore(database),
        audit_store=SQLiteAuditStore(database),
        flush_interval=0.1,
    )
    return build_app(manager, HTTPSettings())


app = _served()
