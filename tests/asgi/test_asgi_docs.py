"""The Python blocks of docs/integrations/asgi.md run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from apikeys.testing import auth_headers
from web_battery import TestClient

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations" / "asgi.md"


def _namespace() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102  (our own docs)
    return namespace


def test_the_documented_app_works() -> None:
    namespace = _namespace()
    app, keys = namespace["app"], namespace["keys"]
    with TestClient(app) as client:
        import asyncio

        reader = asyncio.run(keys.create(owner="team-1", scopes=["orders:read"])).plaintext
        assert client.get("/orders", headers=auth_headers(reader)).json() == {"owner": "team-1"}
        assert client.get("/orders").status_code == 401
        refused = client.get("/orders/refund", headers=auth_headers(reader))
        assert refused.json()["missing_scopes"] == ["orders:refund"]
        assert client.get("/orders/read", headers=auth_headers(reader)).json()["action"] == "read"
