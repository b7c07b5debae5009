"""The Python blocks of docs/integrations/flask.md run as written, in order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from apikeys.testing import auth_headers

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations" / "flask.md"


def test_the_documented_app_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the quick start keeps its keys in ./apikeys.db
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 2
    namespace: dict[str, Any] = {"__name__": "flask_docs"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102  (our own docs)
    keys, app = namespace["keys"], namespace["app"]
    try:
        reader = keys.create(owner="team-1", scopes=["orders:read"]).plaintext
        admin = keys.create(owner="team-1", scopes=["admin:read"]).plaintext
        client = app.test_client()
        assert client.get("/orders", headers=auth_headers(reader)).json == {"owner": "team-1"}
        assert client.get("/orders").status_code == 401
        assert client.get("/me", headers={"X-API-Key": reader}).json == {
            "owner": "team-1",
            "scopes": ["orders:read"],
        }
        assert client.get("/admin/stats", headers=auth_headers(admin)).json == {"keys": 2}
        assert client.get("/admin/stats", headers=auth_headers(reader)).status_code == 403
        refused = client.post("/admin/purge", headers=auth_headers(admin))
        assert refused.json["missing_scopes"] == ["admin:write"]
        assert (tmp_path / "apikeys.db").exists()
    finally:
        keys.close()
