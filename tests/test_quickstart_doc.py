"""docs/quickstart.md's blocks run in order, up to the section that needs a
PostgreSQL server of your own (issue 18: "Rotate, revoke, suspend" failed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "quickstart.md"


def _blocks_before(heading: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text[: text.index(heading)], re.DOTALL)


def test_the_blocks_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = _blocks_before("## Keys in your database")
    assert any("keys.suspend(" in block for block in blocks)
    namespace: dict[str, object] = {"__name__": "quickstart"}
    try:
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 (our own docs)
        keys = namespace["keys"]
        key = namespace["key"]
        new = namespace["new"]
        assert keys.get(key.id).state(keys.now()).value == "revoked"  # type: ignore[attr-defined]
        successor = keys.get(new.key.id)  # type: ignore[attr-defined]
        assert list(successor.scopes) == ["orders:read"]
    finally:
        manager = namespace.get("keys")
        if manager is not None:
            manager.close()  # type: ignore[attr-defined]


def test_install_lines_name_the_checkout() -> None:
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    for text in (DOC.read_text(encoding="utf-8"), readme):
        assert not re.search(r"pip install '?apikeys(\[|\s|$)", text, re.MULTILINE)
