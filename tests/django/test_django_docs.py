"""The Python blocks of docs/integrations/django.md: all compile, and the views they
define answer as the page says."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from dj_support import Env, bearer
from django.test import RequestFactory

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations" / "django.md"
BLOCKS = [
    textwrap.dedent(block)  # blocks inside list items are indented
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
]


def _run(marker: str) -> dict[str, Any]:
    (block,) = [b for b in BLOCKS if marker in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102  (our own docs)
    return namespace


def test_every_block_compiles() -> None:
    assert len(BLOCKS) >= 6
    for block in BLOCKS:
        compile(block, str(DOC), "exec")


def test_the_documented_views_work(apikeys_env: Env) -> None:
    reader = apikeys_env.issue("orders:read")
    writer = apikeys_env.issue("orders:write")
    factory = RequestFactory()

    def get(plaintext: str | None = None) -> Any:
        return factory.get("/", headers=bearer(plaintext) if plaintext else {})

    views = _run("def orders(request)")
    assert json.loads(views["orders"](get(reader)).content) == {"owner": "team-42"}
    assert views["orders"](get(writer)).status_code == 403
    assert views["orders"](get()).status_code == 401
    assert async_to_sync(views["create_order"])(get(writer)).status_code == 201
    assert views["me"](get(writer)).status_code == 200

    mixin = _run("class OrderView(APIKeyRequiredMixin")["OrderView"].as_view()
    assert json.loads(mixin(get(reader), order_id=3).content)["order"] == 3
    delete = factory.delete("/", headers=bearer(reader))
    assert mixin(delete, order_id=3).status_code == 403

    drf = _run("class OrderViewSet")
    orders = drf["Orders"].as_view()
    assert orders(get(reader)).data == {"owner": "team-42"}
    listing = drf["OrderViewSet"].as_view({"get": "list"})
    assert listing(get(reader)).status_code == 200
    assert listing(get(writer)).status_code == 403
