"""The FastAPI app of the end-to-end tests: one wired AsyncKeyManager from a URL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Security

from apikeys import APIKey, AsyncKeyManager
from apikeys.fastapi import APIKeyAuth

keys = AsyncKeyManager.from_url(os.environ["E2E_DATABASE_URL"], prefix="e2e", hasher="argon2-test")
auth = APIKeyAuth(keys)
Reader = Annotated[APIKey, Security(auth, scopes=["orders:read"])]
Writer = Annotated[APIKey, Security(auth, scopes=["orders:write"])]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await keys.aclose()  # the monitor delivers what it still holds


app = FastAPI(lifespan=lifespan)
auth.install(app)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/orders")
async def orders(key: Reader) -> dict[str, Any]:
    return {"owner": key.owner}


@app.post("/orders")
async def new_order(key: Writer) -> dict[str, Any]:
    return {"owner": key.owner}
