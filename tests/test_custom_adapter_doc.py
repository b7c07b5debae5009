"""The complete WSGI adapter of docs/integrations/custom.md runs as written, and
answers exactly as the shipped adapters do."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from werkzeug.test import Client

from apikeys import KeyManager
from apikeys.events import RequestCompleted
from apikeys.hashing import Argon2Hasher
from apikeys.storage import MemoryStore
from apikeys.testing import auth_headers
from core_support import ListSink

DOC = Path(__file__).resolve().parents[1] / "docs" / "integrations" / "custom.md"


def test_the_documented_wsgi_adapter_works() -> None:
    [block] = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102  (our own docs)
    sink = ListSink()
    manager = KeyManager(MemoryStore(), prefix="acme", hasher=Argon2Hasher.for_tests(), events=sink)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        key = namespace["current_key"](environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [key.owner.encode()]

    client = Client(namespace["APIKeyWSGI"](app, manager, "orders:read"))
    reader = manager.create(owner="team-1", scopes=["orders:read"]).plaintext
    ok = client.get("/orders", headers=auth_headers(reader))
    assert (ok.status_code, ok.data) == (200, b"team-1")
    missing = client.get("/orders")
    assert missing.status_code == 401
    assert missing.json is not None
    assert missing.json["code"] == "missing_credentials"
    other = manager.create(owner="team-2").plaintext
    assert client.get("/orders", headers=auth_headers(other)).status_code == 403
    assert client.get("/orders", headers={"X-API-Key": f",{reader}"}).status_code == 401
    done = [e for e in sink.events if isinstance(e, RequestCompleted)]
    assert [(e.route, e.status) for e in done] == [("/orders", 200)]
