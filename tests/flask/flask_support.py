"""Helpers of the Flask adapter tests: a demo app on a real KeyManager.

Keys are issued through a second manager on the same store (as an admin tool or
the CLI would), so the app's manager sees them only through its store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, abort

from apikeys import KeyManager
from apikeys.flask import (
    APIKeys,
    authenticate,
    current_key,
    get_current_key,
    get_manager,
    require_key,
)
from apikeys.hashing import Argon2Hasher
from apikeys.ratelimit import KeyRateLimiter
from apikeys.testing import ManualClock
from web_support import FaultyStore, Recorder

__all__ = ["CLIENT_IP", "Env", "FaultyStore", "Recorder", "build_app", "make_env"]

CLIENT_IP = "203.0.113.9"
"""The peer address of every test-client request (``REMOTE_ADDR``)."""


@dataclass
class Env:
    """The app's manager and an admin manager on the same store and clock."""

    clock: ManualClock
    store: FaultyStore
    admin: KeyManager
    manager: KeyManager
    recorder: Recorder

    def issue(self, *scopes: str, **kwargs: Any) -> str:
        kwargs.setdefault("owner", "team-1")
        return self.admin.create(scopes=scopes, **kwargs).plaintext


def make_env(*, limits: list[str] | None = None, **manager_args: Any) -> Env:
    clock = ManualClock()
    store = FaultyStore()
    hasher = Argon2Hasher.for_tests()
    recorder = Recorder()
    admin = KeyManager(store, prefix="acme", hasher=hasher, clock=clock)
    manager = KeyManager(
        store,
        prefix="acme",
        hasher=hasher,
        clock=clock,
        events=recorder,
        rate_limiter=KeyRateLimiter(default=limits) if limits else None,
        **manager_args,
    )
    return Env(clock, store, admin, manager, recorder)


def build_app(ext: APIKeys | None = None, **config: Any) -> Flask:
    """The demo app: public, scoped, async, failing routes and a protected blueprint.

    ``ext`` is initialised on it (after ``config`` is applied) when given.
    """
    app = Flask(__name__)
    app.config.update(config)

    @app.get("/public")
    def public() -> dict[str, Any]:
        key = get_current_key()
        return {"hello": "world", "key": key.id if key else None, "bound": bool(current_key)}

    @app.get("/orders/<int:order_id>")
    @require_key("orders:read")
    def get_order(order_id: int) -> dict[str, Any]:
        return {"order": order_id, "owner": current_key.owner}

    @app.post("/orders")
    @require_key("orders:write")
    def create_order() -> tuple[dict[str, Any], int]:
        return {"created_by": current_key.owner}, 201

    @app.get("/me")
    @require_key
    def me() -> dict[str, Any]:
        return {"owner": current_key.owner, "scopes": list(current_key.scopes)}

    @app.get("/async/orders/<int:order_id>")
    @require_key("orders:read")
    async def get_order_async(order_id: int) -> dict[str, Any]:
        return {"order": order_id, "owner": current_key.owner, "async": True}

    @app.get("/projects/<action>")
    def project(action: str) -> dict[str, Any]:
        key = authenticate(f"projects:{action}")
        return {"action": action, "owner": key.owner}

    @app.get("/gone/<int:order_id>")
    @require_key
    def gone(order_id: int) -> dict[str, Any]:
        abort(404)

    @app.get("/boom")
    @require_key
    def boom() -> dict[str, Any]:
        raise RuntimeError("the view failed")

    @app.get("/keys/<key_id>")
    @require_key("keys:read")
    def show_key(key_id: str) -> dict[str, Any]:
        return {"owner": get_manager().get(key_id).owner}

    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.get("/stats")
    def stats() -> dict[str, Any]:
        return {"owner": current_key.owner}

    @admin.post("/purge")
    @require_key("admin:write")
    def purge() -> dict[str, Any]:
        return {"purged": True}

    reports = Blueprint("reports", __name__, url_prefix="/reports")

    @reports.get("/daily")
    def daily() -> dict[str, Any]:
        return {"report": "daily", "owner": current_key.owner}

    admin.register_blueprint(reports)
    if ext is not None:
        ext.protect_blueprint(admin, "admin:read")
    app.register_blueprint(admin)
    if ext is not None:
        ext.init_app(app)
    return app
