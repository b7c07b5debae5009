"""The Litestar app of the end-to-end tests: one wired AsyncKeyManager from a URL."""

from __future__ import annotations

import os

from litestar import Litestar, get, post

from apikeys import AsyncKeyManager
from apikeys.litestar import APIKeyPlugin, RequiredKey, require_key

keys = AsyncKeyManager.from_url(os.environ["E2E_DATABASE_URL"], prefix="e2e", hasher="argon2-test")


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/orders", guards=[require_key("orders:read")])
async def orders(api_key: RequiredKey) -> dict[str, str]:
    return {"owner": api_key.owner}


@post("/orders", guards=[require_key("orders:write")], status_code=200)
async def new_order(api_key: RequiredKey) -> dict[str, str]:
    return {"owner": api_key.owner}


async def close_keys() -> None:
    await keys.aclose()  # the monitor delivers what it still holds


app = Litestar([health, orders, new_order], plugins=[APIKeyPlugin(keys)], on_shutdown=[close_keys])
