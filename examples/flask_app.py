"""A small Flask shop API protected by apikeys, with its keys in a SQLite file.

Routes: ``GET /health`` is public; ``GET /orders`` and ``GET /orders/<id>`` need
``orders:read``; ``POST /orders`` needs ``orders:write``; ``GET /me`` (an async
view) needs any valid key; every route of the ``/admin`` blueprint needs
``admin:read``. Refusals are ``application/problem+json``.

The extension builds its manager from the config alone: ``APIKEYS_DATABASE_URL``
(default ``sqlite:///apikeys.db``, a file in the working directory) and
``APIKEYS_PREFIX``; set ``FLASK_APIKEYS_DATABASE_URL`` to use another store.

Run from the repository root::

    flask --app examples.flask_app apikeys create --owner demo -s orders:read -s orders:write
    flask --app examples.flask_app run          # or: python examples/flask_app.py
    curl -H "Authorization: Bearer <key>" http://127.0.0.1:5000/orders

The key dashboard is at http://127.0.0.1:5000/apikeys/ (from this machine only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, abort, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from apikeys.dashboard import local_only, wsgi_app
from apikeys.flask import APIKeys, current_key, get_manager, require_key
from apikeys.monitoring import Monitor

keys = APIKeys()  # no manager: each app builds one from its APIKEYS_* config


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The shop app (the factory ``flask --app examples.flask_app`` finds).

    Args:
        config: Config overriding the defaults and the ``FLASK_*`` environment.
    """
    app = Flask(__name__)
    app.config.from_mapping(
        APIKEYS_DATABASE_URL="sqlite:///apikeys.db",
        APIKEYS_PREFIX="shop",
        APIKEYS_DEFAULT_EXPIRY="90d",  # keys from `flask apikeys create`
    )
    app.config.from_prefixed_env()  # FLASK_APIKEYS_DATABASE_URL=...
    app.config.from_mapping(config or {})
    orders: dict[int, dict[str, Any]] = {}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/orders")
    @require_key("orders:read")
    def list_orders() -> list[dict[str, Any]]:
        return [order for order in orders.values() if order["owner"] == current_key.owner]

    @app.get("/orders/<int:order_id>")
    @require_key("orders:read")
    def get_order(order_id: int) -> dict[str, Any]:
        order = orders.get(order_id)
        if order is None or order["owner"] != current_key.owner:
            abort(404)
        return order

    @app.post("/orders")
    @require_key("orders:write")
    def create_order() -> tuple[dict[str, Any], int]:
        data = request.get_json(silent=True) or {}
        item, quantity = data.get("item"), data.get("quantity")
        if not isinstance(item, str) or not item or not isinstance(quantity, int) or quantity < 1:
            abort(422)
        order_id = len(orders) + 1
        order: dict[str, Any] = {
            "id": order_id,
            "owner": current_key.owner,
            "item": item,
            "quantity": quantity,
        }
        orders[order_id] = order
        return order, 201

    @app.get("/me")
    @require_key
    async def me() -> dict[str, Any]:
        return {
            "owner": current_key.owner,
            "key_id": current_key.id,
            "scopes": list(current_key.scopes),
        }

    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.get("/keys")
    def owner_keys() -> list[dict[str, Any]]:
        listed = get_manager().list(owner=current_key.owner)
        return [{"id": key.id, "name": key.name, "scopes": list(key.scopes)} for key in listed]

    keys.protect_blueprint(admin, "admin:read")
    app.register_blueprint(admin)
    keys.init_app(app)
    # The key dashboard; local_only lets in this machine's browsers: use your login.
    dashboard = wsgi_app(Monitor(get_manager(app)), authorize=local_only)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/apikeys": dashboard})  # type: ignore[method-assign]
    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=5000)
