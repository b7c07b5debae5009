"""The Litestar adapter's demo app, for the battery and the real-server test:
``uvicorn litestar_demo:app`` serves it on ``APIKEYS_TEST_DB``.

(No ``from __future__ import annotations``: Litestar reads handler annotations.)
"""

import os
from typing import Any

from litestar import Litestar, Request, get

from apikeys import AsyncKeyManager, KeyManager
from apikeys.http import HTTPSettings
from apikeys.litestar import APIKeyPlugin, RequiredKey, current_key, require_key


def build_app(manager: KeyManager | AsyncKeyManager, settings: HTTPSettings) -> Litestar:
    plugin = APIKeyPlugin(manager, settings=settings)

    @get("/public")
    async def public(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return {"hello": "world", "current": current_key(request) is None}

    @get("/orders/{order_id:int}", guards=[require_key("orders:read")])
    async def order(request: Request[Any, Any, Any], api_key: RequiredKey) -> dict[str, Any]:
        return {"order": request.path_params["order_id"], "owner": api_key.owner}

    @get("/me", guards=[plugin.require_key()])
    async def me(request: Request[Any, Any, Any]) -> dict[str, Any]:
        key = current_key(request)
        return {"owner": key.owner if key else None}

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
