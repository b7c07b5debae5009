"""The Starlette app of the end-to-end tests, on the generic ASGI middleware."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from apikeys import AsyncKeyManager
from apikeys.asgi import APIKeyMiddleware, current_key, require_key

keys = AsyncKeyManager.from_url(os.environ["E2E_DATABASE_URL"], prefix="e2e", hasher="argon2-test")


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


@require_key("orders:read")
async def orders(request: Request) -> JSONResponse:
    key = current_key(request)
    return JSONResponse({"owner": key.owner if key else None})


@require_key("orders:write")
async def new_order(request: Request) -> JSONResponse:
    key = current_key(request)
    return JSONResponse({"owner": key.owner if key else None})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await keys.aclose()  # the monitor delivers what it still holds


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/orders", orders, methods=["GET"]),
        Route("/orders", new_order, methods=["POST"]),
    ],
    middleware=[Middleware(APIKeyMiddleware, manager=keys)],
    lifespan=lifespan,
)
