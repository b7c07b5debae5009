"""The example app end to end: keys issued by its own command into a SQLite file,
served by a real uvicorn on 127.0.0.1, called with httpx over a real socket."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apikeys import KeyManager
from apikeys.storage import SQLiteStore
from web_support import uvicorn_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fastapi_app.py"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "shop.db"


@pytest.fixture
def server(tmp_path: Path, database: Path) -> Iterator[str]:
    """``uvicorn examples.fastapi_app:app`` on a free loopback port; its base URL."""
    with uvicorn_server(
        "examples.fastapi_app:app",
        cwd=ROOT,
        log=tmp_path / "uvicorn.log",
        env={"APIKEYS_DB": str(database)},
    ) as base:
        yield base


def _issue_with_the_example_command(database: Path, *scopes: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "issue", "--owner", "acme-corp"]
        + [arg for scope in scopes for arg in ("--scope", scope)],
        cwd=database.parent,
        env={**os.environ, "APIKEYS_DB": str(database)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


def test_the_example_app_on_a_real_uvicorn_server(server: str, database: Path) -> None:
    writer = _issue_with_the_example_command(database, "orders:read", "orders:write")
    assert writer.startswith("shop_")
    keys = KeyManager(SQLiteStore(str(database)), prefix="shop")
    reader = keys.create(owner="other-corp", scopes=["orders:read"])

    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    with httpx.Client(base_url=server, timeout=10) as http:
        assert http.get("/health").json() == {"status": "ok"}

        missing = http.get("/orders")
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["www-authenticate"] == 'Bearer realm="api"'

        assert http.get("/orders", headers=bearer(reader.plaintext)).json() == []
        refused = http.post(
            "/orders", json={"item": "tea", "quantity": 2}, headers=bearer(reader.plaintext)
        )
        assert refused.status_code == 403
        assert refused.json()["missing_scopes"] == ["orders:write"]

        created = http.post(
            "/orders", json={"item": "tea", "quantity": 2}, headers={"X-API-Key": writer}
        )
        assert created.status_code == 201
        assert created.json() == {"item": "tea", "quantity": 2, "id": 1, "owner": "acme-corp"}
        assert [o["id"] for o in http.get("/orders", headers=bearer(writer)).json()] == [1]
        assert http.get("/orders/1", headers=bearer(reader.plaintext)).status_code == 404
        assert http.get("/me", headers=bearer(writer)).json()["owner"] == "acme-corp"

        # Repeated headers reach an ASGI app as separate lines: still one refusal.
        twice = http.get("/me", headers=[("Authorization", f"Bearer {writer}")] * 2)
        assert twice.status_code == 401
        assert twice.json()["code"] == "invalid_token"
        both = http.get("/me", headers={**bearer(writer), "X-API-Key": writer})
        assert both.status_code == 401

        schemes = http.get("/openapi.json").json()["components"]["securitySchemes"]
        assert set(schemes) == {"APIKeyBearer", "APIKeyHeader"}

        # Revoked from another process sharing the database: refused at once.
        keys.revoke(reader.key.id, reason="test")
        revoked = http.get("/orders", headers=bearer(reader.plaintext))
        assert revoked.status_code == 401
        assert revoked.content == twice.content
    keys.close()
