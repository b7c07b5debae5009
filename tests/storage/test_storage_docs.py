"""The snippets of docs/storage.md run (or, for skeletons, type-check by shape)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apikeys.storage import KeyStore, SupportsTouch, _registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "storage.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def _block(marker: str) -> str:
    (found,) = [b for b in BLOCKS if marker in b]
    return found


def test_url_snippets_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_registry, "_STORES", dict(_registry._STORES))
    for marker in ('store_from_url("sqlite:///apikeys.db")', 'register_store("scratch"'):
        exec(compile(_block(marker), str(DOC), "exec"), {})  # noqa: S102 (our own docs)
    assert (tmp_path / "apikeys.db").exists()


def test_custom_store_skeleton_has_the_protocol_shape() -> None:
    namespace: dict[str, object] = {"__name__": "docs_snippet"}
    exec(compile(_block("class MyStore:"), str(DOC), "exec"), namespace)  # noqa: S102
    store = namespace["MyStore"]()  # type: ignore[operator]
    assert isinstance(store, KeyStore)
    assert isinstance(store, SupportsTouch)


def test_every_documented_store_name_exists() -> None:
    import apikeys.storage

    for name in (
        "MemoryStore",
        "SQLiteStore",
        "SQLAlchemyStore",
        "AsyncSQLAlchemyStore",
        "CachedStore",
    ):
        assert f"`{name}`" in DOC.read_text(encoding="utf-8")
        assert getattr(apikeys.storage, name) is not None
