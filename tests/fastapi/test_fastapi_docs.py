"""The Python blocks of docs/integrations/fastapi.md run as written, in order."""

import re
from pathlib import Path
from typing import Any

from fastapi_support import TestClient

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations" / "fastapi.md"


def test_the_documented_app_works() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 2
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102  (our own docs)
    auth, app = namespace["auth"], namespace["app"]
    with TestClient(app) as client:
        reader = auth.issue_headers(owner="team-1", scopes=["orders:read"])
        assert client.get("/orders", headers=reader).json() == {"owner": "team-1"}
        assert client.post("/orders", headers=reader).status_code == 403
        assert client.get("/me", headers=reader).json()["scopes"] == ["orders:read"]
        refund = client.post("/orders/1/refund", headers=reader)
        assert refund.json()["missing_scopes"] == ["orders:refund"]
        writer = auth.issue_headers(scopes=["orders:write"])
        assert client.post("/orders", headers=writer).json() == {"created": True}
        assert client.get("/orders").status_code == 401
