"""The Python blocks of docs/integrations/litestar.md run as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

from apikeys.testing import auth_headers
from web_battery import TestClient

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations" / "litestar.md"


def _namespace() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    # Litestar resolves handler annotations through the handler's module.
    module = types.ModuleType("litestar_doc_example")
    sys.modules[module.__name__] = module
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), module.__dict__)  # noqa: S102  (our own docs)
    return module.__dict__


def test_the_documented_app_works() -> None:
    namespace = _namespace()
    app, keys = namespace["app"], namespace["keys"]
    with TestClient(app) as client:
        import asyncio

        reader = asyncio.run(keys.create(owner="team-1", scopes=["orders:read"])).plaintext
        assert client.get("/orders", headers=auth_headers(reader)).json() == {"owner": "team-1"}
        assert client.get("/orders").status_code == 401
        refused = client.post("/orders", headers=auth_headers(reader))
        assert refused.status_code == 403
        assert refused.json()["missing_scopes"] == ["orders:write"]
        assert client.get("/whoami", headers=auth_headers(reader)).json() == {"owner": "team-1"}
