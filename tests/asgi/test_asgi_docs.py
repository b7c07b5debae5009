"""The Python blocks of docs/integrations/asgi.md run as written."""

from __future__ import annotations

from pathlib import Path

from apikeys.testing import auth_headers
from web_battery import TestClient
from web_support import doc_namespace

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations" / "asgi.md"


def test_the_documented_app_works() -> None:
    namespace = doc_namespace(DOC, "asgi_doc_example")
    app, keys = namespace["app"], namespace["keys"]
    with TestClient(app) as client:
        import asyncio

        reader = asyncio.run(keys.create(owner="team-1", scopes=["orders:read"])).plaintext
        assert client.get("/orders", headers=auth_headers(reader)).json() == {"owner": "team-1"}
        assert client.get("/orders").status_code == 401
        refused = client.get("/orders/refund", headers=auth_headers(reader))
        assert refused.json()["missing_scopes"] == ["orders:refund"]
        assert client.get("/orders/read", headers=auth_headers(reader)).json()["action"] == "read"
