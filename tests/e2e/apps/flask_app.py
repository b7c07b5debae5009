"""The Flask app of the end-to-end tests: one wired KeyManager from a URL."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from apikeys import KeyManager
from apikeys.flask import APIKeys, current_key, require_key

app = Flask(__name__)
keys = KeyManager.from_url(os.environ["E2E_DATABASE_URL"], prefix="e2e", hasher="argon2-test")
APIKeys(app, keys)


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/orders")
@require_key("orders:read")
def orders() -> dict[str, Any]:
    return {"owner": current_key.owner}


@app.post("/orders")
@require_key("orders:write")
def new_order() -> dict[str, Any]:
    return {"owner": current_key.owner}
