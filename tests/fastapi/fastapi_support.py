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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from apikeys import (
    APIKey,
    AsyncKeyManager,
    KeyManager,
    RateLimited,
    RateLimitStatus,
    StorageError,
)
from apikeys.events import Event, RequestCompleted, VerificationFailed
from apikeys.fastapi import APIKeyAuth, RequiredKey, current_key, require_key
from apikeys.hashing import Argon2Hasher
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock

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


class PeerAt:
    """Serve ``app`` as if every connection came from ``client`` (host, port).

    (``TestClient(client=...)`` does this in recent Starlette only.)
    """

    def __init__(self, app: ASGIApp, client: tuple[str, int]) -> None:
        self.app = app
        self.client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": self.client}
        await self.app(scope, receive, send)


class Recorder:
    """An event sink keeping every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def completed(self) -> list[RequestCompleted]:
        return [e for e in self.events if isinstance(e, RequestCompleted)]

    def failure_codes(self) -> list[str]:
        return [e.code for e in self.events if isinstance(e, VerificationFailed)]


class WindowLimiter:
    """A small fixed-window limiter implementing both limiter protocols."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self.counts: dict[tuple[str, int], int] = {}
        self.hits = 0

    def hit(self, key: APIKey, *, now: datetime) -> RateLimitStatus:
        self.hits += 1
        t = now.timestamp()
        slot = (key.id, int(t // self.window))
        self.counts[slot] = used = self.counts.get(slot, 0) + 1
        reset_after = self.window - t % self.window
        policy = f"{self.limit}/minute"
        if used > self.limit:
            raise RateLimited(retry_after=reset_after, limit=self.limit, remaining=0, policy=policy)
        return RateLimitStatus(
            limit=self.limit,
            remaining=self.limit - used,
            reset_after=reset_after,
            policy=policy,
            window=self.window,
        )

    async def ahit(self, key: APIKey, *, now: datetime) -> RateLimitStatus:
        return self.hit(key, now=now)


class FaultyStore(MemoryStore):
    """A MemoryStore whose reads fail with StorageError while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def get(self, key_id: str) -> Any:
        if self.down:
            raise StorageError("connection refused")
        return super().get(key_id)

    async def aget(self, key_id: str) -> Any:
        if self.down:
            raise StorageError("connection refused")
        return await super().aget(key_id)


@dataclass
class Env:
    """A manager for the app (sync or async), an admin manager on the same store."""

    kind: str
    clock: ManualClock
    store: FaultyStore
    admin: KeyManager
    manager: KeyManager | AsyncKeyManager
    recorder: Recorder
    limiter: WindowLimiter | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def issue(self, scopes: tuple[str, ...] | list[str] = (), **kwargs: Any) -> str:
        return self.admin.create(owner="team-1", scopes=scopes, **kwargs).plaintext


def make_env(kind: str, *, limiter: WindowLimiter | None = None, **manager_args: Any) -> Env:
    clock = ManualClock()
    store = FaultyStore()
    hasher = Argon2Hasher.for_tests()
    recorder = Recorder()
    admin = KeyManager(store, prefix="acme", hasher=hasher, clock=clock)
    cls = AsyncKeyManager if kind == "async" else KeyManager
    manager = cls(
        store,  # type: ignore[arg-type]  # MemoryStore is both kinds of store
        prefix="acme",
        hasher=hasher,
        clock=clock,
        events=recorder,
        rate_limiter=limiter,
        **manager_args,
    )
    return Env(kind, clock, store, admin, manager, recorder, limiter)


def build_app(auth: APIKeyAuth) -> FastAPI:
    """The demo app: public, scoped, nested-scoped, streaming and failing routes."""
    app = FastAPI()
    auth.install(app)

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {"hello": "world"}

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
        return {"owner": key.owner, "state_key": request.state.api_key.id}

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
