"""Helpers of the FastAPI adapter tests: a demo app on a sync or async manager.

(No ``from __future__ import annotations``: FastAPI must see the route annotations,
which name local variables, as objects.)

Every test that takes ``env`` runs twice: with an :class:`AsyncKeyManager` (awaited
by the dependency) and with a :class:`KeyManager` (run in the thread pool). Keys
are issued through a second, synchronous manager on the same store, the way an
admin tool or the CLI would.
"""

import warnings
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.responses import StreamingResponse

from apikeys import APIKey
from apikeys.fastapi import APIKeyAuth, RequiredKey, current_key, require_key
from web_support import Env, FaultyStore, PeerAt, Recorder, WindowLimiter, make_env, served_manager

with warnings.catch_warnings():
    # Starlette 1.x deprecates running its TestClient on httpx (it wants httpx2);
    # the client works the same either way, and this import runs once.
    warnings.filterwarnings("ignore", message=".*starlette.testclient.*", category=Warning)
    from fastapi.testclient import TestClient

__all__ = [
    "Env",
    "FaultyStore",
    "PeerAt",
    "Recorder",
    "TestClient",
    "WindowLimiter",
    "build_app",
    "make_env",
]


def build_app(auth: APIKeyAuth) -> FastAPI:
    """The demo app: public, scoped, nested-scoped, streaming and failing routes."""
    app = FastAPI()
    auth.install(app)

    @app.get("/public")
    async def public(request: Request) -> dict[str, Any]:
        key = current_key(request)
        return {"hello": "world", "current": key.owner if key else None}

    @app.get("/orders/{order_id}")
    async def get_order(
        order_id: int, key: Annotated[APIKey, Security(auth, scopes=["orders:read"])]
    ) -> dict[str, Any]:
        return {"order": order_id, "owner": key.owner}

    @app.post("/orders", dependencies=[auth.require_key("orders:write")])
    def create_order(request: Request) -> dict[str, Any]:
        key = current_key(request)
        return {"created_by": key.owner if key else None}

    async def order_reader(
        key: Annotated[APIKey, Security(auth, scopes=["orders:read"])],
    ) -> APIKey:
        return key

    @app.post("/orders/{order_id}/refund")
    async def refund(
        order_id: int, key: Annotated[APIKey, Security(order_reader, scopes=["orders:refund"])]
    ) -> dict[str, Any]:
        return {"refunded": order_id}

    @app.get("/both", dependencies=[Security(auth, scopes=["orders:read"])])
    async def both(
        key: Annotated[APIKey, Security(auth, scopes=["orders:write"])],
    ) -> dict[str, str]:
        return {"id": key.id}

    @app.get("/me")
    async def me(key: RequiredKey, request: Request) -> dict[str, Any]:
        current = current_key(request)
        return {
            "owner": key.owner,
            "state_key": request.state.api_key.id,
            "current": current.owner if current else None,
        }

    @app.get("/admin", dependencies=[require_key("admin:all")])
    async def admin() -> dict[str, bool]:
        return {"admin": True}

    @app.get("/stream")
    async def stream(key: RequiredKey) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"chunk{i};".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/missing/{thing}")
    async def missing(thing: str, key: RequiredKey) -> None:
        raise HTTPException(404, "no such thing")

    @app.get("/boom")
    async def boom(key: RequiredKey) -> None:
        raise RuntimeError("handler bug")

    @app.get("/check")
    async def check(request: Request, key: RequiredKey) -> dict[str, bool]:
        # A handler calling the manager itself: raw apikeys errors become problems too.
        auth.manager.authorize(key, "orders:delete")
        return {"ok": True}

    return app


_served = served_manager()
app = build_app(APIKeyAuth(_served)) if _served is not None else None
"""The demo app served by uvicorn in the battery's real-server test."""
