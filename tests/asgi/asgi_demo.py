"""The generic ASGI adapter's demo app (a plain Starlette app), for the battery and
the real-server test: ``uvicorn asgi_demo:app`` serves it on ``APIKEYS_TEST_DB``."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from apikeys import AsyncKeyManager, KeyManager
from apikeys.asgi import APIKeyMiddleware, authenticate, current_key, require_key
from apikeys.http import HTTPSettings
from web_support import served_manager


def build_app(manager: KeyManager | AsyncKeyManager, settings: HTTPSettings) -> Starlette:
    async def public(request: Request) -> JSONResponse:
        key = current_key(request)
        return JSONResponse({"hello": "world", "current": key.owner if key else None})

    @require_key("orders:read")
    async def order(request: Request) -> JSONResponse:
        key = current_key(request)
        assert key is not None
        return JSONResponse({"order": request.path_params["order_id"], "owner": key.owner})

    @require_key()
    async def me(request: Request) -> JSONResponse:
        key = await authenticate(request)  # already done by the decorator: no I/O
        current = current_key(request.scope)
        return JSONResponse({"owner": key.owner, "current": current.owner if current else None})

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


_served = served_manager()
app = build_app(_served, HTTPSettings()) if _served is not None else None
