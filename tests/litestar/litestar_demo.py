"""The Litestar adapter's demo app, for the battery and the real-server test:
``uvicorn litestar_demo:app`` serves it on ``APIKEYS_TEST_DB``.

(No ``from __future__ import annotations``: Litestar reads handler annotations.)
"""

from typing import Any

from litestar import Litestar, Request, get

from apikeys import AsyncKeyManager, KeyManager
from apikeys.http import HTTPSettings
from apikeys.litestar import APIKeyPlugin, RequiredKey, current_key, require_key
from web_support import served_manager


def build_app(manager: KeyManager | AsyncKeyManager, settings: HTTPSettings) -> Litestar:
    plugin = APIKeyPlugin(manager, settings=settings)

    @get("/public")
    async def public(request: Request[Any, Any, Any]) -> dict[str, Any]:
        key = current_key(request)
        return {"hello": "world", "current": key.owner if key else None}

    @get("/orders/{order_id:int}", guards=[require_key("orders:read")])
    async def order(request: Request[Any, Any, Any], api_key: RequiredKey) -> dict[str, Any]:
        return {"order": request.path_params["order_id"], "owner": api_key.owner}

    @get("/me", guards=[plugin.require_key()])
    async def me(request: Request[Any, Any, Any], api_key: RequiredKey) -> dict[str, Any]:
        current = current_key(request)
        return {"owner": api_key.owner, "current": current.owner if current else None}

    @get("/boom")
    async def boom(api_key: RequiredKey) -> None:
        raise RuntimeError("handler bug")

    @get("/check")
    async def check(api_key: RequiredKey) -> dict[str, bool]:
        manager.authorize(api_key, "orders:delete")
        return {"ok": True}

    return Litestar(
        [public, order, me, boom, check], plugins=[plugin], debug=False, logging_config=None
    )


_served = served_manager()
app = build_app(_served, HTTPSettings()) if _served is not None else None
